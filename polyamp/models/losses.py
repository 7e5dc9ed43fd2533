"""Losses of the Melodic model."""

from __future__ import annotations

from typing import Any

from polyamp.config import MelodicHParams

_EPSILON = 1e-7


def recall_weighted_bce(labels: Any, probs: Any, true_weighing: float) -> Any:
    """Mean binary cross-entropy with positives weighted (w + 1) : 1 against negatives.

    labels, probs: float32 tensors of one shape. ``true_weighing`` w > 0 favours recall,
    w == 0 is plain BCE, w < 0 flips the roles (negatives weigh |w| + 1 : 1), favouring precision.
    """
    import tensorflow as tf

    probs = tf.clip_by_value(probs, _EPSILON, 1.0 - _EPSILON)
    bce = -(labels * tf.math.log(probs) + (1.0 - labels) * tf.math.log(1.0 - probs))
    if true_weighing == 0:
        return tf.reduce_mean(bce)
    favoured = labels if true_weighing > 0 else 1.0 - labels
    inverse = 1.0 / abs(true_weighing)
    weights = (favoured + inverse) / (1.0 + inverse)
    return tf.reduce_mean(bce * weights)


def velocity_loss(velocity_labels: Any, velocity_predictions: Any, onset_labels: Any) -> Any:
    """Squared error of velocities (MIDI velocity / 127), counted only on onset frames."""
    import tensorflow as tf

    mask = tf.cast(onset_labels > 0, tf.float32)
    squared = tf.square(velocity_labels - velocity_predictions) * mask
    return tf.reduce_sum(squared) / (tf.reduce_sum(mask) + 1.0)


def melodic_losses(labels: dict[str, Any], outputs: dict[str, Any], hparams: MelodicHParams) -> dict[str, Any]:
    """Per-head losses and their sum under ``"total"``; tensors [batch, frames, 88]."""
    losses = {
        "frames": recall_weighted_bce(labels["frames"], outputs["frames"], hparams.frames_true_weighing),
        "onsets": recall_weighted_bce(labels["onsets"], outputs["onsets"], hparams.onsets_true_weighing),
        "offsets": recall_weighted_bce(labels["offsets"], outputs["offsets"], hparams.offsets_true_weighing),
        "velocities": hparams.velocity_loss_weight
        * velocity_loss(labels["velocities"], outputs["velocities"], labels["onsets"]),
    }
    if hparams.activation_loss_weight:
        losses["activations"] = hparams.activation_loss_weight * recall_weighted_bce(
            labels["frames"], outputs["activations"], hparams.frames_true_weighing
        )
    losses["total"] = sum(losses.values())
    return losses
