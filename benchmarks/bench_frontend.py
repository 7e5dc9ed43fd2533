"""Wall time of the CQT and mel front ends on 10 minutes of 16 kHz audio.

Run: ``PYTHONPATH=. python benchmarks/bench_frontend.py [--minutes 10] [--repeats 3]``.
Prints, for each front end, the best wall time (seconds) over ``--repeats`` runs of a
``tf.function`` traced once with a [None, None] input signature (the tracing run is not timed),
for one 10-minute signal and for the same audio as a batch of 8 equal chunks.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def _synthetic_audio(num_samples: int, sample_rate: int) -> np.ndarray:
    """Noise plus a few tones, float32 [num_samples]."""
    rng = np.random.default_rng(0)
    times = np.arange(num_samples) / sample_rate
    audio = 0.01 * rng.standard_normal(num_samples)
    for pitch in (33, 45, 60, 69, 84, 100):
        audio += 0.1 * np.sin(2.0 * np.pi * 440.0 * 2.0 ** ((pitch - 69) / 12.0) * times)
    return audio.astype(np.float32)


def _best_time(function: object, inputs: object, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function(inputs).numpy()  # type: ignore[operator]
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the test audio in minutes")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per case; the best is printed")
    args = parser.parse_args()

    import tensorflow as tf

    from polyamp.audio.frontends import CQTFrontend, MelFrontend
    from polyamp.constants import SAMPLE_RATE_HZ

    num_samples = int(args.minutes * 60 * SAMPLE_RATE_HZ)
    audio = _synthetic_audio(num_samples, SAMPLE_RATE_HZ)
    single = tf.constant(audio[np.newaxis, :])
    batch = tf.constant(audio[: num_samples - num_samples % 8].reshape(8, -1))
    print(
        f"audio: {args.minutes:g} min at {SAMPLE_RATE_HZ} Hz = {num_samples} samples; "
        f"{os.cpu_count()} CPUs; TensorFlow {tf.__version__}"
    )
    for name, frontend in (("cqt", CQTFrontend()), ("mel", MelFrontend())):
        function = tf.function(frontend, input_signature=[tf.TensorSpec([None, None], tf.float32)])
        start = time.perf_counter()
        function(single[:, :SAMPLE_RATE_HZ]).numpy()
        trace = time.perf_counter() - start
        single_time = _best_time(function, single, args.repeats)
        batch_time = _best_time(function, batch, args.repeats)
        frames = function(single).shape[1]
        print(
            f"{name}: {single_time:.3f} s for one {args.minutes:g}-min signal ({frames} frames, "
            f"{args.minutes * 60 / single_time:.0f}x real time); {batch_time:.3f} s as a batch of 8; "
            f"first call (trace) {trace:.2f} s"
        )


if __name__ == "__main__":
    main()
