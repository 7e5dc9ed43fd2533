"""The documentation site: docs/cli.md matches the Typer app, and `mkdocs build --strict` passes."""

from __future__ import annotations

import difflib
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GENERATOR = REPO / "scripts" / "gen_cli_reference.py"


def _generator():
    spec = importlib.util.spec_from_file_location("gen_cli_reference", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_is_current() -> None:
    generator = _generator()
    committed = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    rendered = generator.render_cli_reference()
    if rendered != committed:
        diff = difflib.unified_diff(
            committed.splitlines(), rendered.splitlines(), "docs/cli.md", "generated", n=0, lineterm=""
        )
        pytest.fail(
            f"docs/cli.md is out of date with the Typer app in cli/main.py; regenerate it with: "
            f"{generator.REGENERATE}\n" + "\n".join(list(diff)[:30]),
            pytrace=False,
        )


def test_cli_reference_lists_every_command_and_option() -> None:
    """Each command gets a section and each spelling of each option (and its help) a row."""
    import typer.main

    from polyamp.cli.main import app

    text = _generator().render_cli_reference()
    root = typer.main.get_command(app)
    ctx = root.context_class(root, info_name="polyamp", **root.context_settings)
    for name in root.list_commands(ctx):
        command = root.get_command(ctx, name)
        assert f"\n## polyamp {name}\n" in text
        for param in command.params:
            for spelling in [*param.opts, *param.secondary_opts]:
                if param.param_type_name == "option":
                    assert f"`{spelling}`" in text, f"{name} {spelling} missing from the CLI reference"
    assert "| `--qpm` | float | `120.0` | Tempo written to the MIDI file (beats per minute). |" in text
    assert "| `--examples-path`, `--examples_path` | str | required |" in text
    assert "`--overwrite` / `--no-overwrite` | flag | `--no-overwrite` |" in text


def test_check_mode_reports_a_stale_reference(tmp_path, capsys) -> None:
    stale = tmp_path / "cli.md"
    stale.write_text("# CLI reference\n", encoding="utf-8")
    generator = _generator()
    assert generator.main(["--check", "--output", str(stale)]) == 1
    assert "python scripts/gen_cli_reference.py" in capsys.readouterr().err
    assert generator.main(["--output", str(stale)]) == 0
    assert generator.main(["--check", "--output", str(stale)]) == 0


def test_mkdocs_build_strict(tmp_path) -> None:
    """Broken links or anchors, pages missing from the nav and API objects that do not exist all fail."""
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("mkdocstrings_handlers.python") is None:
        pytest.fail("MkDocs is not installed: pip install '.[docs]' (the test extra includes it)")
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(REPO / "mkdocs.yml")]
        + ["--site-dir", str(site)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stderr[-4000:]}"
    api = (site / "api" / "index.html").read_text(encoding="utf-8")
    assert 'id="polyamp.transcription.load_model"' in api  # mkdocstrings rendered the API
    assert (site / "cli" / "index.html").is_file()
