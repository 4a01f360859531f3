"""The mitmproxy internals that addon.mitm wraps or relies on, fingerprinted.

What the wrapped methods do with a policy's decisions is tested end to end (test_routing.py,
test_running.py, ...). These tests make a mitmproxy upgrade fail here first, naming each method
whose source changed and what addon.mitm relies on it for, so that it is re-read before
SUPPORTED_MITMPROXY moves.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable

import mitmproxy.version
import pytest
from mitmproxy import addonmanager, hooks, http, master
from mitmproxy.addons.proxyserver import Proxyserver, Servers
from mitmproxy.proxy import utils
from mitmproxy.proxy.layers.http import HttpLayer, HttpStream
from mitmproxy.proxy.layers.http._http1 import Http1Client, Http1Connection, Http1Server
from mitmproxy.proxy.layers.http._http2 import Http2Connection
from mitmproxy.proxy.mode_servers import (
    AsyncioServerInstance,
    ProxyConnectionHandler,
    ServerInstance,
)
from mitmproxy.proxy.server import ConnectionHandler, TimeoutWatchdog

from addon.mitm import (
    client_heads,
    closing,
    debug_checks,
    drains,
    http_stream,
    install,
    shared_port,
)
from tests.support.processes import REPO

# name -> (what addon.mitm relies on it for, sha256 prefix of its source in 12.3.1)
RELIED_ON: dict[str, tuple[str, str]] = {
    # wrapped
    "HttpStream.make_server_connection": (
        "yields one GetHttpConnection whose reply is (connection, error); on error it only "
        "calls handle_protocol_error",
        "ddc7bc72f4d2fbc7",
    ),
    "HttpStream.state_wait_for_response_headers": (
        "sets flow.response, runs the responseheaders hook, then streams or consumes the body",
        "10e32e91b2948164",
    ),
    "HttpStream.handle_protocol_error": (
        "is where an upstream's ResponseProtocolError arrives, before the client is told",
        "59fc3b2eeeabf63a",
    ),
    "HttpStream.state_stream_request_body": (
        "calls request.stream per piece of body, so an exception there stops the upload; at "
        "the end of the body it runs the request hook and sends the end of the message",
        "c98f7f715cef7cfa",
    ),
    "HttpStream.start_request_stream": (
        "calls make_server_connection, sends the streamed request's (final) headers and only "
        "then sets client_state to state_stream_request_body (errored if it could not connect)",
        "46f03368a2a54362",
    ),
    # their callers, and what the wrappers call
    "HttpStream._handle_event": (
        "routes request events to client_state (a state of ours while a held head is read), "
        "response events to server_state and protocol errors to handle_protocol_error",
        "e3cbfef7310ae81f",
    ),
    "HttpStream.state_wait_for_request_headers": (
        "sets server_state to state_wait_for_response_headers; sends 100 Continue after the "
        "requestheaders hook; calls start_request_stream for a streamed request with a body",
        "3706d5d5ce01dcd4",
    ),
    "HttpStream.state_consume_request_body": (
        "runs the request hook, skips the upstream when it set a response, else calls "
        "make_server_connection",
        "45459c1bbd8bdb1a",
    ),
    "HttpStream.state_consume_response_body": (
        "reads a body whole, then send_response",
        "5323db61dfc7e2e1",
    ),
    "HttpStream.state_stream_response_body": (
        "is the server state once the client has the answer's headers",
        "3fb6320300d3ddd5",
    ),
    "HttpStream.send_response": (
        "runs the response hook and sends a complete flow.response to the client",
        "d581bc106152e369",
    ),
    "HttpStream.check_killed": ("is safe to call after a hook", "368cad352d1e82b6"),
    "HttpStream.flow_done": ("ends the stream once both sides are done", "ad9969744785c572"),
    "HttpLayer.get_connection": (
        "opens a new upstream connection when the matching one was closed",
        "1aa1c63e3175766c",
    ),
    "Http1Server.send": (
        "closes the client connection on a ResponseProtocolError after the answer",
        "cc218a1337c0f5cf",
    ),
    "Http1Server.read_headers": (
        "is wrapped: reads a request head from the buffer, or waits for more",
        "3fe0945216bcf7bc",
    ),
    "Http1Client.read_headers": (
        "reports a close while it waits for an answer as an error of its stream_id (detach)",
        "415454c5fa8b5981",
    ),
    "Http1Connection.read_body": (
        "reports a close within an answer's body as an error of its stream_id (detach)",
        "aece271029af36e4",
    ),
    "Http1Connection._handle_event": (
        "passes connection events (and a Wakeup) to `state`, which reports them under its "
        "stream_id; appends what it reads to `buf` first (client_heads' lingering drops it)",
        "2ac8db3e43ae743f",
    ),
    "HttpLayer.event_to_child": (
        "drops what a connection reports for a stream id it does not know (a detached one); "
        "notes who asked for a RequestWakeup, so that its Wakeup goes back there",
        "1095f6e1581d1780",
    ),
    "HttpLayer._handle_event": (
        "routes an injected event (DeadlinePassed) to the stream of the flow's connection, and "
        "a Wakeup to the layer that asked for it (client_heads' linger)",
        "6ba31883cc7a06b3",
    ),
    "ConnectionHandler.open_connection": (
        "runs the server_connect hook in the task that connects, sets timestamp_start just "
        "before connecting, and turns a cancellation while connecting into a failed connection; "
        "registers the transport before the server_connected hook and sends nothing before it "
        "(closing.hear_upstream_out)",
        "5e0b3cbaf7a4030a",
    ),
    "ConnectionHandler.handle_connection": (
        "is wrapped by closing: a cancel that escapes it (at its event lock) skipped only its "
        "ending (state CLOSED, ConnectionClosed, writer.close(), transports.pop); a "
        "connect-timeout cancel never interrupts it (the timer ends at server_connected)",
        "95c3f93e9824e527",
    ),
    "ConnectionHandler.drain_writers": (
        "is wrapped by drains: awaited by handle_connection after each read's DataReceived is "
        "handled and before the next read (the extra drains pause the reading alike)",
        "6b57434604561e3e",
    ),
    "ConnectionHandler.handle_client": (
        "runs the client_connected hook before reading, and client_disconnected once the "
        "client's handler task (the one client_conns cancels) has ended",
        "01f1b7cc991c4711",
    ),
    "ConnectionHandler.on_timeout": (
        "closes an inactive client by cancelling its handler task, as client_conns does",
        "0d1e6b0aa6e41173",
    ),
    "TimeoutWatchdog.register_activity": (
        "sets last_activity (time.time()) on every event (server_event): client_conns' quiet time",
        "41e033f7debf79d3",
    ),
    "ConnectionHandler.server_event": (
        "waits for _server_event_lock outside handle_connection's guarded reads (why closing "
        "exists); takes the events closing and client_heads send",
        "a2b42657ebe8bf6d",
    ),
    "ConnectionHandler.close_connection": (
        "half-closes (write_eof) on CloseTcpConnection(half_close=True) and reading goes on; a "
        "full close cancels the connection's handler task",
        "c0d10cc05dd65b80",
    ),
    "Proxyserver.register_connection": (
        "keeps each live client connection's handler in `connections` by client id, where "
        "closing.hear_upstream_out finds an upstream's transport and client_conns a client's "
        "(handler.transports)",
        "d79bb91554a8bda2",
    ),
    "Proxyserver.inject_event": (
        "hands an injected event to the flow's live connection, or raises ValueError",
        "2c18850a10b55b72",
    ),
    "Http2Connection._handle_event": (
        "resets only that stream on a ResponseProtocolError after the answer",
        "7fc814a8a507f234",
    ),
    # shared_port (workers on one port) and drain
    "AsyncioServerInstance.listen": (
        "is wrapped by shared_port: binds a TCP mode with "
        "asyncio.start_server(self.handle_stream, host, port), nothing else for it",
        "7670a9038b44170d",
    ),
    "ServerInstance.handle_stream": (
        "is what shared_port's listener hands each accepted connection to",
        "21eea06f208c752e",
    ),
    "Servers.update": (
        "stops every server when the `server` option is off (a drain stops listening)",
        "e653c1bdfa8cf352",
    ),
    "AsyncioServerInstance._stop": (
        "closes the listening sockets only: connections already accepted go on (drain)",
        "73df3f7e7fb2d941",
    ),
    # the s3-multi command's master (master.py) and its cached dispatch (dispatch.py)
    "Master.__init__": (
        "makes self.addons an AddonManager before any addon, TermLog first with with_termlog",
        "8e2a46cc1aca56ca",
    ),
    "Master.run": (
        "looks up proxyserver and errorcheck by name: they are all it needs of the addons",
        "45c44c14f8f79349",
    ),
    "Master.running": ("dispatches the running event through trigger_event", "adca3079fbbd13d4"),
    "Master.done": ("dispatches the done event through trigger_event", "c3e2a260657677cd"),
    "ProxyConnectionHandler.handle_hook": (
        "dispatches every flow event through addons.handle_lifecycle",
        "9f8b52fd798203c9",
    ),
    "AddonManager.__init__": (
        "keeps the top-level addons in self.chain, and configures them on options.changed",
        "5e4ff02a74f2c6e7",
    ),
    "AddonManager.trigger_event": (
        "is replaced: each top-level addon in safecall, AddonHalt stops the chain",
        "b763c59bc4992e33",
    ),
    "AddonManager.handle_lifecycle": (
        "is replaced: the event, then an UpdateHook of the flow when the event's is a flow",
        "38c97e792d1db5b7",
    ),
    "AddonManager.invoke_addon": (
        "runs a subtree's hooks in order and awaits what they return (copied)",
        "13180532440359de",
    ),
    "AddonManager._iter_hooks": (
        "finds hooks by getattr over traverse; skips a module, errors on anything not callable "
        "(copied)",
        "350b419ab7284091",
    ),
    "AddonManager.register": (
        "is what adds an addon or a sub-addon (the cache is dropped)",
        "01ddcca314eebbd3",
    ),
    "AddonManager.add": (
        "adds to the chain through register (the cache is dropped)",
        "6c26295c4f0f4eb9",
    ),
    "AddonManager.remove": (
        "takes an addon out of the chain (the cache is dropped)",
        "2e93aab2204a39f6",
    ),
    "AddonManager.clear": ("empties the chain (the cache is dropped)", "5fd484329fa05882"),
    "AddonManager.trigger": (
        "dispatches configure synchronously (the cache is dropped after it)",
        "b19e37ceb2096421",
    ),
    "addonmanager.traverse": ("yields an addon, then its .addons recursively", "bad3d9f88bdf9269"),
    "addonmanager.safecall": (
        "logs 'Addon error: ...' for any exception but AddonHalt and OptionsError (copied)",
        "f2052c18340e99b0",
    ),
    "addonmanager.cut_traceback": ("cuts a traceback at a function name", "760a58f630c0fa44"),
    "Hook.args": (
        "is the event's dataclass fields in order (read once per event)",
        "5bab95f7aa358e18",
    ),
    # mitmproxy's debug-only checks, turned off for the command (debug_checks.py)
    "MessageData.__post_init__": (
        "only type-checks the message's fields, under __debug__ (made a no-op)",
        "f65088e210cd9cc1",
    ),
    "utils.expect": (
        "wraps a state method in _check_event_type, functools.wraps'd, only checking the "
        "event's type, under __debug__ (unwrapped)",
        "f51ff4e0854d172c",
    ),
}

_CLASSES = {
    c.__name__: c
    for c in (
        HttpStream,
        HttpLayer,
        Http1Server,
        Http1Client,
        Http1Connection,
        Http2Connection,
        ConnectionHandler,
        Proxyserver,
        Servers,
        AsyncioServerInstance,
        ServerInstance,
        TimeoutWatchdog,
        ProxyConnectionHandler,
        addonmanager.AddonManager,
        hooks.Hook,
        master.Master,
        http.MessageData,
    )
}
_MODULES = {"addonmanager": addonmanager, "utils": utils}


def _original(qualified: str) -> Callable:
    class_name, name = qualified.split(".")
    if class_name == "HttpStream" and name in http_stream.ORIGINALS:
        return http_stream.ORIGINALS[name]  # HttpStream's own is our wrapper once installed
    if qualified == "Http1Server.read_headers":
        return client_heads._original_read_headers
    if qualified == "AsyncioServerInstance.listen":
        return shared_port.ORIGINAL
    if qualified == "ConnectionHandler.handle_connection":
        return closing.ORIGINAL
    if qualified == "ConnectionHandler.drain_writers":
        return drains.ORIGINAL
    if qualified == "MessageData.__post_init__":
        return debug_checks.ORIGINAL_POST_INIT
    if class_name in _MODULES:
        return getattr(_MODULES[class_name], name)
    return getattr(_CLASSES[class_name], name)


def _fingerprint(function: Callable) -> str:
    return hashlib.sha256(inspect.getsource(function).encode()).hexdigest()[:16]


def test_installed_mitmproxy_is_the_one_the_wrapper_was_written_for():
    assert mitmproxy.version.VERSION == install.SUPPORTED_MITMPROXY, (
        "mitmproxy changed: re-read every method in RELIED_ON before moving SUPPORTED_MITMPROXY"
    )


@pytest.mark.parametrize("qualified", sorted(RELIED_ON))
def test_the_source_addon_mitm_relies_on_is_unchanged(qualified: str):
    why, expected = RELIED_ON[qualified]
    assert _fingerprint(_original(qualified)) == expected, (
        f"mitmproxy's {qualified} changed: addon.mitm relies on it because it {why}. "
        "Re-read it, adapt addon.mitm, then update its fingerprint here."
    )


def test_every_wrapped_method_is_fingerprinted():
    wrapped = {f"HttpStream.{name}" for name in http_stream.WRAPPED}
    assert wrapped <= set(RELIED_ON)
    assert set(http_stream.WRAPPED) == set(http_stream.ORIGINALS)


def test_install_wraps_every_method():
    install.install(client_heads.HeadLimits)
    for name, wrapper in http_stream.WRAPPED.items():
        assert getattr(HttpStream, name) is wrapper, name
    assert Http1Server.read_headers is client_heads.read_headers
    assert ConnectionHandler.handle_connection is closing._handle_connection
    assert ConnectionHandler.drain_writers is drains._drain_writers


def test_shared_port_wraps_only_the_listener():
    original = AsyncioServerInstance.listen
    try:
        shared_port.install()
        assert AsyncioServerInstance.listen is shared_port._listen
    finally:
        AsyncioServerInstance.listen = original  # type: ignore[method-assign]


def test_install_refuses_another_mitmproxy(monkeypatch):
    monkeypatch.setattr(mitmproxy.version, "VERSION", "13.0.0")
    with pytest.raises(RuntimeError, match=r"tested with mitmproxy 12\.3\.1 only"):
        install.install(client_heads.HeadLimits)


def test_the_package_readme_names_every_name_relied_on_and_every_module():
    """addon/mitm/README.md is where an upgrade starts: it must name each private name relied
    on (the table above says why) and each module of the package."""
    readme = (REPO / "addon" / "mitm" / "README.md").read_text()
    missing = [name for name in RELIED_ON if f"`{name}" not in readme]
    assert not missing, f"addon/mitm/README.md does not name {missing}"
    modules = [p.name for p in (REPO / "addon" / "mitm").glob("*.py") if p.name != "__init__.py"]
    assert not [m for m in modules if f"`{m}`" not in readme]
