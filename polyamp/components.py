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
    parts: dict[str, Components] | None = None
    """Full model only: the ``melodic`` and ``timbre`` Components whose models the Full model holds."""


@gin.configurable
def build_components(
    model_type: str = "melodic", frontend: str = "cqt", postprocessor: str = "onsets_frames"
) -> Components:
    """Builds hparams (gin-bound), the ``frontend`` and ``postprocessor`` plugins and the model.

    The Timbre model reads its own spectrogram (CQT at ``timbre_hop_length``) and its
    postprocessor assigns families to notes (``multi_instrument``).
    """
    if model_type == "full":
        return _build_full_components()
    hparams = hparams_class(model_type)()
    if model_type == "timbre":
        from polyamp.models.timbre import make_timbre_frontend

        timbre_frontend = make_timbre_frontend(hparams)
        model = MODELS.get("timbre")(hparams, timbre_frontend.num_bins)
        decoder = POSTPROCESSORS.get("multi_instrument")(min_family_share=hparams.min_family_share)
        return Components(model_type, hparams, timbre_frontend, model, decoder)
    frontend_object = FRONTENDS.get(frontend)()
    model = MODELS.get(model_type)(hparams, frontend_object.num_bins)
    decoder = melodic_decoder(hparams, postprocessor)
    return Components(model_type, hparams, frontend_object, model, decoder)


def melodic_decoder(hparams: Any, postprocessor: str = "onsets_frames", **overrides: Any) -> Any:
    """The note decoder of Melodic ``hparams`` (its ``predict_*`` thresholds, seconds and frames as
    the hparams give them); ``overrides`` replace single decoder arguments, e.g. ``onset_threshold=0.4``."""
    arguments = {
        "frame_threshold": hparams.predict_frame_threshold,
        "onset_threshold": hparams.predict_onset_threshold,
        "offset_threshold": hparams.predict_offset_threshold,
        "active_onset_threshold": hparams.active_onset_threshold,
        "min_duration_ms": hparams.min_duration_ms,
        "onset_shift_frames": hparams.predict_onset_shift_frames,
        "max_gap_frames": hparams.predict_max_gap_frames,
        "max_dip_frames": hparams.predict_max_dip_frames,
        "dip_floor": hparams.predict_dip_floor,
    }
    unknown = sorted(set(overrides) - set(arguments))
    if unknown:
        raise TypeError(f"melodic_decoder: unknown decoder arguments {unknown}; known: {sorted(arguments)}")
    return POSTPROCESSORS.get(postprocessor)(**{**arguments, **overrides})


def _build_full_components() -> Components:
    """The Full model: both parts built as their own model types (same gin), held by one FullModel.

    Its front end is the Melodic one (hop 512); its decoder is the multi-instrument postprocessor
    with the Melodic decoding thresholds and the Full ``multiple_instruments_threshold``.
    """
    from polyamp.decode.multi_instrument import MultiInstrumentDecoder

    hparams = hparams_class("full")()
    melodic = build_components(model_type="melodic")
    timbre = build_components(model_type="timbre")
    model = MODELS.get("full")(melodic.model, timbre.model, hparams.melodic_trainable)
    model.melodic_hparams, model.timbre_hparams = melodic.hparams, timbre.hparams
    decoder = MultiInstrumentDecoder(
        multiple_instruments_threshold=hparams.multiple_instruments_threshold,
        present_instruments=list(hparams.present_instruments) or None,
        min_family_share=timbre.hparams.min_family_share,
        agnostic_decoder=melodic.decoder,
    )
    return Components("full", hparams, melodic.frontend, model, decoder, {"melodic": melodic, "timbre": timbre})
