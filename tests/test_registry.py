"""Plugin registries: built-ins, unknown names, and third-party plugins through entry points."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from polyamp.errors import ConfigError
from polyamp.registry import DATASETS, FRONTENDS, MODELS, POSTPROCESSORS, Registry


def test_builtin_plugins_are_registered() -> None:
    assert {"cqt", "mel"} <= set(FRONTENDS.names())
    assert "melodic" in MODELS.names()
    assert {"tfrecord", "folder"} <= set(DATASETS.names())
    assert "onsets_frames" in POSTPROCESSORS.names()


def test_unknown_plugin_lists_valid_names() -> None:
    with pytest.raises(ConfigError) as error:
        FRONTENDS.get("wavelet")
    assert "wavelet" in str(error.value) and "cqt" in str(error.value) and "mel" in str(error.value)


def test_a_name_cannot_be_taken_twice() -> None:
    registry: Registry = Registry("thing")
    registry.register("a")(int)
    with pytest.raises(ConfigError):
        registry.register("a")(float)


def test_entry_point_plugins_are_discovered(tmp_path) -> None:
    """A package that declares a ``polyamp.plugins`` entry point adds its plugins on first lookup."""
    (tmp_path / "my_frontend.py").write_text(
        textwrap.dedent(
            """
            from polyamp.registry import FRONTENDS

            @FRONTENDS.register("my_frontend")
            class MyFrontend:
                num_bins = 12
            """
        )
    )
    dist_info = tmp_path / "my_frontend-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-frontend\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text("[polyamp.plugins]\nmy_frontend = my_frontend\n")
    code = "from polyamp.registry import FRONTENDS; print(FRONTENDS.get('my_frontend').num_bins)"
    result = subprocess.run(
        [sys.executable, "-c", code], env={"PYTHONPATH": str(tmp_path)}, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "12"
