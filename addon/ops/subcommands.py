"""The `s3-multi` command's subcommands (`s3-multi NAME ...`): each one's module, imported only
when it runs, so that a command imports its own modules and no other's: `s3-multi check` without
the migration's and the replication's repair machinery, and none of them with mitmproxy (the
proxy's modules import it; the commands' own clients do not). A third of a check of 20,000
keys was its imports before (tests/benchmark/README.md).
"""

from __future__ import annotations

import importlib

# The module whose `main(argv)` each runs, and the line `s3-multi --help` gives it.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "check": (
        "addon.check.command",
        "compare the backends as the config says they should agree; --repair them",
    ),
    "migrate": (
        "addon.migration.command",
        "copy what the fallbacks have and the primary lacks to the primary (resumable)",
    ),
    "tombstones": (
        "addon.namespace.tombstone_command",
        "list the tombstones of deletes through the proxy; --prune those no longer needed",
    ),
}


def run(name: str, argv: list[str]) -> int:
    """Subcommand `name` (one of SUBCOMMANDS) with its arguments; its exit status."""
    command = importlib.import_module(SUBCOMMANDS[name][0])
    if name != "migrate":
        return int(command.main(argv))
    # A migration's copies are writes of the primary's: the replicas hear of them (the
    # replication is above the migration, so it is handed in here).
    from addon.replication import command_writes

    return int(command.main(argv, hear=command_writes.for_migrate))
