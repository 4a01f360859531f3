"""The one door to mitmproxy's internals: the version they were read for, and `install`.

Every private mitmproxy name the addon relies on is used in this package only (`http_stream`,
`held_heads`, `client_heads`, `closing`, `drains`, `shared_port`, ...), for the reasons its
README gives. mitmproxy is pinned to exactly SUPPORTED_MITMPROXY (pyproject.toml); `install`
refuses any other version, and tests/unit/mitm/test_fingerprints.py fingerprints the source of
every wrapped method and of what the wrappers rely on, so that an upgrade fails there first and
names what to re-read.
"""

from __future__ import annotations

from collections.abc import Callable

import mitmproxy.version
from mitmproxy.proxy.layers.http import HttpStream

from addon.mitm import client_heads, closing, drains, http_stream
from addon.mitm.client_heads import HeadLimits

SUPPORTED_MITMPROXY = "12.3.1"


def check_version() -> None:
    """Refuse a mitmproxy the wrapped internals were not read for."""
    if mitmproxy.version.VERSION != SUPPORTED_MITMPROXY:
        raise RuntimeError(
            f"s3-multi wraps mitmproxy internals tested with mitmproxy "
            f"{SUPPORTED_MITMPROXY} only; this is mitmproxy {mitmproxy.version.VERSION}. "
            f"Install mitmproxy=={SUPPORTED_MITMPROXY}."
        )


def install(head_limits: Callable[[], HeadLimits]) -> None:
    """Wrap the methods (idempotent); a client's request head is bounded by `head_limits()`."""
    check_version()
    for name, wrapper in http_stream.WRAPPED.items():
        setattr(HttpStream, name, wrapper)
    client_heads.install(head_limits)
    closing.install()
    drains.install()
