"""s3-multi: several S3 backends behind one S3 endpoint, as a mitmproxy addon.

    ROOT_ACCESS_KEY_ID=... ROOT_SECRET_ACCESS_KEY=... \\
    mitmdump -s addon/multi.py --mode reverse:http://127.0.0.1:1 \\
        --set keep_host_header=true --set connection_strategy=lazy \\
        --set s3multi_config=configs/local.yaml

Hooks only: a request's way is `router` (authenticate, classify) then `exchange` (forwarded
in-flow, its decisions taken by `journey`) or `listing` (answered by the proxy). Every request is
verified against the root keys and the gateway users' (`users_source`) before anything is
forwarded; requests that fail, and every request while the addon is not configured, are refused
here with an S3 error. The proxy's own status paths (`status_paths`: health, metrics) are
answered before that; every request is counted (`metrics`) and kept track of until it ends
(`drain`: SIGTERM waits for them). SIGHUP and option updates run `reload`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from weakref import WeakKeyDictionary

from mitmproxy import connection, ctx, exceptions, http, tls
from mitmproxy.proxy.mode_specs import ReverseMode
from mitmproxy.proxy.server_hooks import ServerConnectionHookData
from OpenSSL import SSL

from addon.auth.checks import Key
from addon.auth.client_auth import ClientAuth
from addon.auth.users import Users
from addon.config.files import ConfigError
from addon.config.settings import DEFAULT_REGION, load_config
from addon.gateway.router import Router, resource
from addon.mitm import client_heads, upstream_control
from addon.namespace.bucket_listing import BucketsMerge
from addon.namespace.object_listing import ListingMerge
from addon.namespace.tombstones import Tombstones
from addon.ops import metrics, status_paths, workers
from addon.ops.in_flight import Drain
from addon.ops.status_paths import Readiness, StatusAnswer
from addon.ops.users_source import UsersSource, polled
from addon.s3.errors import S3Error, error_response, new_request_id
from addon.upstream import backends, retarget
from addon.upstream.backend_client import BackendClient
from addon.upstream.deadlines import ConnectTimeouts
from addon.upstream.exchange import Exchange
from addon.upstream.journey import printable

log = logging.getLogger("s3multi")
ProxyAnswer = BucketsMerge | ListingMerge | StatusAnswer  # requests the proxy answers itself

# option -> the variables read when it is not set (the secret is never an option default:
# defaults show in `--options` and in mitmweb's options page).
_FROM_ENVIRONMENT = {
    "s3multi_config": ("VGW_S3_MULTI_CONFIG",),
    "s3multi_access": ("ROOT_ACCESS_KEY_ID", "ROOT_ACCESS_KEY"),
    "s3multi_secret": ("ROOT_SECRET_ACCESS_KEY", "ROOT_SECRET_KEY"),
}


def _setting(name: str) -> str:
    value = getattr(ctx.options, name)
    variables = _FROM_ENVIRONMENT.get(name, ())
    return value or next((os.environ[v] for v in variables if os.environ.get(v)), "")


class S3Multi:
    def __init__(self) -> None:
        self.router: Router | None = None
        self.client: BackendClient | None = None
        self.users: UsersSource | None = None
        self.connect_timeouts = ConnectTimeouts(())
        self.missing: list[str] = []
        self.debug = False
        self.readiness: Readiness | None = None
        self.drain = Drain()
        self.worker = os.environ.get(workers.WORKER_VARIABLE, "")  # "": the only process
        # Each flow's request on its way, beside the flow: flow.metadata is deep-copied when
        # flows are saved.
        self.requests: WeakKeyDictionary[http.HTTPFlow, Exchange | ProxyAnswer] = (
            WeakKeyDictionary()
        )

    def load(self, loader) -> None:
        # Refusals and fallback rely on it: installed before any flow, whatever the options.
        upstream_control.install()
        # botocore logs four debug records per signature; mitmproxy's root logger takes them
        # all, which costs a third of a small request's time.
        logging.getLogger("botocore").setLevel(logging.WARNING)
        loader.add_option(
            "s3multi_config",
            str,
            "",
            "Backends file (YAML or JSON); the first backend is the primary. "
            "Default: $VGW_S3_MULTI_CONFIG.",
        )
        loader.add_option(
            "s3multi_access",
            str,
            "",
            "Root access key that clients sign with. Default: $ROOT_ACCESS_KEY_ID.",
        )
        loader.add_option(
            "s3multi_secret",
            str,
            "",
            "Root secret key that clients sign with. Default: $ROOT_SECRET_ACCESS_KEY. "
            "Prefer the variable: an option's value shows in mitmweb and in process lists.",
        )
        loader.add_option("s3multi_region", str, DEFAULT_REGION, "Region clients sign for.")
        loader.add_option(
            "s3multi_domain",
            str,
            "",
            "Comma-separated domains of virtual-hosted requests: Host bucket.DOMAIN addresses "
            "the bucket (for example s3.example.com, or s3.amazonaws.com for a sidecar). "
            "Path-style requests work either way.",
        )
        loader.add_option(
            "s3multi_debug",
            bool,
            False,
            "Log one line per request: operation, backends tried with status and time, "
            "which one answered. Also on with $VGW_S3_MULTI_DEBUG.",
        )
        loader.add_option(
            "s3multi_drain_timeout",
            int,
            30,
            "Seconds that SIGTERM lets requests in flight finish (no new connections meanwhile) "
            "before the proxy stops; SIGINT or a second SIGTERM stops at once.",
        )
        loader.add_option(
            "s3multi_users",
            str,
            "",
            "Users file (YAML or JSON) or s3://<metaBucket>/<key>: gateway users' keys and "
            "rights beside the root keys. Set it again to reload. Default: the config's `users` "
            "($VGW_S3_MULTI_USERS).",
        )

    def configure(self, updated: set[str]) -> None:
        if not any(name.startswith("s3multi_") or name.startswith("ssl_") for name in updated):
            return
        if updated == {"s3multi_users"} and self.router is not None and self.client is not None:
            self._open_users(self.router, self.client)  # the rest stays as it is
            return
        self.reload()

    def reload(self) -> None:
        """Build everything the options and the config file (and the users file) decide, then
        swap it in whole: a mistake raises OptionsError and leaves the running setup as it was.
        Run at start, on every option update, and on SIGHUP (the files read again)."""
        variable = os.environ.get("VGW_S3_MULTI_DEBUG", "").lower()
        settings = {name: _setting(name) for name in _FROM_ENVIRONMENT}
        missing = [name for name, value in settings.items() if not value]
        if missing and self.router is not None:
            raise exceptions.OptionsError(f"s3-multi: set {', '.join(missing)}")
        # Missing values at start are reported by `running`, not raised here: mitmproxy re-runs
        # configure with the previous (empty) values after an error, which would hide the real
        # message.
        self.missing = missing
        if missing:
            return
        try:
            config = load_config(settings["s3multi_config"])
        except ConfigError as e:
            raise exceptions.OptionsError(str(e)) from None
        root = Key(settings["s3multi_access"], settings["s3multi_secret"])
        location = ctx.options.s3multi_users or config.users
        in_use = self.router.users if self.router else None
        if polled(location) and in_use and in_use.source == location and not in_use.pending:
            # Until the new poll's first look: the table in use, not "try again" to every user.
            users = Users(root, in_use.users, source=location)
        else:
            users = Users(root, source=location, pending=polled(location))
        auth = ClientAuth(users, ctx.options.s3multi_region)
        domains = tuple(
            d.strip().lower() for d in ctx.options.s3multi_domain.split(",") if d.strip()
        )
        ca_file = ctx.options.ssl_verify_upstream_trusted_ca or None
        # Connections in use by requests under the old setup stay theirs.
        client = self.client
        if client is None or client.ca_file != ca_file:
            client = BackendClient(ca_file=ca_file)
        primary, *fallbacks = config.backends
        tombstones = None
        if primary.meta_bucket:
            tombstones = Tombstones(primary, tuple(fallbacks), client)
        elif fallbacks:
            log.warning(
                "s3-multi: no metaBucket on the primary (%s): a delete of a key that a fallback "
                "still has will not stick (the fallback's copy is served again)",
                primary.name,
            )
        router = Router(config, auth, _inject, client, domains, tombstones, users=users)
        try:
            self._open_users(router, client)
        except exceptions.OptionsError:
            if client is not self.client:
                client.close()
            raise
        if self.client is not None and client is not self.client:
            self.client.close()  # its idle connections: those in use end with their requests
        self.router = router
        self.client = client
        self.readiness = Readiness(config.backends, client)
        self.debug = ctx.options.s3multi_debug or variable in ("1", "true", "yes", "on")
        self.connect_timeouts = ConnectTimeouts(config.backends)
        client_heads.head_limits = client_heads.HeadLimits(
            seconds=config.client_timeout, refuse=self._refuse_head
        )
        names = ", ".join(f"{b.name} ({b.endpoint})" for b in config.backends)
        log.info("s3-multi: %d backends, primary first: %s", len(config.backends), names)

    def _open_users(self, router: Router, client: BackendClient) -> None:
        """The users from where `s3multi_users` (else the config's `users`) says, read now; a
        bad file is refused (OptionsError) and the users in use stay."""
        location = ctx.options.s3multi_users or router.config.users
        source = UsersSource(
            location,
            router.users.root,
            router.use_users,
            client,
            router.backends[0],
            router.config.users_poll,
        )
        try:
            source.load()
        except ConfigError as e:
            raise exceptions.OptionsError(str(e)) from None
        if self.users is not None:
            self.users.close()
        self.users = source

    def running(self) -> None:
        if self.router is None:
            why = f"set {', '.join(self.missing)}" if self.missing else "see the error above"
            log.error("s3-multi is not configured (%s); shutting down", why)
            ctx.master.shutdown()
            return
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self.hangup)
        loop.add_signal_handler(signal.SIGTERM, self._terminate)

    def done(self) -> None:
        if self.users is not None:
            self.users.close()
        if self.client is not None:
            self.client.close()

    # --- one request -----------------------------------------------------------------------------

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live or not self._ours(flow):
            return
        self.drain.started(flow)
        domains = self.router.domains if self.router else ()
        path = status_paths.asked(flow.request, domains)
        if path is not None:  # before authentication: health checkers have no keys
            self.requests[flow] = StatusAnswer(
                path, flow.request.method, self.readiness, self.drain.draining, self.worker
            )
            return
        request = flow.request
        try:
            if self.router is None:
                raise S3Error("ServiceUnavailable", "s3-multi is not configured.")
            started = self.router.start(flow)
        except S3Error as e:
            self._refuse(flow, e)
            return
        except Exception:
            # A bug of ours must not let the request through unchecked: refuse it, loudly.
            log.exception("s3-multi failed on %s", printable(request.path.split("?")[0]))
            self._refuse(flow, S3Error("InternalError"))
            return
        self.requests[flow] = started
        if isinstance(started, Exchange):
            upstream_control.manage(flow, started)
            started.start(request)

    async def request(self, flow: http.HTTPFlow) -> None:
        started = self.requests.get(flow)
        if isinstance(started, StatusAnswer):
            flow.response = await started.answer()
        elif isinstance(started, BucketsMerge | ListingMerge):
            assert self.client is not None
            flow.response = await started.answer(self.client)
        elif isinstance(started, Exchange):
            # A body read whole is checked here, before it goes anywhere.
            refusal = started.check_whole_body(flow.request)
            if refusal is not None:
                flow.response = refusal
            else:
                started.sent()

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        self.drain.closing(flow)
        started = self.requests.get(flow)
        if isinstance(started, Exchange) and flow.response is not None:
            flow.response.stream = started.may_stream(flow.response) and started.relay

    async def response(self, flow: http.HTTPFlow) -> None:
        started = self.requests.get(flow)
        if isinstance(started, Exchange):
            await started.settled_answer(flow)
        self._report(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._report(flow)

    def server_connect(self, data: ServerConnectionHookData) -> None:
        self.connect_timeouts.connecting(data)

    def server_connected(self, data: ServerConnectionHookData) -> None:
        self.connect_timeouts.done(data)

    def server_connect_error(self, data: ServerConnectionHookData) -> None:
        self.connect_timeouts.done(data)

    def _report(self, flow: http.HTTPFlow) -> None:
        if not self.drain.finished(flow):
            return  # not ours, or reported already
        started = self.requests.get(flow)
        if not isinstance(started, StatusAnswer):
            metrics.observe(flow, started)
        if started is None:
            return
        if isinstance(started, Exchange):
            started.finished()
        flow.comment = started.summary()
        if flow.error is not None:
            flow.comment += f"; failed: {printable(flow.error.msg)}"
        if self.debug:
            log.info("%s%s", self._by_worker, flow.comment)

    @property
    def _by_worker(self) -> str:
        return f"worker {self.worker}: " if self.worker else ""

    def hangup(self) -> None:
        """SIGHUP: the config file (and the options) read again; a bad one is refused."""
        try:
            self.reload()
        except exceptions.OptionsError as e:
            worker = self._by_worker
            log.error("s3-multi: %sreload refused, the running config stays: %s", worker, e)
        else:
            log.info("s3-multi: %sreloaded on SIGHUP", self._by_worker)

    def _terminate(self) -> None:
        self.drain.start(ctx.options.s3multi_drain_timeout)

    def tls_start_server(self, data: tls.TlsData) -> None:
        """sslSkipVerify, for that backend's connections only (not mitmproxy's ssl_insecure,
        which would switch verification off for every backend)."""
        address = data.conn.address if isinstance(data.conn, connection.Server) else None
        if self.router is None or address is None:
            return
        if backends.skips_tls_verify(self.router.backends, address):
            if data.ssl_conn is None:  # mitmproxy's own TLS setup (SNI, ALPN, ciphers) first
                ctx.master.addons.get("tlsconfig").tls_start_server(data)
            # Whether mitmproxy's tlsconfig ran before this hook or not (its place among the
            # addons differs between `mitmdump -s` and the s3-multi command).
            assert data.ssl_conn is not None
            data.ssl_conn.set_verify(SSL.VERIFY_NONE)

    def _ours(self, flow: http.HTTPFlow) -> bool:
        """As an endpoint (reverse mode) every request is S3 for us; as a sidecar (regular
        mode), only requests to the s3multi_domain hosts: the rest passes untouched."""
        if isinstance(flow.client_conn.proxy_mode, ReverseMode):
            return True
        return self.router is not None and self.router.serves(flow.request.host)

    def _refuse_head(self, reason: str, peer: object) -> http.Response:
        """The answer to a request head that is too large or too slow to arrive."""
        if reason == client_heads.TOO_LARGE:
            limit = str(client_heads.head_limits.max_bytes)
            error = S3Error("RequestHeaderSectionTooLarge", extra={"MaxSizeAllowed": limit})
        else:
            error = S3Error("RequestTimeout")
        answer = error_response(error, "GET", "/", new_request_id())
        answer.headers["Connection"] = "close"
        log.warning("client %s refused: %s (its request head is %s)", peer, error.code, reason)
        return answer

    def _refuse(self, flow: http.HTTPFlow, error: S3Error) -> None:
        named = self.router.target(flow.request) if self.router else None
        where = resource(named) if named else flow.request.path.partition("?")[0]
        answer = error_response(error, flow.request.method, where, new_request_id())
        # Answered in place of connecting to a backend, before any body is read.
        upstream_control.manage(flow, upstream_control.AnswerInstead(answer))
        retarget.hold_off(flow.request)
        flow.comment = f"refused: {error.code}"
        metrics.refused(error.code)
        if self.debug:
            method, worker = flow.request.method, self._by_worker
            log.info("%s%s %s refused: %s", worker, method, printable(where), error)


def _inject(flow: http.HTTPFlow, phase: str) -> None:
    """An expired deadline, into the flow's connection, where its policy acts on it."""
    with contextlib.suppress(ValueError):  # the client has gone: nothing to act on
        ctx.master.addons.get("proxyserver").inject_event(
            upstream_control.DeadlinePassed(flow, phase)
        )


addons = [S3Multi()]
