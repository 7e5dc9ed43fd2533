"""Onset-gated Onsets-and-Frames decoding: probability rolls [T, 88] -> notes.

Rules, per pitch (row = MIDI pitch - 21), frame ``t`` at time ``start_time_s + t / fps``:

1. ``frame_on = frame > frame_threshold``; ``onset_on = onset > onset_threshold``;
   ``active = onset > active_onset_threshold`` (a confident onset). Active onsets are ORed into
   both ``frame_on`` (a confident onset forces the note on) and ``onset_on``.
2. Short dips are bridged: a run of at most ``max_gap_frames`` frames without ``frame_on``, between
   ``frame_on`` frames of the same pitch, is set on (sustained notes whose frame probability dips for
   a frame or two otherwise end there, and the rest of the note, having no onset, is dropped; a dip
   followed by an onset still starts a new note by rule 3). Then offsets cut notes: ``frame_on`` is
   cleared where ``offset > offset_threshold``, except on onset frames, so an offset never removes
   the onset frame of the next note. Bridging comes first, so it never joins across an offset.
   Longer dips, of at most ``max_dip_frames`` frames, are bridged too when the frame probability
   stays at or above ``dip_floor`` all through the dip and no onset fires in it: a decaying piano
   note whose probability sags below ``frame_threshold`` for a few hundred ms and comes back is
   still one note (its reference end is its key release), while a silence, or a repeated note, is
   not bridged.
3. A note starts at the first frame of every run where ``frame_on`` and ``onset_on`` both hold.
   It lasts while ``frame_on`` holds, and a new such run on the same pitch ends it and starts a
   new note (re-articulation). ``frame_on`` frames that no onset reaches are ignored.
4. A note covering frames [t_on, t_off) lasts from (t_on + onset_shift_frames) / fps to t_off / fps
   seconds. Labels mark a note's onset in the frame its onset falls in (``floor(s * fps)``), so the
   true onset lies on average half a frame after that frame's start; ``onset_shift_frames = 0.5``
   puts notes at the frame centre (the Melodic model's default, ``predict_onset_shift_frames``:
   agnostic onset F1 0.717 -> 0.730 on 12 validation pieces, session 9). Ends are left where they are
   (moving them half a frame earlier lost 0.025 onset+offset F1).
5. Velocity: ``clip(round(127 * mean(velocity_values over the note's onset frames)), 1, 127)``
   (the onset frames are the run of ``onset_on`` starting at the note, inside the note), or
   ``default_velocity`` without velocity values.
6. Notes shorter than ``min_duration_ms`` are dropped.

A threshold of 0 disables its stage: offsets are not used, active onsets are not forced, and
with ``onset_threshold=0`` (or no onset probabilities) notes start wherever ``frame_on`` rises
(ungated). ``frame_threshold`` is always used. Every step is vectorised over the whole roll.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import gin
import numpy as np

from polyamp.constants import FRAMES_PER_SECOND, MIN_MIDI_PITCH
from polyamp.errors import ConfigError
from polyamp.registry import POSTPROCESSORS

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from polyamp.notes.rolls import LabelRolls


@dataclasses.dataclass(frozen=True)
class Note:
    """One decoded note: MIDI ``pitch``, ``start_s``/``end_s`` in seconds, MIDI ``velocity`` 1..127."""

    pitch: int
    start_s: float
    end_s: float
    velocity: int


_PITCH_BLOCK = 8


def _as_roll(values: Any, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """float32 [T, P] roll in [0, 1]; bool is 0/1, uint8 is read as 0..255."""
    array = np.asarray(values)
    if array.dtype == np.uint8:
        array = array.astype(np.float32) / 255.0
    else:
        array = array.astype(np.float32, copy=False)
    if array.ndim != 2:
        raise ValueError(f"{name} must have shape [frames, pitches], got {array.shape}")
    if shape is not None and array.shape != shape:
        raise ValueError(f"{name} has shape {array.shape}, expected {shape} like frame_probs")
    return array


def _number(name: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"OnsetsFramesDecoder.{name} must be a number, got {value!r}") from None


def _check_threshold(name: str, value: float) -> float:
    value = _number(name, value)
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"OnsetsFramesDecoder.{name} must be in [0, 1] (0 disables it), got {value}")
    return value


def _inner_runs(active: np.ndarray, max_frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(runs, last_on, next_on)`` for ``active`` bool [T, P]: ``runs`` marks the inactive frames of runs of at
    most ``max_frames`` frames between two active frames of the same column; ``last_on`` / ``next_on`` int
    [T, P] are the nearest active frame at or before / at or after each frame (-1 / T where there is none)."""
    num_frames = active.shape[0]
    index = np.arange(num_frames)[:, None]
    last_on = np.maximum.accumulate(np.where(active, index, -1), axis=0)
    next_on = np.minimum.accumulate(np.where(active, index, num_frames)[::-1], axis=0)[::-1]
    runs = (last_on >= 0) & (next_on < num_frames) & (next_on - last_on - 1 <= max_frames) & ~active
    return runs, last_on, next_on


def bridge_gaps(active: np.ndarray, max_gap_frames: int) -> np.ndarray:
    """``active`` bool [T, P] with every run of at most ``max_gap_frames`` inactive frames that lies
    between two active frames of the same column set active (runs touching either end stay off)."""
    if max_gap_frames <= 0 or active.shape[0] < 3:
        return active
    gaps, _, _ = _inner_runs(active, max_gap_frames)
    return active | gaps


def bridge_dips(
    active: np.ndarray, frames: np.ndarray, onset_on: np.ndarray | None, max_dip_frames: int, dip_floor: float
) -> np.ndarray:
    """``active`` bool [T, P] with every run of at most ``max_dip_frames`` inactive frames between two
    active frames of the same column set active if ``frames`` (probabilities [T, P]) stay >= ``dip_floor``
    and ``onset_on`` (bool [T, P] or None) is off all through the run and on the active frame after it
    (a note struck again after a dip is two notes, the first ending where the dip starts)."""
    if max_dip_frames <= 0 or active.shape[0] < 3:
        return active
    dips, last_on, next_on = _inner_runs(active, max_dip_frames)
    breaks = frames < dip_floor
    if onset_on is not None:
        breaks = breaks | onset_on
    index = np.arange(active.shape[0])[:, None]
    last_break = np.maximum.accumulate(np.where(breaks, index, -1), axis=0)
    # A dip [last_on + 1, next_on) and the frame after it hold no break iff the last break up to next_on
    # is at or before last_on.
    last_break_in_dip = np.take_along_axis(last_break, np.clip(next_on, 0, active.shape[0] - 1), axis=0)
    return active | (dips & (last_break_in_dip <= last_on))


def notes_to_sequence(
    notes: Iterable[Note],
    qpm: float = 120.0,
    instrument: int = 0,
    program: int = 0,
    is_drum: bool = False,
) -> Any:
    """NoteSequence of ``notes`` on one instrument: tempo ``qpm``, 220 ticks per quarter,
    total_time = the last note end (s). Times stay in seconds (not quantised)."""
    from polyamp.notes.rolls import _music_pb2

    music_pb2 = _music_pb2()
    sequence = music_pb2.NoteSequence()
    sequence.ticks_per_quarter = 220
    sequence.tempos.add(time=0.0, qpm=qpm)
    total_time = 0.0
    for note in notes:
        sequence.notes.add(
            pitch=int(note.pitch),
            velocity=int(note.velocity),
            start_time=float(note.start_s),
            end_time=float(note.end_s),
            instrument=instrument,
            program=program,
            is_drum=is_drum,
        )
        total_time = max(total_time, float(note.end_s))
    sequence.total_time = total_time
    return sequence


@POSTPROCESSORS.register("onsets_frames")
@gin.configurable
class OnsetsFramesDecoder:
    """Postprocessor: frame/onset/offset probabilities (+ velocities) [T, 88] -> notes."""

    def __init__(
        self,
        frame_threshold: float = 0.5,
        onset_threshold: float = 0.5,
        offset_threshold: float = 0.5,
        active_onset_threshold: float = 0.6,
        min_duration_ms: float = 0.0,
        frames_per_second: float = FRAMES_PER_SECOND,
        default_velocity: int = 70,
        onset_shift_frames: float = 0.0,
        max_gap_frames: int = 0,
        max_dip_frames: int = 0,
        dip_floor: float = 0.1,
    ) -> None:
        self.frame_threshold = _check_threshold("frame_threshold", frame_threshold)
        self.onset_threshold = _check_threshold("onset_threshold", onset_threshold)
        self.offset_threshold = _check_threshold("offset_threshold", offset_threshold)
        self.active_onset_threshold = _check_threshold("active_onset_threshold", active_onset_threshold)
        min_duration_ms = _number("min_duration_ms", min_duration_ms)
        frames_per_second = _number("frames_per_second", frames_per_second)
        default_velocity = _number("default_velocity", default_velocity)
        onset_shift_frames = _number("onset_shift_frames", onset_shift_frames)
        if not 0.0 <= onset_shift_frames < 1.0:
            raise ConfigError(f"OnsetsFramesDecoder.onset_shift_frames must be in [0, 1), got {onset_shift_frames}")
        max_gap_frames = _number("max_gap_frames", max_gap_frames)
        if not (max_gap_frames >= 0 and float(max_gap_frames).is_integer()):
            raise ConfigError(f"OnsetsFramesDecoder.max_gap_frames must be a whole number >= 0, got {max_gap_frames}")
        max_dip_frames = _number("max_dip_frames", max_dip_frames)
        if not (max_dip_frames >= 0 and float(max_dip_frames).is_integer()):
            raise ConfigError(f"OnsetsFramesDecoder.max_dip_frames must be a whole number >= 0, got {max_dip_frames}")
        dip_floor = _number("dip_floor", dip_floor)
        if not 0.0 <= dip_floor < 1.0:
            raise ConfigError(f"OnsetsFramesDecoder.dip_floor must be in [0, 1), got {dip_floor}")
        if not min_duration_ms >= 0:
            raise ConfigError(f"OnsetsFramesDecoder.min_duration_ms must be >= 0, got {min_duration_ms}")
        if not frames_per_second > 0:
            raise ConfigError(f"OnsetsFramesDecoder.frames_per_second must be > 0, got {frames_per_second}")
        if not 1 <= int(default_velocity) <= 127:
            raise ConfigError(f"OnsetsFramesDecoder.default_velocity must be in 1..127, got {default_velocity}")
        self.min_duration_ms = float(min_duration_ms)
        self.frames_per_second = float(frames_per_second)
        self.default_velocity = int(default_velocity)
        self.onset_shift_frames = float(onset_shift_frames)
        self.max_gap_frames = int(max_gap_frames)
        self.max_dip_frames = int(max_dip_frames)
        self.dip_floor = float(dip_floor)

    def decode(
        self,
        frame_probs: Any,
        onset_probs: Any | None,
        offset_probs: Any | None = None,
        velocity_values: Any | None = None,
        start_time_s: float = 0.0,
    ) -> list[Note]:
        """Notes (sorted by start time, then pitch) from rolls of shape [T, P], values in [0, 1].

        Column ``p`` is MIDI pitch 21 + p. ``velocity_values`` are velocities / 127 in [0, 1].
        ``start_time_s`` is the time of frame 0 in seconds.
        """
        frame_array = np.asarray(frame_probs)
        if frame_array.ndim != 2:
            raise ValueError(f"frame_probs must have shape [frames, pitches], got {frame_array.shape}")
        arrays = {"onset_probs": onset_probs, "offset_probs": offset_probs, "velocity_values": velocity_values}
        arrays = {name: None if value is None else np.asarray(value) for name, value in arrays.items()}
        for name, value in arrays.items():
            if value is not None and value.shape != frame_array.shape:
                raise ValueError(f"{name} has shape {value.shape}, expected {frame_array.shape} like frame_probs")
        # Decode a few pitch columns at a time so temporaries stay small for hour-long rolls.
        parts = []
        for first in range(0, frame_array.shape[1], _PITCH_BLOCK):
            columns = slice(first, first + _PITCH_BLOCK)
            part = self._decode_columns(
                frame_array[:, columns],
                *(None if value is None else value[:, columns] for value in arrays.values()),
            )
            if part is not None:
                parts.append((part[0] + first, *part[1:]))
        if not parts:
            return []
        rows, onset_frames, offset_frames, velocities = (np.concatenate(items) for items in zip(*parts, strict=True))
        keep = (offset_frames - onset_frames) * (1000.0 / self.frames_per_second) >= self.min_duration_ms
        rows, onset_frames, offset_frames, velocities = (
            rows[keep],
            onset_frames[keep],
            offset_frames[keep],
            velocities[keep],
        )
        order = np.lexsort((rows, onset_frames))
        pitches = (rows[order] + MIN_MIDI_PITCH).tolist()
        start_s = (start_time_s + (onset_frames[order] + self.onset_shift_frames) / self.frames_per_second).tolist()
        end_s = (start_time_s + offset_frames[order] / self.frames_per_second).tolist()
        velocity_list = velocities[order].tolist()
        return [Note(*values) for values in zip(pitches, start_s, end_s, velocity_list, strict=True)]

    def _decode_columns(
        self, frame_probs: Any, onset_probs: Any, offset_probs: Any, velocity_values: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        """(pitch row, onset frame, offset frame, MIDI velocity) arrays of the notes in [T, P] rolls."""
        frames = _as_roll(frame_probs, "frame_probs")
        num_frames, num_pitches = frames.shape
        frame_on = frames > self.frame_threshold

        onset_on = None
        if onset_probs is not None:
            onsets = _as_roll(onset_probs, "onset_probs", frames.shape)
            if self.onset_threshold > 0:
                onset_on = onsets > self.onset_threshold
            if self.active_onset_threshold > 0:
                active = onsets > self.active_onset_threshold
                frame_on |= active
                onset_on = active if onset_on is None else onset_on | active

        frame_on = bridge_gaps(frame_on, self.max_gap_frames)
        frame_on = bridge_dips(frame_on, frames, onset_on, self.max_dip_frames, self.dip_floor)
        if offset_probs is not None and self.offset_threshold > 0:
            offset_on = _as_roll(offset_probs, "offset_probs", frames.shape) > self.offset_threshold
            cut = offset_on if onset_on is None else offset_on & ~onset_on
            frame_on &= ~cut

        # Pitch-major layout with one silent frame after each pitch, so runs never cross pitches.
        stride = num_frames + 1
        frame_flat = np.zeros((num_pitches, stride), bool)
        frame_flat[:, :num_frames] = frame_on.T
        frame_flat = frame_flat.ravel()
        if onset_on is None:
            onset_flat = None
            start_flat = frame_flat
        else:
            onset_flat = np.zeros((num_pitches, stride), bool)
            onset_flat[:, :num_frames] = onset_on.T
            onset_flat = onset_flat.ravel()
            start_flat = frame_flat & onset_flat

        rising = start_flat.copy()
        rising[1:] &= ~start_flat[:-1]
        starts = np.flatnonzero(rising)
        if starts.size == 0:
            return None

        off = np.flatnonzero(~frame_flat)  # every pitch has its padding frame here
        first_off = off[np.searchsorted(off, starts)]
        next_start = np.append(starts[1:], frame_flat.size)
        ends = np.minimum(first_off, next_start)

        if velocity_values is not None:
            velocity_flat = np.zeros((num_pitches, stride), np.float64)
            velocity_flat[:, :num_frames] = _as_roll(velocity_values, "velocity_values", frames.shape).T
            cumulative = np.concatenate([[0.0], np.cumsum(velocity_flat.ravel())])
            if onset_flat is None:
                onset_stop = starts + 1
            else:
                onset_off = np.flatnonzero(~onset_flat)
                onset_stop = np.minimum(onset_off[np.searchsorted(onset_off, starts)], ends)
                onset_stop = np.maximum(onset_stop, starts + 1)
            mean = (cumulative[onset_stop] - cumulative[starts]) / (onset_stop - starts)
            velocities = np.clip(np.round(127.0 * mean), 1, 127).astype(np.int64)
        else:
            velocities = np.full(starts.shape, self.default_velocity, np.int64)

        rows = starts // stride
        return rows, starts - rows * stride, ends - rows * stride, velocities

    def to_note_sequence(self, notes: Sequence[Note], qpm: float = 120.0, instrument: int = 0, program: int = 0) -> Any:
        """NoteSequence of ``notes``: one instrument, tempo ``qpm``, 220 ticks per quarter."""
        return notes_to_sequence(notes, qpm=qpm, instrument=instrument, program=program)

    def __call__(
        self,
        frame_probs: Any,
        onset_probs: Any | None,
        offset_probs: Any | None = None,
        velocity_values: Any | None = None,
        start_time_s: float = 0.0,
    ) -> Any:
        """Decodes rolls [T, 88] straight to a NoteSequence (see ``decode``)."""
        notes = self.decode(frame_probs, onset_probs, offset_probs, velocity_values, start_time_s)
        return self.to_note_sequence(notes)


def decode_label_rolls(
    rolls: LabelRolls,
    start_time_s: float = 0.0,
    frames_per_second: float = FRAMES_PER_SECOND,
    use_offsets: bool = True,
) -> list[Note]:
    """Notes back from ground-truth label rolls (frames, onsets, offsets, velocities [T, 88]).

    Onsets and ends come back within one frame (1 / fps s) of the notes the labels were made
    from, and velocities exactly, as long as notes on one pitch do not overlap.
    """
    decoder = OnsetsFramesDecoder(
        frame_threshold=0.5,
        onset_threshold=0.5,
        offset_threshold=0.5 if use_offsets else 0.0,
        active_onset_threshold=0.0,
        frames_per_second=frames_per_second,
    )
    return decoder.decode(rolls.frames, rolls.onsets, rolls.offsets, rolls.velocities, start_time_s)
