"""The shipped default model (polyamp/pretrained): files, manifest, size, and transcription with no
model flags (CLI and library), single-track with --model-type melodic, and one-line errors for a
missing or corrupt shipped file. Runs against the installed package (in CI: the wheel's copy)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DEMO_CLIP = REPO / "demo" / "ensemble_demo.flac"
LIMIT_BYTES = 25_000_000


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **kwargs.pop("env", {}))
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, **kwargs)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def shipped() -> Path:
    from polyamp.pretrained import pretrained_dir

    return pretrained_dir()


def shipped_files(root: Path) -> list[Path]:
    """Every file of the shipped folder except the package's own code."""
    return sorted(
        path
        for path in root.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.name != "__init__.py"
    )


def read_tracks(path: Path) -> list[tuple[str, int, bool, int]]:
    import pretty_midi

    midi = pretty_midi.PrettyMIDI(str(path))
    return [(track.name, track.program, track.is_drum, len(track.notes)) for track in midi.instruments]


def test_manifest_lists_every_file_with_its_sha256_and_the_total_is_at_most_25_mb(shipped: Path) -> None:
    import json

    from polyamp.pretrained import MANIFEST_NAME, verify_pretrained

    manifest = json.loads((shipped / MANIFEST_NAME).read_text())
    listed = {entry["path"]: entry for entry in manifest["files"]}
    on_disk = {path.relative_to(shipped).as_posix() for path in shipped_files(shipped)} - {MANIFEST_NAME}
    assert on_disk == set(listed), "files shipped but not in the manifest (or listed but missing)"
    for relative, entry in listed.items():
        data = (shipped / relative).read_bytes()
        assert len(data) == entry["bytes"] and hashlib.sha256(data).hexdigest() == entry["sha256"], relative
    total = sum(path.stat().st_size for path in shipped.rglob("*") if path.is_file())
    assert total <= LIMIT_BYTES, f"shipped model folder is {total / 1e6:.1f} MB"
    model = verify_pretrained()
    assert set(model.steps()) == {"melodic", "timbre"} and min(model.steps().values()) > 0
    for part, step in model.steps().items():
        folder = f"{part}/{model.load_id}"
        for name in (f"ckpt-{step}.index", f"ckpt-{step}.data-00000-of-00001", f"operative_config-{step}.gin"):
            assert f"{folder}/{name}" in listed
    assert "MODEL_CARD.md" in listed


def test_checkpoints_hold_model_weights_only(shipped: Path) -> None:
    import tensorflow as tf

    from polyamp.pretrained import verify_pretrained

    model = verify_pretrained()
    for part, step in model.steps().items():
        names = [name for name, _ in tf.train.list_variables(str(shipped / part / model.load_id / f"ckpt-{step}"))]
        assert any(name.startswith("model/") for name in names)
        assert not any(name.startswith("optimizer") or "/.OPTIMIZER_SLOT/" in name for name in names), part


def test_docs_model_card_is_the_shipped_card(shipped: Path) -> None:
    assert (REPO / "docs" / "model-card.md").read_text() == (shipped / "MODEL_CARD.md").read_text()


def test_transcribe_without_model_flags_writes_one_track_per_family(polyamp_command, tmp_path: Path) -> None:
    from polyamp.notes.families import DEFAULT_PROGRAMS, FAMILY_NAMES

    result = run(polyamp_command + ["transcribe", str(DEMO_CLIP), "--output-dir", str(tmp_path)])
    assert result.returncode == 0, result.stderr
    assert "using the shipped model" in result.stderr
    tracks = read_tracks(tmp_path / "ensemble_demo.polyamp.mid")
    assert len(tracks) >= 2, tracks  # the demo has three instruments of different families
    for name, program, is_drum, count in tracks:
        assert name in FAMILY_NAMES and program == DEFAULT_PROGRAMS[FAMILY_NAMES.index(name)] and not is_drum
        assert count > 0

    melodic = run(
        polyamp_command + ["transcribe", str(DEMO_CLIP), "--output-dir", str(tmp_path / "m"), "--model-type", "melodic"]
    )
    assert melodic.returncode == 0, melodic.stderr
    single = read_tracks(tmp_path / "m" / "ensemble_demo.polyamp.mid")
    assert len(single) == 1 and single[0][3] > 0


def test_library_transcribe_uses_the_shipped_model(tmp_path: Path) -> None:
    import polyamp
    from polyamp.errors import OutputExistsError

    written = polyamp.transcribe(DEMO_CLIP, output_dir=tmp_path)
    assert written == tmp_path / "ensemble_demo.polyamp.mid"
    assert len(read_tracks(written)) >= 2
    with pytest.raises(OutputExistsError):
        polyamp.transcribe(DEMO_CLIP, output_dir=tmp_path)


def test_loaded_model_is_warm_and_its_labelling_graph_matches_the_keras_model() -> None:
    """load_model builds both inference graphs once; files reuse them, and the Timbre graph gives the
    probabilities the Keras model gives when called directly."""
    import numpy as np
    import tensorflow as tf

    import polyamp
    from polyamp.audio.decode import load_audio
    from polyamp.timbre_evaluation import crop_family_probs_fn, note_crops

    model = polyamp.load_model()
    timbre = model.components.parts["timbre"]
    labelling = crop_family_probs_fn(timbre)
    assert model.predictor._predict_fn.experimental_get_tracing_count() == 1
    assert labelling.experimental_get_tracing_count() == 1
    samples = load_audio(DEMO_CLIP)
    result = model.transcribe_samples(samples)
    model.transcribe_samples(samples[: len(samples) // 2])
    assert model.predictor._predict_fn.experimental_get_tracing_count() == 1
    assert labelling.experimental_get_tracing_count() == 1
    rows = np.asarray([(note.pitch, note.start_s, note.end_s) for note in result.notes], np.float32)
    assert len(rows) > 20
    hop = timbre.hparams.timbre_hop_length
    crop_start_s, audio, indices = next(note_crops(samples, rows, hop, 20.0))
    notes = rows[indices].copy()
    notes[:, 1:3] -= crop_start_s
    notes[:, 2] = np.clip(notes[:, 2], notes[:, 1], len(audio) / 16000)
    spec = timbre.frontend(tf.constant(audio[None]))
    direct = timbre.model({"timbre_spec": spec, "notes": tf.constant(notes[None])}, training=False)["family_probs"]
    np.testing.assert_allclose(result.family_probs[indices], np.asarray(direct)[0], atol=1e-5)


def copy_of_shipped(shipped: Path, destination: Path) -> Path:
    shutil.copytree(shipped, destination, ignore=shutil.ignore_patterns("__pycache__", "__init__.py"))
    return destination


def test_missing_or_corrupt_shipped_file_is_one_line_and_exit_4(polyamp_command, shipped: Path, tmp_path: Path):
    from polyamp.pretrained import PRETRAINED_ENV, verify_pretrained

    model = verify_pretrained()
    step = model.steps()["timbre"]
    broken = copy_of_shipped(shipped, tmp_path / "missing")
    missing = broken / "timbre" / model.load_id / f"ckpt-{step}.index"
    missing.unlink()
    result = run(
        polyamp_command + ["transcribe", str(DEMO_CLIP), "--output-dir", str(tmp_path)],
        env={PRETRAINED_ENV: str(broken)},
    )
    assert result.returncode == 4, result.stderr
    assert len(error_lines(result.stderr)) == 1 and "Traceback" not in result.stderr
    assert str(missing) in result.stderr and "missing" in result.stderr and "reinstall" in result.stderr
    assert not list(tmp_path.glob("*.mid"))

    corrupt = copy_of_shipped(shipped, tmp_path / "corrupt")
    data_file = corrupt / "melodic" / model.load_id / f"ckpt-{model.steps()['melodic']}.data-00000-of-00001"
    data = bytearray(data_file.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, different bytes
    data_file.write_bytes(bytes(data))
    for command in (["transcribe", str(DEMO_CLIP), "--model-type", "melodic"], ["pretrained"]):
        result = run(polyamp_command + command, env={PRETRAINED_ENV: str(corrupt)})
        assert result.returncode == 4, result.stderr
        assert len(error_lines(result.stderr)) == 1 and "corrupt" in result.stderr and str(data_file) in result.stderr


def test_pretrained_command_and_model_choice(polyamp_command, shipped: Path, tmp_path: Path) -> None:
    result = run(polyamp_command + ["pretrained"])
    assert result.returncode == 0, result.stderr
    assert "all match their sha256" in result.stdout and "melodic step" in result.stdout
    where = run(polyamp_command + ["pretrained", "--path"])
    assert where.returncode == 0 and Path(where.stdout.strip()) == shipped
    # --load-id without --model-dir: the user's ./models, as before the model shipped (not the shipped one).
    own = run(polyamp_command + ["transcribe", str(DEMO_CLIP), "--load-id", "mine"], cwd=tmp_path)
    assert own.returncode == 4 and os.path.join("models", "melodic") in own.stderr, own.stderr
    # The shipped model is stored as parts: --load-full true is a configuration error.
    full = run(polyamp_command + ["transcribe", str(DEMO_CLIP), "--load-full", "true"], cwd=tmp_path)
    assert full.returncode == 3 and "shipped model" in full.stderr, full.stderr
