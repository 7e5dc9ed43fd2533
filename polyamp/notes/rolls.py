"""NoteSequence -> label rolls (frames, onsets, offsets, velocities) on the model's frame grid.

Grid: ``frames_per_second`` frames per second (31.25 = hop 512 at 16 kHz); frame ``i`` of a roll
spans ``[start_time_s + i / fps, start_time_s + (i + 1) / fps)``. Rows are MIDI pitches 21..108
(row = pitch - 21). Notes outside that range and drum notes (``is_drum``) are skipped.

Per note with start ``s`` and end ``e`` (seconds, relative to the roll's start):

* frames: ``[floor(s * fps), ceil(e * fps))``, at least one frame;
* onsets: the frames that overlap ``[s, s + onset_length_ms)``, i.e. from ``floor(s * fps)`` while
  the frame's start time is before ``s + onset_length_ms`` (1-2 frames for 32 ms at 31.25 fps),
  at least one frame and never past the note's last frame;
* offsets: the frames that overlap ``[e, e + offset_length_ms)``, at least one frame;
* velocities: ``velocity / 127`` on the onset frames (the largest where two onsets meet), 0 elsewhere.

Everything is clipped to the roll. A note that starts before the roll has no onset (and no
velocity) in it; its frames and offset are kept where they fall inside. Times within 1e-6 of a
frame boundary snap to it, so float error cannot move a note by a frame.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import numpy as np

from polyamp.constants import FRAMES_PER_SECOND, MAX_MIDI_PITCH, MIN_MIDI_PITCH, NUM_PITCHES
from polyamp.errors import DatasetError

_SNAP_FRAMES = 1e-6
"""Frame positions this close to an integer are treated as that integer."""


@dataclasses.dataclass
class LabelRolls:
    """Label rolls, each float32 of shape [num_frames, 88] (rows = MIDI pitch - 21), values in [0, 1]."""

    frames: np.ndarray
    onsets: np.ndarray
    offsets: np.ndarray
    velocities: np.ndarray

    def as_tuple(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(frames, onsets, offsets, velocities)."""
        return self.frames, self.onsets, self.offsets, self.velocities


def _music_pb2() -> Any:
    """Imports note_seq's protobuf module, hiding pydub's unrelated 'no ffmpeg' warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        from note_seq.protobuf import music_pb2
    return music_pb2


def parse_note_sequence(sequence: Any) -> Any:
    """Returns a NoteSequence from a NoteSequence, serialized bytes, or a 0-d numpy array of bytes.

    Raises DatasetError when the bytes are not a serialized NoteSequence.
    """
    if isinstance(sequence, np.ndarray):
        sequence = sequence.item()
    if isinstance(sequence, (bytes, bytearray, memoryview)):
        music_pb2 = _music_pb2()
        from google.protobuf.message import DecodeError

        try:
            return music_pb2.NoteSequence.FromString(bytes(sequence))
        except DecodeError as error:
            raise DatasetError(
                f"a serialized NoteSequence ({len(bytes(sequence))} bytes) cannot be parsed: {error}"
            ) from error
    if not hasattr(sequence, "notes"):
        raise TypeError(f"expected a NoteSequence or serialized bytes, got {type(sequence).__name__}")
    return sequence


def frame_spans(starts_s: np.ndarray, ends_s: np.ndarray, frames_per_second: float) -> tuple[np.ndarray, np.ndarray]:
    """Frame intervals [first, stop) of notes: first = floor(start * fps), stop = ceil(end * fps),
    at least one frame. Times in seconds relative to frame 0; returns int64 arrays."""
    first = np.floor(np.asarray(starts_s, np.float64) * frames_per_second + _SNAP_FRAMES).astype(np.int64)
    stop = np.ceil(np.asarray(ends_s, np.float64) * frames_per_second - _SNAP_FRAMES).astype(np.int64)
    return first, np.maximum(stop, first + 1)


def _event_spans(times_s: np.ndarray, length_ms: float, frames_per_second: float) -> tuple[np.ndarray, np.ndarray]:
    """Frames overlapping [t, t + length): [floor(t * fps), ceil((t + length) * fps)), at least one."""
    times_s = np.asarray(times_s, np.float64)
    first = np.floor(times_s * frames_per_second + _SNAP_FRAMES).astype(np.int64)
    stop = np.ceil((times_s + length_ms / 1000.0) * frames_per_second - _SNAP_FRAMES).astype(np.int64)
    return first, np.maximum(stop, first + 1)


def _paint(num_frames: int, first: np.ndarray, stop: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Boolean [num_frames, 88] roll that is on over [first, stop) of each row (clipped to the roll)."""
    first = np.clip(first, 0, num_frames)
    stop = np.clip(stop, 0, num_frames)
    keep = stop > first
    diff = np.zeros((num_frames + 1, NUM_PITCHES), np.int32)
    np.add.at(diff, (first[keep], rows[keep]), 1)
    np.add.at(diff, (stop[keep], rows[keep]), -1)
    return np.cumsum(diff[:-1], axis=0) > 0


def _note_arrays(sequence: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(start_s, end_s, pitch, velocity) arrays of the non-drum notes with pitch in 21..108."""
    values = [
        (note.start_time, note.end_time, note.pitch, note.velocity)
        for note in sequence.notes
        if not note.is_drum and MIN_MIDI_PITCH <= note.pitch <= MAX_MIDI_PITCH
    ]
    if not values:
        empty = np.zeros(0, np.float64)
        return empty, empty, np.zeros(0, np.int64), np.zeros(0, np.int64)
    array = np.asarray(values, np.float64)
    return array[:, 0], array[:, 1], array[:, 2].astype(np.int64), array[:, 3].astype(np.int64)


def sequence_to_rolls(
    sequence: Any,
    num_frames: int,
    start_time_s: float = 0.0,
    frames_per_second: float = FRAMES_PER_SECOND,
    onset_length_ms: float = 32.0,
    offset_length_ms: float = 32.0,
    apply_sustain: bool = False,
) -> LabelRolls:
    """Label rolls of ``sequence`` over [start_time_s, start_time_s + num_frames / fps) seconds.

    ``sequence`` is a NoteSequence or its serialized bytes. With ``apply_sustain`` the sustain
    pedal (CC 64) first extends notes (note_seq's apply_sustain_control_changes). Returns
    float32 rolls of shape [num_frames, 88]; see the module docstring for the exact rules.
    """
    num_frames = int(num_frames)
    if num_frames < 0:
        raise ValueError(f"num_frames must be >= 0, got {num_frames}")
    if frames_per_second <= 0:
        raise ValueError(f"frames_per_second must be > 0, got {frames_per_second}")
    sequence = parse_note_sequence(sequence)
    if apply_sustain:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            from note_seq import sequences_lib
        sequence = sequences_lib.apply_sustain_control_changes(sequence)

    starts, ends, pitches, velocities = _note_arrays(sequence)
    starts = starts - start_time_s
    ends = ends - start_time_s
    rows = pitches - MIN_MIDI_PITCH

    frame_first, frame_stop = frame_spans(starts, ends, frames_per_second)
    onset_first, onset_stop = _event_spans(starts, onset_length_ms, frames_per_second)
    onset_stop = np.minimum(onset_stop, frame_stop)
    has_onset = onset_first >= 0  # a note that began before the roll has no onset in it
    offset_first, offset_stop = _event_spans(ends, offset_length_ms, frames_per_second)

    frames = _paint(num_frames, frame_first, frame_stop, rows)
    onsets = _paint(num_frames, onset_first[has_onset], onset_stop[has_onset], rows[has_onset])
    offsets = _paint(num_frames, offset_first, offset_stop, rows)

    velocity_roll = np.zeros((num_frames, NUM_PITCHES), np.float32)
    first = np.clip(onset_first[has_onset], 0, num_frames)
    lengths = np.clip(onset_stop[has_onset], 0, num_frames) - first
    keep = lengths > 0
    first, lengths = first[keep], lengths[keep]
    if lengths.size:
        note_of_frame = np.repeat(np.arange(lengths.size), lengths)
        frame_index = first[note_of_frame] + (
            np.arange(note_of_frame.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        )
        values = np.clip(velocities[has_onset][keep] / 127.0, 0.0, 1.0).astype(np.float32)
        np.maximum.at(velocity_roll, (frame_index, rows[has_onset][keep][note_of_frame]), values[note_of_frame])

    return LabelRolls(
        frames=frames.astype(np.float32),
        onsets=onsets.astype(np.float32),
        offsets=offsets.astype(np.float32),
        velocities=velocity_roll,
    )


def rolls_from_serialized(
    sequence_bytes: Any,
    num_frames: Any,
    start_frame: Any,
    apply_sustain: Any,
    onset_length_ms: Any = 32.0,
    offset_length_ms: Any = 32.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """tf.numpy_function helper: (frames, onsets, offsets, velocities), each float32 [num_frames, 88].

    ``sequence_bytes`` is a serialized NoteSequence; the roll starts at frame ``start_frame``
    (time start_frame / 31.25 s). Arguments may be numpy scalars, as tf.numpy_function passes them.
    """
    start_frame = int(start_frame)
    rolls = sequence_to_rolls(
        sequence_bytes,
        num_frames=int(num_frames),
        start_time_s=start_frame / FRAMES_PER_SECOND,
        onset_length_ms=float(onset_length_ms),
        offset_length_ms=float(offset_length_ms),
        apply_sustain=bool(apply_sustain),
    )
    return rolls.as_tuple()
