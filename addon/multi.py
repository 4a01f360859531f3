"""s3-multi: several S3 backends behind one S3 endpoint, as a mitmproxy addon.

    ROOT_ACCESS_KEY_ID=... ROOT_SECRET_ACCESS_KEY=... \\
    mitmdump -s addon/multi.py --mode reverse:http://127.0.0.1:1 \\
        --set keep_host_header=true --set connection_strategy=lazy \\
        --set s3multi_config=configs/local.yaml

Hooks only: a request's way is `gateway.router` (authenticate, classify, authorise, choose) then
an `upstream.exchange` (forwarded in-flow, its decisions taken by `upstream.journey`) or a merged
listing (`namespace.bucket_listing`, `namespace.object_listing`: answered by the proxy). Every
request is verified against the root keys and the gateway users' before anything is forwarded;
requests that fail, and every request while the addon is not configured, are refused here with
an S3 error. The proxy's own status paths (`ops.status_paths`: health, metrics) are answered
before that; every request is counted (`ops.metrics`) and kept track of until it ends
(`ops.in_flight`: SIGTERM waits for them). SIGHUP and option updates build a new setup
(`gateway.assembly`) and swap it in whole.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from weakref import WeakKeyDictionary

from mitmproxy import connection, ctx, exceptions, http, tls
from mitmproxy.proxy.mode_specs import ReverseMode
from mitmproxy.proxy.server_hooks import ServerConnectionHookData

from addon.gateway import assembly, options, own_answers
from addon.gateway.assembly import Setup
from addon.gateway.own_answers import shown_as_gateway
from addon.gateway.router import Router
from addon.gateway.signed import resource
from addon.migration.copy_on_read import CopyTasks
from addon.mitm import client_heads, closing, policy
from addon.mitm.install import install
from addon.namespace.bucket_listing import BucketsMerge
from addon.namespace.object_listing import ListingMerge
from addon.ops import metrics, public_clients, status_paths, workers
from addon.ops.client_limits import ClientLimits
from addon.ops.in_flight import InFlight
from addon.ops.status_paths import StatusAnswer
from addon.ops.users_source import UsersSource
from addon.s3.errors import S3Error
from addon.s3.log_text import printable
from addon.upstream import backends
from addon.upstream.exchange import Exchange

log = logging.getLogger("s3multi")
ProxyAnswer = BucketsMerge | ListingMerge | StatusAnswer  # requests the proxy answers itself


class S3Multi:
    def __init__(self) -> None:
        self.setup: Setup | None = None  # None: not configured (every request refused)
        self.users: UsersSource | None = None
        self.head_limits = client_heads.HeadLimits()  # before the setup's: mitmproxy's default
        self.missing: list[str] = []
        self.copies = CopyTasks()  # copies on read, across reloads
        self.in_flight = InFlight(
            self.copies, lambda: self.setup.replication if self.setup else None
        )
        self.clients = ClientLimits(lambda: self.router.config if self.router else None)
        self.worker = os.environ.get(workers.WORKER_VARIABLE, "")  # "": the only process
        self._started = False  # `running` was called: background work may start
        # Each flow's request on its way, beside the flow: flow.metadata is deep-copied when
        # flows are saved.
        self.requests: WeakKeyDictionary[http.HTTPFlow, Exchange | ProxyAnswer] = (
            WeakKeyDictionary()
        )

    @property
    def router(self) -> Router | None:
        return self.setup.router if self.setup is not None else None

    def load(self, loader) -> None:
        # Refusals and fallback rely on it: installed before any flow, whatever the options.
        install(lambda: self.head_limits)
        # botocore logs four debug records per signature; mitmproxy's root logger takes them
        # all, which costs a third of a small request's time.
        logging.getLogger("botocore").setLevel(logging.WARNING)
        options.add_options(loader)

    def configure(self, updated: set[str]) -> None:
        if not any(name.startswith("s3multi_") or name.startswith("ssl_") for name in updated):
            return
        if updated == {"s3multi_users"} and self.setup is not None:
            self._use_users(assembly.open_users(self.setup.router, self.setup.client))
            return  # the rest stays as it is
        self.reload()

    def reload(self) -> None:
        """Build everything the options and the files decide, then swap it in whole; a mistake
        raises OptionsError and leaves the running setup as it was."""
        settings = {name: options.setting(name) for name in options.FROM_ENVIRONMENT}
        missing = [name for name, value in settings.items() if not value]
        if missing and self.setup is not None:
            raise exceptions.OptionsError(f"s3-multi: set {', '.join(missing)}")
        # Missing values at start are reported by `running`, not raised here: mitmproxy re-runs
        # configure with the previous (empty) values after an error, which would hide the real
        # message.
        self.missing = missing
        if missing:
            return
        running = self.setup
        setup = assembly.assemble(settings, running, self.copies, policy.inject_deadline)
        try:
            users = assembly.open_users(setup.router, setup.client)
        except exceptions.OptionsError:
            if running is None or setup.client is not running.client:
                setup.client.close()
            else:
                running.client.health = running.router.health  # the new setup's is dropped
            raise
        if running is not None:
            running.close()
            if setup.client is not running.client:
                running.client.close()  # its idle connections: those in use end with them
        self._use_users(users)
        self.setup = setup
        if self._started:
            setup.start()
            assembly.swapped(running, setup)
        self.head_limits = setup.head_limits

    def _use_users(self, source: UsersSource) -> None:
        if self.users is not None:
            self.users.close()
        self.users = source

    def running(self) -> None:
        if self.setup is None:
            why = f"set {', '.join(self.missing)}" if self.missing else "see the error above"
            log.error("s3-multi is not configured (%s); shutting down", why)
            ctx.master.shutdown()
            return
        if warning := public_clients.refused_publicly(ctx.options):
            log.warning(warning)
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self.hangup)
        loop.add_signal_handler(signal.SIGTERM, self._terminate)
        self.clients.start()
        self._started = True
        self.setup.start()
        self.setup.readiness.check_at_start()

    def done(self) -> None:
        self.clients.stop()
        if self.users is not None:
            self.users.close()
        if self.setup is not None:
            self.setup.close()
            self.setup.client.close()

    def client_connected(self, client: connection.Client) -> None:
        self.clients.connected(client)

    def client_disconnected(self, client: connection.Client) -> None:
        self.clients.disconnected(client)

    # --- one request -----------------------------------------------------------------------------

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live or not self._ours(flow):
            return
        self.in_flight.started(flow)
        if (beyond := self.clients.started(flow)) is not None:
            self._refuse(flow, beyond, close=True)  # and the connection closes after it
            return
        domains = self.router.domains if self.router else ()
        path = status_paths.asked(flow.request, domains)
        if path is not None:  # before authentication: health checkers have no keys
            readiness = self.setup.readiness if self.setup else None
            self.requests[flow] = StatusAnswer(
                path, flow.request.method, readiness, self.in_flight.draining, self.worker
            )
            shown_as_gateway(flow)
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
            policy.manage(flow, started)
            started.start(flow)
        else:
            shown_as_gateway(flow)  # answered by the proxy itself

    async def request(self, flow: http.HTTPFlow) -> None:
        started = self.requests.get(flow)
        if isinstance(started, StatusAnswer):
            flow.response = await started.answer()
        elif isinstance(started, BucketsMerge | ListingMerge):
            assert self.setup is not None
            flow.response = await started.answer(self.setup.client)
        elif isinstance(started, Exchange):
            # A body read whole is checked here, before it goes anywhere.
            refusal = started.check_whole_body(flow.request)
            if refusal is not None:
                flow.response = refusal
            else:
                started.sent()

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        self.in_flight.closing(flow)
        started = self.requests.get(flow)
        if isinstance(started, Exchange) and flow.response is not None:
            flow.response.stream = started.may_stream(flow.response) and started.relay

    async def response(self, flow: http.HTTPFlow) -> None:
        started = self.requests.get(flow)
        if isinstance(started, Exchange):
            await started.answered(flow)
        self._report(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._report(flow)

    def server_connect(self, data: ServerConnectionHookData) -> None:
        if self.setup is not None:
            self.setup.connect_timeouts.connecting(data)

    def server_connected(self, data: ServerConnectionHookData) -> None:
        closing.hear_upstream_out(data)
        if self.setup is not None:
            self.setup.connect_timeouts.done(data)

    def server_connect_error(self, data: ServerConnectionHookData) -> None:
        if self.setup is not None:
            self.setup.connect_timeouts.done(data)

    def _report(self, flow: http.HTTPFlow) -> None:
        if not self.in_flight.finished(flow):
            return  # not ours, or reported already
        self.clients.ended(flow)
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
        if self.setup is not None and self.setup.debug:
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
        self.in_flight.drain(ctx.options.s3multi_drain_timeout)

    def tls_start_server(self, data: tls.TlsData) -> None:
        if self.router is not None:
            backends.verify_tls_as_configured(data, self.router.backends)

    def _ours(self, flow: http.HTTPFlow) -> bool:
        """As an endpoint (reverse mode) every request is S3 for us; as a sidecar (regular
        mode), only requests to the s3multi_domain hosts: the rest passes untouched."""
        if isinstance(flow.client_conn.proxy_mode, ReverseMode):
            return True
        return self.router is not None and self.router.serves(flow.request.host)

    def _refuse(self, flow: http.HTTPFlow, error: S3Error, close: bool = False) -> None:
        named = self.router.target(flow.request) if self.router else None
        where = resource(named) if named else flow.request.path.partition("?")[0]
        own_answers.refuse(flow, error, where, close)
        if self.setup is not None and self.setup.debug:
            method, worker = flow.request.method, self._by_worker
            log.info("%s%s %s refused: %s", worker, method, printable(where), error)


addons = [S3Multi()]
