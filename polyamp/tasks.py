"""What training needs to know about a model type: its batches, its forward pass and losses, its optimiser.

:func:`polyamp.training.train` is one loop for every model type; a task supplies the parts that
differ. Tasks are looked up by model type (``melodic``, ``timbre``, ``full``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from polyamp.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class OptimizerSettings:
    """Adam with inverse-time decay: lr(step) = ``learning_rate`` / (1 + ``decay_rate`` * step), clipped by norm."""

    learning_rate: float
    decay_rate: float
    clip_norm: float


class MelodicTask:
    """Onsets-and-Frames training: random crops -> (spectrogram [B, T, bins], label rolls [B, T, 88])."""

    def optimizer_settings(self, hparams: Any) -> OptimizerSettings:
        return OptimizerSettings(hparams.learning_rate, hparams.decay_rate, hparams.clip_norm)

    def batches(self, source: Any, components: Any, seed: int | None) -> Any:
        from polyamp.data.pipeline import training_batches

        return training_batches(source, components.frontend, components.hparams, seed=seed)

    def losses(self, model: Any, features: Any, labels: Any, hparams: Any) -> dict[str, Any]:
        from polyamp.models.losses import melodic_losses

        return melodic_losses(labels, model(features, training=True), hparams)


class TimbreTask:
    """Family classification of given notes: crops -> ({timbre_spec, notes}, {family one-hot, mask})."""

    def optimizer_settings(self, hparams: Any) -> OptimizerSettings:
        return OptimizerSettings(hparams.timbre_learning_rate, hparams.timbre_decay_rate, hparams.timbre_clip_norm)

    def batches(self, source: Any, components: Any, seed: int | None) -> Any:
        from polyamp.data.timbre_pipeline import timbre_training_batches

        return timbre_training_batches(source, components.hparams, components.frontend, seed=seed)

    def losses(self, model: Any, features: Any, labels: Any, hparams: Any) -> dict[str, Any]:
        from polyamp.models.timbre_losses import timbre_losses

        return timbre_losses(model(features, training=True), labels, hparams)


class FullTask:
    """Joint training of the Full model: one crop -> melodic losses + ``timbre_loss_weight`` * timbre loss.

    Teacher forcing: the Timbre part classifies the crop's *reference* notes (the 2020 code fed it
    the notes the Melodic part predicted, which gives the Timbre part almost no signal while the
    Melodic part is still poor). With ``melodic_trainable`` False the Melodic part is frozen (run in
    inference mode, no gradient). Loss names: the melodic ones, ``family``, ``accuracy``, ``total``.
    """

    def optimizer_settings(self, hparams: Any) -> OptimizerSettings:
        return OptimizerSettings(hparams.full_learning_rate, hparams.full_decay_rate, hparams.full_clip_norm)

    def batches(self, source: Any, components: Any, seed: int | None) -> Any:
        from polyamp.data.full_pipeline import full_training_batches

        return full_training_batches(source, components, seed=seed)

    def losses(self, model: Any, features: Any, labels: Any, hparams: Any) -> dict[str, Any]:
        from polyamp.models.losses import melodic_losses
        from polyamp.models.timbre_losses import family_accuracy, timbre_loss

        outputs = model.melodic(features["spec"], training=bool(hparams.melodic_trainable))
        losses = melodic_losses(labels, outputs, model.melodic_hparams)
        timbre_inputs = {"timbre_spec": features["timbre_spec"], "notes": features["notes"]}
        probs = model.timbre(timbre_inputs, training=True)["family_probs"]
        family = timbre_loss(labels["family"], probs, labels["mask"], model.timbre_hparams)
        losses["melodic"] = losses.pop("total")
        losses["family"] = family
        losses["accuracy"] = family_accuracy(labels["family"], probs, labels["mask"])
        losses["total"] = losses["melodic"] + hparams.timbre_loss_weight * family
        return losses


_TASKS: dict[str, Any] = {"melodic": MelodicTask(), "timbre": TimbreTask(), "full": FullTask()}


def register_task(model_type: str, task: Any) -> None:
    """Makes ``task`` the training task of ``model_type``."""
    _TASKS[model_type] = task


def get_task(model_type: str) -> Any:
    """The training task of ``model_type``; ConfigError listing the known model types."""
    try:
        return _TASKS[model_type]
    except KeyError:
        raise ConfigError(
            f"no training task for model type {model_type!r}; known: {', '.join(sorted(_TASKS))}"
        ) from None
