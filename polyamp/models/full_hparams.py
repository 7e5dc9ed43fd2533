"""Typed hyper-parameters of the Full model (Melodic + Timbre trained and run together).

The Full model is made of a Melodic and a Timbre model whose own hyper-parameters stay in
:class:`~polyamp.config.MelodicHParams` and :class:`~polyamp.models.timbre_hparams.TimbreHParams`;
this class holds what belongs to the combination: the joint optimiser, the weight of the timbre
loss, the joint training crop and the family decision at inference. Names and defaults follow the
2020 ``full_model.get_default_hparams`` where it had them (``full_learning_rate`` 2e-4, no decay, no
clipping, ``multiple_instruments_threshold`` 0.6, ``use_all_instruments`` False,
``melodic_trainable`` True). ``family_recall_weight`` lives in TimbreHParams (the timbre loss uses it).

``present_instruments`` is never filled from the ground truth (the 2020 oracle input): it is the
user's restriction, ``()`` meaning every family.
"""

from __future__ import annotations

import dataclasses

import gin


@gin.configurable
@dataclasses.dataclass(frozen=True)
class FullHParams:
    """Hyper-parameters of the Full model's joint training and of its multi-instrument decoding.

    Training crops are ``truncated_length_secs`` seconds (0 = the Melodic crop length) in batches of
    ``batch_size`` (0 = the Melodic batch size); each crop gives the Melodic spectrogram (hop 512)
    and the Timbre spectrogram (hop ``timbre_hop_length``) of the same audio.
    """

    # Optimisation (one Adam for both parts): lr / (1 + full_decay_rate * step), clipped by norm (0 = none).
    full_learning_rate: float = 2e-4
    full_decay_rate: float = 0.0
    full_clip_norm: float = 0.0
    melodic_trainable: bool = True  # False freezes the Melodic part (only the Timbre part learns)
    timbre_loss_weight: float = 1.0  # loss = melodic losses + timbre_loss_weight * timbre loss
    # Training data (0 = take the Melodic value).
    batch_size: int = 0
    truncated_length_secs: float = 0.0
    # Family decision at inference (see polyamp.full_transcription).
    multiple_instruments_threshold: float = 0.6
    present_instruments: tuple[str, ...] = ()  # family names the output may use; () = all families
    use_all_instruments: bool = False  # True: decide over all families, then drop those not present
