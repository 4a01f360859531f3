"""The plan of the house: each subpackage of addon imports only those declared before it
(`addon.LAYERS`), the entry points sit above them all, and mitmproxy's private API is used in
`addon.mitm` only, and no module is over 300 lines. Read from every module's source, without
importing it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import addon
from tests.support.processes import REPO

PACKAGE = REPO / "addon"
# mitmproxy's public API for addons and embedders: anything else of mitmproxy's is private.
PUBLIC_MITMPROXY = frozenset(
    {
        "mitmproxy",
        "mitmproxy.certs",
        "mitmproxy.connection",
        "mitmproxy.ctx",
        "mitmproxy.exceptions",
        "mitmproxy.http",
        "mitmproxy.options",
        "mitmproxy.tls",
        "mitmproxy.addons.script",
        "mitmproxy.tools.dump",
        "mitmproxy.proxy.mode_specs",
        "mitmproxy.proxy.server_hooks",
    }
)


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _imports(path: Path) -> list[str]:
    """The modules `path` imports, dotted; `from a import b` counts as a.b too."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
            found += [f"{node.module}.{alias.name}" for alias in node.names]
    return found


def _layer(path: Path) -> str | None:
    """The subpackage a module is in; None for the entry points and addon/__init__.py."""
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else None


def test_every_subpackage_is_declared_and_every_top_module_is_an_entry_point():
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert packages == set(addon.LAYERS)
    tops = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    assert tops == set(addon.ENTRY_POINTS)


def test_every_subpackage_says_what_it_owns_and_may_import():
    for name in addon.LAYERS:
        doc = ast.get_docstring(ast.parse((PACKAGE / name / "__init__.py").read_text()))
        assert doc and "May import:" in doc, f"addon/{name}/__init__.py"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_import_against_the_declared_order(path: Path):
    layer = _layer(path)
    if layer is None:
        return  # the entry points may import anything of the addon's
    mine = addon.LAYERS.index(layer)
    for name in _imports(path):
        parts = name.split(".")
        if parts[0] != "addon" or len(parts) < 2 or parts[1] not in addon.LAYERS:
            continue
        theirs = addon.LAYERS.index(parts[1])
        assert theirs <= mine, f"addon.{layer} ({path.name}) imports {name}, a later layer"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_mitmproxys_private_api_only_in_addon_mitm(path: Path):
    if _layer(path) == "mitm":
        return
    private = [
        name
        for name in _imports(path)
        if name.split(".")[0] == "mitmproxy"
        and name not in PUBLIC_MITMPROXY
        and name.rpartition(".")[0] not in PUBLIC_MITMPROXY - {"mitmproxy"}
    ]
    assert not private, f"{path.relative_to(PACKAGE)} imports mitmproxy's {private}"


MAX_LINES = 300  # a module read whole in one sitting


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_over_300_lines(path: Path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(PACKAGE)} has {lines} lines: split it by concern"


def test_the_checks_catch_what_they_look_for(tmp_path: Path):
    """The two import rules, applied to made-up modules: both would fail."""
    (tmp_path / "m.py").write_text(
        "from addon.gateway.router import Router\n"
        "from mitmproxy.proxy.layers.http import HttpStream\n"
    )
    names = _imports(tmp_path / "m.py")
    assert "addon.gateway.router" in names
    assert "mitmproxy.proxy.layers.http.HttpStream" in names
    private = [n for n in names if n.startswith("mitmproxy") and n not in PUBLIC_MITMPROXY]
    assert private
