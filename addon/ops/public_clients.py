"""Whether mitmproxy will refuse the clients an S3 endpoint serves: its Block addon.

mitmdump and mitmweb run mitmproxy's Block addon, whose `block_global` (on by default) refuses
every client with a public address, in reverse mode too ("killed by block_global"): behind a
load balancer on a private network that goes unnoticed, in front of clients on the internet
it refuses them all. The `s3-multi` command runs without Block (`addon.mitm.master`), so this
concerns `mitmdump -s addon/multi.py` and mitmweb, which are told at start.
"""

from __future__ import annotations

import ipaddress
from typing import Any


def refused_publicly(options: Any) -> str | None:
    """The warning to log when clients with public addresses would be refused, else None:
    Block is there with `block_global` on, and the proxy listens beyond the loopback."""
    if "block_global" not in options or not options.block_global:
        return None
    host = options.listen_host
    try:
        if host and ipaddress.ip_address(host.strip("[]")).is_loopback:
            return None
    except ValueError:
        if host == "localhost":
            return None
    return (
        "s3-multi: mitmproxy's block_global is on: clients with public addresses are refused "
        "(only loopback and private networks are served); --set block_global=false to serve "
        "them, as the s3-multi command does"
    )
