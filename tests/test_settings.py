"""Settings: mistyped names are warned about, AIMETA_API_URL is accepted, and --help shows the
defaults that Settings declares."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aimeta import settings
from aimeta.cli import app
from aimeta.settings import Settings

runner = CliRunner()
CLI = Path(settings.__file__).parent / "cli"


def warnings_of(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("Warning:")]


def stats(tmp_path: Path, env: dict[str, str]) -> list[str]:
    """The warnings of one real command (stats over a missing database: it fails after)."""
    result = runner.invoke(app, ["stats", "--db", str(tmp_path / "none.db")], env=env)
    assert result.exit_code == 1, result.output
    return warnings_of(result.output)


def test_an_unknown_variable_is_one_warning_naming_the_closest_setting(tmp_path: Path) -> None:
    found = stats(tmp_path, {"AIMETA_API_URLZ": "http://x/v1", "AIMETA_WROKERS": "3"})
    assert found == [
        "Warning: AIMETA_API_URLZ is not an aimeta setting (did you mean AIMETA_API_URLS?)",
        "Warning: AIMETA_WROKERS is not an aimeta setting (did you mean AIMETA_WORKERS?)",
    ]


def test_variables_aimeta_uses_are_not_warned_about(tmp_path: Path) -> None:
    env = {"AIMETA_SAMPLES": str(tmp_path), "AIMETA_DB": "x.db", "AIMETA_API_URL": "http://a"}
    assert stats(tmp_path, env) == []
    assert stats(tmp_path, {"AIMETA_NOTHING_LIKE_IT": "1"}) == [
        "Warning: AIMETA_NOTHING_LIKE_IT is not an aimeta setting"
    ]


def test_an_unknown_toml_key_is_a_warning_and_the_run_goes_on(tmp_path: Path) -> None:
    config = tmp_path / "aimeta.toml"
    config.write_text('prot = 5001\n[aimeta]\nmodle = "llava"\nsize = 512\n')
    found = stats(tmp_path, {"AIMETA_CONFIG": str(config)})
    assert found == [
        f"Warning: {config}: modle is not an aimeta setting (did you mean model?)",
    ]
    assert settings.resolve(config_path=config).size == 512
    config.write_text("prot = 5001\nport = 5002\n")
    assert stats(tmp_path, {"AIMETA_CONFIG": str(config)}) == [
        f"Warning: {config}: prot is not an aimeta setting (did you mean port?)",
    ]


def test_resolving_settings_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    """Warnings come once per command (from the CLI), not from every resolve() call."""
    environ = {"AIMETA_API_URLZ": "x"}
    settings.resolve(environ=environ)
    settings.resolve(environ=environ)
    assert capsys.readouterr() == ("", "")
    assert settings.name_warnings(environ=environ) == [
        "AIMETA_API_URLZ is not an aimeta setting (did you mean AIMETA_API_URLS?)"
    ]


def test_api_url_is_accepted_and_the_plural_wins(tmp_path: Path) -> None:
    single = settings.resolve(environ={"AIMETA_API_URL": "http://a:1/v1, http://b:2/v1"})
    assert single.api_urls == ("http://a:1/v1", "http://b:2/v1")
    both = {"AIMETA_API_URL": "http://a:1/v1", "AIMETA_API_URLS": "http://c:3/v1"}
    assert settings.resolve(environ=both).api_urls == ("http://c:3/v1",)
    assert stats(tmp_path, both) == [
        "Warning: both AIMETA_API_URL and AIMETA_API_URLS are set; using AIMETA_API_URLS"
    ]
    config = tmp_path / "aimeta.toml"
    config.write_text('api_url = ["http://d:4/v1"]\n')
    assert settings.resolve(environ={}, config_path=config).api_urls == ("http://d:4/v1",)
    # The flag still wins over both.
    flags = {"api_urls": ("http://e:5/v1",)}
    assert settings.resolve(flags, environ=both).api_urls == ("http://e:5/v1",)


def test_out_dir_from_the_environment_moves_every_output(tmp_path: Path) -> None:
    resolved = settings.resolve(environ={"AIMETA_OUT_DIR": str(tmp_path / "o")})
    assert resolved.db == tmp_path / "o" / "images.db"
    assert resolved.raw_jsonl == tmp_path / "o" / "exif_raw.jsonl"


def test_help_shows_the_defaults_settings_declares() -> None:
    web = runner.invoke(app, ["web", "--help"])
    assert f"[default: ({Settings().port})]" in web.output
    assert f"[default: ({Settings().host})]" in web.output
    rate = runner.invoke(app, ["rate", "--help"])
    assert f"[default: ({Settings().size})]" in rate.output
    assert Settings().api_urls[0] in rate.output


def test_a_changed_default_in_settings_changes_the_help() -> None:
    """Change the declared default before the CLI is built: --help follows it."""
    code = (
        "import dataclasses, sys\n"
        "from aimeta.settings import Settings\n"
        "fields = {f.name: f for f in dataclasses.fields(Settings)}\n"
        "fields['port'].default = 5123\n"
        "fields['db'].default = 'elsewhere/library.db'\n"
        "from aimeta.cli import main\n"
        "main()\n"
    )
    for command, expected in (("web", "[default: (5123)]"), ("stats", "elsewhere/library.db")):
        result = subprocess.run(
            [sys.executable, "-c", code, command, "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "COLUMNS": "200"},
        )
        assert result.returncode == 0, result.stderr
        assert expected in result.stdout, result.stdout


def test_cli_modules_do_not_repeat_settings_defaults() -> None:
    """Defaults come from Settings; a literal copy in cli/ would drift from it."""
    shown = {settings.default_text(name) for name in settings.names()}
    # Short values are everywhere; "auto" is spelt in choice lists; "exiftool" and "prompts"
    # are also names (of a setting, a command).
    defaults = {text for text in shown if len(text) > 2} - {"auto", "exiftool", "prompts"}
    repeated = []
    for path in sorted(CLI.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and str(node.value) in defaults:
                repeated.append(f"{path.name}:{node.lineno}: {node.value!r}")
    assert not repeated, "use setting_option() or Settings() instead:\n" + "\n".join(repeated)
