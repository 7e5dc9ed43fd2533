"""The Timbre model: the instrument family of each note, from the spectrogram region the note sounds in.

Inputs: ``timbre_spec`` float32 ``[batch, frames, bins]`` (the CQT front end at hop
``timbre_hop_length`` = 256 samples, 62.5 frames/s; see :func:`make_timbre_frontend`) and
``notes`` float32 ``[batch, notes, 3]`` rows (MIDI pitch, start s, end s from the clip start;
rows with a negative pitch are padding). Output: ``family_probs`` ``[batch, notes,
timbre_num_classes]`` (the 11 NSynth families + other, in :data:`~polyamp.notes.families.FAMILY_NAMES`
order): independent sigmoids (2020) or a softmax, zeros for padded notes.

Architecture (2020 design, sized by :class:`~polyamp.models.timbre_hparams.TimbreHParams`):

1. per-clip input scaling (``timbre_spec_normalize``: divide by the clip's maximum as in 2020,
   or standardise);
2. acoustic stack: ``timbre_conv_num_layers`` x [conv 3x3 (no bias), ELU, max-pool
   ``timbre_pool_size[i]`` (time, freq), spatial dropout]; the time axis is first zero-padded to a
   multiple of the total time pooling, so feature frame ``j`` covers exactly spectrogram frames
   ``[j * P, (j + 1) * P)``;
3. parallel filter bank: one conv per (temporal size, frequency size) with
   ``timbre_num_filters[temporal index]`` filters, ELU, spatial dropout, concatenated;
4. note pooling (:mod:`polyamp.models.note_pooling`, vectorised): max over each note's frames
   (with ``timbre_pool_mean`` also the mean, channels concatenated), then the pitch high-pass and
   frequency-decay weights;
5. per note (the 2020 head, ``timbre_pitch_relative_bins = 0``): max-pool over frequency, conv
   over frequency (no bias), ELU, global max over frequency, dense (ELU, L2 on the bias), dense
   to the classes (no bias).

With ``timbre_pitch_relative_bins = R > 0`` step 4 keeps, instead of the pitch weights, the R
feature bins from each note's fundamental upwards (:func:`~polyamp.models.note_pooling.pitch_relative_bins`)
and step 5 flattens the conv output instead of taking its global maximum over frequency, so the
head sees the note's own harmonic pattern at fixed positions. The 2020 head mostly sees whatever
is loudest while the note sounds, since its global maximum over frequency discards where energy
lies relative to the note (measurements in ``gin/timbre/small.gin``).

With ``timbre_patch_frames > 0`` a second per-note branch (not in 2020) cuts each note's onset- and
pitch-aligned patch of the normalised spectrogram (:func:`~polyamp.models.note_pooling.note_patches`),
runs small 3x3 convs with 2x2 max-pooling on it and feeds the flattened result to the dense
layers alongside the pooled features: the attack and the harmonic pattern of the note itself.
"""

from __future__ import annotations

import math
from typing import Any

from polyamp.constants import CQT_BINS_PER_OCTAVE, NUM_SPEC_BINS, SAMPLE_RATE_HZ
from polyamp.errors import ConfigError
from polyamp.models.layers import batch_normalization
from polyamp.models.timbre_hparams import TimbreHParams
from polyamp.notes.families import NUM_FAMILIES, NUM_PROGRAMS, PROGRAM_FAMILIES
from polyamp.registry import MODELS

FINAL_ACTIVATIONS = ("sigmoid", "softmax")
SPEC_NORMALIZATIONS = ("max", "standardize", "none")


def time_pool_factor(hparams: TimbreHParams) -> int:
    """Total pooling of the time axis by the acoustic stack (9 with the defaults)."""
    return math.prod(int(pool[0]) for pool in hparams.timbre_pool_size[: hparams.timbre_conv_num_layers])


def freq_pool_factor(hparams: TimbreHParams) -> int:
    """Total pooling of the frequency axis by the acoustic stack (4 with the defaults)."""
    return math.prod(int(pool[1]) for pool in hparams.timbre_pool_size[: hparams.timbre_conv_num_layers])


def feature_frames_per_second(hparams: TimbreHParams, sample_rate: int = SAMPLE_RATE_HZ) -> float:
    """Frame rate of the feature map the notes are pooled on (62.5 / 9 = 6.94 frames/s by default)."""
    return sample_rate / hparams.timbre_hop_length / time_pool_factor(hparams)


def check_timbre_hparams(hparams: TimbreHParams) -> None:
    """Raises ConfigError (one line naming the hparam) if the hparams cannot build a model."""
    layers = hparams.timbre_conv_num_layers
    if layers < 0:
        raise ConfigError(f"TimbreHParams.timbre_conv_num_layers must be >= 0, got {layers}")
    if len(hparams.timbre_pool_size) < layers:
        raise ConfigError(
            f"TimbreHParams.timbre_pool_size needs one (time, freq) pair per conv layer ({layers}), "
            f"got {hparams.timbre_pool_size!r}"
        )
    if any(len(pool) != 2 or min(pool) < 1 for pool in hparams.timbre_pool_size):
        raise ConfigError(
            f"TimbreHParams.timbre_pool_size must hold (time, freq) pairs >= 1, got {hparams.timbre_pool_size!r}"
        )
    if len(hparams.timbre_dropout_drop_amts) != layers + 1:
        raise ConfigError(
            f"TimbreHParams.timbre_dropout_drop_amts needs timbre_conv_num_layers + 1 = {layers + 1} values "
            f"(one per conv layer, then the filter bank), got {hparams.timbre_dropout_drop_amts!r}"
        )
    if len(hparams.timbre_num_filters) != len(hparams.timbre_filter_temporal_sizes):
        raise ConfigError(
            "TimbreHParams.timbre_num_filters needs one count per timbre_filter_temporal_sizes entry, got "
            f"{hparams.timbre_num_filters!r} for {hparams.timbre_filter_temporal_sizes!r}"
        )
    if not hparams.timbre_filter_frequency_sizes or not hparams.timbre_filter_temporal_sizes:
        raise ConfigError(
            "TimbreHParams.timbre_filter_frequency_sizes and timbre_filter_temporal_sizes must not be empty"
        )
    if len(hparams.family_recall_weight) != hparams.timbre_num_classes:
        raise ConfigError(
            f"TimbreHParams.family_recall_weight needs timbre_num_classes = {hparams.timbre_num_classes} values, "
            f"got {len(hparams.family_recall_weight)}"
        )
    if hparams.timbre_final_activation not in FINAL_ACTIVATIONS:
        raise ConfigError(
            f"TimbreHParams.timbre_final_activation must be one of {', '.join(FINAL_ACTIVATIONS)}, "
            f"got {hparams.timbre_final_activation!r}"
        )
    if hparams.timbre_spec_normalize not in SPEC_NORMALIZATIONS:
        raise ConfigError(
            f"TimbreHParams.timbre_spec_normalize must be one of {', '.join(SPEC_NORMALIZATIONS)}, "
            f"got {hparams.timbre_spec_normalize!r}"
        )
    if hparams.timbre_hop_length < 1:
        raise ConfigError(f"TimbreHParams.timbre_hop_length must be positive, got {hparams.timbre_hop_length}")
    if hparams.timbre_context_layers < 0:
        raise ConfigError(f"TimbreHParams.timbre_context_layers must be >= 0, got {hparams.timbre_context_layers}")
    if hparams.timbre_context_layers and (
        hparams.timbre_context_heads < 1 or hparams.timbre_penultimate_fc_size % hparams.timbre_context_heads
    ):
        raise ConfigError(
            "TimbreHParams.timbre_context_heads must be >= 1 and divide timbre_penultimate_fc_size "
            f"({hparams.timbre_penultimate_fc_size}), got {hparams.timbre_context_heads}"
        )
    if not 0.0 <= hparams.timbre_context_dropout < 1.0:
        raise ConfigError(
            f"TimbreHParams.timbre_context_dropout must be in [0, 1), got {hparams.timbre_context_dropout}"
        )
    if hparams.timbre_program_loss_weight < 0:
        raise ConfigError(
            f"TimbreHParams.timbre_program_loss_weight must be >= 0, got {hparams.timbre_program_loss_weight}"
        )
    if hparams.timbre_program_loss_weight > 0 and (
        hparams.timbre_final_activation != "softmax" or hparams.timbre_num_classes != NUM_FAMILIES
    ):
        raise ConfigError(
            "TimbreHParams.timbre_program_loss_weight > 0 (the program head) needs timbre_final_activation = "
            f"'softmax' and timbre_num_classes = {NUM_FAMILIES}"
        )
    if not hparams.timbre_pooled_branch and hparams.timbre_patch_frames <= 0:
        raise ConfigError(
            "TimbreHParams.timbre_pooled_branch = False needs note patches (timbre_patch_frames > 0): "
            "otherwise the model sees no audio"
        )


def make_timbre_frontend(hparams: TimbreHParams) -> Any:
    """The timbre spectrogram: :class:`~polyamp.audio.frontends.CQTFrontend` at hop ``timbre_hop_length``.

    Bins, bins per octave and fmin come from the CQTFrontend gin bindings (229, 28, A0 by
    default); the hop is always the hparam's, whatever ``CQTFrontend.hop_length`` is bound to.
    """
    from polyamp.audio.frontends import CQTFrontend

    return CQTFrontend(hop_length=hparams.timbre_hop_length)


def timbre_optimizer(hparams: TimbreHParams) -> Any:
    """Adam with inverse-time decay ``lr / (1 + timbre_decay_rate * step)`` and clipnorm ``timbre_clip_norm``."""
    import keras

    schedule = keras.optimizers.schedules.InverseTimeDecay(
        hparams.timbre_learning_rate, decay_steps=1, decay_rate=hparams.timbre_decay_rate
    )
    clip = hparams.timbre_clip_norm if hparams.timbre_clip_norm > 0 else None
    return keras.optimizers.Adam(learning_rate=schedule, clipnorm=clip)


def _layers() -> dict[str, type]:
    """Custom Keras layers, defined on first use so that importing this module stays light."""
    global _LAYERS
    if _LAYERS:
        return _LAYERS
    import keras

    class NormalizeSpec(keras.layers.Layer):
        """[B, T, F] -> same, each clip divided by its maximum (``mode="max"``) or standardised to
        mean 0 and standard deviation 1 (``mode="standardize"``); ``epsilon`` guards the division."""

        def __init__(self, mode: str, epsilon: float, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.mode = mode
            self.epsilon = float(epsilon)

        def call(self, spec: Any) -> Any:
            if self.mode == "max":
                return spec / (keras.ops.max(spec, axis=(1, 2), keepdims=True) + self.epsilon)
            mean = keras.ops.mean(spec, axis=(1, 2), keepdims=True)
            std = keras.ops.std(spec, axis=(1, 2), keepdims=True)
            return (spec - mean) / (std + self.epsilon)

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "mode": self.mode, "epsilon": self.epsilon}

    class PadTime(keras.layers.Layer):
        """[B, T, F, C] -> [B, ceil(T / multiple) * multiple, F, C], zeros (silence) appended."""

        def __init__(self, multiple: int, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.multiple = int(multiple)

        def call(self, x: Any) -> Any:
            import tensorflow as tf

            length = tf.shape(x)[1]
            extra = (-length) % self.multiple
            return tf.pad(x, [[0, 0], [0, extra], [0, 0], [0, 0]])

        def compute_output_shape(self, input_shape: Any) -> Any:
            frames = input_shape[1]
            if frames is not None:
                frames = -(-frames // self.multiple) * self.multiple
            return (input_shape[0], frames, *input_shape[2:])

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "multiple": self.multiple}

    class NotePooling(keras.layers.Layer):
        """[features [B, T', F', C], notes [B, N, 3]] -> [B, N, F', C]: max over each note's frames,
        weighted by the note's pitch high-pass and frequency decay (zeros for padded notes)."""

        def __init__(
            self,
            frames_per_second: float,
            bins_per_feature_bin: float,
            gradient_exp: float,
            margin_semitones: float,
            bins_per_octave: int,
            relative_bins: int = 0,
            with_mean: bool = False,
            method: str = "sparse_table",
            **kwargs: Any,
        ) -> None:
            super().__init__(**kwargs)
            self.relative_bins = int(relative_bins)
            self.with_mean = bool(with_mean)
            self.frames_per_second = float(frames_per_second)
            self.bins_per_feature_bin = float(bins_per_feature_bin)
            self.gradient_exp = float(gradient_exp)
            self.margin_semitones = float(margin_semitones)
            self.bins_per_octave = int(bins_per_octave)
            self.method = method

        def call(self, inputs: Any) -> Any:
            from polyamp.models.note_pooling import mean_pool_notes, pitch_relative_bins, pitch_weights, pool_notes

            features, notes = inputs
            pooled = pool_notes(features, notes, self.frames_per_second, self.method)
            if self.with_mean:
                mean = mean_pool_notes(features, notes, self.frames_per_second)
                pooled = keras.ops.concatenate([pooled, mean], axis=-1)
            if self.relative_bins > 0:
                return pitch_relative_bins(
                    pooled,
                    notes[..., 0],
                    self.relative_bins,
                    self.bins_per_feature_bin,
                    self.margin_semitones,
                    self.bins_per_octave,
                )
            weights = pitch_weights(
                notes[..., 0],
                features.shape[2],
                self.bins_per_feature_bin,
                self.gradient_exp,
                self.margin_semitones,
                self.bins_per_octave,
            )
            return pooled * keras.ops.expand_dims(weights, -1)

        def compute_output_shape(self, input_shapes: Any) -> Any:
            features, notes = input_shapes
            bins = self.relative_bins if self.relative_bins > 0 else features[2]
            channels = None if features[3] is None else features[3] * (2 if self.with_mean else 1)
            return (features[0], notes[1], bins, channels)

        def get_config(self) -> dict[str, Any]:
            return {
                **super().get_config(),
                "frames_per_second": self.frames_per_second,
                "bins_per_feature_bin": self.bins_per_feature_bin,
                "gradient_exp": self.gradient_exp,
                "margin_semitones": self.margin_semitones,
                "bins_per_octave": self.bins_per_octave,
                "relative_bins": self.relative_bins,
                "with_mean": self.with_mean,
                "method": self.method,
            }

    class NotePatches(keras.layers.Layer):
        """[spec [B, T, F], notes [B, N, 3]] -> [B, N, frames, bins, 1] onset- and pitch-aligned patches."""

        def __init__(
            self,
            frames_per_second: float,
            num_frames: int,
            num_bins: int,
            frames_before: int,
            margin_semitones: float,
            bins_per_octave: int,
            **kwargs: Any,
        ) -> None:
            super().__init__(**kwargs)
            self.frames_per_second = float(frames_per_second)
            self.num_frames = int(num_frames)
            self.num_bins = int(num_bins)
            self.frames_before = int(frames_before)
            self.margin_semitones = float(margin_semitones)
            self.bins_per_octave = int(bins_per_octave)

        def call(self, inputs: Any) -> Any:
            from polyamp.models.note_pooling import note_patches

            spec, notes = inputs
            patches = note_patches(
                spec,
                notes,
                self.frames_per_second,
                self.num_frames,
                self.num_bins,
                self.frames_before,
                self.margin_semitones,
                self.bins_per_octave,
            )
            return keras.ops.expand_dims(patches, -1)

        def compute_output_shape(self, input_shapes: Any) -> Any:
            spec, notes = input_shapes
            return (spec[0], notes[1], self.num_frames, self.num_bins, 1)

        def get_config(self) -> dict[str, Any]:
            return {
                **super().get_config(),
                "frames_per_second": self.frames_per_second,
                "num_frames": self.num_frames,
                "num_bins": self.num_bins,
                "frames_before": self.frames_before,
                "margin_semitones": self.margin_semitones,
                "bins_per_octave": self.bins_per_octave,
            }

    _LAYERS = {
        "NormalizeSpec": NormalizeSpec,
        "PadTime": PadTime,
        "NotePooling": NotePooling,
        "NotePatches": NotePatches,
    }
    return _LAYERS


_LAYERS: dict[str, type] = {}


@MODELS.register("timbre")
def build_timbre_model(hparams: TimbreHParams, num_bins: int = NUM_SPEC_BINS) -> Any:
    """Keras functional model ``{"timbre_spec": [B, T, num_bins], "notes": [B, N, 3]}`` ->
    ``{"family_probs": [B, N, timbre_num_classes]}`` (and ``"program_probs": [B, N, 128]`` with the
    program head, ``timbre_program_loss_weight > 0``); any T and N."""
    import keras

    check_timbre_hparams(hparams)
    custom = _layers()
    spec = keras.Input(shape=(None, num_bins), name="timbre_spec")
    notes = keras.Input(shape=(None, 3), name="notes")
    x = spec
    if hparams.timbre_spec_normalize != "none":
        x = custom["NormalizeSpec"](hparams.timbre_spec_normalize, hparams.timbre_spec_epsilon, name="normalize")(x)
    normalized = x
    branches = []
    if hparams.timbre_pooled_branch:
        branches.append(_pooled_branch(hparams, custom, normalized, notes, num_bins))
    if hparams.timbre_patch_frames > 0:
        branches.append(_patch_branch(hparams, custom, normalized, notes))
    y = branches[0] if len(branches) == 1 else keras.layers.Concatenate(name="with_patch")(branches)
    if hparams.timbre_pitch_feature:
        pitch = keras.layers.Lambda(lambda n: keras.ops.clip(n[..., :1], 0.0, 127.0) / 127.0, name="note_pitch")(notes)
        y = keras.layers.Concatenate(name="with_pitch")([y, pitch])
    if hparams.timbre_duration_feature:
        duration = keras.layers.Lambda(
            lambda n: keras.ops.clip(n[..., 2:3] - n[..., 1:2], 0.0, 4.0) / 4.0, name="note_duration"
        )(notes)
        y = keras.layers.Concatenate(name="with_duration")([y, duration])
    y = keras.layers.Dense(
        hparams.timbre_penultimate_fc_size,
        activation="elu",
        bias_regularizer=keras.regularizers.L2(hparams.timbre_l2_regularizer),
        name="penultimate",
    )(y)
    for index in range(hparams.timbre_context_layers):
        y = _note_context_block(hparams, y, notes, index)
    if hparams.timbre_context_layers:
        y = keras.layers.LayerNormalization(name="context_final_norm")(y)
    if hparams.timbre_fc_dropout_drop_amt > 0:
        y = keras.layers.Dropout(hparams.timbre_fc_dropout_drop_amt, name="penultimate_dropout")(y)
    valid = keras.layers.Lambda(
        lambda n: keras.ops.cast(keras.ops.greater_equal(n[..., :1], 0.0), "float32"), name="note_mask"
    )(notes)
    outputs = {}
    if hparams.timbre_program_loss_weight > 0:
        program_probs = keras.layers.Dense(NUM_PROGRAMS, activation="softmax", use_bias=False, name="program_dense")(y)
        outputs["program_probs"] = keras.layers.Multiply(name="program_probs")([program_probs, valid])
        probs = keras.layers.Lambda(_program_to_family_probs, name="family_from_programs")(program_probs)
    else:
        probs = keras.layers.Dense(
            hparams.timbre_num_classes, activation=hparams.timbre_final_activation, use_bias=False, name="family_dense"
        )(y)
    outputs["family_probs"] = keras.layers.Multiply(name="family_probs")([probs, valid])
    return keras.Model(inputs={"timbre_spec": spec, "notes": notes}, outputs=outputs, name="timbre")


def _pooled_branch(hparams: TimbreHParams, custom: dict[str, Any], x: Any, notes: Any, num_bins: int) -> Any:
    """The 2020 path: conv stack + filter bank over the whole spectrogram, pooled over each note -> [B, N, D]."""
    import keras

    alpha = hparams.timbre_leaky_alpha
    dropout_layer = keras.layers.SpatialDropout2D if hparams.timbre_spatial_dropout else keras.layers.Dropout
    x = keras.layers.Reshape((-1, num_bins, 1), name="add_channel")(x)
    time_pool = time_pool_factor(hparams)
    if time_pool > 1:
        x = custom["PadTime"](time_pool, name="pad_time")(x)

    for index in range(hparams.timbre_conv_num_layers):
        x = keras.layers.Conv2D(
            hparams.timbre_conv_num_filters,
            (3, 3),
            padding="same",
            use_bias=False,
            kernel_initializer="he_uniform",
            name=f"conv{index}",
        )(x)
        if hparams.timbre_use_batch_normalization:
            x = batch_normalization(f"conv{index}_bn")(x)
        x = keras.layers.ELU(alpha=alpha, name=f"conv{index}_elu")(x)
        pool = tuple(int(size) for size in hparams.timbre_pool_size[index])
        if pool != (1, 1):
            x = keras.layers.MaxPooling2D(pool, name=f"conv{index}_pool")(x)
        if hparams.timbre_dropout_drop_amts[index] > 0:
            x = dropout_layer(hparams.timbre_dropout_drop_amts[index], name=f"conv{index}_dropout")(x)

    bank = []
    bank_dropout = hparams.timbre_dropout_drop_amts[hparams.timbre_conv_num_layers]
    for freq_size in hparams.timbre_filter_frequency_sizes:
        for temporal_index, temporal_size in enumerate(hparams.timbre_filter_temporal_sizes):
            name = f"bank_t{temporal_size}_f{freq_size}"
            y = keras.layers.Conv2D(
                hparams.timbre_num_filters[temporal_index],
                (temporal_size, freq_size),
                padding="same",
                use_bias=not hparams.timbre_use_batch_normalization,
                kernel_initializer="he_uniform",
                name=name,
            )(x)
            if hparams.timbre_use_batch_normalization:
                y = batch_normalization(f"{name}_bn")(y)
            y = keras.layers.ELU(alpha=alpha, name=f"{name}_elu")(y)
            if bank_dropout > 0:
                y = dropout_layer(bank_dropout, name=f"{name}_dropout")(y)
            bank.append(y)
    features = bank[0] if len(bank) == 1 else keras.layers.Concatenate(name="bank")(bank)

    pooled = custom["NotePooling"](
        frames_per_second=feature_frames_per_second(hparams),
        bins_per_feature_bin=freq_pool_factor(hparams),
        gradient_exp=hparams.timbre_gradient_exp,
        margin_semitones=hparams.timbre_pitch_margin_semitones,
        bins_per_octave=CQT_BINS_PER_OCTAVE,
        relative_bins=hparams.timbre_pitch_relative_bins,
        with_mean=hparams.timbre_pool_mean,
        name="note_pooling",
    )([features, notes])  # [B, N, F' (or relative bins), C]

    relative = hparams.timbre_pitch_relative_bins > 0
    y = pooled
    if hparams.timbre_filters_pool_size > 1 and not relative:
        y = keras.layers.MaxPooling2D((1, hparams.timbre_filters_pool_size), name="note_freq_pool")(y)
    y = keras.layers.Conv2D(
        hparams.timbre_local_conv_num_filters,
        (1, hparams.timbre_local_conv_size),
        strides=(1, hparams.timbre_local_conv_strides),
        padding="same",
        use_bias=False,
        kernel_initializer="he_uniform",
        name="note_conv",
    )(y)
    y = keras.layers.ELU(alpha=alpha, name="note_conv_elu")(y)
    if relative:  # keep each harmonic row's position: [B, N, R', filters] -> [B, N, R' * filters]
        rows, filters = y.shape[2], y.shape[3]
        y = keras.layers.Reshape((-1, rows * filters), name="note_flatten")(y)
    else:
        y = keras.layers.Lambda(lambda t: keras.ops.max(t, axis=2), name="note_freq_max")(y)  # [B, N, filters]
    return y


def _patch_branch(hparams: TimbreHParams, custom: dict[str, Any], spec: Any, notes: Any) -> Any:
    """Each note's onset- and pitch-aligned patch through small 2-D convs -> [B, N, D]."""
    import keras

    alpha = hparams.timbre_leaky_alpha
    patch = custom["NotePatches"](
        frames_per_second=SAMPLE_RATE_HZ / hparams.timbre_hop_length,
        num_frames=hparams.timbre_patch_frames,
        num_bins=hparams.timbre_patch_bins,
        frames_before=hparams.timbre_patch_frames_before,
        margin_semitones=hparams.timbre_pitch_margin_semitones,
        bins_per_octave=CQT_BINS_PER_OCTAVE,
        name="note_patches",
    )([spec, notes])  # [B, N, frames, bins, 1]
    # Only real notes go through the convs ([B, N, P, Q, 1] -> [M, P, Q, 1], M = notes with pitch >= 0):
    # padded note slots cost nothing. The features are scattered back to [B, N, size] (zeros for padding).
    folded = keras.layers.Lambda(_gather_real_notes, name="patch_fold")([patch, notes])
    for index, filters in enumerate(hparams.timbre_patch_filters):
        folded = keras.layers.Conv2D(
            filters, (3, 3), padding="same", use_bias=False, kernel_initializer="he_uniform", name=f"patch_conv{index}"
        )(folded)
        pool = keras.layers.MaxPooling2D((2, 2), padding="same", name=f"patch_pool{index}")
        if hparams.timbre_patch_pool_first:
            folded = pool(folded)
        if hparams.timbre_use_batch_normalization:
            folded = batch_normalization(f"patch_bn{index}")(folded)
        folded = keras.layers.ELU(alpha=alpha, name=f"patch_elu{index}")(folded)
        if not hparams.timbre_patch_pool_first:
            folded = pool(folded)
    size = folded.shape[1] * folded.shape[2] * folded.shape[3]
    flat = keras.layers.Reshape((size,), name="patch_flatten")(folded)
    patch = keras.layers.Lambda(_scatter_to_notes, name="patch_unfold")([flat, notes])  # [B, N, size]
    if hparams.timbre_patch_dropout > 0:
        patch = keras.layers.Dropout(hparams.timbre_patch_dropout, name="patch_dropout")(patch)
    return patch


def _note_context_block(hparams: TimbreHParams, y: Any, notes: Any, index: int) -> Any:
    """One pre-norm transformer block over the real notes of each input: [B, N, D] -> [B, N, D].

    Every real note attends to every real note of its input (padding neither attends nor is attended
    to), so notes that sound alike can share their evidence. No positions are added: the note's pitch
    and duration are already in its features, and its family does not depend on the notes' order.
    """
    import keras

    size = hparams.timbre_penultimate_fc_size
    dropout = hparams.timbre_context_dropout
    pairs = keras.layers.Lambda(_note_pair_mask, name=f"context{index}_mask")(notes)
    normed = keras.layers.LayerNormalization(name=f"context{index}_norm")(y)
    attended = keras.layers.MultiHeadAttention(
        num_heads=hparams.timbre_context_heads,
        key_dim=size // hparams.timbre_context_heads,
        dropout=dropout,
        name=f"context{index}_attention",
    )(normed, normed, attention_mask=pairs)
    y = keras.layers.Add(name=f"context{index}_residual")([y, attended])
    normed = keras.layers.LayerNormalization(name=f"context{index}_ff_norm")(y)
    hidden = keras.layers.Dense(2 * size, activation="elu", name=f"context{index}_ff_hidden")(normed)
    hidden = keras.layers.Dense(size, name=f"context{index}_ff_out")(hidden)
    if dropout > 0:
        hidden = keras.layers.Dropout(dropout, name=f"context{index}_ff_dropout")(hidden)
    return keras.layers.Add(name=f"context{index}_ff_residual")([y, hidden])


def _note_pair_mask(notes: Any) -> Any:
    """bool [B, N, N]: True where both notes are real (pitch >= 0); a padded row may attend to itself
    only, so its softmax never sees an empty row."""
    import tensorflow as tf

    real = notes[..., 0] >= 0.0
    pairs = real[:, :, tf.newaxis] & real[:, tf.newaxis, :]
    return pairs | tf.eye(tf.shape(notes)[1], batch_shape=[tf.shape(notes)[0]], dtype=tf.bool)


def _program_to_family_probs(program_probs: Any) -> Any:
    """[B, N, 128] program probabilities -> [B, N, 12] family probabilities (sums over each family's programs)."""
    import tensorflow as tf

    membership = tf.one_hot(PROGRAM_FAMILIES, NUM_FAMILIES, dtype=program_probs.dtype)  # [128, 12]
    return tf.einsum("bnp,pf->bnf", program_probs, membership)


def _real_note_indices(notes: Any) -> Any:
    """``[M, 2]`` (batch, note) indices of the real notes (pitch >= 0) of ``notes`` ``[B, N, 3]``."""
    import tensorflow as tf

    return tf.where(notes[..., 0] >= 0.0)


def _gather_real_notes(inputs: Any) -> Any:
    """[patches [B, N, P, Q, 1], notes [B, N, 3]] -> the real notes' patches [M, P, Q, 1]."""
    import tensorflow as tf

    patches, notes = inputs
    return tf.gather_nd(patches, _real_note_indices(notes))


def _scatter_to_notes(inputs: Any) -> Any:
    """[features [M, D], notes [B, N, 3]] -> [B, N, D], zeros at padded note slots."""
    import tensorflow as tf

    features, notes = inputs
    shape = tf.concat([tf.shape(notes, out_type=tf.int64)[:2], tf.shape(features, out_type=tf.int64)[1:]], axis=0)
    return tf.scatter_nd(_real_note_indices(notes), features, shape)
