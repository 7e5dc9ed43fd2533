"""Standard transcription metrics (mir_eval), per example and averaged over examples.

Notes come from a NoteSequence (or its serialized bytes) or a list of note objects with
``pitch`` (MIDI), ``start_s``/``end_s`` (or ``start_time``/``end_time``) in seconds and
``velocity`` (MIDI). Drum notes (``is_drum``) are ignored. A note whose end is not after its
start is given one frame (1 / fps s), as the label rolls do; negative times are clipped to 0.

* frame_*: ``mir_eval.multipitch.evaluate`` on pitch sets sampled at ``frames_per_second``
  (default 31.25), a note covering frames [floor(start * fps), ceil(end * fps)); F1 = 2PR/(P+R).
* note_*: ``mir_eval.transcription.precision_recall_f1_overlap``, onset within 50 ms, pitch
  within 50 cents, offsets ignored.
* note_with_offsets_*: as note_* and the offset within max(20 % of the reference duration, 50 ms).
* note_with_velocity_* / note_with_offsets_and_velocity_*:
  ``mir_eval.transcription_velocity.precision_recall_f1_overlap`` (velocity tolerance 0.1 after
  mir_eval's linear rescaling of the estimated velocities), without / with offsets.
* num_reference_notes / num_estimated_notes.

Empty sides: when the reference and the estimate are both empty every precision, recall and
F1 is 1.0 (nothing to find, nothing wrongly found); when only one is empty they are all 0.0.
mir_eval is not called in either case, so it warns about nothing.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from polyamp.constants import FRAMES_PER_SECOND

METRIC_GROUPS: list[tuple[str, str]] = [
    ("Frame", "frame"),
    ("Note", "note"),
    ("Note w/ offsets", "note_with_offsets"),
    ("Note w/ velocity", "note_with_velocity"),
    ("Note w/ offsets & velocity", "note_with_offsets_and_velocity"),
]
"""(display name, key prefix); each prefix has ``_precision``, ``_recall`` and ``_f1`` keys."""

METRIC_SUFFIXES: tuple[str, str, str] = ("precision", "recall", "f1")

COUNT_KEYS: tuple[str, str] = ("num_reference_notes", "num_estimated_notes")

ONSET_TOLERANCE_S = 0.05
OFFSET_RATIO = 0.2
OFFSET_MIN_TOLERANCE_S = 0.05
VELOCITY_TOLERANCE = 0.1


def _note_arrays(notes: Any, frames_per_second: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(intervals [N, 2] s, MIDI pitches [N], MIDI velocities [N]) of the non-drum notes."""
    if isinstance(notes, (bytes, bytearray, memoryview)) or hasattr(notes, "notes"):
        from polyamp.notes.rolls import parse_note_sequence

        notes = parse_note_sequence(notes).notes
    rows = []
    for note in notes:
        if getattr(note, "is_drum", False):
            continue
        if hasattr(note, "start_s"):
            start, end = note.start_s, note.end_s
        else:
            start, end = note.start_time, note.end_time
        rows.append((start, end, note.pitch, getattr(note, "velocity", 0)))
    if not rows:
        return np.zeros((0, 2)), np.zeros(0), np.zeros(0)
    array = np.asarray(rows, np.float64)
    if not np.isfinite(array).all():
        raise ValueError("note times, pitches and velocities must be finite")
    intervals = np.maximum(array[:, :2], 0.0)
    short = intervals[:, 1] <= intervals[:, 0]
    intervals[short, 1] = intervals[short, 0] + 1.0 / frames_per_second
    return intervals, array[:, 2], array[:, 3]


def _f1(precision: float, recall: float) -> float:
    return 0.0 if precision + recall <= 0 else 2.0 * precision * recall / (precision + recall)


def _frame_roll(intervals: np.ndarray, pitches: np.ndarray, num_frames: int, fps: float) -> np.ndarray:
    """Boolean [num_frames, 128] roll of MIDI pitches."""
    from polyamp.notes.rolls import frame_spans

    first, stop = frame_spans(intervals[:, 0], intervals[:, 1], fps)
    rows = np.clip(np.round(pitches).astype(np.int64), 0, 127)
    diff = np.zeros((num_frames + 1, 128), np.int32)
    np.add.at(diff, (first, rows), 1)
    np.add.at(diff, (stop, rows), -1)
    return np.cumsum(diff[:-1], axis=0) > 0


def _frame_metrics(
    ref: tuple[np.ndarray, np.ndarray], est: tuple[np.ndarray, np.ndarray], fps: float
) -> tuple[float, float, float]:
    import mir_eval

    from polyamp.notes.rolls import frame_spans

    num_frames = int(max(frame_spans(side[0][:, 0], side[0][:, 1], fps)[1].max() for side in (ref, est)))
    hz = mir_eval.util.midi_to_hz(np.arange(128, dtype=np.float64))
    times = np.arange(num_frames) / fps
    ref_roll = _frame_roll(ref[0], ref[1], num_frames, fps)
    est_roll = _frame_roll(est[0], est[1], num_frames, fps)
    ref_freqs = [hz[np.flatnonzero(frame)] for frame in ref_roll]
    est_freqs = [hz[np.flatnonzero(frame)] for frame in est_roll]
    scores = mir_eval.multipitch.evaluate(times, ref_freqs, times, est_freqs)
    precision, recall = float(scores["Precision"]), float(scores["Recall"])
    return precision, recall, _f1(precision, recall)


def transcription_metrics(
    reference: Any, estimate: Any, frames_per_second: float = FRAMES_PER_SECOND
) -> dict[str, float]:
    """Frame and note metrics of ``estimate`` against ``reference`` (see the module docstring).

    Returns floats keyed ``<prefix>_precision|recall|f1`` for every prefix of METRIC_GROUPS, plus
    ``num_reference_notes`` and ``num_estimated_notes``.
    """
    ref_intervals, ref_pitches, ref_velocities = _note_arrays(reference, frames_per_second)
    est_intervals, est_pitches, est_velocities = _note_arrays(estimate, frames_per_second)
    results: dict[str, float] = {}

    if len(ref_pitches) == 0 or len(est_pitches) == 0:
        value = 1.0 if len(ref_pitches) == len(est_pitches) else 0.0
        for _, prefix in METRIC_GROUPS:
            for suffix in METRIC_SUFFIXES:
                results[f"{prefix}_{suffix}"] = value
    else:
        import mir_eval

        ref_hz = mir_eval.util.midi_to_hz(ref_pitches)
        est_hz = mir_eval.util.midi_to_hz(est_pitches)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # mir_eval's resampling/empty-frame chatter
            frame = _frame_metrics((ref_intervals, ref_pitches), (est_intervals, est_pitches), frames_per_second)
        results.update(zip(("frame_precision", "frame_recall", "frame_f1"), frame, strict=True))

        common = dict(onset_tolerance=ONSET_TOLERANCE_S, offset_min_tolerance=OFFSET_MIN_TOLERANCE_S)
        for prefix, offset_ratio in (("note", None), ("note_with_offsets", OFFSET_RATIO)):
            precision, recall, f1, _ = mir_eval.transcription.precision_recall_f1_overlap(
                ref_intervals, ref_hz, est_intervals, est_hz, offset_ratio=offset_ratio, **common
            )
            results.update({f"{prefix}_precision": precision, f"{prefix}_recall": recall, f"{prefix}_f1": f1})
        for prefix, offset_ratio in (
            ("note_with_velocity", None),
            ("note_with_offsets_and_velocity", OFFSET_RATIO),
        ):
            precision, recall, f1, _ = mir_eval.transcription_velocity.precision_recall_f1_overlap(
                ref_intervals,
                ref_hz,
                ref_velocities,
                est_intervals,
                est_hz,
                est_velocities,
                offset_ratio=offset_ratio,
                velocity_tolerance=VELOCITY_TOLERANCE,
                **common,
            )
            results.update({f"{prefix}_precision": precision, f"{prefix}_recall": recall, f"{prefix}_f1": f1})

    results["num_reference_notes"] = float(len(ref_pitches))
    results["num_estimated_notes"] = float(len(est_pitches))
    return {key: float(value) for key, value in results.items()}


def average_metrics(per_example: list[dict[str, float]]) -> dict[str, float]:
    """Mean over examples of every key (each key over the examples that have it); the
    ``num_*`` counts are summed instead. An empty list gives an empty dict."""
    keys: list[str] = []
    for example in per_example:
        keys.extend(key for key in example if key not in keys)
    averaged: dict[str, float] = {}
    for key in keys:
        values = [float(example[key]) for example in per_example if key in example]
        averaged[key] = float(np.sum(values)) if key.startswith("num_") else float(np.mean(values))
    return averaged
