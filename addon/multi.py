"""s3-multi: several S3 backends behind one S3 endpoint, as a mitmproxy addon.

    mitmdump -s addon/multi.py --mode reverse:http://127.0.0.1:1 \\
        --set keep_host_header=true --set connection_strategy=lazy \\
        --set s3multi_config=configs/local.yaml \\
        --set s3multi_access=ROOT_AK --set s3multi_secret=ROOT_SK

Hooks only: the request path itself is `addon.router`. Every request is verified against the
root keys before anything is forwarded; requests that fail, and every request while the addon
is not configured, are answered here with an S3 error.
"""

from __future__ import annotations

import logging
import os
from urllib.parse import unquote
from weakref import WeakKeyDictionary

from mitmproxy import ctx, exceptions, http, tls
from mitmproxy.proxy.mode_specs import ReverseMode
from OpenSSL import SSL

from addon import backends, upstream_control
from addon.client_auth import ClientAuth, RootKeys
from addon.config import DEFAULT_REGION, ConfigError, load_config
from addon.errors import S3Error, new_request_id
from addon.router import Exchange, Router, error_response

log = logging.getLogger("s3multi")

_BODY_METHODS = frozenset({"PUT", "POST"})
_REQUIRED = ("s3multi_config", "s3multi_access", "s3multi_secret")


def _env(*names: str) -> str:
    return next((os.environ[n] for n in names if os.environ.get(n)), "")


class S3Multi:
    def __init__(self) -> None:
        self.router: Router | None = None
        self.missing: list[str] = []
        # Each flow's journey, beside the flow: flow.metadata is deep-copied when flows are saved.
        self.exchanges: WeakKeyDictionary[http.HTTPFlow, Exchange] = WeakKeyDictionary()

    def load(self, loader) -> None:
        # Refusals and fallback rely on it: installed before any flow, whatever the options.
        upstream_control.install()
        # botocore logs four debug records per signature; mitmproxy's root logger takes them
        # all, which costs a third of a small request's time.
        logging.getLogger("botocore").setLevel(logging.WARNING)
        loader.add_option(
            "s3multi_config",
            str,
            _env("VGW_S3_MULTI_CONFIG"),
            "Backends file (YAML or JSON); the first backend is the primary. "
            "Default: $VGW_S3_MULTI_CONFIG.",
        )
        loader.add_option(
            "s3multi_access",
            str,
            _env("ROOT_ACCESS_KEY_ID", "ROOT_ACCESS_KEY"),
            "Root access key that clients sign with. Default: $ROOT_ACCESS_KEY_ID.",
        )
        loader.add_option(
            "s3multi_secret",
            str,
            _env("ROOT_SECRET_ACCESS_KEY", "ROOT_SECRET_KEY"),
            "Root secret key that clients sign with. Default: $ROOT_SECRET_ACCESS_KEY "
            "(prefer the variable: option values show in mitmweb and in process lists).",
        )
        loader.add_option(
            "s3multi_region",
            str,
            DEFAULT_REGION,
            "Region clients sign for.",
        )
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
            _env("VGW_S3_MULTI_DEBUG").lower() in ("1", "true", "yes", "on"),
            "Log one line per request: operation, backends tried with status and time, "
            "which one answered. Default: $VGW_S3_MULTI_DEBUG.",
        )

    def configure(self, updated: set[str]) -> None:
        if not any(name.startswith("s3multi_") for name in updated):
            return
        self.router = None
        opts = ctx.options
        # Missing values are reported by `running`, not raised here: mitmproxy re-runs configure
        # with the previous (empty) values after an error, which would hide the real message.
        self.missing = [n for n in _REQUIRED if not getattr(opts, n)]
        if self.missing:
            return
        try:
            backend_list = load_config(opts.s3multi_config)
        except ConfigError as e:
            raise exceptions.OptionsError(str(e)) from None
        auth = ClientAuth(RootKeys(opts.s3multi_access, opts.s3multi_secret), opts.s3multi_region)
        domains = tuple(d.strip().lower() for d in opts.s3multi_domain.split(",") if d.strip())
        self.router = Router(backend_list, auth, domains)
        names = ", ".join(f"{b.name} ({b.endpoint})" for b in backend_list)
        log.info("s3-multi: %d backends, primary first: %s", len(backend_list), names)

    def running(self) -> None:
        if self.router is None:
            why = f"set {', '.join(self.missing)}" if self.missing else "see the error above"
            log.error("s3-multi is not configured (%s); shutting down", why)
            ctx.master.shutdown()

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live or not self._ours(flow):
            return
        request = flow.request
        try:
            if self.router is None:
                raise S3Error("ServiceUnavailable", "s3-multi is not configured.")
            exchange = self.router.start(request)
        except S3Error as e:
            self._refuse(flow, e)
            return
        except Exception:
            # A bug of ours must not let the request through unchecked: refuse it, loudly.
            log.exception("s3-multi failed on %s %s", request.method, request.path.split("?")[0])
            self._refuse(flow, S3Error("InternalError"))
            return
        self.exchanges[flow] = exchange
        control = upstream_control.control(flow)
        exchange.aim_next(request)
        if request.method in _BODY_METHODS:
            request.stream = exchange.body_stream(request)
            if not request.stream:
                # Read whole: checked (and re-framed) just before it would be sent. Not in a
                # `request` hook: one more hook on every request costs more than the check.
                control.check_body = exchange.whole_body

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        exchange = self.exchanges.get(flow)
        if exchange is None or flow.response is None:
            return
        if exchange.falls_back_at_headers(flow):
            upstream_control.control(flow).resend = True  # no response hook for this 404
        elif exchange.may_stream(flow.response):
            flow.response.stream = True

    def response(self, flow: http.HTTPFlow) -> None:
        exchange = self.exchanges.get(flow)
        if exchange is None:
            return
        control = upstream_control.control(flow)
        unreachable, control.unreachable = control.unreachable, None
        if exchange.answered(flow, unreachable):
            control.resend = True
            return
        flow.comment = exchange.summary()
        if ctx.options.s3multi_debug:
            log.info(flow.comment)

    def tls_start_server(self, data: tls.TlsData) -> None:
        """sslSkipVerify, for that backend's connections only."""
        if self.router is None or data.ssl_conn is not None or data.conn.address is None:
            return
        if backends.skips_tls_verify(self.router.backends, data.conn.address):
            # mitmproxy's own TLS setup (SNI, ALPN, ciphers), then no certificate check.
            ctx.master.addons.get("tlsconfig").tls_start_server(data)
            data.ssl_conn.set_verify(SSL.VERIFY_NONE)

    def _ours(self, flow: http.HTTPFlow) -> bool:
        """As an endpoint (reverse mode) every request is S3 for us; as a sidecar (regular
        mode), only requests to the s3multi_domain hosts: the rest passes untouched."""
        if isinstance(flow.client_conn.proxy_mode, ReverseMode):
            return True
        return self.router is not None and self.router.serves(flow.request.host)

    def _refuse(self, flow: http.HTTPFlow, error: S3Error) -> None:
        request_id = new_request_id()
        resource = unquote(flow.request.path.partition("?")[0])
        # Sent in place of connecting to a backend, before any body is read (a response set
        # here would make mitmproxy read the whole body first); no 100 Continue invites it.
        upstream_control.control(flow).answer = error_response(
            error, flow.request.method, resource, request_id
        )
        flow.request.stream = True
        flow.request.headers.pop("expect", None)
        flow.comment = f"refused: {error.code}"
        if ctx.options.s3multi_debug:
            log.info("%s %s refused: %s", flow.request.method, resource, error)


addons = [S3Multi()]
