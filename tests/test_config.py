"""Typed hparams, --hparams JSON validation and gin parsing."""

from __future__ import annotations

from pathlib import Path

import gin
import pytest

from polyamp.config import (
    MelodicHParams,
    bind_hparams,
    list_builtin_gin_files,
    parse_gin,
    parse_hparams_json,
    resolve_gin_file,
)
from polyamp.errors import ConfigError


def test_hparams_json_overrides_are_typed() -> None:
    overrides = parse_hparams_json("melodic", '{"frames_true_weighing": 3, "predict_frame_threshold": 0.4}')
    assert overrides == {"frames_true_weighing": 3.0, "predict_frame_threshold": 0.4}
    assert isinstance(overrides["frames_true_weighing"], float)


def test_unknown_hparam_lists_valid_names() -> None:
    with pytest.raises(ConfigError) as error:
        parse_hparams_json("melodic", '{"frame_prediction_threshold": 0.4}')
    message = str(error.value)
    assert "frame_prediction_threshold" in message
    assert "predict_frame_threshold" in message and "onsets_true_weighing" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "text",
    ['{"fc_size": "big"}', '{"fc_size": 2.5}', '{"apply_sustain": 1}', '{"num_filters": 4}', "[1, 2]", "{not json"],
)
def test_ill_typed_hparams_are_one_clear_error(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_hparams_json("melodic", text)


def test_builtin_gin_files_are_found_by_name() -> None:
    names = list_builtin_gin_files()
    for name in ("melodic/tiny.gin", "melodic/small.gin", "melodic/full.gin", "frontends/mel.gin"):
        assert name in names
        assert resolve_gin_file(name).endswith(name)
    assert resolve_gin_file("melodic/tiny").endswith("melodic/tiny.gin")


def test_gin_includes_resolve_beside_a_models_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `--model-dir models` leaves a models/ folder in the working directory; gin must not take it
    # for the package of `include 'models/melodic.gin'`.
    (tmp_path / "models" / "melodic").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    parse_gin(["melodic/small.gin"], [])
    assert gin.query_parameter("MelodicHParams.fc_size") == 256


def test_presets_and_overrides_reach_the_hparams() -> None:
    parse_gin(["melodic/tiny.gin"], ["MelodicHParams.fc_size = 24"])
    bind_hparams("melodic", parse_hparams_json("melodic", '{"predict_onset_threshold": 0.3}'))
    hparams = MelodicHParams()
    assert hparams.num_filters == (4, 4, 8)
    assert hparams.fc_size == 24
    assert hparams.predict_onset_threshold == 0.3
    full = resolve_gin_file("melodic/full.gin")
    parse_gin([full])
    assert MelodicHParams().fc_size == 768
    gin.clear_config()


@pytest.mark.parametrize(
    "binding",
    ["MelodicHParams.no_such_field = 3", "NoSuchThing.value = 1", "MelodicHParams.fc_size = = 3"],
)
def test_bad_gin_binding_is_a_config_error(binding: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_gin([], [binding])
    assert "--gin-param" in str(error.value)


def test_missing_gin_file_lists_builtin_files() -> None:
    with pytest.raises(ConfigError) as error:
        parse_gin(["melodic/huge.gin"])
    assert "melodic/small.gin" in str(error.value)


def test_bad_gin_file_names_the_file(tmp_path) -> None:
    bad = tmp_path / "bad.gin"
    bad.write_text("MelodicHParams.fc_size = (\n")
    with pytest.raises(ConfigError) as error:
        parse_gin([str(bad)])
    assert "bad.gin" in str(error.value)


def test_loading_for_inference_ignores_the_runs_training_dataset_choice(tmp_path) -> None:
    import gin

    from polyamp.config import parse_gin
    from polyamp.loading import INFERENCE_BINDINGS

    saved = tmp_path / "operative_config.gin"
    saved.write_text("open_dataset.dataset = 'mixture'\n")
    parse_gin(operative_config=str(saved), base_bindings=INFERENCE_BINDINGS)
    assert gin.query_parameter("open_dataset.dataset") == "auto"
    parse_gin(
        gin_params=["open_dataset.dataset = 'slakh'"], operative_config=str(saved), base_bindings=INFERENCE_BINDINGS
    )
    assert gin.query_parameter("open_dataset.dataset") == "slakh"  # the user's choice still wins
