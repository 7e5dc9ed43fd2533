"""Vectorised per-note pooling of a feature map, and the pitch-dependent frequency weighting.

The Timbre model describes each note by the maximum of the acoustic feature map over the
note's time span. Notes are rows ``(pitch, start_s, end_s)`` of a ``[batch, notes, 3]`` tensor
(MIDI pitch, seconds from the clip start); a row with a negative pitch is padding. On a feature
map with ``frames_per_second`` frames per second (frame ``t`` covers ``[t, t + 1) / fps``), a note
spans frames ``[floor(start * fps), max(ceil(end * fps), floor(start * fps) + 1))`` clipped to the
map: always at least one frame unless the note lies wholly outside the map. Padded notes and
notes outside the map pool to zeros.

Everything is TensorFlow graph code with dynamic ``notes`` and ``frames`` sizes: it runs inside
``tf.function``, ``tf.data`` and on GPU, with gradients (the 2020 code looped over notes in
Python, eagerly). Three implementations give identical values (and gradients, up to ties):

* ``"sparse_table"`` (default): range-maximum queries. Level ``k`` of a table holds the maximum
  over the ``2 ** k`` frames starting at each frame (levels are built only up to the longest
  span, in a ``tf.while_loop``); a span of length ``L`` is the maximum of two level-``floor(log2
  L)`` rows. Work and memory: ``log2(longest span) * batch * frames`` plus ``2 * batch * notes``
  rows of ``bins * channels``, whatever the note lengths.
* ``"ragged"``: gathers the ``P`` (note, frame) pairs of all spans and takes
  ``unsorted_segment_max`` per note: ``P * bins * channels``, slow for long notes.
* ``"mask"``: a ``[batch, notes, frames]`` span mask and a masked ``reduce_max``:
  ``batch * notes * frames * bins * channels``, only for short maps and few notes.

``benchmarks/bench_note_pooling.py`` times them against a Python loop.

TensorFlow is imported inside the functions.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from polyamp.constants import CQT_BINS_PER_OCTAVE, MIN_MIDI_PITCH

SNAP_FRAMES = 1e-4
"""Frame positions this close to an integer count as that integer (float32 rounding of s * fps)."""

BELOW_PITCH_GAIN = 2e-3
"""Weight of the frequency bins below a note's fundamental (small, not zero, so gradients flow)."""

POOLING_METHODS = ("sparse_table", "ragged", "mask")
_MAX_LEVELS = 31


def note_frame_spans(notes: Any, frames_per_second: float, num_frames: Any) -> tuple[Any, Any]:
    """Frame spans ``[first, stop)`` (int32 ``[batch, notes]``) of notes on a map of ``num_frames`` frames.

    ``notes``: float ``[batch, notes, 3]`` rows (MIDI pitch, start s, end s). Spans are clipped to
    ``[0, num_frames]``; padded notes (negative pitch) and notes outside the map get ``first == stop``.
    """
    import tensorflow as tf

    notes = tf.convert_to_tensor(notes)
    notes = tf.cast(notes, tf.float32)
    num_frames = tf.cast(num_frames, tf.int32)
    limit = tf.cast(num_frames, tf.float32) + 1.0
    start = tf.clip_by_value(notes[..., 1] * frames_per_second, -1.0, limit)
    end = tf.clip_by_value(notes[..., 2] * frames_per_second, -1.0, limit)
    first = tf.cast(tf.floor(start + SNAP_FRAMES), tf.int32)
    stop = tf.maximum(tf.cast(tf.math.ceil(end - SNAP_FRAMES), tf.int32), first + 1)
    first = tf.clip_by_value(first, 0, num_frames)
    stop = tf.clip_by_value(stop, first, num_frames)
    stop = tf.where(notes[..., 0] < 0.0, first, stop)
    return first, stop


def pool_notes(features: Any, notes: Any, frames_per_second: float, method: str = "sparse_table") -> Any:
    """Max of ``features`` over each note's frame span.

    features: float ``[batch, frames, bins, channels]``; notes: ``[batch, notes, 3]`` (MIDI pitch,
    start s, end s; negative pitch = padding); ``frames_per_second`` of the feature map.
    Returns ``[batch, notes, bins, channels]``, zeros for padded notes and notes outside the map.
    """
    import tensorflow as tf

    if method not in POOLING_METHODS:
        raise ValueError(f"method must be one of {', '.join(POOLING_METHODS)}, got {method!r}")
    features = tf.convert_to_tensor(features)
    shape = tf.shape(features)
    batch, num_frames = shape[0], shape[1]
    first, stop = note_frame_spans(notes, frames_per_second, num_frames)
    num_notes = tf.shape(first)[1]
    nonempty = stop > first  # [batch, notes]
    if method == "sparse_table":
        pooled = _sparse_table_max(features, first, stop)
    elif method == "mask":
        frames = tf.range(num_frames)
        span = (frames >= first[..., tf.newaxis]) & (frames < stop[..., tf.newaxis])  # [batch, notes, frames]
        lowest = tf.constant(-np.inf, features.dtype)
        masked = tf.where(span[..., tf.newaxis, tf.newaxis], features[:, tf.newaxis], lowest)
        pooled = tf.reduce_max(masked, axis=2)
    else:
        flat_first = tf.reshape(first, [-1])
        flat_stop = tf.reshape(stop, [-1])
        spans = tf.ragged.range(flat_first, flat_stop)  # [batch * notes, (span frames)]
        note_index = tf.cast(spans.value_rowids(), tf.int32)  # [P]
        row = note_index // num_notes * num_frames + spans.flat_values  # row of [batch * frames]
        flat_features = tf.reshape(features, tf.concat([[batch * num_frames], shape[2:]], axis=0))
        gathered = tf.gather(flat_features, row)  # [P, bins, channels]
        pooled = tf.math.unsorted_segment_max(gathered, note_index, batch * num_notes)
        pooled = tf.reshape(pooled, tf.concat([[batch, num_notes], shape[2:]], axis=0))
    keep = tf.reshape(nonempty, tf.concat([tf.shape(nonempty), [1, 1]], axis=0))
    return tf.where(keep, pooled, tf.zeros_like(pooled))


def mean_pool_notes(features: Any, notes: Any, frames_per_second: float) -> Any:
    """Mean of ``features`` over each note's frame span (same spans and shapes as :func:`pool_notes`).

    Prefix sums over time: two gathered rows per note, whatever its length; zeros for padded notes
    and notes outside the map.
    """
    import tensorflow as tf

    features = tf.convert_to_tensor(features)
    shape = tf.shape(features)
    batch, num_frames = shape[0], shape[1]
    first, stop = note_frame_spans(notes, frames_per_second, num_frames)
    sums = tf.cumsum(features, axis=1)
    sums = tf.concat([tf.zeros_like(features[:, :1]), sums], axis=1)  # [B, T + 1, F, C]: sums[t] = x[:t].sum()
    rows = tf.reshape(sums, tf.concat([[-1], shape[2:]], axis=0))
    base = tf.range(batch)[:, tf.newaxis] * (num_frames + 1)
    total = tf.gather(rows, base + stop) - tf.gather(rows, base + first)
    length = tf.cast(stop - first, features.dtype)
    scale = tf.math.divide_no_nan(tf.ones_like(length), length)
    return total * scale[..., tf.newaxis, tf.newaxis]


def _sparse_table_max(features: Any, first: Any, stop: Any) -> Any:
    """[B, T, F, C], spans [B, N] -> [B, N, F, C] maxima by range-maximum queries (any value for empty spans)."""
    import tensorflow as tf

    shape = tf.shape(features)
    batch, num_frames = shape[0], shape[1]
    length = tf.maximum(stop - first, 1)  # empty spans query one frame; the caller zeroes them
    # level = floor(log2(length)), computed exactly with integer comparisons.
    powers = tf.bitwise.left_shift(tf.ones([_MAX_LEVELS], tf.int32), tf.range(_MAX_LEVELS))
    level = tf.reduce_sum(tf.cast(length[..., tf.newaxis] >= powers, tf.int32), axis=-1) - 1
    num_levels = tf.maximum(tf.reduce_max(level) + 1, 1)
    first = tf.minimum(first, num_frames - 1)  # empty spans at the end still index a real row

    def build(k: Any, previous: Any, table: Any) -> tuple[Any, Any, Any]:
        shift = tf.bitwise.left_shift(1, k - 1)
        current = tf.maximum(previous, tf.roll(previous, shift=-shift, axis=1))
        return k + 1, current, table.write(k, current)

    table = tf.TensorArray(features.dtype, size=num_levels, element_shape=features.shape)
    table = table.write(0, features)
    _, _, table = tf.while_loop(lambda k, *_: k < num_levels, build, (tf.constant(1), features, table))
    rows = tf.reshape(table.stack(), tf.concat([[-1], shape[2:]], axis=0))  # [levels * B * T, F, C]
    base = level * (batch * num_frames) + tf.range(batch)[:, tf.newaxis] * num_frames
    left = tf.gather(rows, base + first)
    right = tf.gather(rows, base + tf.maximum(stop - tf.bitwise.left_shift(1, level), first))
    return tf.maximum(left, right)


def pitch_bins(pitches: Any, bins_per_octave: int = CQT_BINS_PER_OCTAVE, fmin_pitch: float = MIN_MIDI_PITCH) -> Any:
    """Fractional CQT bin of MIDI ``pitches`` (bin 0 = ``fmin_pitch``, ``bins_per_octave`` per octave)."""
    import tensorflow as tf

    return (tf.cast(pitches, tf.float32) - fmin_pitch) * (bins_per_octave / 12.0)


def pitch_weights(
    pitches: Any,
    num_bins: int,
    bins_per_feature_bin: float,
    gradient_exp: float,
    margin_semitones: float = 1.0,
    bins_per_octave: int = CQT_BINS_PER_OCTAVE,
) -> Any:
    """Per-note frequency weights ``[batch, notes, num_bins]`` for a feature map of ``num_bins`` bins.

    ``pitches``: MIDI pitch ``[batch, notes]``; feature bin ``f`` covers CQT bins
    ``[f, f + 1) * bins_per_feature_bin``. With ``k`` the feature bin holding the CQT bin
    ``margin_semitones`` below the fundamental (2020 used one semitone, via pitch - 1):

    * high-pass: bins ``f < k`` weigh :data:`BELOW_PITCH_GAIN`;
    * decay: bins weigh ``min(1, ((F + 1 - f) / (F + 1) + k / F) ** ln(gradient_exp))`` with ``F =
      num_bins``: 1 up to ``k``, then falling towards the top (high harmonics count less, and less
      so for high notes). ``gradient_exp <= 1`` disables the decay.
    """
    import tensorflow as tf

    k = note_bin_index(pitches, bins_per_feature_bin, margin_semitones, bins_per_octave)  # [batch, notes]
    f = tf.range(num_bins, dtype=tf.float32)  # [bins]
    high_pass = tf.where(f < k[..., tf.newaxis], BELOW_PITCH_GAIN, 1.0)
    exponent = math.log(gradient_exp) if gradient_exp > 1.0 else 0.0
    if exponent == 0.0:
        return high_pass
    size = float(num_bins)
    base = (size + 1.0 - f) / (size + 1.0) + k[..., tf.newaxis] / size
    decay = tf.minimum(1.0, tf.pow(tf.maximum(base, 0.0), exponent))
    return high_pass * decay


def note_bin_index(
    pitches: Any, bins_per_feature_bin: float, margin_semitones: float = 1.0, bins_per_octave: int = CQT_BINS_PER_OCTAVE
) -> Any:
    """Feature bin (float, integral) holding the CQT bin ``margin_semitones`` below each note's fundamental."""
    import tensorflow as tf

    cut = pitch_bins(tf.cast(pitches, tf.float32) - margin_semitones, bins_per_octave)
    return tf.floor(tf.maximum(tf.round(cut), 0.0) / bins_per_feature_bin)


def pitch_relative_bins(
    pooled: Any,
    pitches: Any,
    num_relative_bins: int,
    bins_per_feature_bin: float,
    margin_semitones: float = 1.0,
    bins_per_octave: int = CQT_BINS_PER_OCTAVE,
) -> Any:
    """The ``num_relative_bins`` feature bins from each note's fundamental upwards, zeros past the top.

    pooled: ``[batch, notes, bins, channels]`` (per-note features); pitches: MIDI ``[batch, notes]``.
    Returns ``[batch, notes, num_relative_bins, channels]`` whose bin ``r`` is feature bin ``k + r``, ``k``
    as in :func:`pitch_weights`: every note's harmonics land on the same rows, whatever its pitch.
    """
    import tensorflow as tf

    num_bins = tf.shape(pooled)[2]
    k = tf.cast(note_bin_index(pitches, bins_per_feature_bin, margin_semitones, bins_per_octave), tf.int32)
    index = k[..., tf.newaxis] + tf.range(num_relative_bins)  # [batch, notes, R]
    inside = index < num_bins
    gathered = tf.gather(pooled, tf.minimum(index, num_bins - 1), batch_dims=2)
    return tf.where(inside[..., tf.newaxis], gathered, tf.zeros_like(gathered))


def note_patches(
    spec: Any,
    notes: Any,
    frames_per_second: float,
    num_frames: int,
    num_bins: int,
    frames_before: int = 2,
    margin_semitones: float = 1.0,
    bins_per_octave: int = CQT_BINS_PER_OCTAVE,
) -> Any:
    """Pitch- and onset-aligned spectrogram patches ``[batch, notes, num_frames, num_bins]``.

    spec: ``[batch, frames, bins]`` CQT with ``frames_per_second``; notes ``[batch, notes, 3]``. Patch
    row ``i`` is frame ``floor(start * fps) - frames_before + i``; column ``j`` is the CQT bin
    ``round(bin of (pitch - margin_semitones)) + j``, so the fundamental and each harmonic sit at the
    same column for every note. Positions outside the spectrogram and padded notes are 0.
    """
    import tensorflow as tf

    spec = tf.convert_to_tensor(spec)
    notes = tf.cast(tf.convert_to_tensor(notes), tf.float32)
    total_frames, total_bins = tf.shape(spec)[1], tf.shape(spec)[2]
    batch, count = tf.shape(notes)[0], tf.shape(notes)[1]
    start = tf.clip_by_value(notes[..., 1] * frames_per_second, -1e6, 1e6)
    onset = tf.cast(tf.floor(start + SNAP_FRAMES), tf.int32) - frames_before  # [B, N]
    frames = onset[..., tf.newaxis] + tf.range(num_frames)  # [B, N, P]
    rows = tf.gather(spec, tf.reshape(tf.clip_by_value(frames, 0, total_frames - 1), [batch, -1]), batch_dims=1)
    rows = tf.reshape(rows, [batch, count, num_frames, total_bins])
    low = tf.cast(tf.round(pitch_bins(notes[..., 0] - margin_semitones, bins_per_octave)), tf.int32)
    bins = tf.maximum(low, 0)[..., tf.newaxis] + tf.range(num_bins)  # [B, N, Q]
    patches = tf.gather(rows, tf.minimum(bins, total_bins - 1), axis=3, batch_dims=2)  # [B, N, P, Q]
    inside = (
        ((frames >= 0) & (frames < total_frames))[..., tf.newaxis]
        & (bins < total_bins)[..., tf.newaxis, :]
        & (notes[..., 0] >= 0.0)[..., tf.newaxis, tf.newaxis]
    )
    return tf.where(inside, patches, tf.zeros_like(patches))


# ---------------------------------------------------------------------------------------------
# Slow references (tests and benchmarks): one note at a time, numpy.


def reference_spans(notes: np.ndarray, frames_per_second: float, num_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """numpy version of :func:`note_frame_spans` (float64, Python loop): int arrays ``[batch, notes]``."""
    notes = np.asarray(notes, np.float64)
    first = np.zeros(notes.shape[:2], np.int64)
    stop = np.zeros(notes.shape[:2], np.int64)
    for b in range(notes.shape[0]):
        for n in range(notes.shape[1]):
            pitch, start, end = notes[b, n]
            if pitch < 0:
                continue
            lo = math.floor(start * frames_per_second + SNAP_FRAMES)
            hi = max(math.ceil(end * frames_per_second - SNAP_FRAMES), lo + 1)
            lo, hi = min(max(lo, 0), num_frames), min(max(hi, 0), num_frames)
            first[b, n], stop[b, n] = lo, max(hi, lo)
    return first, stop


def reference_pool_notes(
    features: np.ndarray, notes: np.ndarray, frames_per_second: float, reduce: str = "max"
) -> np.ndarray:
    """numpy version of :func:`pool_notes` (``reduce="mean"``: of :func:`mean_pool_notes`), a Python loop."""
    features = np.asarray(features)
    first, stop = reference_spans(notes, frames_per_second, features.shape[1])
    out = np.zeros((features.shape[0], first.shape[1], *features.shape[2:]), features.dtype)
    for b in range(first.shape[0]):
        for n in range(first.shape[1]):
            if stop[b, n] > first[b, n]:
                span = features[b, first[b, n] : stop[b, n]]
                out[b, n] = span.max(axis=0) if reduce == "max" else span.mean(axis=0)
    return out
