"""The rating job stays split by responsibility: small modules, short functions, static imports.

Measured with ``ast`` over the package ``aimeta.pipelines.rate``, so that a module or function
that grows past the limits fails here instead of growing silently.
"""

from __future__ import annotations

import ast
from pathlib import Path

import aimeta.pipelines.rate

MAX_MODULE_LINES = 350
MAX_FUNCTION_LINES = 60
PACKAGE = Path(str(aimeta.pipelines.rate.__file__)).parent


def _modules() -> dict[str, str]:
    return {path.name: path.read_text(encoding="utf-8") for path in sorted(PACKAGE.glob("*.py"))}


def _function_lengths(source: str) -> dict[str, int]:
    """Lines of every function and method (nested ones too), decorators included, by
    qualified name."""
    lengths: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    first = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                    assert child.end_lineno is not None
                    lengths[name] = child.end_lineno - first + 1
                visit(child, name + ".")
            else:
                visit(child, prefix)

    visit(ast.parse(source), "")
    return lengths


def test_the_measure_counts_methods_nested_functions_and_decorators() -> None:
    body = "\n".join(f"        x = {n}" for n in range(58))
    source = (
        "class Job:\n"
        "    @staticmethod\n"
        "    def run():\n"
        "        def inner():\n"
        "            return 1\n"
        f"{body}\n"
    )
    lengths = _function_lengths(source)
    assert lengths == {"Job.run": 62, "Job.run.inner": 2}


def test_the_package_is_split_into_its_responsibilities() -> None:
    names = set(_modules())
    assert {"options.py", "job.py", "servers.py", "selection.py", "schedule.py"} <= names
    assert {"output.py", "ask.py", "report.py"} <= names


def test_no_module_of_the_rating_job_is_too_long() -> None:
    lines = {name: len(source.splitlines()) for name, source in _modules().items()}
    too_long = {name: count for name, count in lines.items() if count > MAX_MODULE_LINES}
    assert not too_long, f"modules over {MAX_MODULE_LINES} lines: {too_long}"


def test_no_function_of_the_rating_job_is_too_long() -> None:
    too_long = {
        f"{module}:{function}": count
        for module, source in _modules().items()
        for function, count in _function_lengths(source).items()
        if count > MAX_FUNCTION_LINES
    }
    assert not too_long, f"functions over {MAX_FUNCTION_LINES} lines: {too_long}"


def test_the_rating_job_loads_no_module_by_name() -> None:
    # Static imports only, so that mypy and readers see every edge.
    for name, source in _modules().items():
        imported = {
            alias.name.split(".")[0]
            for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Import)
            for alias in node.names
        } | {
            (node.module or "").split(".")[0]
            for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.ImportFrom)
        }
        assert "importlib" not in imported, name
        assert "__import__" not in source, name
