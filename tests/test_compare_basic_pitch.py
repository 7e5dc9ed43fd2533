"""benchmarks/compare_basic_pitch*.py without Basic Pitch: clip choice and cutting, scoring, targets, the
page, and the one-line exit when Basic Pitch's venv is missing (data made here; no network)."""

from __future__ import annotations

import dataclasses
import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield {
            name: importlib.import_module(name)
            for name in ("compare_basic_pitch_set", "compare_basic_pitch_report", "compare_basic_pitch")
        }
    finally:
        sys.path.remove(str(BENCHMARKS))


def _grid_notes(module, instruments: int = 2, period: float = 0.5, length: float = 0.4, total: float = 60.0):
    """Notes every ``period`` s lasting ``length`` s, for each instrument (gaps of period - length)."""
    notes = []
    for instrument in range(instruments):
        for onset in np.arange(0.0, total, period):
            notes.append(module.RefNote(60 + instrument, float(onset), float(onset + length), 80, 40, instrument))
    return notes


def test_clip_start_cuts_between_notes(bench) -> None:
    clips = bench["compare_basic_pitch_set"]
    notes = _grid_notes(clips)
    starts = np.asarray([note.start_s for note in notes])
    ends = np.asarray([note.end_s for note in notes])
    start = clips.choose_clip_start(notes, 60.0, 20.0, np.random.default_rng(3), instrument_range=(2, 5))
    assert start is not None and 0.0 <= start <= 40.0
    assert clips.crossing_count(starts, ends, start) == 0
    assert clips.crossing_count(starts, ends, start + 20.0) == 0
    # Too short, or no candidate with 3-5 instruments playing: no clip.
    assert clips.choose_clip_start(notes, 15.0, 20.0, np.random.default_rng(0)) is None
    assert clips.choose_clip_start(notes, 60.0, 20.0, np.random.default_rng(0), instrument_range=(3, 5)) is None


def test_clip_notes_are_clipped_and_shifted(bench) -> None:
    clips = bench["compare_basic_pitch_set"]
    notes = [
        clips.RefNote(60, 1.0, 3.0, 70, 0, 0),  # across the start: starts at 0
        clips.RefNote(62, 4.0, 5.0, 71, 0, 1),  # inside
        clips.RefNote(64, 9.0, 12.0, 72, 0, 0),  # across the end: ends at the clip's end
        clips.RefNote(65, 0.0, 1.5, 73, 0, 0),  # before: dropped
        clips.RefNote(67, 10.0, 11.0, 74, 0, 0),  # after: dropped
    ]
    clipped = clips.clip_notes(notes, 2.0, 10.0)
    assert [(note.pitch, note.start_s, note.end_s) for note in clipped] == [
        (60, 0.0, 1.0),
        (62, 2.0, 3.0),
        (64, 7.0, 8.0),
    ]
    assert [note.instrument for note in clipped] == [0, 1, 0]
    assert clips.RefNote.from_row(clipped[1].row()) == clipped[1]


def test_cut_audio_pads_and_fades(bench) -> None:
    clips = bench["compare_basic_pitch_set"]
    samples = np.ones(16000 * 3, np.float32)
    clip = clips.cut_audio(samples, 16000, 2.0, 2.0)
    assert clip.shape == (32000,) and clip.dtype == np.float32
    assert clip[0] == 0.0 and clip[159] < 1.0 and clip[160] == 1.0  # 10 ms fade-in
    assert np.all(clip[16000:] == 0.0)  # past the end of the audio
    full = clips.cut_audio(samples, 16000, 0.5, 1.0)
    assert full[-1] < 0.01 and np.all(full[160:-160] == 1.0)


def test_piano_piece_merges_parts_into_program_0(bench) -> None:
    clips = bench["compare_basic_pitch_set"]
    from polyamp.synth.piece import NoteEvent, Part, Piece

    upper = Part("upper", 40, False, (NoteEvent(60, 0.0, 2.0, 80), NoteEvent(67, 1.0, 2.0, 60)), -3.0)
    lower = Part("lower", 71, False, (NoteEvent(60, 1.0, 3.0, 90), NoteEvent(48, 0.0, 3.0, 70)), 0.0)
    drums = Part("drums", 0, True, (NoteEvent(36, 0.0, 0.1, 100),))
    piano = clips.piano_piece(Piece("p", "corpus x", (upper, lower, drums)))
    assert len(piano.parts) == 1
    part = piano.parts[0]
    assert (part.program, part.is_drum) == (0, False)
    # The unison C4 of the two parts is split where the later one starts, as the synth does within a part.
    assert sorted((note.pitch, note.start_s, note.end_s) for note in part.notes) == [
        (48, 0.0, 3.0),
        (60, 0.0, 1.0),
        (60, 1.0, 3.0),
        (67, 1.0, 2.0),
    ]
    assert clips.piano_piece(Piece("q", "corpus y", (upper, drums))) is None


def _clip(kind: str, index: int, notes: list[list]) -> dict:
    return {
        "id": f"{kind}-{index:02d}",
        "kind": kind,
        "audio": f"/clips/{kind}-{index:02d}.wav",
        "duration_s": 20.0,
        "piece_id": f"piece{index}",
        "source": f"composer/piece{index}",
        "clip_start_s": 1.0,
        "num_instruments": 2,
        "programs": [0, 40],
        "notes": notes,
    }


def _runs(clips: list[dict], bp_notes: dict[str, list], pa_notes: dict[str, dict[str, list]], bp_s: float) -> dict:
    def files(system: str) -> list[dict]:
        rows = []
        for clip in clips:
            if system == "basic_pitch":
                rows.append({"path": clip["audio"], "seconds": bp_s, "notes": bp_notes[clip["id"]]})
            else:
                by_family = pa_notes[clip["id"]]
                agnostic = [note for notes in by_family.values() for note in notes]
                rows.append({"path": clip["audio"], "seconds": 1.0, "notes": agnostic, "notes_by_family": by_family})
        return rows

    versions = {"basic_pitch": {"basic-pitch": "0.4.0"}, "polyamp": {"polyamp": "0.1.0"}}
    return {
        name: {
            "system": name,
            "python": "3.11.7",
            "versions": versions[name],
            "settings": {"onset_threshold": 0.5} if name == "basic_pitch" else {"model_type": "full"},
            "load_s": 2.0,
            "peak_rss_mb": 500.0,
            "files": files(name),
        }
        for name in ("basic_pitch", "polyamp")
    }


def test_scores_targets_and_page(bench) -> None:
    report = bench["compare_basic_pitch_report"]
    # Reference rows: [start, end, pitch, velocity, program, instrument, is_drum]; program 40 = string, 0 = keyboard.
    ensemble = [[0.5 * k, 0.5 * k + 0.4, 60 + k % 5, 80, 40 if k % 2 else 0, k % 2, False] for k in range(20)]
    piano = [[0.5 * k, 0.5 * k + 0.4, 50 + k % 7, 80, 0, 0, False] for k in range(20)]
    clips = [_clip("ensemble", 0, ensemble), _clip("piano", 0, piano)]
    string, keyboard = "8", "4"
    # Basic Pitch: every ensemble onset but the offsets all wrong; piano perfect.
    bp = {"ensemble-00": [[s, e + 2.0, p, v] for s, e, p, v, *_ in ensemble], "piano-00": [r[:4] for r in piano]}
    # PolyAMP: ensemble perfect with the right families; piano perfect but every note called a string.
    pa = {
        "ensemble-00": {
            string: [r[:4] for r in ensemble if r[4] == 40],
            keyboard: [r[:4] for r in ensemble if r[4] == 0],
        },
        "piano-00": {string: [r[:4] for r in piano]},
    }
    config = bench["compare_basic_pitch_set"].SetConfig()
    manifest = {"config": dataclasses.asdict(config), "key": config.key(), "clips": clips}
    meta = {"date_utc": "2026-11-29 18:00 UTC", "command": "python benchmarks/compare_basic_pitch.py", "cpu_count": 2}
    meta["machine"] = "test machine"
    results = report.build_results(meta, manifest, _runs(clips, bp, pa, bp_s=2.0), {"basic_pitch": 9.0})

    bp_scores, pa_scores = results["scores"]["basic_pitch"], results["scores"]["polyamp"]
    assert bp_scores["ensemble"]["mean"]["note_f1"] == pytest.approx(1.0)
    assert bp_scores["ensemble"]["mean"]["note_with_offsets_f1"] == pytest.approx(0.0)
    assert pa_scores["ensemble"]["mean"]["note_with_offsets_f1"] == pytest.approx(1.0)
    assert pa_scores["ensemble"]["multi_pooled"]["multi_note_f1"] == pytest.approx(1.0)
    assert pa_scores["piano"]["multi_pooled"]["multi_note_f1"] == pytest.approx(0.0)  # family must match
    assert pa_scores["piano"]["mean"]["note_f1"] == pytest.approx(1.0)  # agnostic: family ignored
    assert "multi_pooled" not in bp_scores["ensemble"]

    assert results["timing"]["polyamp"]["s_per_audio_s_excl_loading"] == pytest.approx(2.0 / 40.0)
    assert results["timing"]["basic_pitch"]["s_per_audio_s_incl_loading"] == pytest.approx((4.0 + 2.0) / 40.0)
    assert results["timing"]["basic_pitch"]["process_wall_s"] == 9.0
    verdicts = {row["target"].split(":")[0]: row["passed"] for row in results["targets"]}
    assert verdicts == {
        "agnostic note onset F1, ensembles": False,  # equal, not + 0.10
        "note onset+offset F1, ensembles": True,  # 1.0 vs 0.0
        "agnostic note onset F1, piano": False,
        "note onset+offset F1, piano": False,
        "multi-instrument note onset F1, ensembles": True,
        "transcription time per second of audio (loading excluded)": True,  # 1 s vs 2 s per clip
    }

    page = report.render_page(results)
    assert "3 of 6 targets met" in page
    assert "| agnostic note onset+offset F1 | ensembles (1 clips) | 0.000 | 1.000 | +1.000 |" in page
    assert page.count("**fail**") == 3 and page.count("**pass**") == 3
    json.dumps(results)  # the results file is plain JSON


def test_missing_basic_pitch_venv_is_one_line_and_exit_2(bench, tmp_path, capsys) -> None:
    driver = bench["compare_basic_pitch"]
    code = driver.main(["--basic-pitch-venv", str(tmp_path / "no-venv"), "--work-dir", str(tmp_path / "work")])
    assert code == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert "benchmarks/basic_pitch_env.sh" in error and str(tmp_path / "no-venv") in error
    assert not (tmp_path / "work").exists()  # nothing rendered


def test_runner_refuses_a_missing_audio_file(tmp_path, capsys) -> None:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        runner = importlib.import_module("basic_pitch_runner")
    finally:
        sys.path.remove(str(BENCHMARKS))
    files = tmp_path / "files.json"
    files.write_text(json.dumps({"files": [str(tmp_path / "missing.wav")]}))
    assert runner.main(["--files", str(files), "--output", str(tmp_path / "out.json")]) == 2
    assert "missing.wav" in capsys.readouterr().err
    assert not (tmp_path / "out.json").exists()
