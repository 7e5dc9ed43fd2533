"""Timbre and multi-instrument transcription metrics (numpy + mir_eval; no TensorFlow).

Definitions, conventions and a worked example are in ``docs/metrics.md``. In short:

* Timbre: family accuracy (argmax of the predicted probabilities), macro-F1 over the families
  present in the reference, per-family precision/recall/F1/support and a [12, 12] confusion
  matrix (rows = reference family, columns = predicted family, order of ``FAMILY_NAMES``).
* Multi-instrument (MT3-style): per family, reference and estimated notes of that family are
  matched with ``mir_eval.transcription.match_notes`` (onset within 50 ms, pitch within 50 cents,
  and for the ``_with_offsets`` variant the offset within max(20 % of the reference duration,
  50 ms)); true positives, reference and estimated note counts are summed over families before
  P/R/F1 are taken. Drum notes are ignored everywhere.
* Agnostic: exactly :func:`polyamp.metrics.transcription_metrics` on the non-drum notes; an
  estimated note written to several tracks (same onset, offset and pitch) counts once there.
* Instrument leakage: reference notes are matched to estimated notes ignoring the family
  (pitch + onset; pairs within a family first, then the leftovers across families); for each
  reference instrument, the number of estimated tracks its matched notes land in, and the share
  of its matched notes outside its majority track.

Notes are given as a NoteSequence (or its serialized bytes), a ``{family: notes}`` mapping (the
Full model's output; the family is the note's family and track), a list of objects with ``pitch``,
``start_s``/``end_s`` (or ``start_time``/``end_time``), ``velocity`` and ``family`` (index or
name) or ``program`` (+ ``is_drum``), optionally ``track`` or ``instrument`` (stem id); or a list
of tuples ``(onset_s, offset_s, pitch, velocity, family[, track])`` (or a [N, 5|6] array of
them). A family of ``None`` or ``"drums"`` marks a drum note. Malformed notes raise
``ValueError`` (as polyamp.metrics does).

Every result is made of floats, ints, strings, lists and dicts, so it goes straight to JSON.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from polyamp.constants import FRAMES_PER_SECOND
from polyamp.metrics import (
    OFFSET_MIN_TOLERANCE_S,
    OFFSET_RATIO,
    ONSET_TOLERANCE_S,
    average_metrics,
    transcription_metrics,
)
from polyamp.notes.families import DRUMS_NAME, FAMILY_NAMES, NUM_FAMILIES, family_index, family_of

PITCH_TOLERANCE_CENTS = 50.0

MULTI_METRIC_GROUPS: list[tuple[str, str]] = [
    ("Multi-instrument note", "multi_note"),
    ("Multi-instrument note w/ offsets", "multi_note_with_offsets"),
]
"""(display name, key prefix); each prefix has ``_precision``, ``_recall`` and ``_f1`` keys."""

_VARIANTS: tuple[tuple[str, float | None], ...] = (("note", None), ("note_with_offsets", OFFSET_RATIO))


# ----------------------------------------------------------------------------------------------
# Timbre: one family per note.


def family_confusion(true_families: np.ndarray, predicted_families: np.ndarray) -> np.ndarray:
    """int64 [12, 12] counts: rows = reference family, columns = predicted family (both [N] ints)."""
    true = _family_labels(true_families, "true_families")
    predicted = _family_labels(predicted_families, "predicted_families")
    if true.shape != predicted.shape:
        raise ValueError(f"true_families has {true.size} notes but predicted_families has {predicted.size}")
    flat = np.bincount(true * NUM_FAMILIES + predicted, minlength=NUM_FAMILIES * NUM_FAMILIES)
    return flat.reshape(NUM_FAMILIES, NUM_FAMILIES).astype(np.int64)


def timbre_metrics(true_families: np.ndarray, predicted_probs: np.ndarray) -> dict[str, Any]:
    """Family metrics of one batch: ``true_families`` [N] ints 0-11, ``predicted_probs`` [N, 12].

    The predicted family is the argmax (ties go to the lower index). Returns ``accuracy``,
    ``macro_f1``, ``num_notes``, ``families``, ``per_family`` and ``confusion`` (see
    :func:`timbre_metrics_from_confusion`).
    """
    return timbre_metrics_from_confusion(family_confusion(true_families, _argmax_families(predicted_probs)))


def timbre_metrics_from_confusion(confusion: np.ndarray) -> dict[str, Any]:
    """Family metrics from a [12, 12] confusion matrix (rows = reference, columns = predicted).

    * ``accuracy`` = trace / total; ``macro_f1`` = mean F1 over the families with reference
      notes (support > 0). Both are 0.0 when there are no notes (``num_notes`` is then 0).
    * ``per_family[name]``: ``precision`` = TP / predicted, ``recall`` = TP / support, ``f1``,
      ``support`` (reference notes) and ``predicted`` (predicted notes); a ratio with a zero
      denominator is 0.0.
    * ``confusion``: the matrix as nested lists of ints; ``families``: the row/column names.
    """
    matrix = np.asarray(confusion)
    if matrix.shape != (NUM_FAMILIES, NUM_FAMILIES):
        raise ValueError(f"a family confusion matrix must have shape (12, 12), got {matrix.shape}")
    if not np.isfinite(matrix).all() or (matrix < 0).any() or (np.round(matrix) != matrix).any():
        raise ValueError("a family confusion matrix must hold non-negative whole counts")
    matrix = matrix.astype(np.int64)
    hits = np.diag(matrix)
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    precision = _safe_divide(hits, predicted)
    recall = _safe_divide(hits, support)
    f1 = np.asarray([_f1(p, r) for p, r in zip(precision, recall, strict=True)])
    present = support > 0
    total = int(matrix.sum())
    return {
        "accuracy": float(hits.sum() / total) if total else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "num_notes": total,
        "num_reference_families": int(present.sum()),
        "families": list(FAMILY_NAMES),
        "per_family": {
            name: {
                "precision": float(precision[index]),
                "recall": float(recall[index]),
                "f1": float(f1[index]),
                "support": int(support[index]),
                "predicted": int(predicted[index]),
            }
            for index, name in enumerate(FAMILY_NAMES)
        },
        "confusion": matrix.tolist(),
    }


class TimbreMetricsAccumulator:
    """Pools family predictions over many batches; ``result()`` scores them all at once."""

    def __init__(self) -> None:
        self._confusion = np.zeros((NUM_FAMILIES, NUM_FAMILIES), np.int64)

    def add(self, true_families: np.ndarray, predicted_probs: np.ndarray) -> None:
        """Adds a batch: ``true_families`` [N] ints 0-11, ``predicted_probs`` [N, 12]."""
        self._confusion += family_confusion(true_families, _argmax_families(predicted_probs))

    @property
    def confusion(self) -> np.ndarray:
        """int64 [12, 12] pooled counts (a copy): rows = reference, columns = predicted."""
        return self._confusion.copy()

    def result(self) -> dict[str, Any]:
        """:func:`timbre_metrics_from_confusion` of the pooled confusion matrix."""
        return timbre_metrics_from_confusion(self._confusion)


def _family_labels(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must have shape [N], got {array.shape}")
    if array.size == 0:
        return np.zeros(0, np.int64)
    if array.dtype.kind not in "iuf" or not np.isfinite(array).all() or (np.round(array) != array).any():
        raise ValueError(f"{name} must hold whole family indices 0-{NUM_FAMILIES - 1}")
    if array.min() < 0 or array.max() >= NUM_FAMILIES:
        raise ValueError(f"{name} holds {array.min()}..{array.max()}; family indices are 0-{NUM_FAMILIES - 1}")
    return array.astype(np.int64)


def _argmax_families(predicted_probs: Any) -> np.ndarray:
    probs = np.asarray(predicted_probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] != NUM_FAMILIES:
        raise ValueError(f"predicted_probs must have shape [N, {NUM_FAMILIES}], got {probs.shape}")
    if not np.isfinite(probs).all():
        raise ValueError("predicted_probs must be finite")
    return probs.argmax(axis=1) if len(probs) else np.zeros(0, np.int64)


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    numerator = np.asarray(numerator, np.float64)
    denominator = np.asarray(denominator, np.float64)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


def _f1(precision: float, recall: float) -> float:
    return 0.0 if precision + recall <= 0 else 2.0 * precision * recall / (precision + recall)


def _prf(matched: int, num_reference: int, num_estimated: int) -> tuple[float, float, float]:
    """P/R/F1 from counts, with polyamp.metrics' empty-side convention (both empty: 1.0)."""
    if num_reference == 0 and num_estimated == 0:
        return 1.0, 1.0, 1.0
    precision = matched / num_estimated if num_estimated else 0.0
    recall = matched / num_reference if num_reference else 0.0
    return float(precision), float(recall), _f1(precision, recall)


def _prf_keys(prefix: str, matched: int, num_reference: int, num_estimated: int) -> dict[str, float]:
    values = _prf(int(matched), int(num_reference), int(num_estimated))
    return {f"{prefix}_{suffix}": value for suffix, value in zip(("precision", "recall", "f1"), values, strict=True)}


# ----------------------------------------------------------------------------------------------
# Notes with families.


@dataclasses.dataclass(frozen=True)
class _PlainNote:
    """What polyamp.metrics.transcription_metrics reads from a note."""

    pitch: float
    start_s: float
    end_s: float
    velocity: float


@dataclasses.dataclass(frozen=True)
class _Notes:
    """Non-drum notes: intervals [N, 2] s, MIDI pitches [N], velocities [N], families [N], tracks [N]."""

    intervals: np.ndarray
    pitches: np.ndarray
    velocities: np.ndarray
    families: np.ndarray
    tracks: np.ndarray

    def __len__(self) -> int:
        return len(self.pitches)

    def hz(self) -> np.ndarray:
        import mir_eval

        return mir_eval.util.midi_to_hz(self.pitches)

    def plain(self) -> list[_PlainNote]:
        return [
            _PlainNote(float(pitch), float(start), float(end), float(velocity))
            for (start, end), pitch, velocity in zip(self.intervals, self.pitches, self.velocities, strict=True)
        ]

    def without_duplicates(self) -> _Notes:
        """The notes with exact duplicates (same onset, offset and pitch, any track) dropped, in order."""
        if len(self) < 2:
            return self
        keys = np.column_stack([self.intervals, self.pitches])
        keep = np.sort(np.unique(keys, axis=0, return_index=True)[1])
        fields = (self.intervals, self.pitches, self.velocities, self.families, self.tracks)
        return _Notes(*(field[keep] for field in fields))

    def instrument_ids(self) -> np.ndarray:
        """[N] ids of the (track, family) pair of each note: one id per instrument track."""
        if len(self) == 0:
            return np.zeros(0, np.int64)
        keys = np.stack([self.tracks, self.families], axis=1)
        return np.unique(keys, axis=0, return_inverse=True)[1].reshape(-1).astype(np.int64)


def _family_value(value: Any, where: str) -> int | None:
    """Family index from an index or a name; None for drums."""
    if value is None:
        return None
    if isinstance(value, str):
        if value == DRUMS_NAME:
            return None
        try:
            return family_index(value)
        except ValueError as error:
            raise ValueError(f"{where}: {error}") from None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: family must be an index 0-{NUM_FAMILIES - 1} or a name, got {value!r}") from None
    if number != round(number) or not 0 <= number < NUM_FAMILIES:
        raise ValueError(f"{where}: family must be an index 0-{NUM_FAMILIES - 1} or a name, got {value!r}")
    return int(number)


def _object_timing(note: Any, where: str) -> tuple[Any, Any, Any, Any]:
    """(start, end, pitch, velocity) of a note object (``start_s``/``end_s`` or ``start_time``/``end_time``)."""
    if hasattr(note, "start_s"):
        return note.start_s, note.end_s, note.pitch, getattr(note, "velocity", 0)
    if hasattr(note, "start_time"):
        return note.start_time, note.end_time, note.pitch, getattr(note, "velocity", 0)
    raise ValueError(f"{where} has no start_s/end_s or start_time/end_time")


def _object_family(note: Any, where: str) -> int | None:
    if hasattr(note, "family"):
        return _family_value(note.family, where)
    if hasattr(note, "program"):
        try:
            return family_of(note.program)
        except ValueError as error:
            raise ValueError(f"{where}: {error}") from None
    raise ValueError(f"{where} has neither a family nor a program")


def _note_row(note: Any, where: str, key: Any = None) -> tuple[float, float, float, float, int, int] | None:
    """(start_s, end_s, pitch, velocity, family, track) of one note, or None for a drum note.

    ``key`` is the family of a ``{family: notes}`` mapping; it is then the note's family and track.
    """
    if hasattr(note, "pitch"):
        if getattr(note, "is_drum", False):
            return None
        start, end, pitch, velocity = _object_timing(note, where)
        if key is not None:
            family = track = _family_value(key, where)
        else:
            family = _object_family(note, where)
            track = getattr(note, "track", getattr(note, "instrument", 0))
    elif isinstance(note, (tuple, list)) and len(note) in (5, 6) and key is None:
        start, end, pitch, velocity, family = note[:5]
        family = _family_value(family, where)
        track = note[5] if len(note) == 6 else 0
    else:
        raise ValueError(f"{where} must be a note object or (onset_s, offset_s, pitch, velocity, family[, track])")
    if family is None:
        return None
    try:
        values = (float(start), float(end), float(pitch), float(velocity or 0))
        track = int(track or 0)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: times, pitch, velocity and track must be numbers") from None
    return (*values, family, track)


def _rows(notes: Any, side: str) -> list[tuple[float, float, float, float, int, int]]:
    """Rows of the non-drum notes of any accepted note container."""
    if isinstance(notes, Mapping):
        rows = []
        for key, group in notes.items():
            for index, note in enumerate(group):
                row = _note_row(note, f"{side} note {index} of family {key!r}", key if key is not None else DRUMS_NAME)
                if row is not None:
                    rows.append(row)
        return rows
    if isinstance(notes, np.ndarray) and notes.ndim == 2:
        notes = [tuple(row) for row in notes.tolist()]  # [N, 5 or 6] rows of note tuples
    elif isinstance(notes, (bytes, bytearray, memoryview, np.ndarray)) or hasattr(notes, "notes"):
        from polyamp.notes.rolls import parse_note_sequence

        notes = parse_note_sequence(notes).notes
    if notes is None:
        raise ValueError(f"the {side} notes are None; pass an empty list for no notes")
    return [row for index, note in enumerate(notes) if (row := _note_row(note, f"{side} note {index}")) is not None]


def _parse_notes(notes: Any, side: str, frames_per_second: float) -> _Notes:
    """Non-drum notes of one side; a note whose end is not after its start gets 1 / fps s and
    negative times are clipped to 0, as polyamp.metrics does."""
    rows = _rows(notes, side)
    if not rows:
        empty = np.zeros(0)
        return _Notes(np.zeros((0, 2)), empty, empty, np.zeros(0, np.int64), np.zeros(0, np.int64))
    values = np.asarray([row[:4] for row in rows], np.float64)
    if not np.isfinite(values).all():
        raise ValueError(f"{side} note times, pitches and velocities must be finite")
    if (values[:, 2] < 0).any() or (values[:, 2] > 127).any():
        raise ValueError(f"{side} note pitches must be MIDI pitches 0-127")
    intervals = np.maximum(values[:, :2], 0.0)
    short = intervals[:, 1] <= intervals[:, 0]
    intervals[short, 1] = intervals[short, 0] + 1.0 / frames_per_second
    families = np.asarray([row[4] for row in rows], np.int64)
    tracks = np.asarray([row[5] for row in rows], np.int64)
    return _Notes(intervals, values[:, 2], values[:, 3], families, tracks)


def _match(ref: _Notes, est: _Notes, ref_index: np.ndarray, est_index: np.ndarray, offset_ratio: float | None):
    """[M, 2] (reference index, estimated index) pairs of mir_eval's maximum matching."""
    if len(ref_index) == 0 or len(est_index) == 0:
        return np.zeros((0, 2), np.int64)
    import mir_eval

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mir_eval's chatter about empty or odd inputs
        pairs = mir_eval.transcription.match_notes(
            ref.intervals[ref_index],
            ref.hz()[ref_index],
            est.intervals[est_index],
            est.hz()[est_index],
            onset_tolerance=ONSET_TOLERANCE_S,
            pitch_tolerance=PITCH_TOLERANCE_CENTS,
            offset_ratio=offset_ratio,
            offset_min_tolerance=OFFSET_MIN_TOLERANCE_S,
        )
    if not pairs:
        return np.zeros((0, 2), np.int64)
    pairs = np.asarray(pairs, np.int64)
    return np.stack([ref_index[pairs[:, 0]], est_index[pairs[:, 1]]], axis=1)


# ----------------------------------------------------------------------------------------------
# Multi-instrument metrics of one example.


@dataclasses.dataclass
class _ExampleCounts:
    """Poolable counts of one example."""

    family_counts: dict[str, np.ndarray]  # variant -> int64 [12, 3]: matched, reference, estimated
    family_confusion: np.ndarray  # int64 [12, 12] agnostically matched notes (ref family x est family)
    leakage: np.ndarray  # int64 [I, 3] per reference instrument with matches: tracks, matched, majority
    num_reference_instruments: int
    num_estimated_tracks: int


def _count(ref: _Notes, est: _Notes) -> _ExampleCounts:
    family_counts: dict[str, np.ndarray] = {}
    same_family_pairs = [np.zeros((0, 2), np.int64)]
    for variant, offset_ratio in _VARIANTS:
        counts = np.zeros((NUM_FAMILIES, 3), np.int64)
        counts[:, 1] = np.bincount(ref.families, minlength=NUM_FAMILIES)
        counts[:, 2] = np.bincount(est.families, minlength=NUM_FAMILIES)
        for family in np.flatnonzero(counts[:, 1] * counts[:, 2]):
            ref_index = np.flatnonzero(ref.families == family)
            est_index = np.flatnonzero(est.families == family)
            pairs = _match(ref, est, ref_index, est_index, offset_ratio)
            counts[family, 0] = len(pairs)
            if offset_ratio is None:
                same_family_pairs.append(pairs)
        family_counts[variant] = counts

    # Family-agnostic matching: pairs within families first, then the leftovers across families.
    same_family = np.concatenate(same_family_pairs, axis=0)
    ref_left = np.setdiff1d(np.arange(len(ref)), same_family[:, 0])
    est_left = np.setdiff1d(np.arange(len(est)), same_family[:, 1])
    pairs = np.concatenate([same_family, _match(ref, est, ref_left, est_left, None)], axis=0)
    confusion = np.bincount(
        ref.families[pairs[:, 0]] * NUM_FAMILIES + est.families[pairs[:, 1]], minlength=NUM_FAMILIES * NUM_FAMILIES
    ).reshape(NUM_FAMILIES, NUM_FAMILIES)

    ref_instruments = ref.instrument_ids()
    est_tracks = est.instrument_ids()
    matched_instruments = ref_instruments[pairs[:, 0]]
    rows = []
    for instrument in np.unique(matched_instruments):
        landed = est_tracks[pairs[matched_instruments == instrument, 1]]
        per_track = np.unique(landed, return_counts=True)[1]
        rows.append((len(per_track), int(per_track.sum()), int(per_track.max())))
    leakage = np.asarray(rows, np.int64).reshape(-1, 3)
    return _ExampleCounts(
        family_counts=family_counts,
        family_confusion=confusion.astype(np.int64),
        leakage=leakage,
        num_reference_instruments=len(np.unique(ref_instruments)),
        num_estimated_tracks=len(np.unique(est_tracks)),
    )


def _summary(counts: _ExampleCounts) -> dict[str, float]:
    """Multi-instrument P/R/F1, matched-note family accuracy and leakage of (pooled) counts."""
    results: dict[str, float] = {}
    for variant, _ in _VARIANTS:
        matched, num_reference, num_estimated = counts.family_counts[variant].sum(axis=0)
        prefix = f"multi_{variant}"
        results.update(_prf_keys(prefix, matched, num_reference, num_estimated))
        results[f"num_{prefix}_matched"] = float(matched)
    matched_notes = int(counts.family_confusion.sum())
    results["num_agnostic_matched"] = float(matched_notes)
    if matched_notes:
        results["matched_note_family_accuracy"] = float(np.trace(counts.family_confusion) / matched_notes)
    results["num_reference_instruments"] = float(counts.num_reference_instruments)
    results["num_estimated_tracks"] = float(counts.num_estimated_tracks)
    results["num_leakage_instruments"] = float(len(counts.leakage))
    if len(counts.leakage):
        tracks, matched, majority = counts.leakage.sum(axis=0)
        results["leakage_tracks_per_instrument"] = float(tracks / len(counts.leakage))
        results["leakage_note_share"] = float((matched - majority) / matched)
    return results


def _score_example(reference: Any, estimate: Any, frames_per_second: float) -> tuple[dict[str, float], _ExampleCounts]:
    ref = _parse_notes(reference, "reference", frames_per_second)
    est = _parse_notes(estimate, "estimated", frames_per_second)
    metrics = transcription_metrics(ref.plain(), est.without_duplicates().plain(), frames_per_second)
    counts = _count(ref, est)
    metrics.update(_summary(counts))
    return metrics, counts


def multi_instrument_metrics(
    reference: Any, estimate: Any, frames_per_second: float = FRAMES_PER_SECOND
) -> dict[str, float]:
    """Agnostic, MT3-style multi-instrument and leakage metrics of one example (drums ignored).

    Keys: every key of :func:`polyamp.metrics.transcription_metrics` (its values; an estimated
    note present in several tracks with the same onset, offset and pitch counts once there);
    ``multi_note_*`` and ``multi_note_with_offsets_*`` P/R/F1 and their ``num_*_matched`` counts;
    ``num_agnostic_matched`` and ``matched_note_family_accuracy``; ``num_reference_instruments``,
    ``num_estimated_tracks``, ``num_leakage_instruments``, ``leakage_tracks_per_instrument`` and
    ``leakage_note_share``. The last two and ``matched_note_family_accuracy`` are present only
    when at least one note is matched ignoring the family. All values are floats.
    """
    return _score_example(reference, estimate, frames_per_second)[0]


class MultiInstrumentMetricsAccumulator:
    """Scores examples one by one and pools them.

    ``result()`` gives ``mean`` (per-example values averaged over examples, as
    polyamp.metrics.average_metrics does for the agnostic metrics, ``num_*`` summed), ``pooled``
    (multi-instrument P/R/F1, family accuracy and leakage from counts summed over examples),
    ``per_family`` (P/R/F1 from counts summed per family) and ``family_confusion`` (families of
    the notes matched ignoring the family).
    """

    def __init__(self, frames_per_second: float = FRAMES_PER_SECOND) -> None:
        self.frames_per_second = float(frames_per_second)
        self.per_example: list[dict[str, float]] = []
        self._family_counts = {variant: np.zeros((NUM_FAMILIES, 3), np.int64) for variant, _ in _VARIANTS}
        self._family_confusion = np.zeros((NUM_FAMILIES, NUM_FAMILIES), np.int64)
        self._leakage: list[np.ndarray] = []
        self._num_reference_instruments = 0
        self._num_estimated_tracks = 0

    @property
    def num_examples(self) -> int:
        return len(self.per_example)

    def add(self, reference: Any, estimate: Any) -> dict[str, float]:
        """Scores one example (see :func:`multi_instrument_metrics`), pools it, returns its metrics."""
        metrics, counts = _score_example(reference, estimate, self.frames_per_second)
        for variant, _ in _VARIANTS:
            self._family_counts[variant] += counts.family_counts[variant]
        self._family_confusion += counts.family_confusion
        self._leakage.append(counts.leakage)
        self._num_reference_instruments += counts.num_reference_instruments
        self._num_estimated_tracks += counts.num_estimated_tracks
        self.per_example.append(metrics)
        return metrics

    def result(self) -> dict[str, Any]:
        """Pooled metrics of every example added; raises ValueError when none was added."""
        if not self.per_example:
            raise ValueError("no examples were added to the multi-instrument metrics")
        pooled_counts = _ExampleCounts(
            family_counts=self._family_counts,
            family_confusion=self._family_confusion,
            leakage=np.concatenate(self._leakage, axis=0),
            num_reference_instruments=self._num_reference_instruments,
            num_estimated_tracks=self._num_estimated_tracks,
        )
        pooled = _summary(pooled_counts)
        note_counts = self._family_counts["note"]
        pooled["num_reference_notes"] = float(note_counts[:, 1].sum())
        pooled["num_estimated_notes"] = float(note_counts[:, 2].sum())
        return {
            "num_examples": self.num_examples,
            "mean": average_metrics(self.per_example),
            "pooled": pooled,
            "per_family": self._per_family(),
            "family_confusion": {"families": list(FAMILY_NAMES), "matrix": self._family_confusion.tolist()},
        }

    def _per_family(self) -> dict[str, dict[str, float]]:
        """P/R/F1 per family from pooled counts; families with no reference and no estimated note are left out."""
        per_family: dict[str, dict[str, float]] = {}
        for index, name in enumerate(FAMILY_NAMES):
            _, num_reference, num_estimated = self._family_counts["note"][index]
            if num_reference == 0 and num_estimated == 0:
                continue
            row: dict[str, float] = {}
            for variant, _ in _VARIANTS:
                matched = self._family_counts[variant][index, 0]
                row.update(_prf_keys(variant, matched, num_reference, num_estimated))
                row[f"num_{variant}_matched"] = float(matched)
            row["num_reference_notes"] = float(num_reference)
            row["num_estimated_notes"] = float(num_estimated)
            per_family[name] = row
        return per_family
