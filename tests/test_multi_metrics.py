"""Timbre, multi-instrument and leakage metrics on hand-made notes with known answers; plots."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

from polyamp.decode.onsets_frames import Note
from polyamp.errors import ConfigError, MissingDependencyError, OutputExistsError
from polyamp.metrics import METRIC_GROUPS, transcription_metrics
from polyamp.multi_metrics import (
    MULTI_METRIC_GROUPS,
    MultiInstrumentMetricsAccumulator,
    TimbreMetricsAccumulator,
    family_confusion,
    multi_instrument_metrics,
    timbre_metrics,
    timbre_metrics_from_confusion,
)
from polyamp.notes.families import FAMILY_NAMES, NUM_FAMILIES, family_index
from polyamp.notes.rolls import _music_pb2

BASS, GUITAR, KEYBOARD, STRING = (family_index(name) for name in ("bass", "guitar", "keyboard", "string"))
PRF = ("precision", "recall", "f1")


@dataclasses.dataclass(frozen=True)
class FamilyNote:
    """An estimated note as a multi-instrument decoder might return it."""

    pitch: int
    start_s: float
    end_s: float
    velocity: int
    family: int | str | None
    is_drum: bool = False


def sequence(notes):
    """NoteSequence from (pitch, start_s, end_s, velocity, program, stem[, is_drum])."""
    result = _music_pb2().NoteSequence()
    for pitch, start, end, velocity, program, stem, *drum in notes:
        result.notes.add(
            pitch=pitch,
            start_time=start,
            end_time=end,
            velocity=velocity,
            program=program,
            instrument=stem,
            is_drum=bool(drum and drum[0]),
        )
    return result


def prf(scores, prefix):
    return [scores[f"{prefix}_{suffix}"] for suffix in PRF]


def melody(family, pitches=(60, 62, 64, 65), start=0.0, step=0.5, track=0, velocity=80):
    """Tuples (onset, offset, pitch, velocity, family, track) of consecutive notes."""
    return [(start + i * step, start + (i + 1) * step, p, velocity, family, track) for i, p in enumerate(pitches)]


# The worked example of docs/metrics.md.
DOC_REFERENCE = sequence(
    [
        (60, 0.0, 0.5, 80, 0, 0),
        (64, 0.5, 1.0, 80, 0, 0),
        (67, 1.0, 1.5, 80, 0, 0),
        (72, 1.5, 2.0, 80, 0, 0),
        (36, 0.0, 1.0, 90, 33, 1),
        (43, 1.0, 2.0, 90, 33, 1),
        (38, 0.0, 0.1, 100, 0, 9, True),
    ]
)
DOC_ESTIMATE = [
    FamilyNote(60, 0.01, 0.5, 80, "keyboard"),
    FamilyNote(64, 0.52, 1.0, 80, "keyboard"),
    FamilyNote(67, 1.0, 1.5, 80, "guitar"),
    FamilyNote(36, 0.0, 1.0, 90, "bass"),
    FamilyNote(43, 1.02, 1.3, 90, "bass"),
    FamilyNote(38, 0.0, 0.1, 100, None, is_drum=True),
]


# ---------------------------------------------------------------------------------------------
# Multi-instrument transcription.


def test_worked_example_of_the_docs():
    scores = multi_instrument_metrics(DOC_REFERENCE, DOC_ESTIMATE)
    assert prf(scores, "note") == pytest.approx([1.0, 5 / 6, 10 / 11])
    assert prf(scores, "note_with_offsets") == pytest.approx([0.8, 4 / 6, 8 / 11])
    assert prf(scores, "multi_note") == pytest.approx([0.8, 4 / 6, 8 / 11])
    assert prf(scores, "multi_note_with_offsets") == pytest.approx([0.6, 0.5, 6 / 11])
    assert scores["num_reference_notes"] == 6.0 and scores["num_estimated_notes"] == 5.0
    assert scores["num_agnostic_matched"] == 5.0
    assert scores["matched_note_family_accuracy"] == pytest.approx(0.8)
    assert scores["leakage_tracks_per_instrument"] == pytest.approx(1.5)
    assert scores["leakage_note_share"] == pytest.approx(0.2)
    assert scores["num_reference_instruments"] == 2.0 and scores["num_estimated_tracks"] == 3.0

    accumulator = MultiInstrumentMetricsAccumulator()
    accumulator.add(DOC_REFERENCE, DOC_ESTIMATE)
    result = accumulator.result()
    per_family = result["per_family"]
    assert list(per_family) == ["bass", "guitar", "keyboard"]
    assert prf(per_family["keyboard"], "note") == pytest.approx([1.0, 0.5, 2 / 3])
    assert prf(per_family["bass"], "note") == [1.0, 1.0, 1.0]
    assert prf(per_family["bass"], "note_with_offsets") == [0.5, 0.5, 0.5]
    assert prf(per_family["guitar"], "note") == [0.0, 0.0, 0.0]
    assert per_family["guitar"]["num_reference_notes"] == 0.0 and per_family["guitar"]["num_estimated_notes"] == 1.0
    matrix = np.asarray(result["family_confusion"]["matrix"])
    assert matrix[KEYBOARD, KEYBOARD] == 2 and matrix[KEYBOARD, GUITAR] == 1 and matrix[BASS, BASS] == 2
    assert matrix.sum() == 5


def test_perfect_estimate_scores_one_and_agnostic_matches_melodic_metrics():
    reference = sequence(
        [
            (60, 0.0, 0.5, 80, 0, 0),
            (64, 0.5, 1.0, 70, 0, 0),
            (40, 0.0, 1.0, 90, 33, 1),
            (67, 0.25, 0.75, 60, 25, 2),
            (42, 0.0, 0.1, 100, 0, 9, True),
        ]
    )
    estimate = [
        (note.start_time, note.end_time, note.pitch, note.velocity, family)
        for note, family in zip(reference.notes[:4], (KEYBOARD, KEYBOARD, BASS, GUITAR), strict=True)
    ]
    scores = multi_instrument_metrics(reference, estimate)
    for _, prefix in METRIC_GROUPS + MULTI_METRIC_GROUPS:
        assert prf(scores, prefix) == [1.0, 1.0, 1.0], prefix
    assert scores["leakage_tracks_per_instrument"] == 1.0
    assert scores["leakage_note_share"] == 0.0
    assert scores["matched_note_family_accuracy"] == 1.0
    assert scores["num_reference_instruments"] == 3.0 and scores["num_estimated_tracks"] == 3.0
    melodic = transcription_metrics(reference, reference)
    assert {key: scores[key] for key in melodic} == melodic
    assert all(isinstance(value, float) for value in scores.values())


def test_one_wrong_family_costs_only_the_multi_instrument_score():
    reference = melody(KEYBOARD)
    estimate = melody(KEYBOARD)
    estimate[2] = (*estimate[2][:4], STRING, 0)
    scores = multi_instrument_metrics(reference, estimate)
    assert prf(scores, "note") == [1.0, 1.0, 1.0]
    assert prf(scores, "multi_note") == [0.75, 0.75, 0.75]
    assert prf(scores, "multi_note_with_offsets") == [0.75, 0.75, 0.75]
    assert scores["matched_note_family_accuracy"] == 0.75
    # One instrument, its matched notes in two estimated tracks; one of four outside the majority.
    assert scores["leakage_tracks_per_instrument"] == 2.0
    assert scores["leakage_note_share"] == 0.25


def test_swapped_families_in_a_chord_score_zero():
    reference = [(0.0, 1.0, 60, 80, KEYBOARD, 0), (0.0, 1.0, 64, 80, GUITAR, 1)]
    estimate = [(0.0, 1.0, 60, 80, GUITAR), (0.0, 1.0, 64, 80, KEYBOARD)]
    scores = multi_instrument_metrics(reference, estimate)
    assert prf(scores, "note") == [1.0, 1.0, 1.0]
    assert prf(scores, "multi_note") == [0.0, 0.0, 0.0]
    assert scores["matched_note_family_accuracy"] == 0.0


def test_one_missed_note_lowers_recall_only():
    reference = melody(GUITAR)
    scores = multi_instrument_metrics(reference, reference[:3])
    assert prf(scores, "note") == pytest.approx([1.0, 0.75, 6 / 7])
    assert prf(scores, "multi_note") == pytest.approx([1.0, 0.75, 6 / 7])
    assert scores["leakage_tracks_per_instrument"] == 1.0 and scores["leakage_note_share"] == 0.0


def test_offsets_count_only_in_the_offset_variant():
    reference = melody(BASS, step=1.0)
    estimate = [(*note[:1], note[1] - 0.5, *note[2:]) for note in reference]  # every note ends 0.5 s early
    estimate[0] = reference[0]
    scores = multi_instrument_metrics(reference, estimate)
    assert prf(scores, "multi_note") == [1.0, 1.0, 1.0]
    assert prf(scores, "multi_note_with_offsets") == [0.25, 0.25, 0.25]
    assert prf(scores, "note_with_offsets") == [0.25, 0.25, 0.25]


def test_an_instrument_split_across_two_families_is_leakage():
    reference = melody(GUITAR, track=0) + melody(BASS, pitches=(36, 38), step=1.0, track=1)
    estimate = [(*note[:4], GUITAR if index % 2 == 0 else KEYBOARD) for index, note in enumerate(reference[:4])]
    estimate += [note[:5] for note in reference[4:]]
    scores = multi_instrument_metrics(reference, estimate)
    assert prf(scores, "note") == [1.0, 1.0, 1.0]
    assert prf(scores, "multi_note") == pytest.approx([4 / 6, 4 / 6, 4 / 6])
    assert scores["leakage_tracks_per_instrument"] == 1.5  # guitar: 2 tracks, bass: 1
    assert scores["leakage_note_share"] == pytest.approx(2 / 6)
    assert scores["num_leakage_instruments"] == 2.0


def test_a_consistently_wrong_family_is_not_leakage():
    reference = melody(GUITAR)
    estimate = [(*note[:4], KEYBOARD) for note in reference]
    scores = multi_instrument_metrics(reference, estimate)
    assert prf(scores, "multi_note") == [0.0, 0.0, 0.0]
    assert scores["matched_note_family_accuracy"] == 0.0
    assert scores["leakage_tracks_per_instrument"] == 1.0 and scores["leakage_note_share"] == 0.0


def test_two_stems_of_one_family_are_two_instruments():
    reference = melody(GUITAR, track=0) + melody(GUITAR, pitches=(48, 50), track=1)
    estimate = [note[:5] for note in reference]  # one guitar track in the estimate
    scores = multi_instrument_metrics(reference, estimate)
    assert scores["num_reference_instruments"] == 2.0 and scores["num_estimated_tracks"] == 1.0
    assert scores["leakage_tracks_per_instrument"] == 1.0
    assert prf(scores, "multi_note") == [1.0, 1.0, 1.0]


def test_drums_are_ignored_in_every_input_form():
    pitched = [(60, 0.0, 0.5, 80, 0, 0), (43, 0.0, 1.0, 90, 33, 1)]
    drums = [(36, t, t + 0.1, 100, 0, 9, True) for t in (0.0, 0.5, 1.0)]
    estimate = [(0.0, 0.5, 60, 80, KEYBOARD), (0.0, 1.0, 43, 90, BASS)]
    plain = multi_instrument_metrics(sequence(pitched), estimate)
    with_drums = multi_instrument_metrics(
        sequence(pitched + drums),
        estimate
        + [(0.0, 0.1, 36, 100, None), (0.5, 0.6, 36, 100, "drums"), FamilyNote(38, 1.0, 1.1, 100, 0, is_drum=True)],
    )
    assert with_drums == plain
    assert plain["num_reference_notes"] == 2.0 and plain["multi_note_f1"] == 1.0
    # Drums alone on either side are the same as nothing.
    only_drums = multi_instrument_metrics(sequence(drums), [(0.0, 0.1, 36, 100, None)])
    assert only_drums["multi_note_f1"] == 1.0 and only_drums["note_f1"] == 1.0
    assert only_drums["num_reference_notes"] == 0.0


def test_empty_reference_or_estimate():
    notes = melody(STRING)
    both = multi_instrument_metrics([], [])
    for _, prefix in METRIC_GROUPS + MULTI_METRIC_GROUPS:
        assert prf(both, prefix) == [1.0, 1.0, 1.0]
    for reference, estimate in ((notes, []), ([], notes)):
        scores = multi_instrument_metrics(reference, estimate)
        for _, prefix in METRIC_GROUPS + MULTI_METRIC_GROUPS:
            assert prf(scores, prefix) == [0.0, 0.0, 0.0], prefix
        assert "leakage_tracks_per_instrument" not in scores
        assert "matched_note_family_accuracy" not in scores
        assert scores["num_leakage_instruments"] == 0.0
    assert multi_instrument_metrics(notes, [])["num_reference_instruments"] == 1.0


def test_input_forms_agree():
    reference = sequence([(60, 0.0, 0.5, 80, 0, 0), (62, 0.5, 1.0, 80, 0, 0), (40, 0.0, 1.0, 90, 33, 1)])
    as_tuples = [(0.0, 0.5, 60, 80, KEYBOARD, 0), (0.5, 1.0, 62, 80, KEYBOARD, 0), (0.0, 1.0, 40, 90, BASS, 1)]
    as_objects = [
        FamilyNote(60, 0.0, 0.5, 80, "keyboard"),
        FamilyNote(62, 0.5, 1.0, 80, 4),
        FamilyNote(40, 0, 1, 90, 0),
    ]
    estimate = [(0.0, 0.5, 60, 80, GUITAR), (0.5, 1.0, 62, 80, KEYBOARD), (0.0, 1.0, 40, 90, BASS)]
    expected = multi_instrument_metrics(reference, estimate)
    assert multi_instrument_metrics(reference.SerializeToString(), estimate) == expected
    assert multi_instrument_metrics(as_tuples, estimate) == expected
    assert multi_instrument_metrics(as_objects, estimate) == expected
    assert multi_instrument_metrics(np.asarray(as_tuples, np.float64), np.asarray(estimate)) == expected
    assert expected["multi_note_f1"] == pytest.approx(2 / 3)


def test_family_mapping_input_and_a_note_given_to_two_families():
    reference = [(0.0, 0.5, 60, 80, GUITAR, 0), (0.5, 1.0, 62, 80, GUITAR, 0), (0.0, 1.0, 40, 90, BASS, 1)]
    # The Full model's output: {family: notes}; the 62 is written to the guitar and keyboard tracks.
    estimate = {
        "bass": [Note(40, 0.0, 1.0, 90)],
        GUITAR: [Note(60, 0.0, 0.5, 80), Note(62, 0.5, 1.0, 80)],
        KEYBOARD: [Note(62, 0.5, 1.0, 80)],
        None: [Note(36, 0.0, 0.1, 100)],  # drums
    }
    scores = multi_instrument_metrics(reference, estimate)
    assert prf(scores, "note") == [1.0, 1.0, 1.0]  # the doubled note counts once agnostically
    assert scores["num_estimated_notes"] == 3.0
    assert prf(scores, "multi_note") == pytest.approx([0.75, 1.0, 6 / 7])  # the keyboard copy is a false note
    assert scores["matched_note_family_accuracy"] == 1.0  # matched within the family first
    assert scores["leakage_tracks_per_instrument"] == 1.0 and scores["leakage_note_share"] == 0.0
    tuples = [(n.start_s, n.end_s, n.pitch, n.velocity, family) for family, group in estimate.items() for n in group]
    assert multi_instrument_metrics(reference, tuples) == scores


def test_agnostic_numbers_equal_the_melodic_metrics_on_random_notes():
    rng = np.random.default_rng(3)
    notes = []
    for stem, program in enumerate((0, 25, 33, 48)):
        time = float(rng.uniform(0, 0.3))
        while time < 8.0:
            end = time + float(rng.uniform(0.05, 0.8))
            notes.append((int(rng.integers(30, 90)), time, end, int(rng.integers(20, 120)), program, stem))
            time = end + float(rng.uniform(0.0, 0.3))
    notes.append((50, -0.2, -0.2, 64, 0, 0))  # degenerate: clipped, given one frame
    reference = sequence(notes)
    jitter = [
        (p, s + rng.normal(0, 0.03), e + rng.normal(0, 0.1), v, int(rng.choice([0, 25, 33, 48])), 0)
        for p, s, e, v, _, _ in notes
        if rng.random() < 0.85
    ]
    estimate = sequence(jitter)
    scores = multi_instrument_metrics(reference, estimate)
    melodic = transcription_metrics(reference, estimate)
    assert {key: scores[key] for key in melodic} == melodic
    assert 0.0 < scores["multi_note_f1"] < scores["note_f1"] < 1.0
    assert scores["leakage_tracks_per_instrument"] > 1.0


def test_pooling_over_examples():
    accumulator = MultiInstrumentMetricsAccumulator()
    perfect = melody(KEYBOARD, pitches=(60,))
    first = accumulator.add(perfect, [note[:5] for note in perfect])
    reference = melody(STRING, pitches=(50, 52, 53))
    second = accumulator.add(reference, [(note[0] + 0.2, *note[1:5]) for note in reference])  # all late
    assert first["multi_note_f1"] == 1.0 and second["multi_note_f1"] == 0.0
    result = accumulator.result()
    assert result["num_examples"] == 2
    mean, pooled = result["mean"], result["pooled"]
    assert mean["multi_note_f1"] == 0.5 and mean["note_f1"] == 0.5  # per-example mean
    assert prf(pooled, "multi_note") == pytest.approx([0.25, 0.25, 0.25])  # 1 of 4 notes, pooled
    assert pooled["num_reference_notes"] == 4.0 and mean["num_reference_notes"] == 4.0
    assert mean["num_multi_note_matched"] == pooled["num_multi_note_matched"] == 1.0
    # Leakage is defined only for the first example (the second matches nothing).
    assert mean["leakage_tracks_per_instrument"] == 1.0 and pooled["num_leakage_instruments"] == 1.0
    assert prf(result["per_family"]["string"], "note") == [0.0, 0.0, 0.0]
    assert prf(result["per_family"]["keyboard"], "note") == [1.0, 1.0, 1.0]
    assert accumulator.per_example == [first, second]
    json.dumps(result, allow_nan=False)


def test_pooled_leakage_weights_every_instrument():
    accumulator = MultiInstrumentMetricsAccumulator()
    split = melody(GUITAR)
    accumulator.add(split, [(*note[:4], GUITAR if i < 3 else KEYBOARD) for i, note in enumerate(split)])
    for pitches in ((40,), (41,), (43,)):
        notes = melody(BASS, pitches=pitches)
        accumulator.add(notes, [note[:5] for note in notes])
    result = accumulator.result()
    assert result["mean"]["leakage_tracks_per_instrument"] == pytest.approx(1.25)
    assert result["pooled"]["leakage_tracks_per_instrument"] == pytest.approx(5 / 4)
    assert result["mean"]["leakage_note_share"] == pytest.approx(0.25 / 4)
    assert result["pooled"]["leakage_note_share"] == pytest.approx(1 / 7)


def test_accumulator_without_examples_and_bad_notes_raise():
    with pytest.raises(ValueError, match="no examples"):
        MultiInstrumentMetricsAccumulator().result()
    with pytest.raises(ValueError, match="family"):
        multi_instrument_metrics([(0.0, 0.5, 60, 80, 12)], [])
    with pytest.raises(ValueError, match="unknown instrument family 'kazoo'"):
        multi_instrument_metrics([(0.0, 0.5, 60, 80, "kazoo")], [])
    with pytest.raises(ValueError, match="estimated note 0"):
        multi_instrument_metrics([], [(0.0, 0.5, 60, 80)])
    with pytest.raises(ValueError, match="neither a family nor a program"):
        multi_instrument_metrics([], [dataclasses.make_dataclass("N", ["pitch", "start_s", "end_s"])(60, 0, 1)])
    with pytest.raises(ValueError, match="finite"):
        multi_instrument_metrics([(0.0, float("nan"), 60, 80, 0)], [])


def test_metrics_modules_do_not_import_tensorflow():
    code = (
        "import sys, polyamp.multi_metrics, polyamp.plots; "
        "sys.exit(1 if any(m.split('.')[0] in ('tensorflow', 'keras') for m in sys.modules) else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# ---------------------------------------------------------------------------------------------
# Timbre.


def one_hot(families, num=NUM_FAMILIES):
    probs = np.full((len(families), num), 0.01)
    probs[np.arange(len(families)), families] = 0.9
    return probs


def test_timbre_worked_example():
    true = np.array([KEYBOARD, KEYBOARD, KEYBOARD, BASS, BASS])
    predicted = one_hot([KEYBOARD, KEYBOARD, GUITAR, BASS, BASS])
    result = timbre_metrics(true, predicted)
    assert result["accuracy"] == pytest.approx(0.8)
    assert result["macro_f1"] == pytest.approx(0.9)
    assert result["num_notes"] == 5 and result["num_reference_families"] == 2
    keyboard = result["per_family"]["keyboard"]
    assert [keyboard[k] for k in PRF] == pytest.approx([1.0, 2 / 3, 0.8])
    assert keyboard["support"] == 3 and keyboard["predicted"] == 2
    guitar = result["per_family"]["guitar"]
    assert [guitar[k] for k in PRF] == [0.0, 0.0, 0.0] and guitar["support"] == 0 and guitar["predicted"] == 1
    confusion = np.asarray(result["confusion"])
    assert confusion.shape == (12, 12) and confusion.sum() == 5
    assert confusion[KEYBOARD, KEYBOARD] == 2 and confusion[KEYBOARD, GUITAR] == 1 and confusion[BASS, BASS] == 2
    assert result["families"] == list(FAMILY_NAMES)
    json.dumps(result, allow_nan=False)


def test_timbre_perfect_and_ties():
    true = np.arange(NUM_FAMILIES)
    result = timbre_metrics(true, one_hot(true))
    assert result["accuracy"] == 1.0 and result["macro_f1"] == 1.0
    assert np.array_equal(np.asarray(result["confusion"]), np.eye(NUM_FAMILIES, dtype=int))
    tied = timbre_metrics(np.array([3]), np.full((1, NUM_FAMILIES), 0.5))
    assert tied["confusion"][3][0] == 1  # ties go to the lower index


def test_timbre_accumulator_pools_like_one_batch():
    rng = np.random.default_rng(0)
    true = rng.integers(0, NUM_FAMILIES, 200)
    probs = rng.random((200, NUM_FAMILIES))
    probs[np.arange(200), true] += rng.random(200) * 0.8  # mostly right
    accumulator = TimbreMetricsAccumulator()
    for start in range(0, 200, 64):
        accumulator.add(true[start : start + 64], probs[start : start + 64])
    accumulator.add(np.zeros(0, np.int64), np.zeros((0, NUM_FAMILIES)))
    assert accumulator.result() == timbre_metrics(true, probs)
    assert np.array_equal(accumulator.confusion, family_confusion(true, probs.argmax(axis=1)))
    assert 0.5 < accumulator.result()["accuracy"] < 1.0


def test_timbre_empty_and_bad_inputs():
    empty = timbre_metrics(np.zeros(0, np.int64), np.zeros((0, NUM_FAMILIES)))
    assert empty["accuracy"] == 0.0 and empty["macro_f1"] == 0.0 and empty["num_notes"] == 0
    with pytest.raises(ValueError, match=r"\[N, 12\]"):
        timbre_metrics(np.array([0]), np.ones((1, 11)))
    with pytest.raises(ValueError, match="1 notes but"):
        timbre_metrics(np.array([0]), np.ones((2, NUM_FAMILIES)))
    with pytest.raises(ValueError, match="family indices"):
        timbre_metrics(np.array([12]), np.ones((1, NUM_FAMILIES)))
    with pytest.raises(ValueError, match="family indices"):
        timbre_metrics(np.array([0.5]), np.ones((1, NUM_FAMILIES)))
    with pytest.raises(ValueError, match="finite"):
        timbre_metrics(np.array([0]), np.full((1, NUM_FAMILIES), np.nan))
    with pytest.raises(ValueError, match="shape"):
        timbre_metrics_from_confusion(np.ones((11, 11)))


# ---------------------------------------------------------------------------------------------
# Plots.


def worked_confusion():
    return timbre_metrics(
        np.array([KEYBOARD, KEYBOARD, KEYBOARD, BASS, BASS]), one_hot([KEYBOARD, KEYBOARD, GUITAR, BASS, BASS])
    )["confusion"]


def test_confusion_plot_is_a_png_and_is_never_overwritten_silently(tmp_path):
    image_module = pytest.importorskip("matplotlib.image")
    from polyamp.plots import plot_confusion_matrix

    path = tmp_path / "plots" / "confusion.png"
    assert plot_confusion_matrix(worked_confusion(), FAMILY_NAMES, path) == path
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    image = image_module.imread(path)
    assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 300
    assert image[..., :3].std() > 0.05  # not a blank canvas
    assert sorted(p.name for p in path.parent.iterdir()) == ["confusion.png"]  # no temporary files left

    with pytest.raises(OutputExistsError, match="confusion.png exists"):
        plot_confusion_matrix(np.eye(NUM_FAMILIES, dtype=int), FAMILY_NAMES, path)
    assert path.read_bytes() == data
    plot_confusion_matrix(np.eye(NUM_FAMILIES, dtype=int), FAMILY_NAMES, path, overwrite=True)
    assert path.read_bytes() != data
    assert path.read_bytes().startswith(b"\x89PNG")


def test_confusion_plot_rejects_bad_input(tmp_path):
    from polyamp.plots import plot_confusion_matrix

    with pytest.raises(ConfigError, match=r"\.png"):
        plot_confusion_matrix(worked_confusion(), FAMILY_NAMES, tmp_path / "confusion.jpg")
    with pytest.raises(ValueError, match="labels"):
        plot_confusion_matrix(worked_confusion(), FAMILY_NAMES[:5], tmp_path / "confusion.png")
    with pytest.raises(ValueError, match="square"):
        plot_confusion_matrix(np.ones((3, 4)), ["a", "b", "c"], tmp_path / "confusion.png")
    assert list(tmp_path.iterdir()) == []


def test_missing_matplotlib_is_a_clear_error(tmp_path, monkeypatch):
    from polyamp.plots import plot_confusion_matrix

    for name in [name for name in sys.modules if name == "matplotlib" or name.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib...` fail
    with pytest.raises(MissingDependencyError, match="pip install matplotlib"):
        plot_confusion_matrix(worked_confusion(), FAMILY_NAMES, tmp_path / "confusion.png")
    assert not (tmp_path / "confusion.png").exists()


def test_confusion_table_shows_counts_and_recall():
    from rich.console import Console

    from polyamp.plots import column_label, confusion_table, row_normalised

    console = Console(width=200, record=True, color_system=None)
    console.print(confusion_table(worked_confusion(), FAMILY_NAMES))
    text = console.export_text()
    assert "keyboard" in text and "bass" in text and "guitar" in text
    assert "vocal" not in text  # families with no notes at all are hidden
    assert "66.7%" in text and "100.0%" in text and "accuracy 80.0% over 5 notes" in text
    # All twelve families with four-digit counts and totals fit an 80-column terminal without wrapping.
    narrow = Console(width=80, record=True, color_system=None)
    full = np.full((12, 12), 300) + np.diag(np.full(12, 5000))
    narrow.print(confusion_table(full, FAMILY_NAMES))
    lines = narrow.export_text().splitlines()
    assert max(len(line) for line in lines) <= 80
    short = {column_label(name) for name in FAMILY_NAMES}
    rows = [line for line in lines if len(line.split()) > 1 and line.split()[0] in short and line.split()[1].isdigit()]
    assert len(rows) == 12 and all(len(row.split()) == 15 for row in rows)  # name, 12 counts, total, recall
    assert all(row.split()[-2:] == ["8600", "61.6%"] for row in rows)
    assert "syn = synth_lead" in " ".join(lines)
    shares = row_normalised(worked_confusion())
    assert shares[KEYBOARD, GUITAR] == pytest.approx(1 / 3) and shares[STRING].sum() == 0.0
