"""The companion outputs of ``polyamp transcribe``: note-event CSV, model-output NPZ, piano-roll PNG,
sonified WAV, and the decoding-threshold options; Melodic (the shared trained model) and Full (tiny
parts saved at random initialisation, never trained)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import soundfile

from polyamp.batch_transcription import (
    OutputOptions,
    PlannedFile,
    load_engine,
    melodic_engine,
    merge_hparams_json,
    open_sonifier,
    output_paths_for,
    process_file,
    threshold_overrides,
)
from polyamp.errors import ConfigError, MissingDependencyError, OutputExistsError, SoundFontError

FLUIDSYNTH = Path("/usr/bin/fluidsynth")
needs_fluidsynth = pytest.mark.skipif(not FLUIDSYNTH.exists(), reason="needs FluidSynth (CI installs it)")
# Low thresholds so the briefly trained model finds notes in the clip (as conftest's sensitive_model).
LOW = threshold_overrides(onset_threshold=0.05, frame_threshold=0.05, offset_threshold=0.0)
ALL_OUTPUTS = {"note_events": True, "model_outputs": True, "plot": True}


@pytest.fixture(scope="module")
def full_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """melodic/p and timbre/p: tiny parts saved at random initialisation (a Full model from parts)."""
    import tensorflow as tf

    from polyamp.components import build_components
    from polyamp.config import operative_config_str, parse_gin

    model_dir = tmp_path_factory.mktemp("full_parts")
    for part in ("melodic", "timbre"):
        parse_gin([f"{part}/tiny.gin"], [])
        model = build_components(model_type=part).model
        run_dir = model_dir / part / "p"
        tf.train.CheckpointManager(tf.train.Checkpoint(model=model), str(run_dir), max_to_keep=1).save(1)
        (run_dir / "operative_config-1.gin").write_text(operative_config_str())
    return model_dir


def _row_key(row: tuple) -> tuple:
    from polyamp.notes.families import FAMILY_NAMES

    family = FAMILY_NAMES.index(row[2]) if row[2] in FAMILY_NAMES else -1
    return (round(row[4], 2), row[0], family)


def _midi_rows(path: Path) -> list[tuple[int, int, str, int, float, float]]:
    """(pitch, velocity, track name, program, start s, end s) of every note, sorted like the CSV."""
    rows = []
    for track in pretty_midi.PrettyMIDI(str(path)).instruments:
        rows += [(n.pitch, n.velocity, track.name, track.program, n.start, n.end) for n in track.notes]
    return sorted(rows, key=_row_key)


def _csv_rows(path: Path) -> list[tuple[int, int, str, int, float, float]]:
    from polyamp.notes.note_events import read_note_events

    events = read_note_events(path)
    return sorted([(e.pitch, e.velocity, e.family, e.program, e.start_s, e.end_s) for e in events], key=_row_key)


def _assert_csv_matches_midi(csv_path: Path, midi_path: Path, single_track: bool) -> int:
    midi_rows, csv_rows = _midi_rows(midi_path), _csv_rows(csv_path)
    assert len(csv_rows) == len(midi_rows) > 0
    for (pitch, velocity, name, program, start, end), row in zip(midi_rows, csv_rows, strict=True):
        assert row[:2] == (pitch, velocity)
        assert row[2] == ("" if single_track else name) and row[3] == program
        assert row[4] == pytest.approx(start, abs=2e-3) and row[5] == pytest.approx(end, abs=2e-3)  # MIDI ticks
    return len(csv_rows)


def _assert_rolls(arrays: np.lib.npyio.NpzFile, num_samples: int) -> int:
    num_frames = num_samples // 512 + 1
    for name in ("frames", "onsets", "offsets", "velocities"):
        roll = arrays[name]
        assert roll.shape == (num_frames, 88) and roll.dtype == np.float32
        assert 0.0 <= roll.min() and roll.max() <= 1.0
    assert float(arrays["frames_per_second"]) == 31.25 and int(arrays["min_midi_pitch"]) == 21
    return num_frames


def _assert_png(path: Path) -> None:
    from PIL import Image

    from polyamp.plots import PIANO_ROLL_SIZE_PX

    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == PIANO_ROLL_SIZE_PX
        pixels = np.asarray(image.convert("RGB"), np.int32)
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20  # notes, axes and text were drawn


def _assert_audible(path: Path, rate: int, min_seconds: float) -> None:
    samples, read_rate = soundfile.read(path, dtype="float32")
    assert read_rate == rate and samples.ndim == 1 and len(samples) >= min_seconds * rate
    rms = math.sqrt(float(np.mean(samples**2)))
    assert rms > 1e-3 and np.abs(samples).max() <= 0.9 + 1e-3


@needs_fluidsynth
def test_melodic_outputs_hold_the_notes_rolls_plot_and_audio(sensitive_model, clip: Path, tmp_path: Path) -> None:
    options = OutputOptions(output_dir=tmp_path, sonify=True, **ALL_OUTPUTS)
    outputs = output_paths_for(clip, options)
    with open_sonifier(options) as sonifier:  # 44.1 kHz, a SoundFont from /usr/share/sounds
        result = process_file(melodic_engine(sensitive_model), PlannedFile(clip, outputs), options, sonifier)
    assert result.status == "written" and result.written == outputs.requested(), result.error
    assert [path.name for path in outputs.requested()] == [
        f"{clip.stem}.polyamp.{ext}" for ext in "mid csv npz png wav".split()
    ]
    assert _assert_csv_matches_midi(outputs.note_events, outputs.midi, single_track=True) == result.num_notes
    num_samples = soundfile.info(str(clip)).frames
    with np.load(outputs.model_outputs) as arrays:
        _assert_rolls(arrays, num_samples)
        assert "note_family_probs" not in arrays.files
    _assert_png(outputs.plot)
    _assert_audible(outputs.audio, 44100, num_samples / 16000)
    assert not list(tmp_path.glob(".*.tmp")), "temporary files left behind"


def test_full_outputs_carry_the_families(full_model_dir: Path, clip: Path, tmp_path: Path) -> None:
    from polyamp.notes.families import FAMILY_NAMES

    engine = load_engine("full", full_model_dir, "p", merge_hparams_json(None, LOW), load_full=False)
    options = OutputOptions(output_dir=tmp_path, suffix="-multi", **ALL_OUTPUTS)
    outputs = output_paths_for(clip, options)
    result = process_file(engine, PlannedFile(clip, outputs), options)
    assert result.status == "written", result.error
    assert set(result.tracks) <= set(FAMILY_NAMES) and result.num_notes > 0
    _assert_csv_matches_midi(outputs.note_events, outputs.midi, single_track=False)
    with np.load(outputs.model_outputs) as arrays:
        num_frames = _assert_rolls(arrays, soundfile.info(str(clip)).frames)
        probs = arrays["note_family_probs"]
        assert probs.shape == (len(arrays["note_pitch"]), 12) and 0 <= probs.min() and probs.max() <= 1
        assert list(arrays["family_names"]) == list(FAMILY_NAMES)
        assert np.all(arrays["note_end_s"] > arrays["note_start_s"])
        rolls = arrays["family_rolls"]
        assert rolls.shape == (num_frames, 88, 12) and float(rolls.max()) <= 1.0
        # The first note's cells hold its family probabilities.
        first = int(arrays["note_start_s"][0] * 31.25 + 1e-6)
        cell = rolls[first, arrays["note_pitch"][0] - 21].astype(np.float32)
        assert np.all(cell >= probs[0] - 1e-3)
    _assert_png(outputs.plot)


def test_threshold_options_reach_the_decoder_and_a_high_onset_threshold_keeps_fewer_notes(
    sensitive_model, clip: Path
) -> None:
    from polyamp.decode.onsets_frames import OnsetsFramesDecoder

    decoder = sensitive_model.components.decoder  # loaded with merge_hparams_json(None, LOW)
    assert (decoder.onset_threshold, decoder.frame_threshold, decoder.offset_threshold) == (0.05, 0.05, 0.0)
    rolls = sensitive_model.predict_rolls(clip)

    def count(onset: float, min_ms: float = 0.0) -> int:
        decode = OnsetsFramesDecoder(0.05, onset, 0.0, active_onset_threshold=0.0, min_duration_ms=min_ms).decode
        return len(decode(rolls.frames, rolls.onsets, rolls.offsets, rolls.velocities))

    # Not monotonic step by step: a higher onset threshold can split one onset run into two notes
    # (re-articulation), but far apart the higher threshold keeps fewer notes.
    low, high = count(0.05), count(0.9)
    assert low > 0 and high < low, (low, high)
    assert count(0.05, min_ms=10_000) == 0  # every note is shorter than the 3 s clip


def test_threshold_options_are_checked() -> None:
    assert threshold_overrides(0.3, 0.4, 0.0, 50) == {
        "predict_onset_threshold": 0.3,
        "predict_frame_threshold": 0.4,
        "predict_offset_threshold": 0.0,
        "min_duration_ms": 50.0,
    }
    for kwargs, option in (
        ({"onset_threshold": 1.5}, "--onset-threshold"),
        ({"frame_threshold": -0.1}, "--frame-threshold"),
        ({"offset_threshold": float("nan")}, "--offset-threshold"),
        ({"minimum_note_length_ms": -1}, "--minimum-note-length"),
    ):
        with pytest.raises(ConfigError, match=option):
            threshold_overrides(**kwargs)
    assert merge_hparams_json('{"predict_onset_threshold": 0.1, "fc_size": 8}', {"predict_onset_threshold": 0.7}) == (
        '{"predict_onset_threshold": 0.7, "fc_size": 8}'
    )
    with pytest.raises(ConfigError, match="not valid JSON"):
        merge_hparams_json("{oops", {"min_duration_ms": 1.0})


def test_note_events_csv_sorts_rows_and_writes_a_note_per_family(tmp_path: Path) -> None:
    from polyamp.decode.onsets_frames import Note
    from polyamp.notes.note_events import family_events, note_events_csv, read_note_events, write_note_events

    shared = Note(60, 0.5, 1.0, 90)
    events = family_events({8: [shared, Note(64, 0.1, 0.4, 70)], 1: [shared]})  # string, brass
    assert note_events_csv(events).splitlines() == [
        "start_s,end_s,pitch,velocity,family,program",
        "0.100000,0.400000,64,70,string,48",
        "0.500000,1.000000,60,90,brass,61",
        "0.500000,1.000000,60,90,string,48",
    ]
    path = write_note_events(events, tmp_path / "song.csv")
    assert read_note_events(path) == events
    with pytest.raises(OutputExistsError, match="song.csv"):
        write_note_events(events, path)


def test_missing_plot_and_sonify_tools_are_one_line_errors(monkeypatch, tmp_path: Path) -> None:
    import sys

    from polyamp.batch_transcription import check_output_options
    from polyamp.synth import fluidsynth, sonify

    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
        with pytest.raises(MissingDependencyError, match=r"--plot needs matplotlib.*pip install"):
            check_output_options(OutputOptions(plot=True))
    with monkeypatch.context() as patch:
        patch.setattr(sonify, "SOUNDFONT_LOCATIONS", (str(tmp_path / "none.sf2"),))
        with pytest.raises(MissingDependencyError, match="--sonify-soundfont PATH"):
            open_sonifier(OutputOptions(sonify=True))
    with pytest.raises(SoundFontError, match="not-a-soundfont"):
        (tmp_path / "not-a-soundfont.sf2").write_bytes(b"RIFF0000WAVE")
        open_sonifier(OutputOptions(sonify=True), soundfont=tmp_path / "not-a-soundfont.sf2")
    with pytest.raises(ConfigError, match="--sonify-sample-rate"):
        open_sonifier(OutputOptions(sonify=True), sample_rate_hz=1000)
    with pytest.raises(ConfigError, match="go with --sonify"):
        open_sonifier(OutputOptions(), sample_rate_hz=16000)
    with monkeypatch.context() as patch:
        patch.setenv(fluidsynth.LIBRARY_ENV_VAR, str(tmp_path / "libfluidsynth-missing.so"))
        fluidsynth.load_library.cache_clear()
        try:
            with pytest.raises(MissingDependencyError, match="FluidSynth is not installed"):
                open_sonifier(OutputOptions(sonify=True), soundfont=sonify.find_soundfont())
        finally:
            fluidsynth.load_library.cache_clear()


@needs_fluidsynth
def test_sonify_renders_at_16_khz_from_the_written_midi(tmp_path: Path) -> None:
    from polyamp.decode.onsets_frames import Note
    from polyamp.notes.multitrack import write_multitrack_midi
    from polyamp.synth.sonify import Sonifier, find_soundfont

    midi = write_multitrack_midi({0: [Note(40, 0.2, 0.9, 100)], 2: [Note(72, 0.5, 1.5, 80)]}, tmp_path / "a.mid")
    with Sonifier(find_soundfont(), 16000) as sonifier:
        wav = sonifier.write(midi, tmp_path / "a.wav", duration_s=3.0)
        _assert_audible(wav, 16000, 3.0)
        samples, _ = soundfile.read(wav, dtype="float32")
        assert np.abs(samples[: int(0.15 * 16000)]).max() < 1e-3  # silent before the first note (0.2 s)
        empty = write_multitrack_midi({}, tmp_path / "empty.mid")
        silent, _ = soundfile.read(sonifier.write(empty, tmp_path / "empty.wav", duration_s=1.0), dtype="float32")
        assert len(silent) == 16000 and not silent.any()
