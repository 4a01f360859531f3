"""The `s3-multi` command's own mitmproxy master: only the addons an S3 endpoint needs.

mitmdump's master (`DumpMaster`) runs about 35 addons, and mitmproxy offers every event of every
request to each of them; an S3 endpoint needs six, in this order:

- TermLog (`Master(with_termlog=True)`): the log on stdout (errors, the addon's lines, and the
  `listening at` line the workers' supervisor and the tests wait for).
- Core: checks the core options when they change (the `set` command and the like).
- Proxyserver: the listeners and connections; it declares `connection_strategy`,
  `keep_host_header`, `stream_large_bodies` and `body_size_limit`, acts on `server` (the
  SIGTERM drain turns it off) and delivers the addon's injected deadlines (`inject_event`).
  `Master.run` looks it up by its name.
- NextLayer: reverse mode's layers, TLS or not from the client's first bytes (one port speaks
  both).
- TlsConfig: TLS to clients (mitmproxy's CA in `confdir`) and to backends
  (`ssl_verify_upstream_trusted_ca`, ...); the addon calls its `tls_start_server` for a backend
  with `sslSkipVerify`.
- the S3Multi addon, then Save only when flows are saved (`-w`: after the addon, so that a saved
  flow has the comment the addon's `response` hook sets), then ErrorCheck (an error logged at
  startup, such as a port in use, exits with status 1; `Master.run` looks it up by its name).

Left out on purpose: Block (its `block_global`, on by default in mitmproxy, refuses every
client with a public address, also in reverse mode: an S3 endpoint serves them), Onboarding
(it would answer `Host: mitm.it` itself), DisableH2C, UpdateAltSvc, KeepServing, the Dumper and
every addon for interactive use (replay, maps, modify, anticache, proxyauth, ...). Their options
therefore do not exist on this master. `mitmdump -s addon/multi.py` and mitmweb keep them all.
"""

from __future__ import annotations

from mitmproxy import master
from mitmproxy.addons import core, errorcheck, next_layer, proxyserver, save, tlsconfig
from mitmproxy.options import Options

from addon.mitm import dispatch


def lean_master(options: Options, addon: object, *, save_flows: bool = False) -> master.Master:
    """A master running `addon` and what serving needs, its hooks dispatched from a cache
    (`dispatch`); mitmproxy's Save as well when flows are saved (set `save_stream_file` once
    the master is built: Save declares it)."""
    built = master.Master(options, with_termlog=True)
    dispatch.cache_hooks(built.addons)
    built.addons.add(
        core.Core(), proxyserver.Proxyserver(), next_layer.NextLayer(), tlsconfig.TlsConfig()
    )
    built.addons.add(addon)
    if save_flows:
        built.addons.add(save.Save())
    built.addons.add(errorcheck.ErrorCheck())
    return built
