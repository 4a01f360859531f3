"""The mitmproxy internals that the in-flow fallback wraps (addon/upstream_control.py).

The fallback's behaviour is tested end to end in test_routing.py and test_running.py; these tests
make a mitmproxy upgrade fail here first, with a message that says what to re-check.
"""

from __future__ import annotations

import inspect

import mitmproxy.version
import pytest
from mitmproxy.proxy.layers.http import HttpStream

from addon import upstream_control


def test_installed_mitmproxy_is_the_one_the_wrapper_was_written_for():
    assert mitmproxy.version.VERSION == upstream_control.SUPPORTED_MITMPROXY, (
        "mitmproxy changed: re-read HttpStream.send_response, make_server_connection, "
        "state_wait_for_response_headers and flow_done before moving SUPPORTED_MITMPROXY"
    )


def test_wrapped_methods_keep_their_signatures():
    original_send = inspect.signature(upstream_control._original_send_response)
    original_make = inspect.signature(upstream_control._original_make_server_connection)
    assert list(original_send.parameters) == ["self", "already_streamed"]
    assert list(original_make.parameters) == ["self"]
    for name in ("state_wait_for_response_headers", "flow_done", "state_done", "state_errored"):
        assert callable(getattr(HttpStream, name)), name


def test_install_wraps_both_methods():
    upstream_control.install()
    assert HttpStream.send_response is upstream_control._send_response
    assert HttpStream.make_server_connection is upstream_control._make_server_connection


def test_install_refuses_another_mitmproxy(monkeypatch):
    monkeypatch.setattr(mitmproxy.version, "VERSION", "13.0.0")
    with pytest.raises(RuntimeError, match=r"tested with mitmproxy 12\.3\.1 only"):
        upstream_control.install()
