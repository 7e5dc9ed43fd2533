"""Augmentation of Timbre training batches: pitch shift (the CQT moved by whole bins, the notes with
it), random equalisation (a smooth gain curve over frequency) and onset jitter (note starts moved).

Moving a log-frequency spectrogram up by ``b`` bins moves every partial by ``b / bins_per_octave``
octaves, formants included: the crop sounds like a slightly different instrument of the same kind
playing ``12 b / bins_per_octave`` semitones higher. The notes' pitches move by the same amount (a
fractional MIDI pitch; the Timbre model locates notes by fractional CQT bin), so the labels stay
right. Bins moved in from outside the spectrogram are 0.0 (the log-magnitude floor); a note whose
pitch leaves 21..108 becomes padding (pitch, start, end -1, zero labels, mask 0).

Random equalisation adds to each crop a gain curve over frequency, linear between random gains drawn
every octave: what a different SoundFont's sample, microphone or room does to the same instrument's
spectral envelope, without moving its partials. The log scale is ``dB / 100 + 1`` (see
:func:`polyamp.audio.frontends.to_log_scale`), so ``g`` dB adds ``g / 100``; bins at the floor stay 0.

Onset jitter moves each note's start by a random offset: the Timbre model cuts an onset-aligned patch
per note, so a model trained on exact reference onsets loses accuracy on transcribed notes, whose
onsets are off by up to a frame or two (32 ms late: family accuracy 0.85 -> 0.70 on the FluidR3
held-out pieces, session 9).
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


def random_eq_curves(
    batch_size: int, num_bins: int, bins_per_octave: int, max_db: float, seed: int | None = None
) -> Any:
    """float32 ``[batch_size, num_bins]`` gain curves in dB: uniform in ``[-max_db, max_db]`` at every
    ``bins_per_octave``-th bin (and the last), linear in between."""
    import tensorflow as tf

    anchors = list(range(0, num_bins, bins_per_octave))
    if anchors[-1] != num_bins - 1:
        anchors.append(num_bins - 1)
    gains = tf.random.uniform([batch_size, len(anchors)], -max_db, max_db, seed=seed)
    bins = tf.range(num_bins, dtype=tf.float32)
    anchor_bins = tf.constant(anchors, tf.float32)
    right = tf.clip_by_value(tf.searchsorted(anchor_bins, bins, side="right"), 1, len(anchors) - 1)
    left = right - 1
    fraction = (bins - tf.gather(anchor_bins, left)) / (tf.gather(anchor_bins, right) - tf.gather(anchor_bins, left))
    return tf.gather(gains, left, axis=1) * (1.0 - fraction) + tf.gather(gains, right, axis=1) * fraction


def equalise_spectrogram(spec: Any, curves_db: Any) -> Any:
    """Graph op: log-scale ``spec`` float ``[B, T, bins]`` with gains ``curves_db`` ``[B, bins]`` (dB) applied.

    Values stay in the log scale's range: never below the 0.0 floor, and bins at the floor stay there.
    """
    import tensorflow as tf

    raised = tf.maximum(spec + curves_db[:, None, :] / 100.0, 0.0)
    return tf.where(spec > 0.0, raised, tf.zeros_like(spec))


def jitter_note_onsets(notes: Any, max_seconds: float, crop_seconds: float, seed: int | None = None) -> Any:
    """Graph op: ``notes`` float ``[B, N, 3]`` (MIDI pitch, start s, end s; pitch < 0 = padding) with each
    real note's start moved by a uniform offset in ``[-max_seconds, max_seconds]``, clipped to
    ``[0, crop_seconds]``; its end is raised to the new start when it would come before it. Padding
    rows are returned unchanged."""
    import tensorflow as tf

    offsets = tf.random.uniform(tf.shape(notes)[:2], -max_seconds, max_seconds, dtype=notes.dtype, seed=seed)
    start = tf.clip_by_value(notes[..., 1] + offsets, 0.0, crop_seconds)
    end = tf.maximum(notes[..., 2], start)
    moved = tf.stack([notes[..., 0], start, end], axis=-1)
    return tf.where((notes[..., 0] >= 0)[..., None], moved, notes)
