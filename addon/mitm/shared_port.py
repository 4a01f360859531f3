"""One listening port for several worker processes: SO_REUSEPORT on mitmproxy's sockets.

With SO_REUSEPORT set on every listening socket of a port (same user), Linux hashes each new
connection to one of them: the workers of `s3-multi --workers N` each bind the port themselves
and the kernel balances connections between them; no process hands connections over, and a
worker that dies takes only its own connections with it.

mitmproxy 12.3.1 has no option for it: its TCP listeners are bound in
`AsyncioServerInstance.listen` (mitmproxy/proxy/mode_servers.py), by
`asyncio.start_server(self.handle_stream, host, port)`. `install` wraps that one method: for a
TCP-only mode on a given port (the s3-multi command's reverse mode) it makes the same call with
`reuse_port=True`; anything else (UDP modes, port 0, which picks a free port) goes to
mitmproxy's own. Private API: tests/unit/mitm/test_fingerprints.py fingerprints the wrapped
method and `ServerInstance.handle_stream`, and `install` refuses another mitmproxy version.

Only the workers install it; one process (`--workers 1`, `mitmdump -s`) binds as mitmproxy
does, so that a second proxy started on the same port fails instead of sharing it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from mitmproxy.proxy.mode_servers import AsyncioServerInstance

_original_listen = AsyncioServerInstance.listen


async def _listen(self: AsyncioServerInstance, host: str, port: int) -> list[Any]:
    if self.mode.transport_protocol != "tcp" or port == 0:
        return await _original_listen(self, host, port)
    return [await asyncio.start_server(self.handle_stream, host, port, reuse_port=True)]


def install() -> None:
    """From now on, this process's TCP listeners share their port with other processes'."""
    AsyncioServerInstance.listen = _listen  # type: ignore[method-assign]


ORIGINAL = _original_listen
