"""Windowed prediction: audio of any length -> probability rolls, with bounded memory.

The signal is cut into windows of ``window_frames`` frames plus ``context_frames`` on each side
(enough for the longest CQT kernel and for the LSTMs to warm up); only each window's centre
is kept. Windows are read from an :class:`~polyamp.audio.decode.AudioReader` on demand and run
in fixed-size batches, so memory does not grow with the file's length (the output rolls are
float16: about 20 MB per head per hour of audio).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import gin
import numpy as np

from polyamp.constants import HOP_LENGTH_SAMPLES, NUM_PITCHES

ROLL_NAMES = ("frames", "onsets", "offsets", "velocities")


@dataclasses.dataclass
class PredictedRolls:
    """Model outputs for one signal, each float16 [num_frames, 88]."""

    frames: np.ndarray
    onsets: np.ndarray
    offsets: np.ndarray
    velocities: np.ndarray

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])


@gin.configurable
class WindowedPredictor:
    """Runs a model over long signals window by window.

    ``read(start_sample, num_samples)`` must return float32 mono samples at 16 kHz, zero
    outside the signal (``AudioReader.read`` does).
    """

    def __init__(
        self,
        model: Any,
        frontend: Any,
        window_frames: int = 1024,
        context_frames: int = 32,
        batch_windows: int = 4,
    ) -> None:
        self.model = model
        self.frontend = frontend
        self.window_frames = int(window_frames)
        self.context_frames = max(int(context_frames), int(getattr(frontend, "context_frames", 0)))
        self.batch_windows = int(batch_windows)
        self._predict_fn = self._make_predict_fn()

    def _make_predict_fn(self) -> Callable[[Any], Any]:
        import tensorflow as tf

        model, frontend = self.model, self.frontend

        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32)], reduce_retracing=True)
        def predict(samples: Any) -> Any:
            spec = frontend(samples)[:, :-1]
            outputs = model(spec, training=False)
            return tuple(tf.cast(outputs[name], tf.float16) for name in ROLL_NAMES)

        return predict

    def warm_up(self, frames: int = 32) -> None:
        """Builds the prediction graph now, on ``frames`` frames of silence: tracing and graph
        optimisation take a few seconds on a CPU once per process, and otherwise land on the first file."""
        span_samples = (int(frames) + 2 * self.context_frames) * HOP_LENGTH_SAMPLES
        self._predict_fn(np.zeros((1, span_samples), np.float32))

    def predict(
        self,
        read: Callable[[int, int], np.ndarray],
        num_samples: int,
        progress: Callable[[int, int], None] | None = None,
    ) -> PredictedRolls:
        """Probability rolls for a signal of ``num_samples`` samples (``num_samples // 512 + 1`` frames)."""
        total_frames = num_samples // HOP_LENGTH_SAMPLES + 1
        rolls = [np.zeros((total_frames, NUM_PITCHES), np.float16) for _ in ROLL_NAMES]
        context = self.context_frames
        window = min(self.window_frames, total_frames)
        num_windows = -(-total_frames // window)
        batch = min(self.batch_windows, num_windows)
        span_samples = (window + 2 * context) * HOP_LENGTH_SAMPLES
        for first in range(0, num_windows, batch):
            indices = list(range(first, min(first + batch, num_windows)))
            chunk = np.zeros((batch, span_samples), np.float32)
            for row, index in enumerate(indices):
                chunk[row] = read((index * window - context) * HOP_LENGTH_SAMPLES, span_samples)
            outputs = self._predict_fn(chunk)
            for row, index in enumerate(indices):
                start = index * window
                stop = min(start + window, total_frames)
                for roll, output in zip(rolls, outputs, strict=False):
                    roll[start:stop] = output[row, context : context + stop - start].numpy()
            if progress is not None:
                progress(min((indices[-1] + 1) * window, total_frames), total_frames)
        return PredictedRolls(*rolls)

    def predict_samples(
        self, samples: np.ndarray, progress: Callable[[int, int], None] | None = None
    ) -> PredictedRolls:
        """Probability rolls for an in-memory float32 signal at 16 kHz; ``progress(done, total)`` in frames."""
        samples = np.asarray(samples, np.float32)

        def read(start: int, count: int) -> np.ndarray:
            out = np.zeros(count, np.float32)
            lo, hi = max(start, 0), min(start + count, samples.shape[0])
            if hi > lo:
                out[lo - start : hi - start] = samples[lo:hi]
            return out

        return self.predict(read, samples.shape[0], progress=progress)
