"""Full-model decoding: agnostic notes + per-note family probabilities -> notes per family.

The Full model first decodes agnostic notes from the Melodic rolls (``OnsetsFramesDecoder``);
the Timbre model then gives each note a 12-vector of family probabilities ``p`` (sigmoids, in
:data:`~polyamp.notes.families.FAMILY_NAMES` order). A note goes to family ``c`` when

* ``p[c] > multiple_instruments_threshold`` (0.6): a note can belong to several families, or
* ``c`` is the note's most probable family and ``p[c] > best_threshold`` (0.5).

This is the 2020 rule. Its Full model applied it per roll cell, but the family vector was constant
over each note, so it acted per note; here it is applied per note directly.

Decision (fixes a 2020 weakness): a note none of whose families passes the rule vanished from
the 2020 multi-track output although the agnostic transcription had found it. By default
(``keep_unassigned=True``) such a note goes to its most probable family instead, so every
agnostic note appears on at least one track; ``keep_unassigned=False`` restores the 2020
behaviour. Ties between equally probable families go to the lowest family index.

Restricting families (``present_instruments``, ``--families string,brass``): only the allowed
families can be chosen, the most probable family is the most probable *allowed* one. The 2020
code fed the ground-truth family list here during training and evaluation; PolyAMP never uses
ground truth at inference: all families are allowed unless the user restricts them.
``use_all_instruments`` only concerns what a training/evaluation pipeline feeds a model (see
:func:`present_instruments_vector`), never this decoder.

Families of the recording (``min_family_share``, default 0 = off): the families whose mean
probability over all the notes of one recording is below ``min_family_share`` are not allowed for
that recording, so that notes scattered over unlikely families go to the families the recording
is mostly heard as (applied after ``present_instruments`` / ``--families``; at least one family
always stays). An estimate of the instruments present from the audio alone, where the 2020 code
used the ground-truth list.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import gin
import numpy as np

from polyamp.constants import FRAMES_PER_SECOND, MAX_MIDI_PITCH, MIN_MIDI_PITCH, NUM_PITCHES
from polyamp.decode.onsets_frames import Note, OnsetsFramesDecoder
from polyamp.errors import ConfigError
from polyamp.notes.families import FAMILY_NAMES, NUM_FAMILIES, family_of
from polyamp.notes.multitrack import NotesByFamily, as_note, multitrack_note_sequence, split_sequence_by_family
from polyamp.registry import POSTPROCESSORS

AGNOSTIC_CHANNEL = NUM_FAMILIES
"""Index of the agnostic channel in [T, 88, 13] family rolls (after the 12 families)."""

NUM_CHANNELS = NUM_FAMILIES + 1


# --------------------------------------------------------------------------------------------
# Family selection: --families, present_instruments
# --------------------------------------------------------------------------------------------


def _unknown_family(name: str, source: str) -> ConfigError:
    close = difflib.get_close_matches(name, FAMILY_NAMES, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(
        f"unknown instrument family {name!r} in {source}{hint}; valid families: {', '.join(FAMILY_NAMES)}"
    )


def _family_from_name(name: str, source: str) -> int:
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    if key in FAMILY_NAMES:
        return FAMILY_NAMES.index(key)
    raise _unknown_family(name.strip(), source)


def parse_families(text: str, source: str = "--families") -> list[int]:
    """Sorted unique family indices of comma-separated names, e.g. ``"string,brass"`` -> ``[1, 8]``.

    Names are case-insensitive (``synth-lead`` = ``synth_lead``). Raises a one-line ConfigError
    naming ``source`` and listing the valid names on an unknown or empty name.
    """
    if not isinstance(text, str):
        raise ConfigError(f"{source} must be comma-separated family names, got {text!r}")
    names = text.split(",")
    if not text.strip() or any(not name.strip() for name in names):
        raise ConfigError(
            f"{source} needs comma-separated family names without empty entries, got {text!r}; "
            f"valid families: {', '.join(FAMILY_NAMES)}"
        )
    return sorted({_family_from_name(name, source) for name in names})


def present_instruments_to_families(
    present_instruments: str | Sequence[Any] | np.ndarray | None, source: str = "present_instruments"
) -> list[int] | None:
    """Allowed family indices of a ``present_instruments`` value; ``None`` (all families) for ``None``.

    Accepts the 2020 form, 12 numbers that are each 0 or 1 (one per family in FAMILY_NAMES
    order, 1 = may be present), a list of family names, or a comma-separated string of names.
    Raises a one-line ConfigError naming ``source`` on anything else or when no family is left.
    """
    if present_instruments is None:
        return None
    if isinstance(present_instruments, str):
        families = parse_families(present_instruments, source)
    else:
        values = _as_list(present_instruments)
        if values and all(isinstance(value, str) for value in values):
            families = sorted({_family_from_name(value, source) for value in values})
        elif _is_presence_vector(values):
            families = [index for index, value in enumerate(values) if value]
        else:
            raise ConfigError(
                f"{source} must be {NUM_FAMILIES} numbers 0/1 (one per family: {', '.join(FAMILY_NAMES)}) "
                f"or a list of family names, got {present_instruments!r}"
            )
    if not families:
        raise ConfigError(f"{source} allows no instrument family; set at least one to 1 or name one family")
    return families


def _as_list(value: Any) -> list[Any] | None:
    if isinstance(value, np.ndarray):
        return value.reshape(-1).tolist()
    try:
        return list(value)
    except TypeError:
        return None


def _is_presence_vector(values: list[Any] | None) -> bool:
    """True for 12 numbers that are each 0 or 1 (the 2020 ``present_instruments`` form)."""
    if values is None or len(values) != NUM_FAMILIES:
        return False
    numbers = (bool, int, float, np.bool_, np.integer, np.floating)
    return all(isinstance(value, numbers) and value in (0, 1) for value in values)


def present_instruments_vector(families: Iterable[int] | None = None) -> np.ndarray:
    """float32 [12] 0/1 vector with 1 at each of ``families``; all ones for ``None`` (no restriction).

    For a training or evaluation pipeline: with ``use_all_instruments`` pass ``None``; without it,
    pass :func:`present_families` of the ground truth (the 2020 oracle input; never at inference).
    """
    vector = np.zeros(NUM_FAMILIES, np.float32)
    if families is None:
        vector[:] = 1.0
    else:
        for family in families:
            vector[_check_family(family, "families")] = 1.0
    return vector


def present_families(sequence: Any) -> list[int]:
    """Sorted families of the pitched notes of a NoteSequence (drum notes never mark a family)."""
    found = {family_of(note.program, note.is_drum) for note in sequence.notes}
    return sorted(family for family in found if family is not None)


def _check_family(family: Any, source: str) -> int:
    if isinstance(family, (bool, np.bool_)) or not isinstance(family, (int, np.integer)):
        raise ConfigError(f"{source} must hold family indices 0-{NUM_FAMILIES - 1}, got {family!r}")
    if not 0 <= int(family) < NUM_FAMILIES:
        raise ConfigError(f"{source} must hold family indices 0-{NUM_FAMILIES - 1}, got {family}")
    return int(family)


# --------------------------------------------------------------------------------------------
# Per-note assignment
# --------------------------------------------------------------------------------------------


def _check_threshold(name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"MultiInstrumentDecoder.{name} must be a number in [0, 1], got {value!r}") from None
    if not 0.0 <= number <= 1.0:
        raise ConfigError(f"MultiInstrumentDecoder.{name} must be in [0, 1], got {number}")
    return number


def _as_family_probs(note_family_probs: Any) -> np.ndarray:
    """float32 [N, 12] probabilities; ValueError on another shape or non-finite values."""
    probs = np.asarray(note_family_probs, dtype=np.float32)
    if probs.size == 0:
        return np.zeros((0, NUM_FAMILIES), np.float32)
    if probs.ndim != 2 or probs.shape[1] != NUM_FAMILIES:
        raise ValueError(f"note_family_probs must have shape [notes, {NUM_FAMILIES}], got {probs.shape}")
    if not np.all(np.isfinite(probs)):
        raise ValueError("note_family_probs holds NaN or infinite values")
    return probs


def family_mask(
    note_family_probs: Any,
    multiple_instruments_threshold: float = 0.6,
    best_threshold: float = 0.5,
    allowed_families: Sequence[int] | None = None,
    keep_unassigned: bool = True,
    min_family_share: float = 0.0,
) -> np.ndarray:
    """bool [N, 12]: ``mask[i, c]`` when note ``i`` goes to family ``c`` (rule in the module docstring).

    ``note_family_probs`` is [N, 12] in [0, 1], the notes of one recording; ``allowed_families``
    (indices) restricts the families (``None`` = all). ``min_family_share`` > 0 also drops the
    families whose mean probability over the recording's notes is below it (module docstring).
    """
    multiple_instruments_threshold = _check_threshold("multiple_instruments_threshold", multiple_instruments_threshold)
    best_threshold = _check_threshold("best_threshold", best_threshold)
    min_family_share = _check_threshold("min_family_share", min_family_share)
    probs = _as_family_probs(note_family_probs)
    allowed = np.ones(NUM_FAMILIES, bool)
    if allowed_families is not None:
        allowed[:] = False
        for family in allowed_families:
            allowed[_check_family(family, "allowed_families")] = True
        if not allowed.any():
            raise ConfigError("allowed_families is empty: allow at least one instrument family")
    if min_family_share > 0 and len(probs):
        allowed = recording_families(probs, min_family_share, allowed)
    rows = np.arange(probs.shape[0])
    best = np.argmax(np.where(allowed, probs, -np.inf), axis=1)
    best_probs = probs[rows, best]
    mask = (probs > multiple_instruments_threshold) & allowed
    mask[rows, best] |= best_probs > best_threshold
    if keep_unassigned:
        mask[rows, best] |= ~mask.any(axis=1)
    return mask


def recording_families(probs: np.ndarray, min_family_share: float, allowed: np.ndarray) -> np.ndarray:
    """bool [12]: the ``allowed`` families whose mean probability over the notes ``probs`` [N, 12] is at
    least ``min_family_share``; the allowed family with the largest mean when none is."""
    share = probs.mean(axis=0)
    kept = allowed & (share >= min_family_share)
    if not kept.any():
        kept[np.argmax(np.where(allowed, share, -np.inf))] = True
    return kept


def restrict_to_recording_families(note_family_probs: Any, min_family_share: float) -> np.ndarray:
    """float32 [N, 12]: ``note_family_probs`` of one recording with the families
    :func:`recording_families` drops set to 0, so an argmax picks among the recording's families."""
    min_family_share = _check_threshold("min_family_share", min_family_share)
    probs = _as_family_probs(note_family_probs)
    if min_family_share <= 0 or not len(probs):
        return probs
    kept = recording_families(probs, min_family_share, np.ones(NUM_FAMILIES, bool))
    return np.where(kept, probs, 0.0).astype(np.float32)


def assign_families(
    note_family_probs: Any,
    multiple_instruments_threshold: float = 0.6,
    best_threshold: float = 0.5,
    allowed_families: Sequence[int] | None = None,
    keep_unassigned: bool = True,
    min_family_share: float = 0.0,
) -> list[list[int]]:
    """Ascending family indices of each note (see :func:`family_mask`); ``[]`` for a dropped note."""
    mask = family_mask(
        note_family_probs,
        multiple_instruments_threshold,
        best_threshold,
        allowed_families,
        keep_unassigned,
        min_family_share,
    )
    return [np.flatnonzero(row).tolist() for row in mask]


# --------------------------------------------------------------------------------------------
# Per-cell rolls [T, 88, 13] (12 families + agnostic), for frame-level evaluation
# --------------------------------------------------------------------------------------------


def family_rolls_from_notes(
    notes: Sequence[Any],
    families: Sequence[Iterable[int]] | np.ndarray,
    num_frames: int,
    start_time_s: float = 0.0,
    frames_per_second: float = FRAMES_PER_SECOND,
    agnostic: np.ndarray | None = None,
) -> np.ndarray:
    """float32 roll [num_frames, 88, 13]: channels 0-11 the families, 12 the agnostic channel.

    Note ``i`` covers frames [floor(start * fps), ceil(end * fps)) of its pitch row (pitch - 21),
    times relative to ``start_time_s``, as the label rolls do (``polyamp.notes.rolls``). On those
    cells channel ``c`` is 1 when ``c`` is in ``families[i]`` (family index lists), or
    ``families[i, c]`` when ``families`` is an [N, 12] array (a bool mask or probabilities);
    overlapping notes take the maximum (the 2020 code summed them, exceeding 1). The agnostic
    channel is 1 over every note, or the given ``agnostic`` roll [num_frames, 88] (e.g. frame
    probabilities). Notes outside pitches 21-108 are skipped. Memory: 4.6 kB per frame.
    """
    from polyamp.notes.rolls import frame_spans

    num_frames = int(num_frames)
    if num_frames < 0:
        raise ValueError(f"num_frames must be >= 0, got {num_frames}")
    notes = [as_note(note) for note in notes]
    if isinstance(families, np.ndarray):
        values = np.asarray(families, np.float32)
        if values.size == 0:
            values = values.reshape(0, NUM_FAMILIES)
        if values.ndim != 2 or values.shape[1] != NUM_FAMILIES:
            raise ValueError(f"families must be per-note lists or an array [notes, {NUM_FAMILIES}], got {values.shape}")
    else:
        families = list(families)
        values = np.zeros((len(families), NUM_FAMILIES), np.float32)
        for index, note_families in enumerate(families):
            for family in note_families:
                values[index, _check_family(family, "families")] = 1.0
    if values.shape[0] != len(notes):
        raise ValueError(f"families has {values.shape[0]} rows for {len(notes)} notes")

    rolls = np.zeros((num_frames, NUM_PITCHES, NUM_CHANNELS), np.float32)
    if agnostic is not None:
        agnostic = np.asarray(agnostic, np.float32)
        if agnostic.shape != (num_frames, NUM_PITCHES):
            raise ValueError(f"agnostic has shape {agnostic.shape}, expected {(num_frames, NUM_PITCHES)}")
        rolls[:, :, AGNOSTIC_CHANNEL] = agnostic
    keep = [i for i, note in enumerate(notes) if MIN_MIDI_PITCH <= note.pitch <= MAX_MIDI_PITCH]
    if not keep or num_frames == 0:
        return rolls
    starts = np.array([notes[i].start_s for i in keep]) - start_time_s
    ends = np.array([notes[i].end_s for i in keep]) - start_time_s
    rows = np.array([notes[i].pitch for i in keep]) - MIN_MIDI_PITCH
    first, stop = frame_spans(starts, ends, frames_per_second)
    first, stop = np.clip(first, 0, num_frames), np.clip(stop, 0, num_frames)
    lengths = np.maximum(stop - first, 0)
    note_of_cell = np.repeat(np.arange(len(keep)), lengths)
    frame_of_cell = first[note_of_cell] + (
        np.arange(note_of_cell.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    )
    cells = (frame_of_cell, rows[note_of_cell])
    family_part = rolls[:, :, :NUM_FAMILIES]
    np.maximum.at(family_part, cells, values[keep][note_of_cell])
    if agnostic is None:
        rolls[(*cells, np.full(note_of_cell.size, AGNOSTIC_CHANNEL))] = 1.0
    return rolls


def family_rolls_from_sequence(
    sequence: Any, num_frames: int, start_time_s: float = 0.0, frames_per_second: float = FRAMES_PER_SECOND
) -> np.ndarray:
    """Ground-truth [num_frames, 88, 13] family rolls of a NoteSequence: each pitched note on
    channel ``family_of(program)`` and on the agnostic channel; drum notes are skipped."""
    pitched = [note for note in sequence.notes if not note.is_drum]
    families = [[family_of(note.program)] for note in pitched]
    return family_rolls_from_notes(pitched, families, num_frames, start_time_s, frames_per_second)


def notes_from_family_rolls(
    frame_rolls: Any,
    onset_rolls: Any | None = None,
    offset_rolls: Any | None = None,
    velocity_rolls: Any | None = None,
    decoder: OnsetsFramesDecoder | None = None,
    start_time_s: float = 0.0,
) -> NotesByFamily:
    """``{family: notes}`` decoding each family channel of [T, 88, 13] rolls with ``decoder``.

    Onset, offset and velocity rolls are [T, 88, 13] (per family) or [T, 88] (shared by every
    family). Without onset rolls notes start wherever a family's frames rise, so repeated notes
    on one pitch merge. ``decoder`` defaults to ``OnsetsFramesDecoder()``. Families without notes
    are absent; the agnostic channel is not decoded.
    """
    decoder = decoder if decoder is not None else OnsetsFramesDecoder()
    frames = np.asarray(frame_rolls)
    if frames.ndim != 3 or frames.shape[1:] != (NUM_PITCHES, NUM_CHANNELS):
        raise ValueError(f"frame_rolls must have shape [frames, {NUM_PITCHES}, {NUM_CHANNELS}], got {frames.shape}")

    def channel(roll: Any, family: int, name: str) -> np.ndarray | None:
        if roll is None:
            return None
        array = np.asarray(roll)
        if array.shape == frames.shape[:2]:
            return array
        if array.shape != frames.shape:
            raise ValueError(f"{name} has shape {array.shape}, expected {frames.shape} or {frames.shape[:2]}")
        return array[:, :, family]

    result: NotesByFamily = {}
    for family in range(NUM_FAMILIES):
        notes = decoder.decode(
            frames[:, :, family],
            channel(onset_rolls, family, "onset_rolls"),
            channel(offset_rolls, family, "offset_rolls"),
            channel(velocity_rolls, family, "velocity_rolls"),
            start_time_s,
        )
        if notes:
            result[family] = notes
    return result


# --------------------------------------------------------------------------------------------
# The postprocessor
# --------------------------------------------------------------------------------------------


@POSTPROCESSORS.register("multi_instrument")
@gin.configurable
class MultiInstrumentDecoder:
    """Postprocessor of the Full model: agnostic rolls -> notes, then notes + family probabilities
    -> ``{family: notes}`` (rule and decisions in the module docstring).

    ``present_instruments`` restricts the families (None = all; 12 numbers 0/1, family names, or
    ``"string,brass"``). The agnostic notes come from ``agnostic_decoder``, by default an
    ``OnsetsFramesDecoder(**agnostic_settings)`` (so ``frame_threshold=`` etc. pass through, as
    ``build_components`` gives them).
    """

    def __init__(
        self,
        multiple_instruments_threshold: float = 0.6,
        best_threshold: float = 0.5,
        present_instruments: Any = None,
        keep_unassigned: bool = True,
        min_family_share: float = 0.0,
        agnostic_decoder: OnsetsFramesDecoder | None = None,
        **agnostic_settings: Any,
    ) -> None:
        self.multiple_instruments_threshold = _check_threshold(
            "multiple_instruments_threshold", multiple_instruments_threshold
        )
        self.best_threshold = _check_threshold("best_threshold", best_threshold)
        self.allowed_families = present_instruments_to_families(present_instruments)
        if not isinstance(keep_unassigned, (bool, np.bool_)):
            raise ConfigError(f"MultiInstrumentDecoder.keep_unassigned must be true or false, got {keep_unassigned!r}")
        self.keep_unassigned = bool(keep_unassigned)
        self.min_family_share = _check_threshold("min_family_share", min_family_share)
        if agnostic_decoder is not None and agnostic_settings:
            raise ConfigError(
                "MultiInstrumentDecoder: give either agnostic_decoder or agnostic settings "
                f"({', '.join(sorted(agnostic_settings))}), not both"
            )
        self.agnostic_decoder = (
            agnostic_decoder if agnostic_decoder is not None else OnsetsFramesDecoder(**agnostic_settings)
        )

    def decode(
        self,
        frame_probs: Any,
        onset_probs: Any | None,
        offset_probs: Any | None = None,
        velocity_values: Any | None = None,
        start_time_s: float = 0.0,
    ) -> list[Note]:
        """Agnostic notes of rolls [T, 88] (``OnsetsFramesDecoder.decode``)."""
        return self.agnostic_decoder.decode(frame_probs, onset_probs, offset_probs, velocity_values, start_time_s)

    def to_note_sequence(self, notes: Sequence[Note], qpm: float = 120.0, instrument: int = 0, program: int = 0) -> Any:
        """One-instrument NoteSequence of agnostic notes (``OnsetsFramesDecoder.to_note_sequence``)."""
        return self.agnostic_decoder.to_note_sequence(notes, qpm=qpm, instrument=instrument, program=program)

    def assign(self, note_family_probs: Any) -> list[list[int]]:
        """Family indices of each note from its [N, 12] probabilities."""
        return assign_families(
            note_family_probs,
            self.multiple_instruments_threshold,
            self.best_threshold,
            self.allowed_families,
            self.keep_unassigned,
            self.min_family_share,
        )

    def split(self, notes: Sequence[Any], note_family_probs: Any) -> NotesByFamily:
        """``{family: notes}`` of ``notes`` (Notes or a NoteSequence) given their [N, 12] probabilities."""
        return split_sequence_by_family(notes, self.assign(note_family_probs))

    def __call__(self, notes: Sequence[Any], note_family_probs: Any) -> NotesByFamily:
        """Same as :meth:`split`."""
        return self.split(notes, note_family_probs)

    def to_multitrack_sequence(self, notes_by_family: Mapping[Any, Iterable[Any]], qpm: float = 120.0) -> Any:
        """NoteSequence with ``instrument = family`` and ``program = DEFAULT_PROGRAMS[family]``."""
        return multitrack_note_sequence(notes_by_family, qpm=qpm)
