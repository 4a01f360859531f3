"""The s3-multi command's master: the addons an S3 endpoint needs, in their order, mitmproxy's
Save only when flows are saved, and no Block (its block_global would refuse public clients)."""

from __future__ import annotations

import asyncio

from mitmproxy.options import Options

from addon.mitm import dispatch
from addon.mitm.master import lean_master


class Probe:
    """Stands for the S3Multi addon."""

    name = "probe"


def _built(save_flows: bool) -> tuple[list[str], Options, type]:
    async def build():
        master = lean_master(Options(), Probe(), save_flows=save_flows)
        names = [getattr(a, "name", type(a).__name__.lower()) for a in master.addons.chain]
        return names, master.options, type(master.addons)

    return asyncio.run(build())


def test_the_command_runs_what_serving_needs_in_order_and_the_addon_before_errorcheck():
    names, options, manager = _built(save_flows=False)
    served = ["termlog", "core", "proxyserver", "nextlayer", "tlsconfig"]
    assert names == [*served, "probe", "errorcheck"]
    assert manager is dispatch.CachedAddonManager
    # What the command and the addon set or read is there.
    for option in ("keep_host_header", "connection_strategy", "server", "confdir"):
        assert option in options
    assert "ssl_verify_upstream_trusted_ca" in options


def test_no_block_addon_so_clients_with_public_addresses_are_served():
    names, options, _ = _built(save_flows=False)
    assert "block" not in names
    assert "block_global" not in options and "block_private" not in options


def test_flows_are_saved_only_when_asked_after_the_addon_so_its_comment_is_saved():
    names, options, _ = _built(save_flows=True)
    assert names.index("save") == names.index("probe") + 1
    assert "save_stream_file" in options
    names, options, _ = _built(save_flows=False)
    assert "save" not in names and "save_stream_file" not in options
