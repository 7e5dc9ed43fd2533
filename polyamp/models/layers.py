"""Keras building blocks shared by the models."""

from __future__ import annotations

from typing import Any


def batch_normalization(name: str) -> Any:
    """A ``keras.layers.BatchNormalization`` layer, synchronized across replicas when the model is built
    in the scope of a tf.distribute strategy with several replicas.

    Synchronized, the batch statistics (and so the moving averages) are those of the global batch on
    every replica: N replicas of batch b train like one device with batch N x b, and every worker of a
    cluster keeps the same moving averages. A model built outside such a scope (evaluation,
    transcription, one device) uses plain local statistics; the variables are the same either way.
    """
    import keras
    import tensorflow as tf

    synchronized = tf.distribute.has_strategy() and tf.distribute.get_strategy().num_replicas_in_sync > 1
    return keras.layers.BatchNormalization(name=name, synchronized=synchronized)


def conv_stack(
    spec: Any,
    *,
    name: str,
    num_filters: tuple[int, ...],
    temporal_sizes: tuple[int, ...],
    freq_sizes: tuple[int, ...],
    pool_sizes: tuple[int, ...],
    dropout_amounts: tuple[float, ...],
    use_batch_normalization: bool,
    elu_alpha: float,
    fc_size: int,
    fc_dropout: float,
    pool_first: bool = False,
) -> Any:
    """Onsets-and-Frames acoustic stack.

    spec: [batch, frames, bins, 1] -> [batch, frames, fc_size]. Each conv layer i has
    ``num_filters[i]`` kernels of ``temporal_sizes[i]`` frames by ``freq_sizes[i]`` bins, then
    optional batch norm, ELU, max-pooling of ``pool_sizes[i]`` bins along frequency, dropout.
    With ``pool_first`` the pooling comes straight after the convolution, so batch norm and ELU run on
    maps ``pool_sizes[i]`` times smaller; the layers and their weights are the same.
    """
    import keras

    lengths = {len(num_filters), len(temporal_sizes), len(freq_sizes), len(pool_sizes), len(dropout_amounts)}
    if len(lengths) != 1:
        from polyamp.errors import ConfigError

        raise ConfigError(
            "hparams num_filters, temporal_sizes, freq_sizes, pool_sizes and dropout_drop_amts "
            "must have the same length"
        )
    x = spec
    for index, filters in enumerate(num_filters):
        x = keras.layers.Conv2D(
            filters,
            (temporal_sizes[index], freq_sizes[index]),
            padding="same",
            use_bias=not use_batch_normalization,
            kernel_initializer="he_uniform",
            name=f"{name}_conv{index}",
        )(x)
        pool = None
        if pool_sizes[index] > 1:
            pool = keras.layers.MaxPooling2D((1, pool_sizes[index]), name=f"{name}_pool{index}")
        if pool is not None and pool_first:
            x = pool(x)
        if use_batch_normalization:
            x = batch_normalization(f"{name}_bn{index}")(x)
        x = keras.layers.ELU(alpha=elu_alpha, name=f"{name}_elu{index}")(x)
        if pool is not None and not pool_first:
            x = pool(x)
        if dropout_amounts[index] > 0:
            x = keras.layers.Dropout(dropout_amounts[index], name=f"{name}_dropout{index}")(x)
    bins, channels = x.shape[2], x.shape[3]
    x = keras.layers.Reshape((-1, bins * channels), name=f"{name}_flatten")(x)
    x = keras.layers.Dense(fc_size, activation="relu", name=f"{name}_fc")(x)
    if fc_dropout > 0:
        x = keras.layers.Dropout(fc_dropout, name=f"{name}_fc_dropout")(x)
    return x


def bidirectional_lstm(x: Any, units: int, name: str) -> Any:
    """[batch, frames, features] -> [batch, frames, 2 * units]; identity when units == 0."""
    import keras

    if units <= 0:
        return x
    return keras.layers.Bidirectional(keras.layers.LSTM(units, return_sequences=True), name=name)(x)
