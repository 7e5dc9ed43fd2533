"""Builds the objects a workflow needs (hparams, front end, model, postprocessor) from gin.

Training, evaluation and transcription all call :func:`build_components`, so they share
one front end, one model definition and one postprocessor, chosen by name from the registries.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import gin

from polyamp.config import hparams_class
from polyamp.registry import FRONTENDS, MODELS, POSTPROCESSORS


@dataclasses.dataclass
class Components:
    """The shared pieces of one model type."""

    model_type: str
    hparams: Any
    frontend: Any
    model: Any
    decoder: Any


@gin.configurable
def build_components(
    model_type: str = "melodic", frontend: str = "cqt", postprocessor: str = "onsets_frames"
) -> Components:
    """Builds hparams (gin-bound), the ``frontend`` and ``postprocessor`` plugins and the model.

    The Timbre model reads its own spectrogram (CQT at ``timbre_hop_length``) and its
    postprocessor assigns families to notes (``multi_instrument``).
    """
    hparams = hparams_class(model_type)()
    if model_type == "timbre":
        from polyamp.models.timbre import make_timbre_frontend

        timbre_frontend = make_timbre_frontend(hparams)
        model = MODELS.get("timbre")(hparams, timbre_frontend.num_bins)
        return Components(model_type, hparams, timbre_frontend, model, POSTPROCESSORS.get("multi_instrument")())
    frontend_object = FRONTENDS.get(frontend)()
    model = MODELS.get(model_type)(hparams, frontend_object.num_bins)
    decoder = POSTPROCESSORS.get(postprocessor)(
        frame_threshold=hparams.predict_frame_threshold,
        onset_threshold=hparams.predict_onset_threshold,
        offset_threshold=hparams.predict_offset_threshold,
        active_onset_threshold=hparams.active_onset_threshold,
        min_duration_ms=hparams.min_duration_ms,
    )
    return Components(model_type, hparams, frontend_object, model, decoder)
