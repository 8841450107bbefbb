"""The README stays true: every command is documented, every command line shown parses."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import typer.main

from aimeta.cli import app
from aimeta.metadata.parsers import supported_formats_markdown

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
# Typer ships its own copy of click, so groups are recognised by their sub-commands.
ROOT_COMMAND: Any = typer.main.get_command(app)


def is_group(command: Any) -> bool:
    return hasattr(command, "commands")


def commands() -> dict[str, Any]:
    return dict(ROOT_COMMAND.commands)


def test_every_command_has_help_with_an_example_and_is_in_the_readme() -> None:
    for name, command in commands().items():
        assert command.help and len(command.help) > 40, name
        assert f"aimeta {name}" in README, f"`aimeta {name}` is not in the README"
        if is_group(command):
            for sub_name, sub in command.commands.items():
                assert sub.help, f"{name} {sub_name}"
                assert f"aimeta {name} {sub_name}" in README, f"{name} {sub_name}"
        else:
            assert "Example" in command.help, f"`aimeta {name} --help` has no example"


def readme_command_lines() -> list[str]:
    # Every fence opens a block (```toml, ```sql too), so prose is never read as a block.
    blocks = re.findall(r"```(\w*)\n(.*?)```", README, flags=re.S)
    lines = []
    for language, block in blocks:
        if language not in ("", "sh", "bash", "console"):
            continue
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith("aimeta "):
                lines.append(line)
    return lines


def test_every_command_line_in_the_readme_parses() -> None:
    lines = readme_command_lines()
    assert len(lines) >= 10
    for line in lines:
        args = shlex.split(line)[1:]
        command = ROOT_COMMAND
        info_name = "aimeta"
        while is_group(command) and args and args[0] in command.commands:
            info_name, command = args[0], command.commands[args[0]]
            args = args[1:]
        assert command is not ROOT_COMMAND, line
        # Parsing validates every option name, choice and required argument without running.
        command.make_context(info_name, list(args))


def test_supported_formats_table_matches_the_parser_registry() -> None:
    match = re.search(r"<!-- formats:start -->\n(.*?)\n<!-- formats:end -->", README, re.S)
    assert match, "the formats table markers are missing from the README"
    assert match.group(1).strip() == supported_formats_markdown().strip()
