"""mitmproxy's debug-only checks turned off, without `python -O` (which would drop our asserts).

Two checks of mitmproxy 12.3.1 run unless Python runs with -O, and they are most of what -O
saves a proxy (about 10 to 20% of a small request's CPU here):

- `mitmproxy.http.MessageData.__post_init__` type-checks every field of every Request and
  Response made (`typecheck.check_option_type` per field): about 70 µs per message.
- `mitmproxy.proxy.utils.expect(...)` wraps the protocol layers' state methods with an
  isinstance check of each event (one more Python call per event).

`turn_off` makes the first a no-op and puts back, in every class of mitmproxy's protocol layers,
the function each `expect` wrapper wraps (`__wrapped__`). Our own wrappers of `HttpStream`
(`http_stream`) keep calling the originals they captured, checks included (two calls a
request). Only the `s3-multi` command turns them off; `mitmdump -s` keeps mitmproxy as it is.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from mitmproxy import http

# The modules whose classes use `expect` (every protocol layer of mitmproxy 12.3.1).
LAYER_MODULES = (
    "mitmproxy.proxy.layers.dns",
    "mitmproxy.proxy.layers.http",
    "mitmproxy.proxy.layers.http._http1",
    "mitmproxy.proxy.layers.http._http2",
    "mitmproxy.proxy.layers.http._http3",
    "mitmproxy.proxy.layers.modes",
    "mitmproxy.proxy.layers.tcp",
    "mitmproxy.proxy.layers.udp",
    "mitmproxy.proxy.layers.websocket",
)
# The name of the wrapper `expect` returns (its code object's): how one is told apart.
_CHECK = "_check_event_type"
ORIGINAL_POST_INIT = http.MessageData.__post_init__
_removed: list[tuple[type, str, Any]] = []  # (class, attribute, the wrapper), for `restore`


def _no_type_check(self: Any) -> None:
    """MessageData's dataclass __init__ calls __post_init__: kept, doing nothing."""


def checked(function: Any) -> bool:
    """Whether `function` is an `expect` wrapper."""
    code = getattr(function, "__code__", None)
    return code is not None and code.co_name == _CHECK and hasattr(function, "__wrapped__")


def turn_off() -> int:
    """Turn both checks off in this process (idempotent); how many wrappers were removed."""
    http.MessageData.__post_init__ = _no_type_check  # type: ignore[method-assign]
    removed = 0
    for name in LAYER_MODULES:
        module = importlib.import_module(name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if not cls.__module__.startswith("mitmproxy."):
                continue
            for attribute, value in list(vars(cls).items()):
                if checked(value):
                    setattr(cls, attribute, value.__wrapped__)
                    _removed.append((cls, attribute, value))
                    removed += 1
    return removed


def restore() -> None:
    """Both checks back as mitmproxy has them (for tests in a process that goes on)."""
    http.MessageData.__post_init__ = ORIGINAL_POST_INIT  # type: ignore[method-assign]
    while _removed:
        cls, attribute, wrapper = _removed.pop()
        setattr(cls, attribute, wrapper)


def is_off() -> bool:
    """Whether MessageData's type check is off (both go together)."""
    return http.MessageData.__post_init__ is _no_type_check
