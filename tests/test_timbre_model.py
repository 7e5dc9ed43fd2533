"""The Timbre model: vectorised note pooling, model shapes and masking, loss, data pipeline, learning.

The learning test renders General MIDI instruments of distinct families with the small TimGM6mb
SoundFont into 2-3-instrument mixes; skipped only if libfluidsynth or that file is missing.
"""

from __future__ import annotations

import dataclasses
import io
import time
from pathlib import Path

import numpy as np
import pytest

from polyamp.errors import ConfigError, MissingDependencyError
from polyamp.models.note_pooling import (
    BELOW_PITCH_GAIN,
    POOLING_METHODS,
    note_frame_spans,
    pitch_weights,
    pool_notes,
    reference_pool_notes,
    reference_spans,
)
from polyamp.models.timbre_hparams import FAMILY_RECALL_WEIGHT_2020, TimbreHParams
from polyamp.notes.families import DEFAULT_PROGRAMS, NUM_FAMILIES, family_index

TIMGM6MB = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")
SR = 16000

TINY = dict(
    timbre_conv_num_layers=2,
    timbre_conv_num_filters=8,
    timbre_num_filters=(8, 4, 4),
    timbre_local_conv_num_filters=16,
    timbre_penultimate_fc_size=16,
    timbre_dropout_drop_amts=(0.0, 0.0, 0.0),
)

TINY_PATCH = dict(
    TINY,
    timbre_pooled_branch=False,
    timbre_patch_frames=8,
    timbre_patch_bins=24,
    timbre_patch_filters=(4, 8),
    timbre_pitch_feature=True,
    timbre_final_activation="softmax",
)
"""The patch-only model (timbre/patch.gin's design), tiny."""


def _random_notes(rng: np.random.Generator, batch: int, count: int, length_s: float) -> np.ndarray:
    """Random notes including padding, zero-length notes, notes before, across and past the map."""
    start = rng.uniform(-1.0, length_s + 1.0, size=(batch, count))
    duration = rng.choice([0.0, 0.01, 0.3, 2.0, 50.0], size=(batch, count)) * rng.uniform(0.5, 1.0, (batch, count))
    pitch = rng.integers(21, 109, size=(batch, count)).astype(np.float64)
    pitch[rng.random((batch, count)) < 0.2] = -1.0
    notes = np.stack([pitch, start, start + duration], axis=-1)
    notes[pitch < 0] = -1.0
    return notes.astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Note pooling


def test_frame_spans_follow_the_rules_at_the_edges() -> None:
    fps, frames = 10.0, 20
    notes = np.array(
        [
            [
                [60, 0.0, 0.0],  # zero length at 0: one frame
                [60, 0.0, 0.1],  # exactly one frame
                [60, 0.05, 0.25],  # [0, 3)
                [60, 1.95, 2.5],  # runs past the end: clipped to [19, 20)
                [60, 2.0, 3.0],  # starts at the end: empty
                [60, -0.5, 0.15],  # starts before the map: [0, 2)
                [60, -0.5, -0.1],  # wholly before the map: empty
                [-1, -1, -1],  # padding: empty
                [60, 0.7, 0.3],  # end before start: one frame
            ]
        ],
        np.float32,
    )
    first, stop = (tensor.numpy() for tensor in note_frame_spans(notes, fps, frames))
    expected_first = [0, 0, 0, 19, 20, 0, 0, 0, 7]
    expected_stop = [1, 1, 3, 20, 20, 2, 0, 0, 8]
    assert first[0].tolist() == expected_first
    assert stop[0].tolist() == expected_stop
    ref_first, ref_stop = reference_spans(notes, fps, frames)
    np.testing.assert_array_equal(np.where(ref_stop > ref_first, ref_first, 0), np.where(stop > first, first, 0))
    np.testing.assert_array_equal(ref_stop - ref_first, stop - first)


@pytest.mark.parametrize("method", POOLING_METHODS)
def test_pooling_matches_the_slow_reference(method: str) -> None:
    rng = np.random.default_rng(7)
    for batch, frames, bins, channels, count in [(3, 37, 5, 4, 40), (1, 1, 3, 2, 5), (2, 60, 8, 3, 1)]:
        fps = float(rng.uniform(3.0, 12.0))
        features = rng.normal(size=(batch, frames, bins, channels)).astype(np.float32)
        notes = _random_notes(rng, batch, count, frames / fps)
        expected = reference_pool_notes(features, notes, fps)
        got = pool_notes(features, notes, fps, method=method).numpy()
        np.testing.assert_array_equal(got, expected)
        assert np.count_nonzero(np.abs(expected).sum(axis=(2, 3))) > 0


def test_mean_pooling_matches_the_slow_reference() -> None:
    from polyamp.models.note_pooling import mean_pool_notes

    rng = np.random.default_rng(11)
    features = rng.normal(size=(3, 41, 5, 3)).astype(np.float32)
    notes = _random_notes(rng, 3, 30, 41 / 7.0)
    expected = reference_pool_notes(features, notes, 7.0, reduce="mean")
    np.testing.assert_allclose(mean_pool_notes(features, notes, 7.0).numpy(), expected, rtol=1e-5, atol=1e-5)


def test_pooling_runs_in_tf_function_with_dynamic_sizes_and_has_max_gradients() -> None:
    import tensorflow as tf

    fps = 5.0
    spec = [tf.TensorSpec([None, None, 4, 2], tf.float32), tf.TensorSpec([None, None, 3], tf.float32)]
    traced = {
        method: tf.function(lambda f, n, m=method: pool_notes(f, n, fps, m), input_signature=spec)
        for method in POOLING_METHODS
    }
    rng = np.random.default_rng(3)
    for frames, count in [(10, 3), (25, 17), (4, 0)]:
        features = rng.normal(size=(2, frames, 4, 2)).astype(np.float32)
        notes = _random_notes(rng, 2, count, frames / fps)
        expected = reference_pool_notes(features, notes, fps)
        for method in POOLING_METHODS:
            got = traced[method](features, notes).numpy()
            assert got.shape == (2, count, 4, 2)
            np.testing.assert_array_equal(got, expected)

    # The gradient of a pooled value reaches exactly the frame holding the maximum.
    features = tf.constant(rng.normal(size=(1, 12, 4, 2)).astype(np.float32))
    notes = tf.constant([[[60.0, 0.4, 1.0], [-1.0, -1.0, -1.0]]])  # frames [2, 5)
    for method in POOLING_METHODS:
        with tf.GradientTape() as tape:
            tape.watch(features)
            total = tf.reduce_sum(pool_notes(features, notes, fps, method))
        gradient = tape.gradient(total, features).numpy()[0]
        argmax = 2 + np.argmax(features.numpy()[0, 2:5], axis=0)  # [bins, channels]
        expected = np.zeros_like(gradient)
        for b in range(4):
            for c in range(2):
                expected[argmax[b, c], b, c] = 1.0
        np.testing.assert_array_equal(gradient, expected)


def test_pitch_weights_high_pass_below_the_note_and_decay_above() -> None:
    bins, per_bin = 57, 4.0
    weights = pitch_weights(np.array([[21.0, 60.0, 100.0]], np.float32), bins, per_bin, 12.0).numpy()[0]
    for row, pitch in zip(weights, (21, 60, 100), strict=True):
        cut = int(np.floor(max(round((pitch - 1 - 21) * 28 / 12), 0) / per_bin))
        assert np.all(row[:cut] == pytest.approx(BELOW_PITCH_GAIN))
        assert row[cut] == pytest.approx(1.0)
        assert np.all(np.diff(row[cut:]) <= 1e-7)  # falls towards the top
        assert row[-1] < 0.7
    # A higher note is attenuated less at the top bin.
    assert weights[2, -1] > weights[1, -1] > weights[0, -1]
    flat = pitch_weights(np.array([[60.0]], np.float32), bins, per_bin, 1.0).numpy()[0, 0]
    assert set(np.unique(flat)) == {np.float32(BELOW_PITCH_GAIN), np.float32(1.0)}


def test_pitch_relative_bins_put_the_fundamental_on_row_zero() -> None:
    from polyamp.models.note_pooling import pitch_relative_bins

    rng = np.random.default_rng(4)
    pooled = rng.normal(size=(2, 3, 20, 2)).astype(np.float32)
    pitches = np.array([[21.0, 60.0, 108.0], [40.0, 90.0, 33.0]], np.float32)
    got = pitch_relative_bins(pooled, pitches, 6, 4.0).numpy()
    assert got.shape == (2, 3, 6, 2)
    for b in range(2):
        for n in range(3):
            k = int(np.floor(max(round((pitches[b, n] - 1 - 21) * 28 / 12), 0) / 4.0))
            for r in range(6):
                expected = pooled[b, n, k + r] if k + r < 20 else np.zeros(2, np.float32)
                np.testing.assert_array_equal(got[b, n, r], expected)
    # An octave up moves the fundamental's row by 28 CQT bins = 7 feature bins.
    low = pitch_relative_bins(np.arange(40, dtype=np.float32).reshape(1, 1, 40, 1), [[48.0]], 1, 4.0).numpy()
    high = pitch_relative_bins(np.arange(40, dtype=np.float32).reshape(1, 1, 40, 1), [[60.0]], 1, 4.0).numpy()
    assert high[0, 0, 0, 0] - low[0, 0, 0, 0] == 7


def test_note_patches_are_onset_and_pitch_aligned() -> None:
    import math

    from polyamp.models.note_pooling import note_patches

    rng = np.random.default_rng(9)
    spec = rng.uniform(size=(2, 40, 229)).astype(np.float32)
    fps = 62.5
    notes = _random_notes(rng, 2, 12, 40 / fps)
    notes[0, 0] = [108.0, 0.0, 0.1]  # top of the range: columns past bin 228 are zero
    got = note_patches(spec, notes, fps, 6, 30, frames_before=2).numpy()
    assert got.shape == (2, 12, 6, 30)
    for b in range(2):
        for n in range(12):
            pitch, start, _ = notes[b, n]
            if pitch < 0:
                assert np.all(got[b, n] == 0)
                continue
            onset = math.floor(start * fps + 1e-4) - 2
            low = max(round((pitch - 1 - 21) * 28 / 12), 0)
            for i in range(6):
                for j in range(30):
                    t, f = onset + i, low + j
                    expected = spec[b, t, f] if 0 <= t < 40 and f < 229 else 0.0
                    assert got[b, n, i, j] == expected


# ---------------------------------------------------------------------------------------------
# Model


def test_model_shapes_masking_and_padding_independence() -> None:
    from polyamp.models.timbre import build_timbre_model, feature_frames_per_second
    from polyamp.registry import MODELS

    hparams = TimbreHParams(**TINY)
    assert MODELS.get("timbre") is build_timbre_model
    assert feature_frames_per_second(hparams) == pytest.approx(62.5 / 9)
    model = build_timbre_model(hparams)
    rng = np.random.default_rng(0)
    spec = rng.uniform(0, 1, size=(2, 123, 229)).astype(np.float32)
    notes = np.array(
        [[[60, 0.1, 0.6], [40, 1.0, 1.9], [-1, -1, -1]], [[70, 0.0, 2.0], [-1, -1, -1], [-1, -1, -1]]], np.float32
    )
    probs = model({"timbre_spec": spec, "notes": notes}, training=False)["family_probs"].numpy()
    assert probs.shape == (2, 3, NUM_FAMILIES)
    assert np.all(probs[0, 2] == 0) and np.all(probs[1, 1:] == 0)
    assert np.all(probs[0, :2] > 0) and np.all(probs[0, :2] < 1)
    # Padding rows and other notes do not change a note's prediction.
    fewer = model({"timbre_spec": spec[:1], "notes": notes[:1, :1]}, training=False)["family_probs"].numpy()
    np.testing.assert_allclose(fewer[0, 0], probs[0, 0], rtol=1e-5, atol=1e-6)
    # Any length: a clip of a length that is not a multiple of the time pooling.
    odd = model({"timbre_spec": spec[:, :10], "notes": notes}, training=False)["family_probs"]
    assert odd.shape == (2, 3, NUM_FAMILIES)

    relative_hparams = dataclasses.replace(
        hparams,
        timbre_pitch_relative_bins=12,
        timbre_pitch_feature=True,
        timbre_spec_normalize="standardize",
        timbre_use_batch_normalization=True,
        timbre_pool_mean=True,
        timbre_patch_frames=8,
        timbre_patch_bins=40,
    )
    relative = build_timbre_model(relative_hparams)
    assert relative.get_layer("note_pooling").output.shape[3] == 2 * model.get_layer("note_pooling").output.shape[3]
    assert relative.get_layer("note_pooling").output.shape[2] == 12
    rel = relative({"timbre_spec": spec, "notes": notes}, training=False)["family_probs"].numpy()
    assert rel.shape == (2, 3, NUM_FAMILIES) and np.all(rel[0, 2] == 0) and np.all(rel[0, :2] > 0)

    softmax = build_timbre_model(dataclasses.replace(hparams, timbre_final_activation="softmax"))
    soft = softmax({"timbre_spec": spec, "notes": notes}, training=False)["family_probs"].numpy()
    np.testing.assert_allclose(soft[0, :2].sum(axis=-1), 1.0, rtol=1e-5)
    assert np.all(soft[1, 1:] == 0)


def test_patch_only_model_sees_only_each_notes_patch_and_ignores_padding() -> None:
    """timbre/patch.gin's design: no whole-spectrogram branch; a note's output depends on its patch only."""
    import tensorflow as tf

    from polyamp.models.timbre import build_timbre_model

    hparams = TimbreHParams(
        **{
            **TINY_PATCH,
            "timbre_duration_feature": True,
            "timbre_use_batch_normalization": True,
            "timbre_final_activation": "softmax",
        }
    )
    model = build_timbre_model(hparams)
    assert not any(layer.name.startswith(("conv", "bank", "note_pooling")) for layer in model.layers)
    rng = np.random.default_rng(3)
    spec = rng.uniform(0, 1, size=(2, 200, 229)).astype(np.float32)
    notes = np.array(
        [[[60, 0.1, 0.6], [40, 1.0, 1.9], [-1, -1, -1]], [[70, 0.0, 2.0], [-1, -1, -1], [-1, -1, -1]]], np.float32
    )
    probs = model({"timbre_spec": spec, "notes": notes}, training=False)["family_probs"].numpy()
    np.testing.assert_allclose(probs[0, :2].sum(-1), 1.0, rtol=1e-5)
    assert np.all(probs[0, 2] == 0) and np.all(probs[1, 1:] == 0)
    fewer = model({"timbre_spec": spec[:1], "notes": notes[:1, :1]}, training=False)["family_probs"].numpy()
    np.testing.assert_allclose(fewer[0, 0], probs[0, 0], rtol=1e-5, atol=1e-6)
    # The spectrogram far from note 0's patch (frames 40 on; the patch spans frames 4-11) does not
    # change its prediction except through the normalisation statistics, which we keep equal by
    # permuting those frames.
    shuffled = spec.copy()
    shuffled[0, 40:] = shuffled[0, 40:][rng.permutation(160)]
    moved = model({"timbre_spec": shuffled[:1], "notes": notes[:1, :1]}, training=False)["family_probs"].numpy()
    np.testing.assert_allclose(moved[0, 0], probs[0, 0], rtol=1e-5, atol=1e-6)
    # Gradients reach every trainable variable, with a batch that holds padding.
    with tf.GradientTape() as tape:
        out = model({"timbre_spec": spec, "notes": notes}, training=True)["family_probs"]
        loss = -tf.reduce_sum(tf.math.log(out[0, :2, 3] + 1e-6))
    grads = tape.gradient(loss, model.trainable_variables)
    assert all(grad is not None for grad in grads)


def test_note_context_shares_evidence_between_real_notes_only() -> None:
    """timbre/context.gin's design: with context blocks a note's output depends on the other real notes
    of its input, never on padding or on another input of the batch."""
    import tensorflow as tf

    from polyamp.models.timbre import build_timbre_model

    hparams = TimbreHParams(
        **{
            **TINY_PATCH,
            "timbre_penultimate_fc_size": 16,
            "timbre_final_activation": "softmax",
            "timbre_context_layers": 2,
            "timbre_context_heads": 2,
        }
    )
    model = build_timbre_model(hparams)
    assert sum(layer.name.endswith("_attention") for layer in model.layers) == 2
    rng = np.random.default_rng(5)
    spec = rng.uniform(0, 1, size=(2, 200, 229)).astype(np.float32)
    pad = [-1.0, -1.0, -1.0]
    notes = np.array([[[60, 0.1, 0.6], [40, 1.0, 1.9], pad, pad], [[70, 0.0, 2.0], pad, pad, pad]], np.float32)

    def run(note_rows: np.ndarray, spectrogram: np.ndarray = spec) -> np.ndarray:
        return model({"timbre_spec": spectrogram, "notes": note_rows}, training=False)["family_probs"].numpy()

    probs = run(notes)
    np.testing.assert_allclose(probs[0, :2].sum(-1), 1.0, rtol=1e-5)
    assert np.all(probs[0, 2:] == 0) and np.all(probs[1, 1:] == 0)
    # Padding rows (whatever their other columns) and the padded length change nothing.
    odd_padding = notes.copy()
    odd_padding[0, 3] = [-1, 0.5, 1.5]
    np.testing.assert_allclose(run(odd_padding)[0, :2], probs[0, :2], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(run(notes[:, :2])[0, :2], probs[0, :2], rtol=1e-5, atol=1e-6)
    # The other input of the batch is not context: batch element 1 alone gives the same output.
    np.testing.assert_allclose(run(notes[1:], spec[1:])[0, 0], probs[1, 0], rtol=1e-5, atol=1e-6)
    # One more real note in the input changes the first note's output: context is used.
    more = notes.copy()
    more[0, 2] = [52, 1.5, 1.9]
    assert np.abs(run(more)[0, 0] - probs[0, 0]).max() > 1e-4
    with tf.GradientTape() as tape:
        out = model({"timbre_spec": spec, "notes": notes}, training=True)["family_probs"]
        loss = -tf.reduce_sum(tf.math.log(out[0, :2, 3] + 1e-6))
    grads = tape.gradient(loss, model.trainable_variables)
    assert all(grad is not None for grad in grads)


def test_bad_hparams_raise_config_errors() -> None:
    from polyamp.models.timbre import build_timbre_model

    for bad in [
        dict(timbre_dropout_drop_amts=(0.1, 0.1)),
        dict(timbre_num_filters=(8, 8)),
        dict(family_recall_weight=(1.0,) * 11),
        dict(timbre_final_activation="relu"),
        dict(timbre_pool_size=((3, 2),)),
        dict(timbre_spec_normalize="zscore"),
        dict(timbre_pooled_branch=False),  # no patches either: the model would see no audio
        dict(timbre_context_layers=-1),
        dict(timbre_context_layers=1, timbre_context_heads=3),  # 3 does not divide the 16-wide penultimate layer
        dict(timbre_context_dropout=1.0),
    ]:
        with pytest.raises(ConfigError, match="TimbreHParams"):
            build_timbre_model(TimbreHParams(**{**TINY, **bad}))


def test_hparams_keep_the_2020_names_and_fix_the_decay() -> None:
    hparams = TimbreHParams()
    assert hparams.family_recall_weight == FAMILY_RECALL_WEIGHT_2020
    assert hparams.family_recall_weight[family_index("keyboard")] == 0.05
    assert hparams.timbre_num_classes == 12 and hparams.timbre_hop_length == 256
    assert hparams.timbre_decay_rate <= 1e-4  # 2020's 1e-2 per step halved the rate every 100 steps
    assert all(
        isinstance(getattr(hparams, field.name), (int, float, str, bool, tuple))
        for field in dataclasses.fields(hparams)
    )


def test_hparams_survive_the_json_override_check() -> None:
    """Every field (tuples of pairs included) round-trips through config's --hparams type check."""
    import json

    from polyamp.config import _check_value

    hparams = TimbreHParams()
    for field in dataclasses.fields(hparams):
        value = getattr(hparams, field.name)
        assert _check_value(field.name, field.type, json.loads(json.dumps(value))) == value
    with pytest.raises(ConfigError, match="timbre_pool_size"):
        _check_value("timbre_pool_size", "tuple[tuple[int, int], ...]", [[3, "x"]])


def test_gin_presets_parse() -> None:
    import gin

    from polyamp.config import parse_gin

    try:
        for preset, filters in [("timbre/tiny.gin", 8), ("timbre/small.gin", 16)]:
            parse_gin([preset])
            hparams = TimbreHParams()
            assert hparams.timbre_hop_length == 256
            assert hparams.timbre_conv_num_filters == filters
            assert gin.query_parameter("build_components.model_type") == "timbre"
        with gin.unlock_config():
            gin.clear_config()
        parse_gin(["timbre/context.gin"])
        hparams = TimbreHParams()
        assert hparams.timbre_context_layers == 2 and hparams.timbre_onset_notes_only
        assert not hparams.timbre_pooled_branch and hparams.timbre_patch_frames == 32  # from timbre/patch.gin
        assert hparams.timbre_program_loss_weight == 0.0
        with gin.unlock_config():
            gin.clear_config()
        parse_gin(["timbre/programs.gin"])
        hparams = TimbreHParams()
        assert hparams.timbre_program_loss_weight == 1.0 and hparams.timbre_context_layers == 2
        assert hparams.timbre_pitch_shift_bins == 0
        with gin.unlock_config():
            gin.clear_config()
        parse_gin(["timbre/augmented.gin"])
        hparams = TimbreHParams()
        assert hparams.timbre_pitch_shift_bins == 7 and hparams.timbre_program_loss_weight == 1.0
        assert hparams.timbre_eq_augment_db == 0.0
        with gin.unlock_config():
            gin.clear_config()
        parse_gin(["timbre/equalised.gin"])
        hparams = TimbreHParams()
        assert hparams.timbre_eq_augment_db == 9.0 and hparams.timbre_pitch_shift_bins == 7
        with gin.unlock_config():
            gin.clear_config()
        parse_gin(["timbre/jittered.gin"])
        hparams = TimbreHParams()
        assert hparams.timbre_onset_jitter_seconds == 0.048 and hparams.timbre_pitch_shift_bins == 7
    finally:
        with gin.unlock_config():
            gin.clear_config()


# ---------------------------------------------------------------------------------------------
# Loss


def test_loss_ignores_padded_notes_and_down_weights_absent_classes() -> None:
    import tensorflow as tf

    from polyamp.models.timbre_losses import (
        class_recall_weights,
        family_accuracy,
        recall_weighted_family_bce,
        timbre_loss,
    )

    hparams = TimbreHParams()
    weights = np.array(class_recall_weights(hparams))
    np.testing.assert_allclose(weights, 6.0 * np.array(FAMILY_RECALL_WEIGHT_2020))
    rng = np.random.default_rng(1)
    labels = np.zeros((2, 4, 12), np.float32)
    labels[0, 0, 0] = labels[0, 1, 3] = labels[1, 0, 3] = 1.0
    mask = np.array([[1, 1, 0, 0], [1, 0, 0, 0]], np.float32)
    probs = rng.uniform(0.05, 0.95, size=(2, 4, 12)).astype(np.float32)

    # numpy reference
    bce = -(labels * np.log(probs) + (1 - labels) * np.log(1 - probs))
    inverse = 1.0 / weights
    note_weights = (labels + inverse) / (1 + inverse)
    per_class = (bce * note_weights * mask[..., None]).sum(axis=(0, 1)) / mask.sum()
    present = (labels * mask[..., None]).sum(axis=(0, 1)) > 0
    expected = np.mean(per_class * np.where(present, 1.0, 0.01))
    got = float(timbre_loss(labels, probs, mask, hparams))
    assert got == pytest.approx(expected, rel=1e-5)

    # Padded notes: any labels and predictions there change nothing.
    noisy_labels, noisy_probs = labels.copy(), probs.copy()
    noisy_labels[0, 2:, 5] = 1.0
    noisy_probs[0, 2:] = 0.999
    assert float(timbre_loss(noisy_labels, noisy_probs, mask, hparams)) == pytest.approx(got, rel=1e-6)

    # An absent class counts 0.01 as much as a present one with the same errors.
    one_class = np.zeros((1, 1, 12), np.float32)
    one_class[0, 0, 2] = 1.0
    flat = np.full((1, 1, 12), 0.5, np.float32)
    unit = np.zeros(12)
    unit[2] = unit[7] = 1.0
    loss_2 = float(recall_weighted_family_bce(one_class, flat, np.ones((1, 1)), unit))
    per = np.log(2.0)
    # class 2 present and positive (weight 1), class 7 absent, negative (weight 1/2 * 0.01), others plain BCE * 0.01.
    assert loss_2 == pytest.approx((per + per * 0.5 * 0.01 + 10 * per * 0.01) / 12, rel=1e-5)

    # Accuracy counts only real notes.
    perfect = labels * 0.9 + 0.05
    assert float(family_accuracy(labels, perfect, mask)) == 1.0
    wrong = np.roll(perfect, 1, axis=-1)
    assert float(family_accuracy(labels, wrong, mask)) == 0.0
    assert float(timbre_loss(labels, perfect, mask, hparams)) < got
    assert float(tf.constant(timbre_loss(labels, probs, np.zeros_like(mask), hparams))) == 0.0

    softmax = dataclasses.replace(hparams, timbre_final_activation="softmax")
    soft_probs = np.full((2, 4, 12), 1 / 12, np.float32)
    assert float(timbre_loss(labels, soft_probs, mask, softmax)) == pytest.approx(np.log(12.0), rel=1e-5)


# ---------------------------------------------------------------------------------------------
# Data pipeline


def _sequence(notes: list[tuple[int, float, float, int, bool]]):
    from note_seq.protobuf import music_pb2

    sequence = music_pb2.NoteSequence()
    for pitch, start, end, program, is_drum in notes:
        sequence.notes.add(pitch=pitch, start_time=start, end_time=end, program=program, is_drum=is_drum, velocity=90)
    sequence.total_time = max((note[2] for note in notes), default=0.0)
    return sequence


def test_sequence_notes_drop_drums_and_out_of_range_pitches() -> None:
    from polyamp.data.timbre_pipeline import sequence_notes

    sequence = _sequence(
        [(60, 1.0, 2.0, 0, False), (36, 0.5, 1.0, 0, True), (10, 0.0, 1.0, 33, False), (40, 0.2, 0.1, 33, False)]
    )
    rows = sequence_notes(sequence.SerializeToString())
    np.testing.assert_allclose(
        rows, [[40, 0.2, 0.2, family_index("bass"), 33], [60, 1.0, 2.0, family_index("keyboard"), 0]]
    )
    assert sequence_notes(_sequence([])).shape == (0, 5)


def test_crop_notes_clip_subsample_and_pad() -> None:
    import tensorflow as tf

    from polyamp.data.timbre_pipeline import crop_notes_tf

    notes = tf.constant(
        [
            [60, 0.5, 1.5, 4],  # across the crop start: [0, 0.5]
            [62, 1.2, 1.4, 0],  # inside
            [64, 2.5, 3.5, 3],  # across the crop end: [1.5, 2]
            [65, 1.3, 1.3, 7],  # zero length inside
            [67, 3.0, 4.0, 2],  # after the crop
            [69, 0.0, 0.9, 2],  # before the crop
        ],
        tf.float32,
    )
    rows, labels, mask = (tensor.numpy() for tensor in crop_notes_tf(notes, 1.0, 2.0, 8))
    assert len(crop_notes_tf(tf.pad(notes, [[0, 0], [0, 1]]), 1.0, 2.0, 8, with_programs=True)) == 4
    assert rows.shape == (8, 3) and labels.shape == (8, 12) and mask.shape == (8,)
    assert mask.tolist() == [1, 1, 1, 1, 0, 0, 0, 0]
    kept = np.array(sorted(tuple(float(value) for value in row) for row in rows[:4]))
    expected = [(60.0, 0.0, 0.5), (62.0, 0.2, 0.4), (64.0, 1.5, 2.0), (65.0, 0.3, 0.3)]
    np.testing.assert_allclose(kept, expected, atol=1e-5)
    assert np.all(rows[4:] == -1) and np.all(labels[4:] == 0)
    for row, label in zip(rows[:4], labels[:4], strict=True):
        family = {60: 4, 62: 0, 64: 3, 65: 7}[int(row[0])]
        assert label.argmax() == family and label.sum() == 1
    rows, _, mask = (tensor.numpy() for tensor in crop_notes_tf(notes, 1.0, 2.0, 2))
    assert mask.tolist() == [1, 1] and rows.shape == (2, 3)
    # Only the notes whose onset is in the crop, as evaluation crops present them.
    rows, _, mask = (tensor.numpy() for tensor in crop_notes_tf(notes, 1.0, 2.0, 8, onsets_only=True))
    assert mask.tolist() == [1, 1, 1, 0, 0, 0, 0, 0]
    kept = np.array(sorted(tuple(float(value) for value in row) for row in rows[:3]))
    np.testing.assert_allclose(kept, [(62.0, 0.2, 0.4), (64.0, 1.5, 2.0), (65.0, 0.3, 0.3)], atol=1e-5)


def _wav_bytes(samples: np.ndarray) -> bytes:
    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, samples, SR, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


FAMILIES = ("bass", "flute", "guitar", "keyboard", "organ", "brass")


@pytest.fixture(scope="module")
def family_mixes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TFRecord of 12 four-second mixes of 2-3 instruments (TimGM6mb), each playing 2-3 notes."""
    from polyamp.synth.fluidsynth import load_library

    try:
        load_library()
    except MissingDependencyError as error:
        pytest.skip(str(error))
    if not TIMGM6MB.is_file():
        pytest.skip(f"{TIMGM6MB} is not installed (apt-get install timgm6mb-soundfont)")
    from note_seq.protobuf import music_pb2

    from polyamp.data.tfrecord import make_example, write_tfrecord
    from polyamp.synth.piece import NoteEvent, Part
    from polyamp.synth.render import SoundFontRenderer

    rng = np.random.default_rng(5)
    records = []
    with SoundFontRenderer(TIMGM6MB, reverb=False, internal_rate_hz=SR) as renderer:
        for index in range(12):
            chosen = rng.choice(len(FAMILIES), size=int(rng.integers(2, 4)), replace=False)
            sequence = music_pb2.NoteSequence()
            mix = np.zeros(4 * SR, np.float32)
            for stem, family_number in enumerate(chosen):
                family = family_index(FAMILIES[family_number])
                program = DEFAULT_PROGRAMS[family]
                low, high = (33, 52) if FAMILIES[family_number] == "bass" else (55, 79)
                events = []
                for _ in range(int(rng.integers(2, 4))):
                    start = float(rng.uniform(0.0, 3.0))
                    events.append(
                        NoteEvent(int(rng.integers(low, high)), start, start + float(rng.uniform(0.4, 1.0)), 100)
                    )
                events.sort(key=lambda event: event.start_s)
                part = Part(name=FAMILIES[family_number], program=program, is_drum=False, notes=tuple(events))
                mix += renderer.render_part(part, 4.0)
                for event in events:
                    sequence.notes.add(
                        pitch=event.pitch,
                        start_time=event.start_s,
                        end_time=event.end_s,
                        velocity=event.velocity,
                        program=program,
                        instrument=stem,
                    )
            sequence.total_time = 4.0
            mix *= 0.9 / max(float(np.abs(mix).max()), 1e-6)
            records.append(make_example(f"mix{index}", sequence, _wav_bytes(mix)))
    path = tmp_path_factory.mktemp("timbre") / "mixes.tfrecord"
    write_tfrecord(path, records)
    return path


def test_pipeline_batches_have_static_shapes_and_consistent_labels(family_mixes: Path) -> None:
    from polyamp.data.datasets import TFRecordDataset
    from polyamp.data.timbre_pipeline import timbre_training_batches

    hparams = TimbreHParams(**TINY, batch_size=3, truncated_length_secs=2.0, timbre_max_notes=5, crops_per_example=2)
    batches = timbre_training_batches(TFRecordDataset(str(family_mixes)), hparams, seed=0)
    assert batches.element_spec[0]["timbre_spec"].shape == (3, 125, 229)
    assert batches.element_spec[0]["notes"].shape == (3, 5, 3)
    assert batches.element_spec[1]["family"].shape == (3, 5, 12)
    allowed = {family_index(name) for name in FAMILIES}
    for inputs, targets in batches.take(4):
        notes, family, mask = inputs["notes"].numpy(), targets["family"].numpy(), targets["mask"].numpy()
        real = mask > 0
        assert np.all(mask.sum(axis=1) >= 1)
        assert np.all(notes[real][:, 1] >= 0) and np.all(notes[real][:, 2] <= 2.0 + 1e-6)
        assert np.all(notes[real][:, 2] >= notes[real][:, 1])
        assert np.all(notes[~real] == -1) and np.all(family[~real] == 0)
        assert np.all(family[real].sum(axis=-1) == 1)
        assert set(family[real].argmax(axis=-1).tolist()) <= allowed
        assert np.isfinite(inputs["timbre_spec"].numpy()).all()


def test_pipeline_rejects_bad_hparams(family_mixes: Path) -> None:
    from polyamp.data.datasets import TFRecordDataset
    from polyamp.data.timbre_pipeline import timbre_training_batches

    source = TFRecordDataset(str(family_mixes))
    for bad in [dict(timbre_num_classes=11, family_recall_weight=(1.0,) * 11), dict(timbre_max_notes=0)]:
        with pytest.raises(ConfigError):
            timbre_training_batches(source, TimbreHParams(**bad))


def test_tiny_model_learns_families_from_rendered_mixes(family_mixes: Path) -> None:
    import keras
    import tensorflow as tf

    from polyamp.data.datasets import TFRecordDataset
    from polyamp.data.timbre_pipeline import timbre_training_batches
    from polyamp.models.timbre import build_timbre_model, timbre_optimizer
    from polyamp.models.timbre_losses import family_accuracy_counts, timbre_loss

    keras.utils.set_random_seed(0)
    hparams = TimbreHParams(
        **{
            **TINY,
            "timbre_conv_num_filters": 16,
            "timbre_local_conv_num_filters": 32,
            "timbre_penultimate_fc_size": 32,
        },
        batch_size=4,
        truncated_length_secs=4.0,
        timbre_max_notes=12,
        crops_per_example=1,
        shuffle_buffer_size=12,
        timbre_learning_rate=3e-3,
    )
    model = build_timbre_model(hparams)
    optimizer = timbre_optimizer(hparams)
    batches = timbre_training_batches(TFRecordDataset(str(family_mixes)), hparams, seed=0)

    @tf.function
    def step(inputs, targets):
        with tf.GradientTape() as tape:
            probs = model(inputs, training=True)["family_probs"]
            loss = timbre_loss(targets["family"], probs, targets["mask"], hparams)
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        return (loss, *family_accuracy_counts(targets["family"], probs, targets["mask"]))

    started = time.perf_counter()
    history = []
    for inputs, targets in batches.take(150):
        history.append([float(value) for value in step(inputs, targets)])
        if time.perf_counter() - started > 90:
            break
    history = np.array(history)
    first, last = history[:10], history[-15:]
    assert len(history) >= 60, f"only {len(history)} steps in 90 s"
    assert last[:, 0].mean() < 0.5 * first[:, 0].mean()
    accuracy = last[:, 1].sum() / last[:, 2].sum()
    assert accuracy > 0.8, f"train accuracy {accuracy:.2f} after {len(history)} steps"
    assert accuracy > first[:, 1].sum() / first[:, 2].sum() + 0.3


def test_program_head_sums_program_probabilities_into_families() -> None:
    from polyamp.models.timbre import build_timbre_model
    from polyamp.notes.families import PROGRAM_FAMILIES

    model = build_timbre_model(TimbreHParams(**TINY_PATCH, timbre_program_loss_weight=1.0))
    rng = np.random.default_rng(3)
    spec = rng.uniform(0, 1, size=(2, 64, 229)).astype(np.float32)
    notes = np.array([[[60, 0.1, 0.6], [40, 0.3, 0.9]], [[70, 0.0, 0.5], [-1, -1, -1]]], np.float32)
    outputs = model({"timbre_spec": spec, "notes": notes}, training=False)
    programs, families = outputs["program_probs"].numpy(), outputs["family_probs"].numpy()
    assert programs.shape == (2, 2, 128) and families.shape == (2, 2, NUM_FAMILIES)
    real = np.array([[True, True], [True, False]])
    np.testing.assert_allclose(programs[real].sum(axis=-1), 1.0, rtol=1e-5)
    membership = np.eye(NUM_FAMILIES)[list(PROGRAM_FAMILIES)]  # [128, 12]
    np.testing.assert_allclose(families, programs @ membership, rtol=1e-5, atol=1e-7)
    assert np.all(programs[~real] == 0) and np.all(families[~real] == 0)
    with pytest.raises(ConfigError, match="program head"):
        build_timbre_model(
            TimbreHParams(**{**TINY_PATCH, "timbre_final_activation": "sigmoid"}, timbre_program_loss_weight=1.0)
        )


def test_program_loss_adds_the_weighted_program_cross_entropy() -> None:
    import tensorflow as tf

    from polyamp.models.timbre_losses import family_cross_entropy, timbre_losses

    hparams = TimbreHParams(**TINY_PATCH, timbre_program_loss_weight=0.5)
    rng = np.random.default_rng(4)
    outputs = {
        "program_probs": tf.nn.softmax(tf.constant(rng.normal(size=(1, 3, 128)), tf.float32)),
        "family_probs": tf.nn.softmax(tf.constant(rng.normal(size=(1, 3, NUM_FAMILIES)), tf.float32)),
    }
    targets = {
        "program": tf.one_hot([[33, 0, 74]], 128),
        "family": tf.one_hot([[0, 4, 2]], NUM_FAMILIES),
        "mask": tf.constant([[1.0, 1.0, 0.0]]),
    }
    losses = {name: float(value) for name, value in timbre_losses(outputs, targets, hparams).items()}
    program_ce = float(family_cross_entropy(targets["program"], outputs["program_probs"], targets["mask"]))
    family_ce = float(family_cross_entropy(targets["family"], outputs["family_probs"], targets["mask"]))
    assert program_ce > 0 and losses["program"] == pytest.approx(program_ce, rel=1e-5)
    assert losses["family"] == pytest.approx(family_ce, rel=1e-5)
    assert losses["total"] == pytest.approx(family_ce + 0.5 * program_ce, rel=1e-5)
    without = timbre_losses(outputs, targets, dataclasses.replace(hparams, timbre_program_loss_weight=0.0))
    assert "program" not in without and float(without["total"]) == pytest.approx(family_ce, rel=1e-5)


def test_pipeline_gives_program_labels_to_the_program_head(family_mixes: Path) -> None:
    from polyamp.data.datasets import TFRecordDataset
    from polyamp.data.timbre_pipeline import timbre_training_batches
    from polyamp.notes.families import PROGRAM_FAMILIES

    hparams = TimbreHParams(
        **TINY_PATCH,
        timbre_program_loss_weight=1.0,
        batch_size=3,
        truncated_length_secs=2.0,
        timbre_max_notes=5,
        crops_per_example=2,
    )
    batches = timbre_training_batches(TFRecordDataset(str(family_mixes)), hparams, seed=0)
    assert batches.element_spec[1]["program"].shape == (3, 5, 128)
    allowed = {DEFAULT_PROGRAMS[family_index(name)] for name in FAMILIES}
    for _, targets in batches.take(3):
        program, family, mask = (targets[key].numpy() for key in ("program", "family", "mask"))
        real = mask > 0
        assert np.all(program[real].sum(axis=-1) == 1) and np.all(program[~real] == 0)
        chosen = program[real].argmax(axis=-1)
        assert set(chosen.tolist()) <= allowed
        assert [PROGRAM_FAMILIES[value] for value in chosen] == family[real].argmax(axis=-1).tolist()


def test_pooling_before_the_elu_gives_the_same_patch_features_without_batch_norm() -> None:
    """ELU commutes with max-pooling, so with batch norm off the two orders are one function."""
    from polyamp.models.timbre import build_timbre_model

    hparams = TimbreHParams(**{**TINY_PATCH, "timbre_use_batch_normalization": False})
    after = build_timbre_model(hparams)
    first = build_timbre_model(dataclasses.replace(hparams, timbre_patch_pool_first=True))
    first.set_weights(after.get_weights())
    rng = np.random.default_rng(6)
    spec = rng.normal(size=(1, 64, 229)).astype(np.float32)
    notes = np.array([[[60, 0.1, 0.6], [45, 0.2, 0.8]]], np.float32)
    inputs = {"timbre_spec": spec, "notes": notes}
    np.testing.assert_allclose(
        first(inputs, training=False)["family_probs"], after(inputs, training=False)["family_probs"], rtol=1e-5
    )
    with_norm = build_timbre_model(dataclasses.replace(hparams, timbre_use_batch_normalization=True))
    assert with_norm.get_layer("patch_bn0").output.shape[1:3] == (8, 24)  # batch norm after conv0, before pooling
    pooled_norm = build_timbre_model(
        dataclasses.replace(hparams, timbre_use_batch_normalization=True, timbre_patch_pool_first=True)
    )
    assert pooled_norm.get_layer("patch_bn0").output.shape[1:3] == (4, 12)
