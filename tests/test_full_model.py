"""The Full model in-process: checkpoint layout, --hparams routing, the four --load-full cases,
the joint training batches and losses, family decisions and family rolls, CLI argument translation."""

from __future__ import annotations

import json
import types
from pathlib import Path

import numpy as np
import pytest

from polyamp.errors import CheckpointError, ConfigError

SR = 16000


def _build(model_type: str, gin_files: list[str], params: tuple[str, ...] = ()) -> object:
    from polyamp.components import build_components
    from polyamp.config import parse_gin

    parse_gin(gin_files, list(params))
    return build_components(model_type=model_type)


def _save(model: object, directory: Path, step: int = 1) -> None:
    """Saves ``model`` as a run's checkpoint ``ckpt-<step>`` with the current operative gin config."""
    import tensorflow as tf

    from polyamp.config import operative_config_str

    directory.mkdir(parents=True, exist_ok=True)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model), str(directory), max_to_keep=2)
    manager.save(checkpoint_number=step)
    (directory / f"operative_config-{step}.gin").write_text(operative_config_str())


def _spec(num_frames: int = 40, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.0, 1.0, (1, num_frames, 229)).astype(np.float32)


def _melodic_outputs(model: object, spec: np.ndarray) -> dict[str, np.ndarray]:
    return {name: np.asarray(value) for name, value in model(spec, training=False).items()}


@pytest.fixture(scope="module")
def parts_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    """melodic/a and timbre/a trained "separately" (saved at random initialisation, tiny presets
    with a non-default melodic width so a wrong architecture cannot load), and their melodic outputs."""
    model_dir = tmp_path_factory.mktemp("models")
    melodic = _build("melodic", ["melodic/tiny.gin"], ("MelodicHParams.fc_size = 24",))
    _save(melodic.model, model_dir / "melodic" / "a")
    outputs = _melodic_outputs(melodic.model, _spec())
    timbre = _build("timbre", ["timbre/tiny.gin"])
    _save(timbre.model, model_dir / "timbre" / "a")
    return model_dir, outputs


def test_checkpoint_holds_the_parts_under_model_melodic_and_model_timbre(tmp_path: Path) -> None:
    import tensorflow as tf

    full = _build("full", ["full/tiny.gin"])
    assert full.model_type == "full" and set(full.parts) == {"melodic", "timbre"}
    assert full.model.melodic is full.parts["melodic"].model and full.model.timbre is full.parts["timbre"].model
    prefix = tf.train.Checkpoint(model=full.model).write(str(tmp_path / "ckpt"))
    names = [name for name, _ in tf.train.list_variables(prefix) if name.startswith("model/")]
    assert {name.split("/")[1] for name in names} == {"melodic", "timbre"}
    num_weights = len(full.parts["melodic"].model.weights) + len(full.parts["timbre"].model.weights)
    assert len(names) == num_weights
    assert len(full.model.trainable_variables) == len(full.parts["melodic"].model.trainable_variables) + len(
        full.parts["timbre"].model.trainable_variables
    )
    frozen = _build("full", ["full/tiny.gin"], ("FullHParams.melodic_trainable = False",))
    assert len(frozen.model.trainable_variables) == len(frozen.parts["timbre"].model.trainable_variables)


def test_hparams_json_routes_each_name_to_its_class() -> None:
    from polyamp.config import bind_hparams, parse_gin, parse_hparams_json
    from polyamp.models.full_hparams import FullHParams

    parse_gin(["full/tiny.gin"])
    presence = [0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]
    overrides = parse_hparams_json(
        "full",
        json.dumps(
            {
                "fc_size": 12,
                "timbre_max_notes": 5,
                "full_learning_rate": 1e-3,
                "batch_size": 3,
                "present_instruments": presence,
                "predict_frame_threshold": 0.4,
            }
        ),
    )
    assert overrides["present_instruments"] == ("brass", "string")
    bind_hparams("full", overrides)
    from polyamp.components import build_components

    full = build_components(model_type="full")
    assert full.hparams == FullHParams(
        full_learning_rate=1e-3, batch_size=3, truncated_length_secs=2.0, present_instruments=("brass", "string")
    )
    assert full.parts["melodic"].hparams.fc_size == 12
    assert full.parts["melodic"].hparams.batch_size == 2  # a shared name belongs to FullHParams
    assert full.parts["melodic"].hparams.predict_frame_threshold == pytest.approx(0.4)
    assert full.parts["timbre"].hparams.timbre_max_notes == 5
    assert full.decoder.allowed_families == [1, 8]
    assert parse_hparams_json("full", '{"present_instruments": ["String", "brass"]}')["present_instruments"] == (
        "brass",
        "string",
    )
    with pytest.raises(ConfigError, match="valid names:.*full_learning_rate.*timbre_max_notes"):
        parse_hparams_json("full", '{"fc_sise": 3}')
    with pytest.raises(ConfigError, match="kazoo"):
        parse_hparams_json("full", '{"present_instruments": ["kazoo"]}')
    with pytest.raises(ConfigError, match="unknown hparam"):
        parse_hparams_json("melodic", '{"full_learning_rate": 1.0}')


def test_load_full_false_builds_the_full_model_from_separately_trained_parts(parts_dir) -> None:
    from polyamp.loading import load_components

    model_dir, expected = parts_dir
    for load_full in (False, None):  # auto: no full run exists, so the parts are loaded
        full, ref = load_components(model_dir, "full", "a", load_full=load_full)
        assert full.parts["melodic"].hparams.fc_size == 24  # the part's own config rebuilt its architecture
        got = _melodic_outputs(full.model.melodic, _spec())
        for name, value in expected.items():
            np.testing.assert_allclose(got[name], value, rtol=1e-5, atol=1e-6)
        assert ref.run_dir == model_dir / "melodic" / "a"
    alone, _ = load_components(model_dir, "melodic", "a")
    for name, value in _melodic_outputs(alone.model, _spec()).items():
        np.testing.assert_allclose(value, expected[name], rtol=1e-5, atol=1e-6)


def test_load_full_true_restores_a_part_from_a_full_run(parts_dir) -> None:
    from polyamp.loading import load_components

    model_dir, _ = parts_dir
    full = _build("full", ["full/tiny.gin"])
    _save(full.model, model_dir / "full" / "f", step=7)
    spec = _spec(seed=3)
    expected = _melodic_outputs(full.model.melodic, spec)
    melodic, ref = load_components(model_dir, "melodic", "f", load_full=True)
    assert ref.run_dir == model_dir / "full" / "f" and ref.step == 7
    for name, value in _melodic_outputs(melodic.model, spec).items():
        np.testing.assert_allclose(value, expected[name], rtol=1e-5, atol=1e-6)
    timbre, _ = load_components(model_dir, "timbre", "f", load_full=True)
    notes = np.asarray([[[60.0, 0.1, 0.5], [-1.0, -1.0, -1.0]]], np.float32)
    timbre_spec = np.random.default_rng(1).uniform(0, 1, (1, 80, 229)).astype(np.float32)
    inputs = {"timbre_spec": timbre_spec, "notes": notes}
    np.testing.assert_allclose(
        np.asarray(timbre.model(inputs, training=False)["family_probs"]),
        np.asarray(full.model.timbre(inputs, training=False)["family_probs"]),
        rtol=1e-5,
        atol=1e-6,
    )
    reloaded, _ = load_components(model_dir, "full", "f")  # auto: the full run exists
    np.testing.assert_allclose(
        np.asarray(reloaded.model.melodic(spec)["frames"]), expected["frames"], rtol=1e-5, atol=1e-6
    )


def test_load_full_errors_say_what_to_do(parts_dir) -> None:
    from polyamp.loading import load_components

    model_dir, _ = parts_dir
    if not (model_dir / "full" / "f").exists():
        _save(_build("full", ["full/tiny.gin"]).model, model_dir / "full" / "f")
    with pytest.raises(CheckpointError, match="add --load-full true") as error:
        load_components(model_dir, "timbre", "f")
    assert "\n" not in str(error.value)
    with pytest.raises(CheckpointError, match="no melodic checkpoint.*polyamp train --model-type melodic"):
        load_components(model_dir, "full", "f", load_full=False)
    with pytest.raises(
        CheckpointError, match="no checkpoint for --load-id .a. under .*full.*drop --load-full to load a melodic run"
    ):
        load_components(model_dir, "melodic", "a", load_full=True)


def test_joint_batches_give_both_spectrograms_of_one_crop_and_finite_losses(synthetic_tfrecord: Path) -> None:
    import tensorflow as tf

    from polyamp.data.datasets import open_dataset
    from polyamp.tasks import get_task

    full = _build("full", ["full/tiny.gin"])
    task = get_task("full")
    features, labels = next(iter(task.batches(open_dataset(str(synthetic_tfrecord)), full, seed=0)))
    assert features["spec"].shape == (2, 62, 229)  # 2 s crops at 31.25 frames/s
    assert features["timbre_spec"].shape == (2, 124, 229)  # the same samples at hop 256
    assert features["notes"].shape == (2, 16, 3) and labels["family"].shape == (2, 16, 12)
    assert labels["frames"].shape == (2, 62, 88)
    mask = labels["mask"].numpy() > 0
    assert mask.any()
    assert np.all(labels["family"].numpy()[mask].argmax(-1) == 4)  # synthetic tones are program 0: keyboard
    notes = features["notes"].numpy()[mask]
    assert np.all((notes[:, 1] >= 0) & (notes[:, 2] <= 62 * 512 / SR + 1e-6))
    # The frame labels and the notes come from the same crop: every labelled note sounds in the frame roll.
    frames = labels["frames"].numpy()
    for batch, row in zip(*np.nonzero(mask), strict=True):
        pitch, start, end = features["notes"].numpy()[batch, row]
        if end - start > 0.1:
            first = int(np.floor(start * 31.25))
            assert frames[batch, first : first + 2, int(pitch) - 21].max() == 1.0
    with tf.GradientTape() as tape:
        losses = task.losses(full.model, features, labels, full.hparams)
    assert set(losses) >= {"melodic", "family", "accuracy", "total", "frames"}
    assert all(np.isfinite(float(value)) for value in losses.values())
    assert float(losses["total"]) == pytest.approx(float(losses["melodic"]) + float(losses["family"]), rel=1e-5)
    gradients = tape.gradient(losses["total"], full.model.trainable_variables)
    assert all(gradient is not None for gradient in gradients)
    settings = task.optimizer_settings(full.hparams)
    assert (settings.learning_rate, settings.decay_rate, settings.clip_norm) == (3e-3, 0.0, 0.0)


def test_present_instruments_restrict_and_use_all_instruments_isolates() -> None:
    from polyamp.decode.multi_instrument import MultiInstrumentDecoder
    from polyamp.full_transcription import allowed_families, assign_note_families
    from polyamp.models.full_hparams import FullHParams

    probs = np.full((2, 12), 0.05, np.float32)
    probs[0, 4], probs[0, 8] = 0.9, 0.3  # keyboard, a little string
    probs[1, 1] = 0.8  # brass
    for use_all, expected in ((False, [[8], [8]]), (True, [[], []])):
        components = types.SimpleNamespace(
            decoder=MultiInstrumentDecoder(present_instruments=["string"]),
            hparams=FullHParams(use_all_instruments=use_all, present_instruments=("string",)),
        )
        assert assign_note_families(components, probs, allowed_families(components)) == expected
    components = types.SimpleNamespace(decoder=MultiInstrumentDecoder(), hparams=FullHParams())
    assert assign_note_families(components, probs, allowed_families(components)) == [[4], [1]]
    assert assign_note_families(components, probs, allowed_families(components, "brass,string")) == [[8], [1]]
    restricted = types.SimpleNamespace(
        decoder=MultiInstrumentDecoder(present_instruments=["string"]), hparams=FullHParams()
    )
    with pytest.raises(ConfigError, match="shares no family"):
        allowed_families(restricted, "brass")


def test_family_rolls_have_twelve_families_and_the_agnostic_channel(parts_dir, tmp_path: Path) -> None:
    import soundfile

    import polyamp
    from polyamp.notes.families import DEFAULT_PROGRAMS

    model_dir, _ = parts_dir
    transcriber = polyamp.load_model(model_dir, model_type="full", load_id="a", load_full=False)
    time_s = np.arange(2 * SR) / SR
    samples = (0.3 * np.sin(2 * np.pi * 261.6 * time_s)).astype(np.float32)
    soundfile.write(tmp_path / "tone.wav", samples, SR)
    sequence = transcriber.transcribe(tmp_path / "tone.wav", qpm=90.0)
    assert sequence.tempos[0].qpm == 90.0
    assert all(note.program == DEFAULT_PROGRAMS[note.instrument] for note in sequence.notes)
    rolls = transcriber.family_rolls(samples)
    assert rolls.shape == (2 * SR // 512 + 1, 88, 13) and rolls.dtype == np.float32
    result = transcriber.transcribe_samples(samples)
    np.testing.assert_allclose(rolls[:, :, 12], np.asarray(result.rolls.frames, np.float32), atol=1e-3)
    assert len(result.families) == len(result.notes) == result.family_probs.shape[0]
    assert set(result.notes_by_family) == {family for families in result.families for family in families}


def test_command_line_spellings_translate() -> None:
    from polyamp.cli.main import normalize_load_full
    from polyamp.cli.runner import to_polyamp_args

    assert normalize_load_full(["eval", "--load_full=True", "--x"]) == ["eval", "--load-full", "--x"]
    assert normalize_load_full(["--load-full", "false", "a.wav"]) == ["--no-load-full", "a.wav"]
    assert normalize_load_full(["--load-full", "a.wav"]) == ["--load-full", "a.wav"]
    args = to_polyamp_args(
        ["--examples_path=a/*,b/*", "--nsynth_examples_path=n/*", "--model_type=FULL", "--model_id=x", "--load_id=y"]
    )
    assert args[:2] == ["train", "--examples-path"] and "--load-id" in args
    bindings = [args[index + 1] for index, arg in enumerate(args) if arg == "--gin-param"]
    assert bindings == [
        "open_dataset.dataset = 'mixture'",
        "MixtureDataset.components = [('auto', 'a/*,b/*', 1.0), ('nsynth', 'n/*', 1.0)]",
    ]
    evaluate = to_polyamp_args(["--mode=eval", "--examples_path=e", "--model_type=MELODIC", "--load_full=True"])
    assert "--load-full" in evaluate
    timbre = to_polyamp_args(["--examples_path=e", "--model_type=TIMBRE", "--dataset_type=slakh"])
    assert "open_dataset.dataset = 'slakh'" in timbre
    with pytest.raises(SystemExit):
        to_polyamp_args(["--examples_path=e", "--load_full=maybe"])
