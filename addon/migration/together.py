"""Workers and the listing that feeds them, run as one: the shape of `s3-multi migrate`'s drain
and of `s3-multi check`. A module of its own so that a check without `--repair` does not import
the drain's copying machinery with it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence


async def run_together(tasks: Sequence[asyncio.Future]) -> None:
    """Await `tasks` (workers and the listing that feeds them) to their end; a failure
    anywhere stops them all (a listing blocked on a full queue included) and is raised."""
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            task.result()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
