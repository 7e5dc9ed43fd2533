"""The Melodic model, its losses and the training loop, in process."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from polyamp.config import MelodicHParams, parse_gin
from polyamp.models.losses import recall_weighted_bce
from polyamp.models.melodic import build_melodic_model


def test_model_outputs_every_head_for_any_length() -> None:
    parse_gin(["melodic/tiny.gin"])
    model = build_melodic_model(MelodicHParams(), 229)
    for frames in (7, 40):
        outputs = model(np.random.default_rng(0).random((2, frames, 229), dtype=np.float32), training=False)
        assert set(outputs) == {"frames", "onsets", "offsets", "velocities", "activations"}
        for name, value in outputs.items():
            assert tuple(value.shape) == (2, frames, 88), name
        assert 0.0 <= float(np.min(outputs["frames"])) and float(np.max(outputs["frames"])) <= 1.0


def test_pooling_first_is_the_same_function_without_batch_norm() -> None:
    """Max-pooling commutes with ELU, so conv_pool_first only moves work; batch norm then runs on pooled maps."""
    hparams = MelodicHParams(
        share_conv_features=True,
        num_filters=(4, 4, 8),
        pool_sizes=(1, 2, 2),
        dropout_drop_amts=(0.0, 0.0, 0.0),
        fc_size=16,
        fc_dropout_drop_amt=0.0,
        onset_lstm_units=0,
        offset_lstm_units=0,
        combined_lstm_units=0,
        use_batch_normalization=False,
    )
    after = build_melodic_model(hparams, 229)
    first = build_melodic_model(dataclasses.replace(hparams, conv_pool_first=True), 229)
    first.set_weights(after.get_weights())
    spec = np.random.default_rng(3).normal(size=(1, 20, 229)).astype(np.float32)
    for name in ("onsets", "frames"):
        np.testing.assert_allclose(first(spec, training=False)[name], after(spec, training=False)[name], rtol=1e-5)
    with_norm = build_melodic_model(dataclasses.replace(hparams, use_batch_normalization=True), 229)
    assert with_norm.get_layer("shared_bn1").output.shape[2] == 229  # batch norm before pooling
    pooled_norm = build_melodic_model(
        dataclasses.replace(hparams, use_batch_normalization=True, conv_pool_first=True), 229
    )
    assert pooled_norm.get_layer("shared_bn1").output.shape[2] == 114
    assert pooled_norm.count_params() == with_norm.count_params()


def test_recall_weighting_favours_positives() -> None:
    labels = np.array([[1.0, 0.0]], np.float32)
    miss_positive = np.array([[0.1, 0.1]], np.float32)
    miss_negative = np.array([[0.9, 0.9]], np.float32)
    # With w = 2, a missed positive costs 3x a false positive of the same confidence.
    assert float(recall_weighted_bce(labels, miss_positive, 2.0)) > 2.5 * float(
        recall_weighted_bce(labels, miss_negative, 2.0)
    )
    # w = 0 is plain BCE: symmetric errors cost the same.
    assert float(recall_weighted_bce(labels, miss_positive, 0.0)) == pytest.approx(
        float(recall_weighted_bce(labels, miss_negative, 0.0)), rel=1e-5
    )
    # w < 0 favours precision instead.
    assert float(recall_weighted_bce(labels, miss_negative, -2.0)) > 2.5 * float(
        recall_weighted_bce(labels, miss_positive, -2.0)
    )


def test_tiny_model_loss_falls_and_checkpoints_resume(synthetic_tfrecord, tmp_path) -> None:
    from polyamp.checkpoints import latest_checkpoint
    from polyamp.training import configure_training, train

    losses: list[float] = []

    def record(step: int, num_steps: int, step_losses: dict[str, float], rate: float) -> None:
        losses.append(step_losses["total"])

    configure_training(tmp_path, "melodic", "unit", ["melodic/tiny.gin"], [], '{"learning_rate": 0.005}')
    result = train(str(synthetic_tfrecord), tmp_path, model_id="unit", num_steps=40, seed=3, progress=record)
    assert result.first_step == 0 and result.last_step == 40
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5]), losses
    ref = latest_checkpoint(tmp_path / "melodic" / "unit")
    assert ref is not None and ref.step == 40
    run = tmp_path / "melodic" / "unit"
    assert (run / "operative_config-40.gin").is_file()
    assert "MelodicHParams.learning_rate = 0.005" in (run / "operative_config-40.gin").read_text()
    assert json.loads((run / "hparams.json").read_text())["num_filters"] == [4, 4, 8]
    assert any((run / "train").iterdir()), "TensorBoard events were not written"

    # Running again with a larger total resumes at step 40 from the saved operative config.
    configure_training(tmp_path, "melodic", "unit", [], [], None)
    resumed = train(str(synthetic_tfrecord), tmp_path, model_id="unit", num_steps=45, seed=3)
    assert resumed.first_step == 40 and resumed.last_step == 45
    assert MelodicHParams().learning_rate == 0.005
