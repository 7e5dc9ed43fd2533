"""Label rolls from NoteSequences: exact frame indices, clipping, skipping, sustain."""

from __future__ import annotations

import numpy as np
import pytest

from polyamp.errors import DatasetError
from polyamp.notes.rolls import LabelRolls, _music_pb2, rolls_from_serialized, sequence_to_rolls

FPS = 31.25


def make_sequence(notes, control_changes=()):
    """notes: (pitch, start_s, end_s, velocity[, is_drum]); control_changes: (time_s, number, value)."""
    sequence = _music_pb2().NoteSequence()
    for pitch, start, end, velocity, *drum in notes:
        sequence.notes.add(
            pitch=pitch, start_time=start, end_time=end, velocity=velocity, is_drum=bool(drum and drum[0])
        )
    for time, number, value in control_changes:
        sequence.control_changes.add(time=time, control_number=number, control_value=value)
    sequence.total_time = max((note[2] for note in notes), default=0.0)
    return sequence


def active(roll: np.ndarray, pitch: int) -> list[int]:
    return np.flatnonzero(roll[:, pitch - 21]).tolist()


def test_known_note_gives_exact_frames_onsets_offsets_velocities():
    # 0.5 s * 31.25 = 15.625 -> first frame 15; 1.0 s * 31.25 = 31.25 -> stop ceil = 32.
    rolls = sequence_to_rolls(make_sequence([(60, 0.5, 1.0, 80)]), num_frames=50)
    assert isinstance(rolls, LabelRolls)
    for roll in rolls.as_tuple():
        assert roll.shape == (50, 88) and roll.dtype == np.float32
    assert active(rolls.frames, 60) == list(range(15, 32))
    # frames overlapping [0.5, 0.532): 15 ([0.48, 0.512)) and 16 ([0.512, 0.544))
    assert active(rolls.onsets, 60) == [15, 16]
    # frames overlapping [1.0, 1.032): 31 and 32
    assert active(rolls.offsets, 60) == [31, 32]
    assert active(rolls.velocities, 60) == [15, 16]
    np.testing.assert_allclose(rolls.velocities[15:17, 39], 80 / 127, rtol=1e-6)
    # nothing on any other pitch
    assert rolls.frames.sum() == 17 and rolls.onsets.sum() == 2 and rolls.offsets.sum() == 2


def test_frame_aligned_note_has_one_onset_and_one_offset_frame():
    # 0.48 s = frame 15 exactly, 0.64 s = frame 20 exactly.
    rolls = sequence_to_rolls(make_sequence([(21, 0.48, 0.64, 100)]), num_frames=30)
    assert active(rolls.frames, 21) == [15, 16, 17, 18, 19]
    assert active(rolls.onsets, 21) == [15]
    assert active(rolls.offsets, 21) == [20]


def test_longer_onset_length_and_very_short_notes():
    rolls = sequence_to_rolls(make_sequence([(70, 0.5, 1.0, 64)]), num_frames=50, onset_length_ms=100)
    # frames overlapping [0.5, 0.6): 15..19 (frame 19 starts at 0.608 > 0.6 -> stop at 19)
    assert active(rolls.onsets, 70) == [15, 16, 17, 18]
    short = sequence_to_rolls(make_sequence([(70, 0.5, 0.505, 64), (72, 0.7, 0.7, 64)]), num_frames=50)
    assert active(short.frames, 70) == [15]  # at least one frame
    assert active(short.onsets, 70) == [15]  # onset never longer than the note
    assert active(short.frames, 72) == [21] and active(short.onsets, 72) == [21]


def test_clipping_at_window_start_and_end():
    sequence = make_sequence([(60, 0.2, 1.0, 90), (62, 0.32, 0.5, 90), (64, 1.5, 3.0, 90), (65, 0.31, 0.8, 90)])
    # window starts at frame 10 (0.32 s) and has 30 frames (to 1.28 s)
    rolls = sequence_to_rolls(sequence, num_frames=30, start_time_s=0.32)
    # note 60: absolute frames 6..31 -> relative 0..21, no onset because it began earlier
    assert active(rolls.frames, 60) == list(range(0, 22))
    assert active(rolls.onsets, 60) == [] and active(rolls.velocities, 60) == []
    assert active(rolls.offsets, 60) == [21, 22]
    # note 62 starts exactly at the window start: its onset is frame 0
    assert active(rolls.onsets, 62) == [0]
    assert active(rolls.frames, 62) == list(range(0, 6))
    # note 65 starts 10 ms before the window: its onset span reaches frame 0, but it gets no onset
    assert active(rolls.frames, 65)[0] == 0
    assert active(rolls.onsets, 65) == [] and active(rolls.velocities, 65) == []
    # note 64 starts after the window ends: nothing
    assert rolls.frames[:, 64 - 21].sum() == 0
    # clipped at the end: a note running past the window fills it to the last frame
    late = sequence_to_rolls(make_sequence([(60, 0.5, 5.0, 90)]), num_frames=20)
    assert active(late.frames, 60) == list(range(15, 20))
    assert late.offsets.sum() == 0


def test_out_of_range_and_drum_notes_are_skipped():
    sequence = make_sequence([(20, 0.0, 1.0, 80), (109, 0.0, 1.0, 80), (60, 0.0, 1.0, 80, True), (108, 0.0, 0.1, 80)])
    rolls = sequence_to_rolls(sequence, num_frames=40)
    assert rolls.frames.sum() == rolls.frames[:, 87].sum() == 4  # only C8 = row 87
    assert rolls.onsets[:, :87].sum() == 0


def test_sustain_pedal_extends_notes_only_when_asked():
    sequence = make_sequence([(60, 0.5, 1.0, 80)], control_changes=[(0.2, 64, 127), (2.0, 64, 0)])
    plain = sequence_to_rolls(sequence, num_frames=80)
    sustained = sequence_to_rolls(sequence, num_frames=80, apply_sustain=True)
    assert active(plain.frames, 60) == list(range(15, 32))
    assert active(sustained.frames, 60) == list(range(15, 63))  # ends at pedal release, 2.0 s
    assert active(sustained.offsets, 60) == [62, 63]
    assert active(sustained.onsets, 60) == [15, 16]


def test_overlapping_onsets_keep_the_loudest_velocity():
    rolls = sequence_to_rolls(make_sequence([(60, 0.5, 1.0, 40), (60, 0.52, 1.0, 120)]), num_frames=40)
    np.testing.assert_allclose(rolls.velocities[16, 39], 120 / 127, rtol=1e-6)
    np.testing.assert_allclose(rolls.velocities[15, 39], 40 / 127, rtol=1e-6)


def test_serialized_input_and_numpy_function_helper_agree():
    sequence = make_sequence([(60, 0.5, 1.0, 80), (48, 1.1, 2.5, 30), (90, 0.0, 0.3, 127)])
    data = sequence.SerializeToString()
    direct = sequence_to_rolls(sequence, num_frames=40, start_time_s=20 / FPS)
    from_bytes = sequence_to_rolls(data, num_frames=40, start_time_s=20 / FPS)
    helper = rolls_from_serialized(np.array(data, dtype=object), np.int64(40), np.int32(20), np.bool_(False))
    assert len(helper) == 4
    for a, b, c in zip(direct.as_tuple(), from_bytes.as_tuple(), helper, strict=True):
        assert c.dtype == np.float32 and c.shape == (40, 88)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    assert direct.frames.sum() > 0
    longer = rolls_from_serialized(data, 40, 20, False, 100.0, 64.0)
    np.testing.assert_array_equal(longer[1], sequence_to_rolls(sequence, 40, 20 / FPS, onset_length_ms=100.0).onsets)
    assert longer[1].sum() > direct.onsets.sum() and longer[2].sum() > direct.offsets.sum()


def test_empty_sequence_and_bad_bytes():
    empty = sequence_to_rolls(make_sequence([]), num_frames=10)
    assert all(roll.sum() == 0 for roll in empty.as_tuple())
    assert sequence_to_rolls(make_sequence([(60, 0.0, 1.0, 80)]), num_frames=0).frames.shape == (0, 88)
    with pytest.raises(DatasetError, match="NoteSequence"):
        sequence_to_rolls(b"\xff\xff\xff not a proto", num_frames=10)
