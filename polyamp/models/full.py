"""The Full model: a Melodic and a Timbre model run (and trained) together.

``FullModel`` only holds the two Keras models as the tracked attributes ``melodic`` and ``timbre``,
so ``tf.train.Checkpoint(model=full)`` writes their variables under ``model/melodic/...`` and
``model/timbre/...``: a part restores from a Full checkpoint by wrapping it alone
(:func:`part_holder`), and a Full model restores its parts from separately trained checkpoints
(``model/...``) by restoring each attribute on its own.

Inference (audio -> agnostic notes -> family per note -> multi-track MIDI) is in
:mod:`polyamp.full_transcription`; joint training in :class:`polyamp.tasks.FullTask`.
"""

from __future__ import annotations

from typing import Any

from polyamp.registry import MODELS

PART_TYPES = ("melodic", "timbre")


def _module_class() -> type:
    import tensorflow as tf

    class FullModel(tf.Module):
        """Melodic model ``melodic`` ([B, T, bins] -> rolls [B, T, 88]) and Timbre model ``timbre``
        (spectrogram [B, 2T, bins] + notes [B, N, 3] -> family probabilities [B, N, 12])."""

        def __init__(self, melodic: Any, timbre: Any, melodic_trainable: bool = True) -> None:
            super().__init__(name="full")
            self.melodic = melodic
            self.timbre = timbre
            self.melodic_trainable = bool(melodic_trainable)

        @property
        def trainable_variables(self) -> list[Any]:  # type: ignore[override]
            """The Timbre part's trainable variables, and the Melodic part's unless it is frozen."""
            melodic = list(self.melodic.trainable_variables) if self.melodic_trainable else []
            return melodic + list(self.timbre.trainable_variables)

    return FullModel


_FULL_MODEL_CLASS: type | None = None


@MODELS.register("full")
def build_full_model(melodic: Any, timbre: Any, melodic_trainable: bool = True) -> Any:
    """The Full model holding the built Keras models ``melodic`` and ``timbre``."""
    global _FULL_MODEL_CLASS
    if _FULL_MODEL_CLASS is None:
        _FULL_MODEL_CLASS = _module_class()
    return _FULL_MODEL_CLASS(melodic, timbre, melodic_trainable)


def part_holder(part: str, model: Any) -> Any:
    """A trackable holding ``model`` as attribute ``part``: restores that part alone from a Full checkpoint."""
    import tensorflow as tf

    holder = tf.Module(name="full")
    setattr(holder, part, model)
    return holder
