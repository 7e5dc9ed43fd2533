"""Model-dir layout and --load-id resolution."""

from __future__ import annotations

import os
import time

import pytest

from polyamp.checkpoints import latest_checkpoint, resolve_checkpoint, run_dir, validate_model_id
from polyamp.errors import CheckpointError, ConfigError


def _fake_checkpoint(folder, step: int) -> None:
    """Writes the two files of a TF checkpoint prefix (contents are not read by resolution)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"ckpt-{step}.index").write_bytes(b"index")
    (folder / f"ckpt-{step}.data-00000-of-00001").write_bytes(b"data")


def test_latest_checkpoint_ignores_incomplete_ones(tmp_path) -> None:
    folder = tmp_path / "melodic" / "run"
    _fake_checkpoint(folder, 10)
    _fake_checkpoint(folder, 20)
    (folder / "ckpt-30.index").write_bytes(b"index without data: a save that was killed")
    ref = latest_checkpoint(folder)
    assert ref is not None and ref.step == 20 and ref.model_id == "run"


def test_load_id_picks_that_id_and_star_picks_newest(tmp_path) -> None:
    _fake_checkpoint(tmp_path / "melodic" / "old", 50)
    time.sleep(0.05)
    _fake_checkpoint(tmp_path / "melodic" / "new", 5)
    old_index = tmp_path / "melodic" / "old" / "ckpt-50.index"
    os.utime(old_index, (time.time() - 100, time.time() - 100))
    assert resolve_checkpoint(tmp_path, "melodic", "old").step == 50
    assert resolve_checkpoint(tmp_path, "melodic", "*").model_id == "new"


def test_missing_checkpoint_is_one_clear_error(tmp_path) -> None:
    with pytest.raises(CheckpointError) as error:
        resolve_checkpoint(tmp_path, "melodic", "nope")
    assert "nope" in str(error.value) and str(tmp_path) in str(error.value)
    with pytest.raises(CheckpointError):
        resolve_checkpoint(tmp_path, "melodic", "*")


@pytest.mark.parametrize("bad", ["../escape", "", "a/b", ".hidden"])
def test_model_ids_must_be_plain_names(tmp_path, bad: str) -> None:
    with pytest.raises(ConfigError):
        validate_model_id(bad)
    with pytest.raises(ConfigError):
        run_dir(tmp_path, "melodic", bad)
