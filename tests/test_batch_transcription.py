"""Batch transcription: broken files are reported and skipped, finished inputs are skipped on a re-run,
--overwrite redoes them, configuration errors stop the batch before any file, and writes are atomic."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from polyamp.batch_transcription import OutputOptions, melodic_engine, output_paths_for, plan_batch, transcribe_batch
from polyamp.errors import OutputExistsError

LOW_THRESHOLDS = {"predict_onset_threshold": 0.05, "predict_frame_threshold": 0.05, "predict_offset_threshold": 0.0}


def _batch_folder(folder: Path, clip: Path) -> Path:
    """4 good WAVs (copies of ``clip``), random bytes named .wav and a zero-length .wav."""
    folder.mkdir()
    for index in range(4):
        (folder / f"good{index}.wav").write_bytes(clip.read_bytes())
    (folder / "noise.wav").write_bytes(np.random.default_rng(0).bytes(3000))
    (folder / "empty.wav").write_bytes(b"")
    return folder


def _invoke(args: list[str]):
    from polyamp.cli.main import app

    return CliRunner().invoke(app, ["transcribe", *args])


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {path.name: (path.read_bytes(), path.stat().st_mtime_ns) for path in sorted(folder.iterdir())}


def test_batch_reports_broken_files_then_resumes_and_overwrites(
    trained_model: Path, sensitive_model, clip: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # rich tables: one line per failed file
    # The CLI's model loading is tested in test_cli.py (a subprocess); here it hands back the loaded
    # model (same checkpoint and thresholds) and records what the options asked for.
    from polyamp import batch_transcription

    loads = []

    def load_engine(*args: object) -> object:
        loads.append(args)
        return melodic_engine(sensitive_model)

    monkeypatch.setattr(batch_transcription, "load_engine", load_engine)
    inputs = _batch_folder(tmp_path / "in", clip)
    out = tmp_path / "out"
    args = [str(inputs), "--model-dir", str(trained_model), "--load-id", "cli", "--output-dir", str(out)]
    args += ["--onset-threshold", "0.05", "--frame-threshold", "0.05", "--offset-threshold", "0", "--save-note-events"]

    first = _invoke(args)
    assert first.exit_code == 2, first.output
    assert sorted(path.name for path in out.iterdir()) == sorted(
        f"good{index}.polyamp.{ext}" for index in range(4) for ext in ("mid", "csv")
    )
    assert "transcribed 4, skipped 0 (outputs exist), failed 2 of 6" in first.stdout
    table = first.stdout[first.stdout.index("2 file(s) failed") :]
    assert "noise.wav" in table and "empty.wav" in table and "is empty" in table and "not a valid WAV" in table
    errors = [line for line in first.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: 2 of 6 files failed (listed above)"] and "Traceback" not in first.output
    model_type, model_dir, load_id, hparams_json = loads[0][:4]
    assert (model_type, model_dir, load_id) == ("melodic", trained_model, "cli")
    assert json.loads(hparams_json) == LOW_THRESHOLDS  # --onset/--frame/--offset-threshold
    notes = [len(path.read_text().splitlines()) - 1 for path in sorted(out.glob("*.csv"))]
    assert notes[0] > 0 and len(set(notes)) == 1  # the same audio four times, the same notes

    before = _snapshot(out)
    again = _invoke(args)
    assert again.exit_code == 2, again.output
    assert "transcribed 0, skipped 4 (outputs exist), failed 2 of 6" in again.stdout
    assert again.stderr.count("skipped ") == 4
    assert _snapshot(out) == before

    redone = _invoke([*args, "--overwrite"])
    assert redone.exit_code == 2, redone.output
    assert "transcribed 4, skipped 0 (outputs exist), failed 2 of 6" in redone.stdout
    after = _snapshot(out)
    assert all(after[name][1] != before[name][1] for name in before)  # every output rewritten
    assert all(after[name][0] == before[name][0] for name in before)  # with the same content

    (inputs / "noise.wav").unlink()
    (inputs / "empty.wav").unlink()
    loaded = len(loads)
    done = _invoke(args)  # every output exists: nothing to transcribe, so the model is not even loaded
    assert done.exit_code == 0, done.output
    assert "transcribed 0, skipped 4 (outputs exist), failed 0 of 4" in done.stdout
    assert len(loads) == loaded and _snapshot(out) == after
    misspelt = _invoke([*args, "--hparams", '{"predict_onset_treshold": 0.3}'])  # still checked, still not loaded
    assert misspelt.exit_code == 3 and "predict_onset_treshold" in misspelt.output
    assert len(loads) == loaded and _snapshot(out) == after


def test_missing_outputs_are_added_and_existing_ones_kept(sensitive_model, clip: Path, tmp_path: Path) -> None:
    engine = melodic_engine(sensitive_model)
    midi_only = OutputOptions(output_dir=tmp_path)
    planned, _ = plan_batch([clip], midi_only)
    planned[0].outputs.midi.write_bytes(b"an earlier MIDI file")
    assert transcribe_batch(engine, planned, midi_only).skipped  # everything asked for exists
    with_csv = OutputOptions(output_dir=tmp_path, note_events=True)
    planned, _ = plan_batch([clip], with_csv)
    (result,) = transcribe_batch(engine, planned, with_csv).results
    assert result.status == "written" and result.written == [planned[0].outputs.note_events]
    assert result.kept == [planned[0].outputs.midi]
    assert planned[0].outputs.midi.read_bytes() == b"an earlier MIDI file"
    assert planned[0].outputs.note_events.read_text().startswith("start_s,end_s,pitch,velocity,family,program\n")


def test_clashing_outputs_fail_up_front_and_sonifications_are_left_out(tmp_path: Path) -> None:
    a, b = tmp_path / "a" / "song.wav", tmp_path / "b" / "song.flac"
    with pytest.raises(OutputExistsError, match="would both write .*song.polyamp.mid"):
        plan_batch([a, b], OutputOptions(output_dir=tmp_path / "out"))
    assert len(plan_batch([a, b], OutputOptions())[0]) == 2  # beside each input: no clash
    with pytest.raises(OutputExistsError, match="which is an input"):
        plan_batch([a], OutputOptions(suffix="", sonify=True))  # song.wav would replace itself
    sonified = output_paths_for(a, OutputOptions(sonify=True)).audio
    assert sonified == tmp_path / "a" / "song.polyamp.wav"
    planned, left_out = plan_batch([a, sonified], OutputOptions(note_events=True))
    assert [item.audio for item in planned] == [a] and left_out == [sonified]
    assert planned[0].outputs.requested() == [tmp_path / "a" / f"song.polyamp.{ext}" for ext in ("mid", "csv")]


def test_configuration_errors_stop_the_batch_before_any_file(trained_model: Path, clip: Path, tmp_path: Path) -> None:
    inputs = _batch_folder(tmp_path / "in", clip)
    base = [str(inputs), "--model-dir", str(trained_model), "--output-dir", str(tmp_path / "out")]
    for extra, code, needle in (
        (["--hparams", '{"predict_onset_treshold": 0.3}'], 3, "predict_onset_treshold"),
        (["--load-id", "nope"], 4, "nope"),
        (["--frame-threshold", "2"], 3, "--frame-threshold"),
        (["--families", "string"], 3, "--families"),
        (["--sonify", "--sonify-soundfont", str(tmp_path / "missing.sf2")], 2, "missing.sf2"),
    ):
        result = _invoke(base + extra)
        assert result.exit_code == code, result.output
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and needle in errors[0], result.stderr
        assert not (tmp_path / "out").exists()


def test_an_interrupted_write_leaves_no_file_and_keeps_the_old_one(monkeypatch, tmp_path: Path) -> None:
    from matplotlib.figure import Figure

    from polyamp import model_outputs
    from polyamp.decode.onsets_frames import Note
    from polyamp.plots import plot_piano_roll

    path = tmp_path / "song.npz"
    path.write_bytes(b"the previous outputs")

    def killed(stream: object, *args: object, **kwargs: object) -> None:
        stream.write(b"half a file")  # type: ignore[attr-defined]
        raise KeyboardInterrupt

    monkeypatch.setattr(model_outputs.np, "savez_compressed", killed)
    with pytest.raises(KeyboardInterrupt):
        model_outputs.write_model_outputs({"frames": np.zeros((2, 88), np.float32)}, path, overwrite=True)
    monkeypatch.setattr(Figure, "savefig", lambda figure, stream, **kwargs: killed(stream))
    with pytest.raises(KeyboardInterrupt):
        plot_piano_roll({"notes": [Note(60, 0.0, 1.0, 80)]}, tmp_path / "song.png")
    assert sorted(os.listdir(tmp_path)) == ["song.npz"] and path.read_bytes() == b"the previous outputs"
