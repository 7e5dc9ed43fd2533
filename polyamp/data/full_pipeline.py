"""tf.data pipeline of the Full model: one random crop of audio -> both parts' inputs and labels.

Per example, one random crop of ``FullHParams.truncated_length_secs`` (0 = the Melodic crop
length), starting on a Melodic frame boundary, gives

* the Melodic spectrogram ``spec`` [T, bins] (the Melodic front end, hop 512) and the label rolls
  ``frames``, ``onsets``, ``offsets``, ``velocities`` [T, 88] (as :mod:`polyamp.data.pipeline` makes them);
* the Timbre spectrogram ``timbre_spec`` [T * 512 / timbre_hop_length, bins] of the same samples and
  the crop's reference notes ``notes`` [N, 3] (MIDI pitch, start s, end s), their one-hot
  ``family`` [N, 12] and ``mask`` [N] (as :mod:`polyamp.data.timbre_pipeline` makes them,
  N = ``timbre_max_notes``; a crop without notes has an all-zero mask).

Batches are ``(features, labels)``: ``features = {"spec", "timbre_spec", "notes"}`` and
``labels = {"frames", "onsets", "offsets", "velocities", "family", "mask"}``, all with static shapes.
"""

from __future__ import annotations

from typing import Any

from polyamp.constants import FRAMES_PER_SECOND, HOP_LENGTH_SAMPLES, SAMPLE_RATE_HZ
from polyamp.errors import ConfigError


def full_crop_frames(full_hparams: Any, melodic_hparams: Any) -> int:
    """Joint crop length in Melodic frames: ``FullHParams.truncated_length_secs`` or the Melodic crop."""
    from polyamp.data.pipeline import crop_frames_for

    if full_hparams.truncated_length_secs < 0:
        raise ConfigError(f"FullHParams.truncated_length_secs must be >= 0, got {full_hparams.truncated_length_secs}")
    if not full_hparams.truncated_length_secs:
        return crop_frames_for(melodic_hparams)
    return max(8, int(round(full_hparams.truncated_length_secs * FRAMES_PER_SECOND)))


def full_batch_size(full_hparams: Any, melodic_hparams: Any) -> int:
    """``FullHParams.batch_size``, or the Melodic batch size when it is 0."""
    if full_hparams.batch_size < 0:
        raise ConfigError(f"FullHParams.batch_size must be >= 0, got {full_hparams.batch_size}")
    return int(full_hparams.batch_size or melodic_hparams.batch_size)


def full_training_batches(source: Any, components: Any, seed: int | None = None) -> Any:
    """Endless shuffled ``(features, labels)`` batches (module docstring) from a dataset plugin.

    ``components`` are the Full model's (``components.parts`` gives each part's hparams and front end).
    """
    import tensorflow as tf

    from polyamp.data.pipeline import label_rolls, random_crop
    from polyamp.data.timbre_pipeline import check_pipeline_hparams, crop_notes_tf, sequence_notes_tf

    melodic, timbre = components.parts["melodic"], components.parts["timbre"]
    melodic_hparams, timbre_hparams = melodic.hparams, timbre.hparams
    check_pipeline_hparams(timbre_hparams)
    hop = int(timbre_hparams.timbre_hop_length)
    if HOP_LENGTH_SAMPLES % hop:
        raise ConfigError(
            f"TimbreHParams.timbre_hop_length ({hop}) must divide the Melodic hop ({HOP_LENGTH_SAMPLES}) "
            "so both spectrograms of a crop line up"
        )
    crop_frames = full_crop_frames(components.hparams, melodic_hparams)
    timbre_frames = crop_frames * HOP_LENGTH_SAMPLES // hop
    crop_seconds = crop_frames * HOP_LENGTH_SAMPLES / SAMPLE_RATE_HZ
    max_notes = int(timbre_hparams.timbre_max_notes)
    batch_size = full_batch_size(components.hparams, melodic_hparams)
    melodic_frontend, timbre_frontend = melodic.frontend, timbre.frontend

    def to_training_example(example: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        crop, start_frame = random_crop(example["samples"], crop_frames)
        spec = melodic_frontend(crop)[:crop_frames]
        spec.set_shape([crop_frames, melodic_frontend.num_bins])
        timbre_spec = timbre_frontend(crop)[:timbre_frames]
        timbre_spec.set_shape([timbre_frames, timbre_frontend.num_bins])
        start_s = tf.cast(start_frame * HOP_LENGTH_SAMPLES, tf.float32) / SAMPLE_RATE_HZ
        notes, family, mask = crop_notes_tf(sequence_notes_tf(example["sequence"]), start_s, crop_seconds, max_notes)
        labels = label_rolls(example["sequence"], start_frame, crop_frames, melodic_hparams)
        labels.update(family=family, mask=mask)
        return {"spec": spec, "timbre_spec": timbre_spec, "notes": notes}, labels

    dataset = source.tf_dataset(shuffle_files=True, seed=seed)
    dataset = dataset.repeat().map(to_training_example, num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.shuffle(melodic_hparams.shuffle_buffer_size, seed=seed)
    dataset = dataset.batch(batch_size, drop_remainder=True)
    return dataset.prefetch(tf.data.AUTOTUNE)
