"""mitmproxy's debug-only checks, turned off for the s3-multi command: every `expect` wrapper of
mitmproxy's protocol layers is found, and messages are no longer type-checked."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import mitmproxy.proxy.layers
import pytest
from mitmproxy import http
from mitmproxy.proxy.layers.http import HttpStream

from addon.mitm import debug_checks


def _layer_modules_using_expect() -> set[str]:
    """Every module of mitmproxy's protocol layers whose source decorates with `expect`."""
    found = set()
    for info in pkgutil.walk_packages(mitmproxy.proxy.layers.__path__, "mitmproxy.proxy.layers."):
        module = importlib.import_module(info.name)
        if "@expect(" in inspect.getsource(module):
            found.add(info.name)
    return found


def _response_with_a_wrong_field_type() -> http.Response:
    end = "not a float"
    return http.Response("HTTP/1.1", 200, "OK", http.Headers(), b"", None, 0.0, end)  # type: ignore[arg-type]


@pytest.fixture
def turned_off():
    yield debug_checks.turn_off()
    debug_checks.restore()


def _wrappers_left() -> list[str]:
    left = []
    for name in debug_checks.LAYER_MODULES:
        for _, cls in inspect.getmembers(importlib.import_module(name), inspect.isclass):
            left += [f"{cls.__name__}.{a}" for a, v in vars(cls).items() if debug_checks.checked(v)]
    return left


def test_the_modules_searched_are_every_layer_module_that_uses_expect():
    assert _layer_modules_using_expect() <= set(debug_checks.LAYER_MODULES)


def test_mitmproxy_checks_events_and_message_types_unless_turned_off():
    assert _wrappers_left()  # mitmproxy as it is: checked
    with pytest.raises(TypeError):
        _response_with_a_wrong_field_type()


def test_turned_off_no_expect_wrapper_is_left_and_messages_are_not_type_checked(turned_off):
    assert turned_off >= 30
    assert _wrappers_left() == []
    assert debug_checks.is_off()
    assert not debug_checks.checked(HttpStream.state_wait_for_request_headers)
    # The type check is gone: a wrong field type is no longer refused at construction.
    _response_with_a_wrong_field_type()
    assert debug_checks.turn_off() == 0  # idempotent


def test_restore_puts_the_checks_back(turned_off):
    debug_checks.restore()
    assert _wrappers_left() and not debug_checks.is_off()
