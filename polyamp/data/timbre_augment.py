"""Pitch-shift augmentation of Timbre training batches: the CQT moved by whole bins, the notes with it.

Moving a log-frequency spectrogram up by ``b`` bins moves every partial by ``b / bins_per_octave``
octaves, formants included: the crop sounds like a slightly different instrument of the same kind
playing ``12 b / bins_per_octave`` semitones higher. The notes' pitches move by the same amount (a
fractional MIDI pitch; the Timbre model locates notes by fractional CQT bin), so the labels stay
right. Bins moved in from outside the spectrogram are 0.0 (the log-magnitude floor); a note whose
pitch leaves 21..108 becomes padding (pitch, start, end -1, zero labels, mask 0).
"""

from __future__ import annotations

from typing import Any

from polyamp.constants import MAX_MIDI_PITCH, MIN_MIDI_PITCH


def random_bin_shifts(batch_size: int, max_bins: int, seed: int | None = None) -> Any:
    """int32 ``[batch_size]`` shifts drawn uniformly from ``-max_bins..max_bins``."""
    import tensorflow as tf

    return tf.random.uniform([batch_size], -max_bins, max_bins + 1, dtype=tf.int32, seed=seed)


def shift_spectrogram_and_notes(
    spec: Any, notes: Any, targets: dict[str, Any], shifts: Any, bins_per_octave: int
) -> tuple[Any, Any, dict[str, Any]]:
    """Graph op: ``spec`` float ``[B, T, bins]`` moved up by ``shifts`` int32 ``[B]`` bins (negative = down).

    ``notes``: float ``[B, N, 3]`` (MIDI pitch, start s, end s; pitch < 0 = padding) get their pitch
    raised by ``12 * shift / bins_per_octave`` semitones. ``targets`` (``mask`` ``[B, N]`` and one-hot
    ``[B, N, classes]`` labels such as ``family`` and ``program``) are zeroed for notes that leave
    21..108. Returns ``(spec, notes, targets)`` with the input shapes.
    """
    import tensorflow as tf

    num_bins = spec.shape[-1] if spec.shape[-1] is not None else tf.shape(spec)[-1]
    source_bins = tf.range(num_bins)[None, :] - shifts[:, None]  # [B, bins]: output bin j reads bin j - shift
    inside = (source_bins >= 0) & (source_bins < num_bins)
    moved = tf.gather(spec, tf.clip_by_value(source_bins, 0, num_bins - 1), axis=2, batch_dims=1)
    spec = tf.where(inside[:, None, :], moved, tf.zeros_like(moved))

    semitones = tf.cast(shifts, notes.dtype) * (12.0 / bins_per_octave)
    pitch = notes[..., 0] + semitones[:, None]
    kept = (notes[..., 0] >= 0) & (pitch >= MIN_MIDI_PITCH) & (pitch <= MAX_MIDI_PITCH)
    shifted = tf.concat([pitch[..., None], notes[..., 1:]], axis=-1)
    notes = tf.where(kept[..., None], shifted, -tf.ones_like(shifted))
    keep = tf.cast(kept, tf.float32)
    moved_targets = {}
    for name, value in targets.items():
        weight = keep if value.shape.rank == 2 else keep[..., None]
        moved_targets[name] = value * tf.cast(weight, value.dtype)
    return spec, notes, moved_targets
