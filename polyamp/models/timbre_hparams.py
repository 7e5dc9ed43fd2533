"""Typed hyper-parameters of the Timbre model (per-note instrument-family classifier).

Names and defaults follow the 2020 PolyAMP (``timbre_model.get_default_hparams`` and the Full
config's ``family_recall_weight``) where it had them; sizes are the 2020 (GPU-sized) model,
``gin/timbre/{tiny,small}.gin`` set CPU presets. Changes from 2020, on purpose:

* ``timbre_decay_rate`` is an inverse-time decay per step, ``lr / (1 + decay_rate * step)``, and
  defaults to 1e-4 (half the rate after 10,000 steps). 2020 passed 1e-2 as Keras' legacy per-step
  ``decay``, which halved the learning rate after 100 steps and all but froze training after a
  few thousand (the "aggressive decay" bug).
* ``family_recall_weight`` belongs to the Timbre hparams (2020 kept it in the Full config only, so
  a Timbre model trained alone silently ignored it); the 2020 hard-coded recall weight 4 is
  ``timbre_recall_weighing``.
* The conv stack's filter count (hard-coded 128 in 2020) is ``timbre_conv_num_filters``;
  ``timbre_filters_pool_size`` is the one number 2020 used (its second entry).
* Dead 2020 keys (``timbre_decay_steps``, the RNN, bottleneck and extra-FC switches,
  ``timbre_input_shape``, ``timbre_final_dropout_amt``) are gone: a name here always does something.
* New switches, all off by default (so the defaults build the 2020 model): input standardisation,
  batch norm, the pitch-relative head, mean pooling, the pitch feature and note patches; see
  :mod:`polyamp.models.timbre`. ``gin/timbre/small.gin`` turns on the ones that made the model learn
  on a CPU. ``timbre_final_activation = "softmax"`` trains with cross-entropy instead of the 2020
  recall-weighted BCE.
"""

from __future__ import annotations

import dataclasses

import gin

FAMILY_RECALL_WEIGHT_2020: tuple[float, ...] = (1.0, 1.4, 1.4, 0.225, 0.05, 1.2, 1.0, 1.3, 0.45, 1.0, 1.0, 0.7)
"""2020 ``family_recall_weight`` in family order bass, brass, flute, guitar, keyboard, mallet, organ,
reed, string, synth_lead, vocal, other (abundant families weigh less)."""


@gin.configurable
@dataclasses.dataclass(frozen=True)
class TimbreHParams:
    """Hyper-parameters of the Timbre model, its loss, its training data and its optimiser.

    Shapes: the model reads a timbre spectrogram ``[batch, frames, bins]`` (hop
    ``timbre_hop_length`` samples at 16 kHz) and notes ``[batch, notes, 3]`` (MIDI pitch, start s,
    end s) and returns ``[batch, notes, timbre_num_classes]`` family probabilities.
    """

    # Optimisation.
    timbre_learning_rate: float = 4e-4
    timbre_decay_rate: float = 1e-4  # inverse-time decay per step: lr / (1 + decay_rate * step)
    timbre_clip_norm: float = 2.0
    timbre_l2_regularizer: float = 1e-7  # L2 on the penultimate dense layer's bias (as in 2020)
    # Spectrogram (the CQT front end at this hop; 62.5 frames/s at 16 kHz).
    timbre_hop_length: int = 256
    # Per-clip input scaling: "max" divides each clip by its maximum (2020), "standardize" subtracts its
    # mean and divides by its standard deviation, "none" keeps the front end's log scale.
    timbre_spec_normalize: str = "max"
    timbre_spec_epsilon: float = 1e-8  # guards those divisions
    # Acoustic conv stack: conv (3 x 3) -> ELU -> max-pool (time, freq) -> spatial dropout, per layer.
    timbre_conv_num_layers: int = 2
    timbre_conv_num_filters: int = 128
    timbre_pool_size: tuple[tuple[int, int], ...] = ((3, 2), (3, 2))  # (time, freq) per conv layer
    # Dropout after each conv layer, then after the filter bank: timbre_conv_num_layers + 1 values.
    timbre_dropout_drop_amts: tuple[float, ...] = (0.1, 0.1, 0.1)
    timbre_spatial_dropout: bool = True  # drop whole feature maps (SpatialDropout2D) rather than units
    timbre_use_batch_normalization: bool = False  # batch norm after every conv of the stack and the bank (not in 2020)
    # Parallel filter bank: one conv per (temporal size, frequency size); filters indexed by temporal size.
    timbre_filter_frequency_sizes: tuple[int, ...] = (3, 7)
    timbre_filter_temporal_sizes: tuple[int, ...] = (1, 3, 5)
    timbre_num_filters: tuple[int, ...] = (96, 64, 32)
    # Per-note head. timbre_pitch_relative_bins = 0: the 2020 head (pitch high-pass and decay weights,
    # max-pool over frequency, conv over frequency, global max over frequency, dense, dense).
    # > 0: keep that many feature bins from each note's fundamental upwards (its harmonics, at fixed
    # rows whatever the pitch), conv over them, flatten, dense, dense (not in 2020).
    timbre_pitch_relative_bins: int = 0
    timbre_pool_mean: bool = False  # also pool each note's features by their mean over time (channels doubled)
    # Note patches (not in 2020): timbre_patch_frames > 0 adds a branch that cuts each note's
    # onset- and pitch-aligned spectrogram patch (frames from timbre_patch_frames_before frames before
    # the onset, timbre_patch_bins CQT bins from a semitone below the fundamental), runs a small
    # conv stack on it (timbre_patch_filters, 3x3 convs, each followed by 2x2 max-pooling) and feeds
    # the flattened result to the dense layers with the pooled features.
    timbre_patch_frames: int = 0
    timbre_patch_frames_before: int = 2
    timbre_patch_bins: int = 84
    timbre_patch_filters: tuple[int, ...] = (16, 32)
    timbre_patch_dropout: float = 0.0  # dropout on the flattened patch features
    # Order of each patch conv's pooling: False = conv, batch norm, ELU, 2x2 max-pool; True = conv, 2x2
    # max-pool, batch norm, ELU. ELU commutes with max-pooling, so only the batch statistics change, and
    # batch norm and ELU run on a quarter of the values: the step of timbre/programs.gin on the 2-core
    # reference machine spent more time in the first layer's batch norm and ELU than in all convs.
    timbre_patch_pool_first: bool = False
    # False: no whole-spectrogram conv stack, filter bank or note pooling; the note patches (and the
    # pitch/duration features) are all the dense layers see. Needs timbre_patch_frames > 0.
    timbre_pooled_branch: bool = True
    timbre_duration_feature: bool = False  # also feed min(note duration, 4 s) / 4 s to the dense layers
    timbre_filters_pool_size: int = 2
    timbre_local_conv_size: int = 7
    timbre_local_conv_strides: int = 1
    timbre_local_conv_num_filters: int = 256
    timbre_penultimate_fc_size: int = 256
    timbre_fc_dropout_drop_amt: float = 0.0  # dropout before the output layer
    timbre_pitch_feature: bool = False  # also feed the note's pitch (scaled to [0, 1]) to the dense layers
    # Note context (not in 2020): timbre_context_layers > 0 adds that many self-attention blocks over the
    # notes of one input (a crop) after the penultimate layer, so a note's family can draw on the notes
    # that sound like it (the same instrument plays many notes of a crop). 0 = each note on its own.
    timbre_context_layers: int = 0
    timbre_context_heads: int = 4  # attention heads; timbre_penultimate_fc_size must be a multiple of it
    timbre_context_dropout: float = 0.0  # dropout on the attention weights and the feed-forward output
    timbre_num_classes: int = 12  # the 11 NSynth families + other
    # Program head (not in 2020): > 0 makes the output layer a softmax over the 128 General MIDI programs,
    # whose sums per family are the family probabilities; training adds this weight times the program
    # cross-entropy to the family loss. Finer labels: a dulcimer must be told from each guitar, not only
    # from "guitar". Needs timbre_final_activation = "softmax" and 12 classes. Notes whose program is
    # only their family's default (NSynth mixes) teach the head that default program.
    timbre_program_loss_weight: float = 0.0
    timbre_leaky_alpha: float = 0.33  # ELU alpha
    timbre_final_activation: str = "sigmoid"  # "sigmoid" (multi-label, 2020) or "softmax" (one family per note)
    # Pitch-dependent frequency weighting of each note's pooled features.
    timbre_gradient_exp: float = 12.0  # decay-mask exponent is ln(this); 1 disables the mask
    timbre_pitch_margin_semitones: float = 1.0  # high-pass cut this far below the fundamental
    # Loss (sigmoid): class c's positives weigh (w_c + 1) : 1, w_c = recall_weighing * 1.5 * family_recall_weight[c].
    timbre_recall_weighing: float = 4.0
    family_recall_weight: tuple[float, ...] = FAMILY_RECALL_WEIGHT_2020
    timbre_absent_class_weight: float = 0.01  # loss factor of a class with no positive note in the batch
    # Training data.
    batch_size: int = 8
    truncated_length_secs: float = 4.0  # training crop length in seconds
    timbre_max_notes: int = 64  # notes per crop (a random subset when more)
    timbre_onset_notes_only: bool = False  # train only on notes whose onset is in the crop (as evaluation sees them)
    crops_per_example: int = 4  # crops cut from each decoded example
    shuffle_buffer_size: int = 64
    timbre_gain_augment_db: float = 0.0  # random gain in [-x, +x] dB applied to each training crop
    # Random pitch shift of each training crop's CQT by up to this many bins (the notes move with it;
    # polyamp.data.timbre_augment); 0 = off.
    timbre_pitch_shift_bins: int = 0
    # Random equalisation of each training crop: a gain curve over frequency, linear between gains drawn
    # uniformly in [-x, +x] dB at every octave (polyamp.data.timbre_augment); 0 = off.
    timbre_eq_augment_db: float = 0.0
    # Random onset jitter of each training note: its start moves by a uniform offset in [-x, +x] seconds
    # (clipped to the crop; its end never before its start), as the onsets of transcribed notes are off
    # by up to a frame or two (polyamp.data.timbre_augment); 0 = off.
    timbre_onset_jitter_seconds: float = 0.0
    # Inference: families whose mean probability over all the notes of one recording is below this are
    # not given to its notes (polyamp.decode.multi_instrument.recording_families); 0 = off.
    min_family_share: float = 0.0
