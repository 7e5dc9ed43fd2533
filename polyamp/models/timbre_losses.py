"""Losses and metrics of the Timbre model, over the non-padded notes of a batch.

Tensors: ``labels`` and ``probs`` float32 ``[batch, notes, classes]`` (labels one-hot, or multi-hot
when one note is played by several families), ``mask`` ``[batch, notes]`` (1 = a real note, 0 =
padding). Padded notes never contribute, whatever their labels or predictions.
"""

from __future__ import annotations

from typing import Any

from polyamp.models.timbre_hparams import TimbreHParams

_EPSILON = 1e-7

RECALL_FACTOR = 1.5
"""2020's extra factor on the recall weight: w_c = timbre_recall_weighing * 1.5 * family_recall_weight[c]."""


def class_recall_weights(hparams: TimbreHParams) -> tuple[float, ...]:
    """Per-class recall weights ``w_c = timbre_recall_weighing * 1.5 * family_recall_weight[c]``."""
    return tuple(hparams.timbre_recall_weighing * RECALL_FACTOR * weight for weight in hparams.family_recall_weight)


def recall_weighted_family_bce(
    labels: Any, probs: Any, mask: Any, class_weights: Any, absent_class_weight: float = 0.01
) -> Any:
    """2020's per-class recall-weighted BCE, averaged over classes (a scalar).

    For class c, the BCE of every real note is weighted so that positives weigh ``(w_c + 1) : 1``
    against negatives (``w_c = 0``: plain BCE; ``w_c < 0``: negatives weigh ``|w_c| + 1 : 1``),
    then averaged over real notes. A class with no positive real note in the batch is multiplied
    by ``absent_class_weight``. The loss is the mean over classes; 0 for a batch without real notes.
    """
    import tensorflow as tf

    labels = tf.cast(labels, tf.float32)
    probs = tf.clip_by_value(tf.cast(probs, tf.float32), _EPSILON, 1.0 - _EPSILON)
    mask = tf.cast(mask, tf.float32)[..., tf.newaxis]  # [B, N, 1]
    weights_c = tf.reshape(tf.cast(class_weights, tf.float32), [1, 1, -1])
    bce = -(labels * tf.math.log(probs) + (1.0 - labels) * tf.math.log(1.0 - probs))
    favoured = tf.where(weights_c >= 0.0, labels, 1.0 - labels)
    inverse = tf.math.divide_no_nan(1.0, tf.abs(weights_c))
    weights = tf.where(weights_c == 0.0, 1.0, (favoured + inverse) / (1.0 + inverse))
    num_notes = tf.reduce_sum(mask)
    per_class = tf.reduce_sum(bce * weights * mask, axis=[0, 1]) / tf.maximum(num_notes, 1.0)  # [C]
    present = tf.reduce_sum(labels * mask, axis=[0, 1]) > 0.0
    per_class = per_class * tf.where(present, 1.0, absent_class_weight)
    return tf.reduce_mean(per_class)


def family_cross_entropy(labels: Any, probs: Any, mask: Any) -> Any:
    """Categorical cross-entropy of softmax ``probs`` against ``labels`` (normalised to sum 1 per note),
    averaged over real notes (a scalar; 0 without real notes)."""
    import tensorflow as tf

    labels = tf.cast(labels, tf.float32)
    target = tf.math.divide_no_nan(labels, tf.reduce_sum(labels, axis=-1, keepdims=True))
    probs = tf.clip_by_value(tf.cast(probs, tf.float32), _EPSILON, 1.0)
    per_note = -tf.reduce_sum(target * tf.math.log(probs), axis=-1)  # [B, N]
    mask = tf.cast(mask, tf.float32)
    return tf.reduce_sum(per_note * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)


def timbre_loss(labels: Any, probs: Any, mask: Any, hparams: TimbreHParams) -> Any:
    """The family loss for ``hparams.timbre_final_activation``: recall-weighted BCE (sigmoid) or CE (softmax)."""
    if hparams.timbre_final_activation == "softmax":
        return family_cross_entropy(labels, probs, mask)
    return recall_weighted_family_bce(
        labels, probs, mask, class_recall_weights(hparams), hparams.timbre_absent_class_weight
    )


def timbre_losses(outputs: dict[str, Any], targets: dict[str, Any], hparams: TimbreHParams) -> dict[str, Any]:
    """Scalars ``total``, ``family``, ``accuracy`` (and ``program`` with the program head) of one batch.

    ``outputs``: the model's ``family_probs`` [B, N, 12] (and ``program_probs`` [B, N, 128]);
    ``targets``: ``family`` [B, N, 12], ``mask`` [B, N] (and ``program`` [B, N, 128]).
    ``total = family + timbre_program_loss_weight * program``.
    """
    probs = outputs["family_probs"]
    family = timbre_loss(targets["family"], probs, targets["mask"], hparams)
    losses = {"total": family, "family": family}
    if hparams.timbre_program_loss_weight > 0 and "program_probs" in outputs and "program" in targets:
        program = family_cross_entropy(targets["program"], outputs["program_probs"], targets["mask"])
        losses["program"] = program
        losses["total"] = family + hparams.timbre_program_loss_weight * program
    losses["accuracy"] = family_accuracy(targets["family"], probs, targets["mask"])
    return losses


def family_accuracy_counts(labels: Any, probs: Any, mask: Any) -> tuple[Any, Any]:
    """(correct, count) over real notes, float32 scalars: a note is correct when its most probable
    class is one of its labelled classes."""
    import tensorflow as tf

    labels = tf.cast(labels, tf.float32)
    predicted = tf.argmax(probs, axis=-1, output_type=tf.int32)
    hit = tf.gather(labels, predicted, batch_dims=2) > 0.0  # [B, N]
    mask = tf.cast(mask, tf.float32)
    return tf.reduce_sum(tf.cast(hit, tf.float32) * mask), tf.reduce_sum(mask)


def family_accuracy(labels: Any, probs: Any, mask: Any) -> Any:
    """Fraction of real notes whose most probable class is labelled (0 without real notes)."""
    import tensorflow as tf

    correct, count = family_accuracy_counts(labels, probs, mask)
    return tf.math.divide_no_nan(correct, count)
