"""What the benchmark borrows from the test suite's helpers (tests/support): the one module to
repoint."""

from tests.support.processes import REPO as ROOT
from tests.support.processes import VENV_BIN, child_env
from tests.support.proxy import mitmdump_command
from tests.support.raw_http import Request
from tests.support.root_keys import ROOT_ACCESS, ROOT_SECRET
from tests.support.signing import sigv4

__all__ = [
    "ROOT",
    "ROOT_ACCESS",
    "ROOT_SECRET",
    "VENV_BIN",
    "Request",
    "child_env",
    "mitmdump_command",
    "sigv4",
]
