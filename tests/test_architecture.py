"""The import directions of DESIGN.md, checked statically over every module in src/aimeta.

Every ``import`` and ``from ... import`` counts, at module level or inside a function (a lazy
import is still a dependency), and relative imports are resolved to absolute names.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# Only the two views may use the terminal and web frameworks.
UI_LIBRARIES = frozenset({"typer", "rich", "fastapi", "starlette", "uvicorn", "jinja2"})
UI_PACKAGES = ("aimeta.cli", "aimeta.web")
# Packages where every module must be reachable by a static import (tools, readers of the
# code and the parser registry see every edge).
STATIC_ONLY = ("aimeta.metadata.parsers", "aimeta.cli")

# Violations that live in files other helpers are rewriting right now; each entry is
# (module, imported name). Empty this list when those rewrites are merged.
KNOWN_VIOLATIONS: frozenset[tuple[str, str]] = frozenset()


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, e.g. aimeta.rating.sidecar
    name: str  # what it imports, absolute: aimeta.files, aimeta.files.MAX_XMP_BYTES
    line: int
    statement: str  # as written

    def __str__(self) -> str:
        return f"{self.module} (line {self.line}) imports {self.name}: `{self.statement}`"


def module_name(path: Path, src: Path = SRC) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(src: Path = SRC) -> list[tuple[str, Path]]:
    found = [(module_name(path, src), path) for path in sorted(src.rglob("*.py"))]
    assert found, f"no modules under {src}"
    return found


def _absolute(module: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def imports(module: str, path: Path) -> Iterator[Import]:
    """Everything ``module`` imports; ``from a import b`` is ``a.b`` (``b`` may be a
    submodule or a name defined in ``a``: either way ``a`` is imported)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, alias.name, node.lineno, ast.unparse(node))
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, path, node)
            for alias in node.names:
                yield Import(module, f"{base}.{alias.name}", node.lineno, ast.unparse(node))


def dynamic_imports(module: str, path: Path) -> Iterator[str]:
    """Calls of ``importlib.import_module`` / ``import_module`` / ``__import__``."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name in ("import_module", "__import__"):
            yield f"{module} (line {node.lineno}) calls {name}()"


def within(name: str, *packages: str) -> bool:
    return any(name == package or name.startswith(f"{package}.") for package in packages)


def breaks(rule: str, item: Import) -> bool:
    if rule == "halves":
        halves = ("aimeta.metadata", "aimeta.rating")
        return any(
            within(item.module, mine) and within(item.name, other)
            for mine, other in (halves, halves[::-1])
        )
    assert rule == "ui", rule
    return item.name.split(".")[0] in UI_LIBRARIES and not within(item.module, *UI_PACKAGES)


def violations(rule: str, src: Path = SRC) -> list[str]:
    """Imports breaking ``rule`` ("halves" or "ui"), one line each."""
    found = {
        str(item)
        for module, path in modules(src)
        for item in imports(module, path)
        if breaks(rule, item) and (item.module, item.name) not in KNOWN_VIOLATIONS
    }
    return sorted(found)


def test_the_metadata_and_rating_halves_do_not_import_each_other() -> None:
    found = violations("halves")
    assert not found, "the halves meet only in pipelines, cli and web:\n" + "\n".join(found)


def test_only_cli_and_web_import_terminal_or_web_frameworks() -> None:
    found = violations("ui")
    assert not found, f"only {', '.join(UI_PACKAGES)} may import these:\n" + "\n".join(found)


def test_parsers_and_cli_import_modules_statically() -> None:
    found = [
        call
        for module, path in modules()
        if within(module, *STATIC_ONLY)
        for call in dynamic_imports(module, path)
    ]
    assert not found, "use a static import (tools must see every edge):\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("source", "rule", "expected"),
    [
        (
            "from aimeta.rating import answer",
            "halves",
            "aimeta.metadata.tokens (line 1) imports aimeta.rating.answer: "
            "`from aimeta.rating import answer`",
        ),
        ("def f():\n    import rich.table\n", "ui", "imports rich.table"),
    ],
)
def test_a_violation_is_reported_with_module_and_import(
    tmp_path: Path, source: str, rule: str, expected: str
) -> None:
    """The checks see imports inside functions, and name module, line and import."""
    fake_src = tmp_path / "src"
    module = fake_src / "aimeta" / "metadata" / "tokens.py"
    module.parent.mkdir(parents=True)
    module.write_text(source, encoding="utf-8")
    found = violations(rule, fake_src)
    assert any(expected in line for line in found), found


def test_dynamic_imports_are_found(tmp_path: Path) -> None:
    path = tmp_path / "registry.py"
    path.write_text("import importlib\nx = importlib.import_module('aimeta.x')\n")
    assert list(dynamic_imports("aimeta.cli.registry", path)) == [
        "aimeta.cli.registry (line 2) calls import_module()"
    ]
