"""What the benchmark borrows from the test suite's helpers: the one module to repoint."""

from tests.conftest import ROOT, ROOT_ACCESS, ROOT_SECRET, VENV_BIN, child_env, mitmdump_command

__all__ = ["ROOT", "ROOT_ACCESS", "ROOT_SECRET", "VENV_BIN", "child_env", "mitmdump_command"]
