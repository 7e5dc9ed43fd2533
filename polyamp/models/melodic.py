"""The Melodic model: instrument-agnostic Onsets and Frames with onset, offset, frame and velocity heads.

Input: log spectrogram [batch, frames, bins]. Outputs (dict): ``frames``, ``onsets``,
``offsets`` (probabilities in [0, 1]), ``velocities`` (MIDI velocity / 127 at onsets) and
``activations`` (the frame head's acoustic estimate before the frame LSTM), each
[batch, frames, 88] over MIDI pitches 21..108.
"""

from __future__ import annotations

from typing import Any

from polyamp.config import MelodicHParams
from polyamp.constants import NUM_PITCHES
from polyamp.registry import MODELS

OUTPUT_NAMES = ("frames", "onsets", "offsets", "velocities")


@MODELS.register("melodic")
def build_melodic_model(hparams: MelodicHParams, num_bins: int) -> Any:
    """Builds the Keras model for spectrograms with ``num_bins`` bins and any number of frames."""
    import keras

    from polyamp.models.layers import bidirectional_lstm, conv_stack

    spec = keras.Input(shape=(None, num_bins), name="spec")
    image = keras.layers.Reshape((-1, num_bins, 1), name="add_channel")(spec)
    stack_options = dict(
        num_filters=tuple(hparams.num_filters),
        temporal_sizes=tuple(hparams.temporal_sizes),
        freq_sizes=tuple(hparams.freq_sizes),
        pool_sizes=tuple(hparams.pool_sizes),
        dropout_amounts=tuple(hparams.dropout_drop_amts),
        use_batch_normalization=hparams.use_batch_normalization,
        elu_alpha=hparams.melodic_leaky_alpha,
        fc_size=hparams.fc_size,
        fc_dropout=hparams.fc_dropout_drop_amt,
        pool_first=hparams.conv_pool_first,
    )

    shared = conv_stack(image, name="shared", **stack_options) if hparams.share_conv_features else None

    def head(name: str, lstm_units: int, activation: str | None) -> Any:
        features = shared if shared is not None else conv_stack(image, name=name, **stack_options)
        features = bidirectional_lstm(features, lstm_units, name=f"{name}_lstm")
        return keras.layers.Dense(NUM_PITCHES, activation=activation, name=f"{name}_probs")(features)

    onsets = head("onset", hparams.onset_lstm_units, "sigmoid")
    offsets = head("offset", hparams.offset_lstm_units, "sigmoid")
    activations = head("activation", hparams.frame_lstm_units, "sigmoid")
    velocities = head("velocity", hparams.velocity_lstm_units, "sigmoid")

    combined = keras.layers.Concatenate(name="frame_inputs")(
        [keras.ops.stop_gradient(onsets), keras.ops.stop_gradient(offsets), activations]
    )
    combined = bidirectional_lstm(combined, hparams.combined_lstm_units, name="frame_lstm")
    frames = keras.layers.Dense(NUM_PITCHES, activation="sigmoid", name="frame_probs")(combined)

    outputs = {
        "frames": keras.layers.Identity(name="frames")(frames),
        "onsets": keras.layers.Identity(name="onsets")(onsets),
        "offsets": keras.layers.Identity(name="offsets")(offsets),
        "velocities": keras.layers.Identity(name="velocities")(velocities),
        "activations": keras.layers.Identity(name="activations")(activations),
    }
    return keras.Model(inputs=spec, outputs=outputs, name="melodic")
