"""Onset-gated decoding of probability rolls, and decoding label rolls back to their notes."""

from __future__ import annotations

import dataclasses

import gin
import numpy as np
import pytest

from polyamp.decode.onsets_frames import (
    Note,
    OnsetsFramesDecoder,
    bridge_dips,
    bridge_gaps,
    decode_label_rolls,
    notes_to_sequence,
)
from polyamp.errors import ConfigError
from polyamp.notes.rolls import _music_pb2, sequence_to_rolls
from polyamp.registry import POSTPROCESSORS

FPS = 31.25
T = 60
ROW = 60 - 21  # middle C


def rolls(frames=(), onsets=(), offsets=(), value=0.9):
    """Rolls [T, 88] with the given frame indices of middle C set to ``value``."""
    out = []
    for indices in (frames, onsets, offsets):
        roll = np.zeros((T, 88), np.float32)
        roll[list(indices), ROW] = value
        out.append(roll)
    return out


def spans(notes):
    return [(note.pitch, round(note.start_s * FPS), round(note.end_s * FPS)) for note in notes]


def test_single_note_and_frames_without_onset_are_ignored():
    frames, onsets, offsets = rolls(frames=list(range(10, 20)) + list(range(30, 40)), onsets=[10, 11])
    notes = OnsetsFramesDecoder().decode(frames, onsets, offsets)
    assert spans(notes) == [(60, 10, 20)]
    assert notes[0] == Note(60, 10 / FPS, 20 / FPS, 70)


def test_re_articulation_splits_a_continuous_frame_run():
    frames, onsets, offsets = rolls(frames=range(10, 30), onsets=[10, 11, 20, 21])
    assert spans(OnsetsFramesDecoder().decode(frames, onsets, offsets)) == [(60, 10, 20), (60, 20, 30)]


def test_offset_cuts_a_note_and_is_disabled_by_threshold_zero():
    frames, onsets, offsets = rolls(frames=range(10, 30), onsets=[10], offsets=[15])
    # frames 16..29 have no onset of their own, so they are dropped
    assert spans(OnsetsFramesDecoder().decode(frames, onsets, offsets)) == [(60, 10, 15)]
    assert spans(OnsetsFramesDecoder(offset_threshold=0).decode(frames, onsets, offsets)) == [(60, 10, 30)]
    assert spans(OnsetsFramesDecoder().decode(frames, onsets, None)) == [(60, 10, 30)]


def test_offset_never_clears_the_onset_frame_of_the_next_note():
    frames, onsets, offsets = rolls(frames=range(10, 30), onsets=[10, 20], offsets=[19, 20])
    assert spans(OnsetsFramesDecoder().decode(frames, onsets, offsets)) == [(60, 10, 19), (60, 20, 30)]


def test_active_onset_forces_frames_on_and_threshold_zero_disables_it():
    frames = np.zeros((T, 88), np.float32)
    onsets = np.zeros((T, 88), np.float32)
    onsets[10, ROW] = 0.9  # confident onset, frame head silent
    assert spans(OnsetsFramesDecoder().decode(frames, onsets)) == [(60, 10, 11)]
    assert OnsetsFramesDecoder(active_onset_threshold=0).decode(frames, onsets) == []
    onsets[10, ROW] = 0.55  # an onset, but not an active one
    assert OnsetsFramesDecoder().decode(frames, onsets) == []


def test_onset_before_frames_still_starts_the_note():
    frames, onsets, _ = rolls(frames=range(11, 20), onsets=[10, 11])
    # a confident onset forces frame 10 on ...
    assert spans(OnsetsFramesDecoder().decode(frames, onsets)) == [(60, 10, 20)]
    # ... a weaker one does not, and the note starts where onset and frame first meet
    onsets[onsets > 0] = 0.55
    assert spans(OnsetsFramesDecoder().decode(frames, onsets)) == [(60, 11, 20)]


def test_onset_threshold_zero_decodes_ungated():
    frames, onsets, _ = rolls(frames=list(range(10, 20)) + list(range(25, 28)))
    assert OnsetsFramesDecoder().decode(frames, onsets) == []
    ungated = OnsetsFramesDecoder(onset_threshold=0, active_onset_threshold=0)
    assert spans(ungated.decode(frames, onsets)) == [(60, 10, 20), (60, 25, 28)]
    assert spans(OnsetsFramesDecoder().decode(frames, None)) == [(60, 10, 20), (60, 25, 28)]


def test_thresholds_are_strict_and_configurable():
    frames, onsets, _ = rolls(frames=range(10, 20), onsets=[10], value=0.5)
    assert OnsetsFramesDecoder().decode(frames, onsets) == []  # 0.5 is not > 0.5
    assert spans(OnsetsFramesDecoder(frame_threshold=0.4, onset_threshold=0.4).decode(frames, onsets)) == [(60, 10, 20)]


def test_velocity_is_the_mean_over_onset_frames_clipped_to_midi():
    frames, onsets, _ = rolls(frames=range(10, 20), onsets=[10, 11])
    velocities = np.zeros((T, 88), np.float32)
    velocities[10, ROW], velocities[11, ROW], velocities[12, ROW] = 0.5, 0.7, 1.0
    assert OnsetsFramesDecoder().decode(frames, onsets, None, velocities)[0].velocity == round(127 * 0.6)
    assert OnsetsFramesDecoder().decode(frames, onsets, None, velocities * 0)[0].velocity == 1
    assert OnsetsFramesDecoder(default_velocity=99).decode(frames, onsets)[0].velocity == 99


def test_min_duration_start_time_and_ordering():
    frames = np.zeros((T, 88), np.float32)
    onsets = np.zeros((T, 88), np.float32)
    frames[5:7, 0] = onsets[5, 0] = 0.9  # A0, 2 frames = 64 ms
    frames[5:20, 87] = onsets[5, 87] = 0.9  # C8
    frames[2:20, 40] = onsets[2, 40] = 0.9
    decoder = OnsetsFramesDecoder()
    notes = decoder.decode(frames, onsets, start_time_s=10.0)
    assert [note.pitch for note in notes] == [61, 21, 108]
    assert notes[1].start_s == pytest.approx(10.0 + 5 / FPS) and notes[1].end_s == pytest.approx(10 + 7 / FPS)
    long_only = OnsetsFramesDecoder(min_duration_ms=65).decode(frames, onsets)
    assert [note.pitch for note in long_only] == [61, 108]
    assert [n.pitch for n in OnsetsFramesDecoder(min_duration_ms=64).decode(frames, onsets)] == [61, 21, 108]


def test_onset_shift_moves_starts_into_the_onset_frame_and_keeps_ends():
    frames, onsets, offsets = rolls(frames=list(range(10, 20)) + [40], onsets=[10, 40])
    plain = OnsetsFramesDecoder().decode(frames, onsets, offsets)
    centred = OnsetsFramesDecoder(onset_shift_frames=0.5).decode(frames, onsets, offsets, start_time_s=2.0)
    assert [note.start_s for note in plain] == pytest.approx([10 / FPS, 40 / FPS])
    assert [note.start_s for note in centred] == pytest.approx([2.0 + 10.5 / FPS, 2.0 + 40.5 / FPS])
    assert [note.end_s for note in centred] == pytest.approx([2.0 + 20 / FPS, 2.0 + 41 / FPS])
    assert all(note.end_s > note.start_s for note in centred)  # a one-frame note keeps half a frame
    for bad in (-0.1, 1.0, "half"):
        with pytest.raises(ConfigError, match="onset_shift_frames"):
            OnsetsFramesDecoder(onset_shift_frames=bad)


def test_bridge_gaps_fills_short_inner_dips_only():
    active = np.zeros((12, 3), bool)
    active[[1, 2, 5, 6, 9], 0] = True  # dips of 2 frames (3-4) and 2 frames (7-8)
    active[[0, 4], 1] = True  # dip of 3 frames
    active[[2, 3], 2] = True  # no inner dip: the edges stay off
    assert bridge_gaps(active, 0) is active
    assert np.flatnonzero(bridge_gaps(active, 1)[:, 0]).tolist() == [1, 2, 5, 6, 9]
    two = bridge_gaps(active, 2)
    assert np.flatnonzero(two[:, 0]).tolist() == list(range(1, 10))
    assert np.flatnonzero(two[:, 1]).tolist() == [0, 4]
    assert np.flatnonzero(bridge_gaps(active, 3)[:, 1]).tolist() == [0, 1, 2, 3, 4]
    assert np.flatnonzero(two[:, 2]).tolist() == [2, 3]


def test_short_frame_dips_do_not_end_a_note_but_onsets_and_offsets_still_do():
    frames, onsets, offsets = rolls(frames=list(range(10, 20)) + list(range(22, 30)), onsets=[10])
    assert spans(OnsetsFramesDecoder().decode(frames, onsets, offsets)) == [(60, 10, 20)]
    assert spans(OnsetsFramesDecoder(max_gap_frames=1).decode(frames, onsets, offsets)) == [(60, 10, 20)]
    assert spans(OnsetsFramesDecoder(max_gap_frames=2).decode(frames, onsets, offsets)) == [(60, 10, 30)]
    frames, onsets, offsets = rolls(frames=list(range(10, 20)) + list(range(22, 30)), onsets=[10, 22])
    assert spans(OnsetsFramesDecoder(max_gap_frames=2).decode(frames, onsets, offsets)) == [(60, 10, 22), (60, 22, 30)]
    frames, onsets, offsets = rolls(frames=list(range(10, 20)) + list(range(22, 30)), onsets=[10], offsets=[15])
    assert spans(OnsetsFramesDecoder(max_gap_frames=2).decode(frames, onsets, offsets)) == [(60, 10, 15)]
    for bad in (-1, 1.5, "two"):
        with pytest.raises(ConfigError, match="max_gap_frames"):
            OnsetsFramesDecoder(max_gap_frames=bad)


def _sagging_note(dip_value: float, dip=range(20, 30)):
    """A note at middle C: onset at frame 10, frames 0.9 on 10-40 except ``dip`` frames at ``dip_value``."""
    frames, onsets, offsets = rolls(frames=range(10, 40), onsets=[10])
    frames[list(dip), ROW] = dip_value
    return frames, onsets, offsets


def test_long_dips_are_bridged_only_above_the_floor_and_without_onsets():
    sagging = _sagging_note(0.3)
    assert spans(OnsetsFramesDecoder(max_gap_frames=3).decode(*sagging)) == [(60, 10, 20)]
    decoder = OnsetsFramesDecoder(max_gap_frames=3, max_dip_frames=16, dip_floor=0.1)
    assert spans(decoder.decode(*sagging)) == [(60, 10, 40)]  # one note: the sag is not a release
    assert spans(OnsetsFramesDecoder(max_dip_frames=9, dip_floor=0.1).decode(*sagging)) == [(60, 10, 20)]  # too long
    silence = _sagging_note(0.05)
    assert spans(decoder.decode(*silence)) == [(60, 10, 20)]  # below the floor: a release
    partly = _sagging_note(0.3)
    partly[0][25, ROW] = 0.0
    assert spans(decoder.decode(*partly)) == [(60, 10, 20)]  # one frame under the floor is enough
    struck_in_dip = _sagging_note(0.3)
    struck_in_dip[1][25, ROW] = 0.55  # an onset (not confident enough to force the frame on) in the dip
    assert spans(decoder.decode(*struck_in_dip)) == [(60, 10, 20)]
    struck_after = _sagging_note(0.3)
    struck_after[1][30, ROW] = 0.9  # struck again as the frames come back: two notes, the first released
    assert spans(decoder.decode(*struck_after)) == [(60, 10, 20), (60, 30, 40)]
    cut = _sagging_note(0.3)
    cut[2][15, ROW] = 0.9  # an offset before the dip still ends the note there
    assert spans(decoder.decode(*cut)) == [(60, 10, 15)]


def test_bridge_dips_leaves_edges_and_other_pitches_alone():
    active = np.zeros((12, 2), bool)
    active[[2, 8], 0] = True
    active[[0, 1], 1] = True  # nothing after: the trailing frames are not a dip
    probs = np.full((12, 2), 0.3, np.float32)
    bridged = bridge_dips(active, probs, None, 8, 0.1)
    assert np.flatnonzero(bridged[:, 0]).tolist() == list(range(2, 9))
    assert np.flatnonzero(bridged[:, 1]).tolist() == [0, 1]
    assert bridge_dips(active, probs, None, 0, 0.1) is active
    for bad in ({"max_dip_frames": -1}, {"max_dip_frames": 2.5}, {"dip_floor": 1.0}, {"dip_floor": -0.1}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            OnsetsFramesDecoder(**bad)


def test_melodic_components_decode_at_the_frame_centre_by_default():
    from polyamp.components import build_components
    from polyamp.config import MelodicHParams

    assert MelodicHParams().predict_onset_shift_frames == 0.5
    gin.clear_config()
    try:
        assert build_components(model_type="melodic").decoder.onset_shift_frames == 0.5
        assert (
            build_components(model_type="melodic").decoder.max_gap_frames
            == MelodicHParams().predict_max_gap_frames
            == 3
        )
        with gin.unlock_config():
            gin.bind_parameter("MelodicHParams.predict_onset_shift_frames", 0.0)
        assert build_components(model_type="melodic").decoder.onset_shift_frames == 0.0
    finally:
        gin.clear_config()


def test_melodic_decoder_follows_hparams_and_overrides_one_argument():
    from polyamp.components import melodic_decoder
    from polyamp.config import MelodicHParams

    hparams = dataclasses.replace(MelodicHParams(), predict_frame_threshold=0.3, predict_onset_shift_frames=0.25)
    decoder = melodic_decoder(hparams, onset_threshold=0.7)
    assert (decoder.frame_threshold, decoder.onset_threshold, decoder.onset_shift_frames) == (0.3, 0.7, 0.25)
    assert melodic_decoder(hparams).onset_threshold == hparams.predict_onset_threshold
    with pytest.raises(TypeError, match="onset_treshold"):
        melodic_decoder(hparams, onset_treshold=0.7)


def test_note_sequence_output_and_registry():
    frames, onsets, _ = rolls(frames=range(10, 20), onsets=[10])
    sequence = OnsetsFramesDecoder()(frames, onsets)
    assert sequence.ticks_per_quarter == 220
    assert [tempo.qpm for tempo in sequence.tempos] == [120]
    assert len(sequence.notes) == 1
    note = sequence.notes[0]
    assert (note.pitch, note.velocity, note.instrument, note.program, note.is_drum) == (60, 70, 0, 0, False)
    assert note.start_time == pytest.approx(10 / FPS) and note.end_time == pytest.approx(20 / FPS)
    assert sequence.total_time == pytest.approx(20 / FPS)
    assert notes_to_sequence([]).total_time == 0
    assert POSTPROCESSORS.get("onsets_frames") is OnsetsFramesDecoder


def test_gin_binding_and_bad_configuration():
    with gin.unlock_config():
        gin.bind_parameter("OnsetsFramesDecoder.frame_threshold", 0.3)
    try:
        assert OnsetsFramesDecoder().frame_threshold == 0.3
    finally:
        gin.clear_config()
    with pytest.raises(ConfigError, match="onset_threshold"):
        OnsetsFramesDecoder(onset_threshold=1.5)
    with pytest.raises(ConfigError, match="frame_threshold"):
        OnsetsFramesDecoder(frame_threshold="high")
    with pytest.raises(ConfigError, match="default_velocity"):
        OnsetsFramesDecoder(default_velocity=0)
    with pytest.raises(ValueError, match="onset_probs"):
        OnsetsFramesDecoder().decode(np.zeros((10, 88)), np.zeros((11, 88)))


def test_empty_and_boolean_and_uint8_inputs():
    decoder = OnsetsFramesDecoder()
    assert decoder.decode(np.zeros((0, 88)), np.zeros((0, 88))) == []
    frames, onsets, _ = rolls(frames=range(10, 20), onsets=[10])
    expected = spans(decoder.decode(frames, onsets))
    assert spans(decoder.decode(frames > 0.5, onsets > 0.5)) == expected
    assert spans(decoder.decode((frames * 255).astype(np.uint8), (onsets * 255).astype(np.uint8))) == expected


def random_sequence(rng: np.random.Generator, duration_s: float, pitches: int = 12):
    """Random notes, never overlapping on one pitch, at least 0.1 s long, sometimes back to back."""
    sequence = _music_pb2().NoteSequence()
    for pitch in rng.choice(np.arange(21, 109), size=pitches, replace=False):
        time = rng.uniform(0, 0.5)
        while True:
            end = time + rng.uniform(0.1, 1.0)
            if end > duration_s:
                break
            sequence.notes.add(pitch=int(pitch), start_time=time, end_time=end, velocity=int(rng.integers(1, 128)))
            time = end + (0.0 if rng.random() < 0.3 else rng.uniform(0.0, 0.5))
    return sequence


@pytest.mark.parametrize("seed", range(5))
def test_decoding_label_rolls_reproduces_the_notes(seed):
    rng = np.random.default_rng(seed)
    sequence = random_sequence(rng, duration_s=20.0)
    labels = sequence_to_rolls(sequence, num_frames=int(np.ceil(20.5 * FPS)))
    for use_offsets in (True, False):
        decoded = decode_label_rolls(labels, use_offsets=use_offsets)
        reference = sorted(sequence.notes, key=lambda note: (note.pitch, note.start_time))
        decoded = sorted(decoded, key=lambda note: (note.pitch, note.start_s))
        assert len(decoded) == len(reference) > 50
        for ref, est in zip(reference, decoded, strict=True):
            assert est.pitch == ref.pitch
            assert abs(est.start_s - ref.start_time) < 1 / FPS
            assert abs(est.end_s - ref.end_time) < 1 / FPS
            assert est.end_s > est.start_s
            assert est.velocity == ref.velocity
