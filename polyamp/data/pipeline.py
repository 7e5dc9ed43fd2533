"""tf.data training pipeline: examples -> random crops -> (spectrogram, label rolls) batches.

Streams from the dataset plugin (parallel decode, shuffle, prefetch); nothing loads the whole
dataset into memory. Every crop is ``crop_frames`` frames long, so batches have static shapes
and the training step is traced once.
"""

from __future__ import annotations

from typing import Any

from polyamp.config import MelodicHParams
from polyamp.constants import FRAMES_PER_SECOND, HOP_LENGTH_SAMPLES, NUM_PITCHES


def crop_frames_for(hparams: MelodicHParams) -> int:
    """Training crop length in frames (``truncated_length_secs``, 0 meaning 20 s)."""
    seconds = hparams.truncated_length_secs or 20.0
    return max(8, int(round(seconds * FRAMES_PER_SECOND)))


def random_crop(samples: Any, crop_frames: int) -> tuple[Any, Any]:
    """Graph op: a random crop of ``crop_frames`` hops (512 samples) of ``samples`` [num_samples], zero-padded.

    Returns ``(crop float32 [crop_frames * 512], start frame int32)``; the crop starts on a frame boundary.
    """
    import tensorflow as tf

    crop_samples = crop_frames * HOP_LENGTH_SAMPLES
    num_frames = tf.shape(samples)[0] // HOP_LENGTH_SAMPLES + 1
    max_start = tf.maximum(num_frames - crop_frames, 0)
    start_frame = tf.random.uniform([], 0, max_start + 1, dtype=tf.int32)
    start_sample = start_frame * HOP_LENGTH_SAMPLES
    crop = samples[start_sample : start_sample + crop_samples]
    return tf.pad(crop, [[0, crop_samples - tf.shape(crop)[0]]]), start_frame


def label_rolls(sequence: Any, start_frame: Any, crop_frames: int, hparams: MelodicHParams) -> dict[str, Any]:
    """Graph op: label rolls ``{frames, onsets, offsets, velocities}`` [crop_frames, 88] of a serialized
    NoteSequence from ``start_frame`` on (sustain and onset/offset lengths from ``hparams``)."""
    import tensorflow as tf

    from polyamp.notes.rolls import rolls_from_serialized

    apply_sustain = bool(hparams.apply_sustain)
    onset_ms = float(hparams.onset_length)
    offset_ms = float(hparams.offset_length)
    rolls = tf.numpy_function(
        lambda sequence, start: rolls_from_serialized(
            sequence, crop_frames, int(start), apply_sustain, onset_ms, offset_ms
        ),
        [sequence, start_frame],
        [tf.float32] * 4,
    )
    labels = {}
    for name, roll in zip(("frames", "onsets", "offsets", "velocities"), rolls, strict=False):
        roll.set_shape([crop_frames, NUM_PITCHES])
        labels[name] = roll
    return labels


def training_batches(source: Any, frontend: Any, hparams: MelodicHParams, seed: int | None = None) -> Any:
    """Endless shuffled batches ``(spec [B, T, bins], labels {name: [B, T, 88]})`` of random crops."""
    import tensorflow as tf

    crop_frames = crop_frames_for(hparams)

    def to_training_example(example: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        crop, start_frame = random_crop(example["samples"], crop_frames)
        spec = frontend(crop)[:crop_frames]
        spec.set_shape([crop_frames, frontend.num_bins])
        return spec, label_rolls(example["sequence"], start_frame, crop_frames, hparams)

    dataset = source.tf_dataset(shuffle_files=True, seed=seed)
    dataset = dataset.repeat().map(to_training_example, num_parallel_calls=tf.data.AUTOTUNE)
    # Shuffle crops, not whole pieces: a crop is small, a decoded piece can be minutes long.
    dataset = dataset.shuffle(hparams.shuffle_buffer_size, seed=seed)
    dataset = dataset.batch(hparams.batch_size, drop_remainder=True)
    return dataset.prefetch(tf.data.AUTOTUNE)
