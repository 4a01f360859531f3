"""Each kind of local S3 server, by the name the demo's --backend takes."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from addon.local.moto import start_moto_servers
from addon.local.seaweedfs import start_seaweed_servers
from addon.local.servers import S3Server

START: dict[str, Callable[[list[str]], Sequence[S3Server]]] = {
    "moto": start_moto_servers,
    "seaweedfs": start_seaweed_servers,
}
