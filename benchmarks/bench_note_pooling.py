"""Times the Timbre model's note pooling: B=4 clips, N=256 notes, T'=500 feature frames (72 s at 6.94 frames/s).

Run: ``PYTHONPATH=. python benchmarks/bench_note_pooling.py [--channels 64] [--repeats 3]``.
Compares the vectorised implementations of :func:`polyamp.models.note_pooling.pool_notes` (inside
``tf.function``, forward and forward + backward) with two Python loops over notes: numpy
(:func:`reference_pool_notes`) and an eager TensorFlow loop that slices and reduces one note at a
time, as the 2020 code did. Notes last 0.05-3 s (1-21 frames). Every result is checked against
the numpy reference. The ``mask`` method needs ``B * N * T' * F' * C`` floats and is skipped
above ``--mask-limit-gb``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from polyamp.models.note_pooling import POOLING_METHODS, pool_notes, reference_pool_notes, reference_spans

BATCH, NOTES, FRAMES, BINS = 4, 256, 500, 57
FPS = 62.5 / 9


def _best_of(repeats: int, function, *args) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        began = time.perf_counter()
        result = function(*args)
        best = min(best, time.perf_counter() - began)
    return best, result


def _eager_loop(features, notes: np.ndarray):
    """The 2020 approach: one eager slice + reduce_max per note."""
    import tensorflow as tf

    first, stop = reference_spans(notes, FPS, features.shape[1])
    rows = []
    for b in range(notes.shape[0]):
        for n in range(notes.shape[1]):
            if stop[b, n] > first[b, n]:
                rows.append(tf.reduce_max(features[b, int(first[b, n]) : int(stop[b, n])], axis=0))
            else:
                rows.append(tf.zeros(features.shape[2:], features.dtype))
    return tf.reshape(tf.stack(rows), [notes.shape[0], notes.shape[1], *features.shape[2:]]).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=64, help="feature channels C (2020 model: 384)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mask-limit-gb", type=float, default=2.0)
    args = parser.parse_args()

    import tensorflow as tf

    rng = np.random.default_rng(0)
    features_np = rng.normal(size=(BATCH, FRAMES, BINS, args.channels)).astype(np.float32)
    start = rng.uniform(0.0, FRAMES / FPS - 1.0, size=(BATCH, NOTES))
    notes_np = np.stack(
        [rng.integers(21, 109, size=(BATCH, NOTES)), start, start + rng.uniform(0.05, 3.0, size=(BATCH, NOTES))],
        axis=-1,
    ).astype(np.float32)
    features, notes = tf.constant(features_np), tf.constant(notes_np)
    first, stop = reference_spans(notes_np, FPS, FRAMES)
    print(
        f"B={BATCH} N={NOTES} T'={FRAMES} F'={BINS} C={args.channels}; "
        f"mean span {np.mean(stop - first):.1f} frames, best of {args.repeats}"
    )

    seconds, expected = _best_of(args.repeats, reference_pool_notes, features_np, notes_np, FPS)
    print(f"{'numpy loop (reference)':32s} forward {seconds * 1000:9.1f} ms")
    seconds, eager = _best_of(1, _eager_loop, features, notes_np)
    np.testing.assert_array_equal(eager, expected)
    print(f"{'eager TF loop (2020 style)':32s} forward {seconds * 1000:9.1f} ms")

    for method in POOLING_METHODS:
        needed_gb = BATCH * NOTES * FRAMES * BINS * args.channels * 4 / 1e9
        if method == "mask" and needed_gb > args.mask_limit_gb:
            print(f"{method:32s} skipped: needs ~{needed_gb:.1f} GB (> --mask-limit-gb {args.mask_limit_gb})")
            continue
        forward = tf.function(lambda f, n, m=method: pool_notes(f, n, FPS, m))

        @tf.function
        def forward_backward(f, n, m=method):
            with tf.GradientTape() as tape:
                tape.watch(f)
                total = tf.reduce_sum(tf.square(pool_notes(f, n, FPS, m)))
            return tape.gradient(total, f)

        result = forward(features, notes).numpy()  # trace once
        np.testing.assert_array_equal(result, expected)
        forward_backward(features, notes)
        seconds, _ = _best_of(args.repeats, lambda f=forward: f(features, notes).numpy())
        both, _ = _best_of(args.repeats, lambda f=forward_backward: f(features, notes).numpy())
        label = f"{method} (tf.function)"
        print(f"{label:32s} forward {seconds * 1000:9.1f} ms   forward+backward {both * 1000:9.1f} ms")


if __name__ == "__main__":
    main()
