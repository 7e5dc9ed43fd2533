"""mir_eval metrics: perfect, shifted, hand-computed, velocity and empty cases, averaging."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from polyamp.decode.onsets_frames import Note, decode_label_rolls
from polyamp.metrics import METRIC_GROUPS, average_metrics, transcription_metrics
from polyamp.notes.rolls import _music_pb2, sequence_to_rolls

FPS = 31.25
PRF = ("precision", "recall", "f1")


def make_sequence(notes):
    """notes: (pitch, start_s, end_s, velocity[, is_drum])."""
    sequence = _music_pb2().NoteSequence()
    for pitch, start, end, velocity, *drum in notes:
        sequence.notes.add(
            pitch=pitch, start_time=start, end_time=end, velocity=velocity, is_drum=bool(drum and drum[0])
        )
    return sequence


def random_sequence(seed: int, duration_s: float = 15.0):
    rng = np.random.default_rng(seed)
    notes = []
    for pitch in rng.choice(np.arange(30, 100), size=10, replace=False):
        time = rng.uniform(0, 0.5)
        while (end := time + rng.uniform(0.1, 1.0)) < duration_s:
            notes.append((int(pitch), time, end, int(rng.integers(20, 120))))
            time = end + rng.uniform(0.05, 0.5)
    return make_sequence(notes)


def all_prf(scores, prefix):
    return [scores[f"{prefix}_{suffix}"] for suffix in PRF]


# Frame-aligned (multiples of 0.032 s): each note covers exactly 15 frames.
FOUR = [(60, 0.48, 0.96, 80), (64, 1.6, 2.08, 60), (67, 2.56, 3.04, 100), (72, 3.52, 4.0, 40)]


def test_identical_sequences_score_one_everywhere():
    reference = random_sequence(0)
    scores = transcription_metrics(reference, reference)
    for _, prefix in METRIC_GROUPS:
        assert all_prf(scores, prefix) == [1.0, 1.0, 1.0], prefix
    assert scores["num_reference_notes"] == scores["num_estimated_notes"] == len(reference.notes)
    assert all(isinstance(value, float) for value in scores.values())


@pytest.mark.parametrize("seed", [1, 2])
def test_decoded_label_rolls_score_perfect_notes(seed):
    reference = random_sequence(seed)
    labels = sequence_to_rolls(reference, num_frames=int(16 * FPS))
    estimate = decode_label_rolls(labels)
    scores = transcription_metrics(reference, estimate)
    assert scores["note_f1"] == 1.0
    assert scores["note_with_offsets_f1"] == 1.0
    assert scores["note_with_offsets_and_velocity_f1"] == 1.0
    assert 0.95 < scores["frame_f1"] <= 1.0  # decoding may end a note one frame early
    assert scores["frame_precision"] == 1.0


def test_onsets_shifted_by_100ms_score_zero():
    reference = make_sequence(FOUR)
    shifted = make_sequence([(p, s + 0.1, e + 0.1, v) for p, s, e, v in FOUR])
    scores = transcription_metrics(reference, shifted)
    assert all_prf(scores, "note") == [0.0, 0.0, 0.0]
    assert scores["note_with_offsets_f1"] == 0.0
    assert 0.0 < scores["frame_f1"] < 1.0  # the pitch sets still overlap in most frames


def test_two_of_four_right_is_half():
    reference = make_sequence(FOUR)
    estimate = make_sequence([FOUR[0], FOUR[1], (61, 2.56, 3.04, 100), (73, 3.52, 4.0, 40)])
    scores = transcription_metrics(reference, estimate)
    for _, prefix in METRIC_GROUPS:
        assert all_prf(scores, prefix) == pytest.approx([0.5, 0.5, 0.5]), prefix


def test_extra_notes_lower_precision_only():
    reference = make_sequence(FOUR[:2])
    estimate = make_sequence(FOUR)
    scores = transcription_metrics(reference, estimate)
    assert all_prf(scores, "note") == pytest.approx([0.5, 1.0, 2 / 3])
    assert all_prf(scores, "frame") == pytest.approx([0.5, 1.0, 2 / 3])


def test_offsets_matter_only_for_offset_metrics():
    reference = make_sequence(FOUR)
    long_notes = make_sequence([(p, s, e + 0.3, v) for p, s, e, v in FOUR])  # 0.3 s > max(0.1, 0.05)
    scores = transcription_metrics(reference, long_notes)
    assert scores["note_f1"] == 1.0 and scores["note_with_velocity_f1"] == 1.0
    assert scores["note_with_offsets_f1"] == 0.0 and scores["note_with_offsets_and_velocity_f1"] == 0.0
    slightly_long = make_sequence([(p, s, e + 0.04, v) for p, s, e, v in FOUR])  # within 50 ms
    assert transcription_metrics(reference, slightly_long)["note_with_offsets_f1"] == 1.0


def test_velocity_metrics_rescale_but_punish_wrong_order():
    reference = make_sequence(FOUR)
    rescaled = make_sequence([(p, s, e, v // 2 + 10) for p, s, e, v in FOUR])  # linear map of velocity
    scores = transcription_metrics(reference, rescaled)
    assert scores["note_with_velocity_f1"] == 1.0 and scores["note_with_offsets_and_velocity_f1"] == 1.0
    shuffled = make_sequence([(p, s, e, v) for (p, s, e, _), v in zip(FOUR, [40, 100, 60, 80], strict=True)])
    scores = transcription_metrics(reference, shuffled)
    assert scores["note_f1"] == 1.0
    assert scores["note_with_velocity_f1"] < 1.0


def test_inputs_can_be_notes_bytes_and_drums_are_ignored():
    reference = make_sequence(FOUR + [(36, 0.0, 0.1, 100, True)])
    notes = [Note(p, s, e, v) for p, s, e, v in FOUR]
    scores = transcription_metrics(reference.SerializeToString(), notes)
    assert scores["note_f1"] == 1.0 and scores["num_reference_notes"] == 4.0


def test_zero_length_reference_notes_do_not_crash():
    reference = make_sequence([(60, 0.5, 0.5, 80), (62, 1.0, 1.5, 80)])
    estimate = [Note(60, 0.48, 0.512, 80), Note(62, 0.992, 1.504, 80)]
    scores = transcription_metrics(reference, estimate)
    assert scores["note_f1"] == 1.0 and scores["note_with_offsets_f1"] == 1.0


def test_empty_sides_follow_the_documented_rule_without_warnings():
    reference = make_sequence(FOUR)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        both = transcription_metrics(make_sequence([]), [])
        missing = transcription_metrics(reference, [])
        spurious = transcription_metrics([], reference)
    for _, prefix in METRIC_GROUPS:
        assert all_prf(both, prefix) == [1.0, 1.0, 1.0]
        assert all_prf(missing, prefix) == [0.0, 0.0, 0.0]
        assert all_prf(spurious, prefix) == [0.0, 0.0, 0.0]
    assert missing["num_reference_notes"] == 4.0 and missing["num_estimated_notes"] == 0.0


def test_average_metrics_means_scores_and_sums_counts():
    first = {"note_f1": 1.0, "frame_f1": 0.5, "num_reference_notes": 4.0, "num_estimated_notes": 2.0}
    second = {"note_f1": 0.0, "frame_f1": 0.25, "num_reference_notes": 6.0, "num_estimated_notes": 1.0}
    averaged = average_metrics([first, second])
    assert averaged == {
        "note_f1": 0.5,
        "frame_f1": 0.375,
        "num_reference_notes": 10.0,
        "num_estimated_notes": 3.0,
    }
    assert average_metrics([]) == {}
