"""Augmentation of Timbre batches (polyamp.data.timbre_augment): pitch shift moves the CQT and the notes
together; random equalisation bends the spectral envelope and nothing else."""

from __future__ import annotations

import numpy as np
import pytest

BINS_PER_OCTAVE = 28


def _batch() -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Two crops of 5 frames x 40 bins, each with one lit bin and one note on it, plus a padding row."""
    spec = np.zeros((2, 5, 40), np.float32)
    spec[0, :, 10] = 1.0  # pitch 21 + 10 * 12 / 28
    spec[1, :, 3] = 0.5
    notes = np.array(
        [[[21 + 10 * 12 / 28, 0.0, 1.0], [-1, -1, -1]], [[21 + 3 * 12 / 28, 0.5, 1.0], [-1, -1, -1]]], np.float32
    )
    family = np.zeros((2, 2, 12), np.float32)
    family[0, 0, 2] = family[1, 0, 5] = 1.0
    mask = np.array([[1, 0], [1, 0]], np.float32)
    return spec, notes, {"family": family, "mask": mask}


def test_shift_moves_the_spectrogram_and_the_note_pitches_together() -> None:
    import tensorflow as tf

    from polyamp.data.timbre_augment import shift_spectrogram_and_notes

    spec, notes, targets = _batch()
    shifted, moved, kept = shift_spectrogram_and_notes(
        tf.constant(spec),
        tf.constant(notes),
        {k: tf.constant(v) for k, v in targets.items()},
        tf.constant([7, -5], tf.int32),
        BINS_PER_OCTAVE,
    )
    shifted, moved = shifted.numpy(), moved.numpy()
    assert shifted.shape == spec.shape and moved.shape == notes.shape
    assert np.flatnonzero(shifted[0, 0]).tolist() == [17]  # 7 bins up = 3 semitones
    assert moved[0, 0, 0] == pytest.approx(notes[0, 0, 0] + 3.0) and moved[0, 0, 1:].tolist() == [0.0, 1.0]
    assert np.all(moved[:, 1] == -1)  # padding stays padding
    # 5 bins down from bin 3 leaves the spectrogram (bins moved in are the 0.0 floor) and the note leaves
    # 21..108: it becomes padding with no label and no weight.
    assert not shifted[1].any()
    assert moved[1, 0].tolist() == [-1.0, -1.0, -1.0]
    assert kept["mask"].numpy().tolist() == [[1.0, 0.0], [0.0, 0.0]]
    assert kept["family"].numpy()[0, 0, 2] == 1.0 and not kept["family"].numpy()[1].any()


def test_zero_shift_is_the_identity_and_shifts_stay_in_range() -> None:
    import tensorflow as tf

    from polyamp.data.timbre_augment import random_bin_shifts, shift_spectrogram_and_notes

    spec, notes, targets = _batch()
    same = shift_spectrogram_and_notes(
        tf.constant(spec),
        tf.constant(notes),
        {k: tf.constant(v) for k, v in targets.items()},
        tf.zeros([2], tf.int32),
        BINS_PER_OCTAVE,
    )
    assert np.array_equal(same[0].numpy(), spec) and np.array_equal(same[1].numpy(), notes)
    assert np.array_equal(same[2]["family"].numpy(), targets["family"])
    drawn = random_bin_shifts(4000, 3, seed=1).numpy()
    assert set(drawn.tolist()) == {-3, -2, -1, 0, 1, 2, 3}


def test_pipeline_rejects_a_negative_shift() -> None:
    from polyamp.data.timbre_pipeline import check_pipeline_hparams
    from polyamp.errors import ConfigError
    from polyamp.models.timbre_hparams import TimbreHParams

    with pytest.raises(ConfigError, match="timbre_pitch_shift_bins"):
        check_pipeline_hparams(TimbreHParams(timbre_pitch_shift_bins=-1))
    with pytest.raises(ConfigError, match="timbre_eq_augment_db"):
        check_pipeline_hparams(TimbreHParams(timbre_eq_augment_db=-3.0))


def test_eq_curves_are_piecewise_linear_between_octave_gains_within_the_limit() -> None:
    from polyamp.data.timbre_augment import random_eq_curves

    curves = random_eq_curves(500, 229, BINS_PER_OCTAVE, 6.0, seed=2).numpy()
    assert curves.shape == (500, 229)
    assert np.abs(curves).max() <= 6.0 and np.abs(curves).max() > 5.0
    # Between two octave anchors (bins 28 and 56) the curve is a straight line.
    middle = curves[:, 28:57]
    np.testing.assert_allclose(np.diff(middle, n=2, axis=1), 0.0, atol=1e-4)
    assert np.std(curves[:, 28] - curves[:, 56]) > 1.0  # octaves get their own gains


def test_equalisation_adds_the_gain_in_the_log_scale_and_keeps_the_floor() -> None:
    import tensorflow as tf

    from polyamp.data.timbre_augment import equalise_spectrogram

    spec = np.array([[[0.0, 0.5, 0.02, 0.9]]], np.float32)  # [1 crop, 1 frame, 4 bins]
    curves = np.array([[6.0, -10.0, -5.0, 10.0]], np.float32)  # dB
    out = equalise_spectrogram(tf.constant(spec), tf.constant(curves)).numpy()
    # dB / 100 in the log scale; the floor bin stays at 0, a bin pushed below the floor stops there.
    np.testing.assert_allclose(out[0, 0], [0.0, 0.4, 0.0, 1.0], atol=1e-6)


def test_onset_jitter_moves_starts_within_the_limit_and_keeps_padding() -> None:
    import tensorflow as tf

    from polyamp.data.timbre_augment import jitter_note_onsets

    rng = np.random.default_rng(0)
    starts = rng.uniform(0.0, 4.0, (4, 50)).astype(np.float32)
    notes = np.stack([np.full((4, 50), 60.0, np.float32), starts, starts + 0.01], axis=-1)
    notes[:, 40:] = -1.0  # padding rows
    moved = jitter_note_onsets(tf.constant(notes), 0.05, crop_seconds=4.0).numpy()
    real = notes[:, :40]
    offsets = moved[:, :40, 1] - real[..., 1]
    inside = (real[..., 1] > 0.05) & (real[..., 1] < 3.95)
    assert np.all(np.abs(offsets[inside]) <= 0.05 + 1e-6)
    assert np.abs(offsets[inside]).max() > 0.02 and (offsets[inside] > 0).any() and (offsets[inside] < 0).any()
    assert np.all((moved[:, :40, 1] >= 0.0) & (moved[:, :40, 1] <= 4.0))
    assert np.all(moved[:, :40, 2] >= moved[:, :40, 1])  # an end never comes before its start
    assert np.all(moved[:, :40, 2] >= real[..., 2])  # ends only move up, and only when a start passes them
    np.testing.assert_array_equal(moved[..., 0], notes[..., 0])
    np.testing.assert_array_equal(moved[:, 40:], notes[:, 40:])


def test_pipeline_rejects_a_negative_or_crop_long_onset_jitter() -> None:
    from polyamp.data.timbre_pipeline import check_pipeline_hparams
    from polyamp.errors import ConfigError
    from polyamp.models.timbre_hparams import TimbreHParams

    for value in (-0.01, 4.0):
        with pytest.raises(ConfigError, match="timbre_onset_jitter_seconds"):
            check_pipeline_hparams(TimbreHParams(timbre_onset_jitter_seconds=value, truncated_length_secs=4.0))
