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


_TASKS: dict[str, Any] = {"melodic": MelodicTask()}


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
