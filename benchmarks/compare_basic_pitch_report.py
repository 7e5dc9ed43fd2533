"""Scoring and reporting of ``compare_basic_pitch.py``: metrics per set, timing, issue 6's targets, Markdown.

Metrics go through PolyAMP's own code so the figures mean what ``polyamp eval`` reports:

* agnostic note onset F1, onset+offset F1 and frame F1: :func:`polyamp.metrics.transcription_metrics`
  per clip (mir_eval; onset within 50 ms, offset within max(20 % of the reference duration, 50 ms),
  frame F1 from the notes of both sides sampled at 31.25 frames/s), then the mean over the clips of a set;
* multi-instrument onset (and onset+offset) F1 of PolyAMP:
  :class:`polyamp.multi_metrics.MultiInstrumentMetricsAccumulator` (a note matches only within its
  family; counts pooled over the clips of a set and over families);
* time per second of audio: summed transcription time over summed clip length, without and with the
  model loading; peak memory: the peak RSS of each system's own process.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
from collections.abc import Sequence
from typing import Any

KINDS = (("ensemble", "ensembles"), ("piano", "piano"))
"""(clip kind in the manifest, name in the tables)."""

AGNOSTIC_KEYS = (
    ("note", "agnostic note onset F1"),
    ("note_with_offsets", "agnostic note onset+offset F1"),
    ("frame", "frame F1 (31.25 frames/s)"),
)
MULTI_KEYS = (
    ("multi_note", "multi-instrument onset F1"),
    ("multi_note_with_offsets", "multi-instrument onset+offset F1"),
)

ONSET_MARGIN = {"ensemble": 0.10, "piano": 0.05}
OFFSET_MARGIN = {"ensemble": 0.15, "piano": 0.15}
MULTI_MINIMUM = 0.50


@dataclasses.dataclass(frozen=True)
class Note:
    """What polyamp.metrics reads: MIDI ``pitch``, ``start_s``/``end_s`` (s), MIDI ``velocity``."""

    pitch: float
    start_s: float
    end_s: float
    velocity: float


def notes_from_rows(rows: Sequence[Sequence[float]]) -> list[Note]:
    """Notes from ``[[start_s, end_s, pitch, velocity, ...], ...]`` (extra columns ignored)."""
    return [Note(float(row[2]), float(row[0]), float(row[1]), float(row[3])) for row in rows]


def reference_family_rows(rows: Sequence[Sequence[Any]]) -> list[tuple]:
    """``(onset_s, offset_s, pitch, velocity, family, track)`` of manifest note rows
    ``[start, end, pitch, velocity, program, instrument, is_drum]`` (family None = drums)."""
    from polyamp.notes.families import family_of

    return [
        (float(start), float(end), int(pitch), int(velocity), family_of(int(program), bool(is_drum)), int(instrument))
        for start, end, pitch, velocity, program, instrument, is_drum in rows
    ]


def estimate_by_family(by_family: dict[str, Sequence[Sequence[float]]]) -> dict[int, list[Note]]:
    """``{family index: notes}`` of a runner's ``notes_by_family``."""
    return {int(family): notes_from_rows(rows) for family, rows in by_family.items()}


def score_system(clips: Sequence[dict[str, Any]], run: dict[str, Any], multi: bool) -> dict[str, Any]:
    """Per set (``ensemble``, ``piano``): mean agnostic metrics over the clips, per-clip rows, and with
    ``multi`` the pooled multi-instrument metrics. ``run`` is a runner's output; clips are matched by path."""
    from polyamp.metrics import average_metrics, transcription_metrics
    from polyamp.multi_metrics import MultiInstrumentMetricsAccumulator

    by_path = {result["path"]: result for result in run["files"]}
    scores: dict[str, Any] = {}
    for kind, _ in KINDS:
        rows = []
        accumulator = MultiInstrumentMetricsAccumulator() if multi else None
        for clip in clips:
            if clip["kind"] != kind:
                continue
            result = by_path[clip["audio"]]
            reference = notes_from_rows(clip["notes"])
            metrics = transcription_metrics(reference, notes_from_rows(result["notes"]))
            row = {"id": clip["id"], "duration_s": clip["duration_s"], "seconds": result["seconds"], **metrics}
            if accumulator is not None:
                multi_metrics = accumulator.add(
                    reference_family_rows(clip["notes"]), estimate_by_family(result["notes_by_family"])
                )
                row.update({key: value for key, value in multi_metrics.items() if key.startswith("multi_")})
            rows.append(row)
        if not rows:
            continue
        agnostic = average_metrics([{key: value for key, value in row.items() if key != "id"} for row in rows])
        entry: dict[str, Any] = {"num_clips": len(rows), "mean": agnostic, "per_clip": rows}
        if accumulator is not None:
            pooled = accumulator.result()
            entry["multi_pooled"] = pooled["pooled"]
            entry["multi_per_family"] = pooled["per_family"]
        scores[kind] = entry
    return scores


def timing(run: dict[str, Any], clips: Sequence[dict[str, Any]], wall_s: float | None = None) -> dict[str, float]:
    """Loading, transcription time and their ratio to the audio length, peak memory, of one runner's output."""
    durations = {clip["audio"]: clip["duration_s"] for clip in clips}
    seconds = [result["seconds"] for result in run["files"]]
    audio_s = sum(durations[result["path"]] for result in run["files"])
    transcribe_s = sum(seconds)
    out = {
        "num_files": len(seconds),
        "audio_s": audio_s,
        "load_s": run["load_s"],
        "transcribe_s": transcribe_s,
        "s_per_audio_s_excl_loading": transcribe_s / audio_s,
        "s_per_audio_s_incl_loading": (transcribe_s + run["load_s"]) / audio_s,
        "first_file_s": seconds[0] if seconds else float("nan"),
        "median_file_s": float(statistics.median(seconds)) if seconds else float("nan"),
        "peak_rss_mb": run["peak_rss_mb"],
    }
    if wall_s is not None:
        out["process_wall_s"] = wall_s
    return out


def targets(scores: dict[str, dict[str, Any]], times: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    """Issue 6's acceptance lines, each computed from the measured figures: ``target``, ``polyamp``,
    ``required`` (the bound PolyAMP must reach), ``basic_pitch`` (None where it has no figure), ``passed``."""
    rows = []
    bp, pa = scores["basic_pitch"], scores["polyamp"]
    for kind, name in KINDS:
        if kind not in bp or kind not in pa:
            continue
        for key, label, margins in (
            ("note_f1", "agnostic note onset F1", ONSET_MARGIN),
            ("note_with_offsets_f1", "note onset+offset F1", OFFSET_MARGIN),
        ):
            ours, theirs = pa[kind]["mean"][key], bp[kind]["mean"][key]
            required = theirs + margins[kind]
            rows.append(
                {
                    "target": f"{label}, {name}: >= Basic Pitch + {margins[kind]:.2f}",
                    "polyamp": ours,
                    "basic_pitch": theirs,
                    "required": required,
                    "passed": bool(ours >= required),
                }
            )
    if "ensemble" in pa and "multi_pooled" in pa["ensemble"]:
        ours = pa["ensemble"]["multi_pooled"]["multi_note_f1"]
        rows.append(
            {
                "target": f"multi-instrument note onset F1, ensembles: >= {MULTI_MINIMUM:.2f}",
                "polyamp": ours,
                "basic_pitch": None,
                "required": MULTI_MINIMUM,
                "passed": bool(ours >= MULTI_MINIMUM),
            }
        )
    ours = times["polyamp"]["s_per_audio_s_excl_loading"]
    theirs = times["basic_pitch"]["s_per_audio_s_excl_loading"]
    rows.append(
        {
            "target": "transcription time per second of audio (loading excluded): <= Basic Pitch's",
            "polyamp": ours,
            "basic_pitch": theirs,
            "required": theirs,
            "passed": bool(ours <= theirs),
        }
    )
    return rows


def build_results(
    meta: dict[str, Any],
    manifest: dict[str, Any],
    runs: dict[str, dict[str, Any]],
    walls: dict[str, float | None],
    multi: bool = True,
) -> dict[str, Any]:
    """The results JSON: ``meta`` (date, command, machine), the set, both systems' settings and versions,
    timing, scores and targets. ``runs`` / ``walls``: each runner's output and process wall time (s)
    keyed ``basic_pitch`` and ``polyamp``; ``multi``: score PolyAMP's multi-track output too."""
    clips = manifest["clips"]
    scores = {
        "basic_pitch": score_system(clips, runs["basic_pitch"], multi=False),
        "polyamp": score_system(clips, runs["polyamp"], multi=multi),
    }
    times = {name: timing(runs[name], clips, walls.get(name)) for name in ("basic_pitch", "polyamp")}
    source_keys = ("id", "kind", "piece_id", "source", "clip_start_s", "duration_s", "num_instruments", "programs")
    return {
        "meta": meta,
        "set": {
            "config": manifest["config"],
            "key": manifest["key"],
            "sources": [{key: clip[key] for key in source_keys} for clip in clips],
        },
        "settings": {name: runs[name]["settings"] for name in ("basic_pitch", "polyamp")},
        "versions": {
            "basic_pitch": runs["basic_pitch"]["versions"],
            "basic_pitch_python": runs["basic_pitch"]["python"],
            "polyamp": runs["polyamp"]["versions"],
            "polyamp_python": runs["polyamp"]["python"],
        },
        "timing": times,
        "scores": scores,
        "targets": targets(scores, times),
    }


# ------------------------------------------------------------------------------------------------
# Markdown.


def _f(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def metrics_table(scores: dict[str, dict[str, Any]]) -> str:
    """Markdown: one row per (metric, set) with both systems and the difference."""
    lines = [
        "| metric | set | Basic Pitch 0.4.0 | PolyAMP | PolyAMP - Basic Pitch |",
        "|---|---|---:|---:|---:|",
    ]
    bp, pa = scores["basic_pitch"], scores["polyamp"]
    for kind, name in KINDS:
        if kind not in pa:
            continue
        label = f"{name} ({pa[kind]['num_clips']} clips)"
        for prefix, metric in AGNOSTIC_KEYS:
            ours, theirs = pa[kind]["mean"][f"{prefix}_f1"], bp[kind]["mean"][f"{prefix}_f1"]
            lines.append(f"| {metric} | {label} | {_f(theirs)} | {_f(ours)} | {ours - theirs:+.3f} |")
        if "multi_pooled" in pa[kind]:
            for prefix, metric in MULTI_KEYS:
                ours = pa[kind]["multi_pooled"][f"{prefix}_f1"]
                lines.append(f"| {metric} | {label} | n/a (one track) | {_f(ours)} | |")
    return "\n".join(lines)


def timing_table(times: dict[str, dict[str, float]]) -> str:
    """Markdown: loading, time per second of audio and peak memory of both systems."""
    bp, pa = times["basic_pitch"], times["polyamp"]
    rows = [
        ("model loading (s, imports included)", "load_s", 2),
        ("transcription time / audio time, loading excluded", "s_per_audio_s_excl_loading", 4),
        ("transcription time / audio time, loading included", "s_per_audio_s_incl_loading", 4),
        ("transcription time, all clips (s)", "transcribe_s", 1),
        ("first clip (s)", "first_file_s", 2),
        ("median clip (s)", "median_file_s", 2),
        ("peak memory (MB, RSS of the process)", "peak_rss_mb", 0),
    ]
    lines = [
        f"| measure ({pa['num_files']} clips, {pa['audio_s']:.1f} s of audio) | Basic Pitch 0.4.0 | PolyAMP |",
        "|---|---:|---:|",
    ]
    lines += [f"| {label} | {_f(bp[key], digits)} | {_f(pa[key], digits)} |" for label, key, digits in rows]
    return "\n".join(lines)


def targets_table(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown: each of issue 6's targets with the measured figures and pass/fail."""
    lines = ["| target (issue 6) | Basic Pitch | required | PolyAMP | result |", "|---|---:|---:|---:|---|"]
    for row in rows:
        digits = 4 if "time" in row["target"] else 3
        result = "**pass**" if row["passed"] else "**fail**"
        lines.append(
            f"| {row['target']} | {_f(row['basic_pitch'], digits)} | {_f(row['required'], digits)} "
            f"| {_f(row['polyamp'], digits)} | {result} |"
        )
    return "\n".join(lines)


def per_family_line(scores: dict[str, Any]) -> str:
    """PolyAMP's multi-instrument onset F1 per family on a set (reference notes in brackets), or ``""``."""
    families = scores.get("multi_per_family") or {}
    if not families:
        return ""
    cells = [
        f"{name} {row['note_f1']:.2f} ({row['num_reference_notes']:.0f})"
        for name, row in sorted(families.items(), key=lambda item: -item[1]["num_reference_notes"])
    ]
    return (
        "PolyAMP's multi-instrument onset F1 per family on the ensembles (reference notes): " + ", ".join(cells) + "."
    )


def _settings_lines(settings: dict[str, Any]) -> str:
    return ", ".join(f"`{key}` = {value}" for key, value in settings.items() if value is not None)


def _versions_line(versions: dict[str, str]) -> str:
    return ", ".join(f"{name} {version}" for name, version in versions.items())


def render_page(results: dict[str, Any]) -> str:
    """The whole ``docs/basic-pitch.md`` page from the benchmark's results JSON."""
    meta = results["meta"]
    config = results["set"]["config"]
    sources = results["set"]["sources"]
    bp_settings = results["settings"]["basic_pitch"]
    pa_settings = results["settings"]["polyamp"]
    versions = results["versions"]
    passed = sum(row["passed"] for row in results["targets"])
    ensembles = [clip for clip in sources if clip["kind"] == "ensemble"]
    piano = [clip for clip in sources if clip["kind"] == "piano"]
    counts = sorted({clip["num_instruments"] for clip in ensembles}) or [0]
    instruments = str(counts[0]) if counts[0] == counts[-1] else f"{counts[0]}-{counts[-1]}"
    pieces = ", ".join(sorted({clip["piece_id"] for clip in sources}))
    bp_version = versions["basic_pitch"].get("basic-pitch", "?")
    onnx_version = versions["basic_pitch"].get("onnxruntime", "?")
    pa_version = versions["polyamp"].get("polyamp", "?")
    tf_version = versions["polyamp"].get("tensorflow-cpu", versions["polyamp"].get("tensorflow", "?"))
    split_note = (
        "PolyAMP trains on the train split only, and nothing about its models is chosen on test pieces"
        if config["split"] == "test"
        else "PolyAMP trains on the train split only; its onset threshold may have been chosen on validation pieces"
    )
    loads = meta.get("load_average_1min_before_after") or {}
    load_note = (
        " One-minute load average before/after each system's run (other work on the machine slows both): "
        + ", ".join(f"{name.replace('_', ' ')} {pair[0]:.2f}/{pair[1]:.2f}" for name, pair in loads.items())
        + "."
        if loads
        else ""
    )
    family_line = per_family_line(results["scores"]["polyamp"].get("ensemble", {}))
    soundfont_name = os.path.basename(config["soundfont"])
    json_path = meta.get("json_out", "benchmarks/results/compare_basic_pitch.json")
    return f"""# PolyAMP vs Basic Pitch: {soundfont_name}

This page is written by `benchmarks/compare_basic_pitch.py` (issue 6, "side-by-side benchmark"); do not
edit it by hand, run the benchmark again. Both systems transcribed the same clips on the same machine in
one run, one after the other, each in its own process. The benchmark runs once per held-out SoundFont;
each run writes its own page.

Run: {meta["date_utc"]} on {meta["machine"]}.{load_note}

```bash
{meta["command"]}
```

## Results

{metrics_table(results["scores"])}

{timing_table(results["timing"])}

## Issue 6's targets

{passed} of {len(results["targets"])} targets met. Every line is computed from the figures above.

{targets_table(results["targets"])}

## What was measured

**Validation set.** {len(ensembles)} ensemble clips ({instruments} instruments playing) and {len(piano)} piano clips,
{config["min_clip_s"]:.0f}-{config["max_clip_s"]:.0f} s each, one per piece, from music21 corpus works of the
`{config["split"]}` split (the synth's split by a hash of the piece id; {split_note}), rendered
with the SoundFont `{config["soundfont"]}`, which is held out from PolyAMP's training (its models train on FluidR3
renders only). Works reserved for independent evaluation are never rendered.

* Ensembles: `polyamp synth --corpus --splits {config["split"]} --parts 2-5 --seed {config["seed"]}` with
  `ArrangeOptions.max_piece_s = {config["max_piece_s"]}` (programs drawn over the 11 families, humanised timing and
  dynamics, tempo change, stem gains, reverb).
* Piano: `polyamp synth` has no piano-only option, so the benchmark arranges the next works of the same split the
  same way (`program_strategy="keep"`, 2-4 parts) and merges every part into one part of program 0 (Acoustic Grand
  Piano), then renders it with the synth's own `SoundFontRenderer` and `write_slakh_track`.
* Clips: the clip length is drawn in [{config["min_clip_s"]:.0f}, {config["max_clip_s"]:.0f}] s and its start, among
  64 random candidates, is the one whose cuts cross the fewest notes. Reference notes are the piece's notes
  clipped to the clip; 10 ms fades at the cuts; 16 kHz 16-bit WAV files, given to both systems as they are.
* Pieces: {pieces}.

{family_line}

**Systems.**

* Basic Pitch {bp_version} in its own venv (`benchmarks/basic_pitch_env.sh`:
  `pip install --no-deps basic-pitch==0.4.0` plus onnxruntime {onnx_version} and
  the packages its inference path imports; no TensorFlow, so `basic_pitch` runs the ONNX model its wheel ships).
  `basic_pitch.inference.predict` at its defaults: {_settings_lines(bp_settings)}. Velocity = round(127 x amplitude);
  pitch bends are not scored.
* PolyAMP {pa_version} (TensorFlow {tf_version}) through the library API (`polyamp.load_model`, then `transcribe_file`
per clip): {_settings_lines(pa_settings)}. The agnostic metrics score the Full model's agnostic notes; the
multi-instrument metrics score its notes per family.

**Metrics** (PolyAMP's own metric code, so they mean what `polyamp eval` reports; see [Metrics](metrics.md)):

* agnostic note onset F1: mir_eval note matching, onset within 50 ms and pitch within 50 cents, instruments
  ignored; onset+offset F1 adds the offset within max(20 % of the reference note's length, 50 ms);
* frame F1: both systems' notes and the reference notes sampled at the same 31.25 frames/s (a note covers frames
  [floor(start x 31.25), ceil(end x 31.25))), mir_eval multipitch precision and recall;
* these three are computed per clip and averaged over the clips of a set;
* multi-instrument onset F1 (PolyAMP only; Basic Pitch writes one track): a note matches only a reference note of
  the same family (family of the reference note's GM program), onset within 50 ms; matches and note counts pooled
  over the clips of a set and over families;
* time per second of audio: the summed per-clip transcription time (audio decoding included) over the summed clip
  length, without and with the model loading (imports included). Loading ends when a system can transcribe at
  full speed: Basic Pitch's ONNX session is built, and `polyamp.load_model` has built PolyAMP's two TensorFlow
  graphs on a second of silence (`warm_up`, a few seconds once per process);
* peak memory: `ru_maxrss` of each system's own process at the end of its run (model and all clips).

Both systems use their default number of CPU threads on this {meta["cpu_count"]}-core machine.
Full results, per clip, are in `{json_path}`.

## Reproduce

```bash
bash benchmarks/basic_pitch_env.sh /work/venv-basic-pitch   # once: Basic Pitch's own venv
{meta["command"]}
```

Versions: Basic Pitch venv {_versions_line(versions["basic_pitch"])} (Python {versions["basic_pitch_python"]});
PolyAMP venv {_versions_line(versions["polyamp"])} (Python {versions["polyamp_python"]}).
"""
