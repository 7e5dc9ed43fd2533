"""Times OnsetsFramesDecoder.decode on a 10-minute roll (18,750 frames x 88 pitches).

Run: ``PYTHONPATH=. python benchmarks/bench_decode.py``. Two inputs: "realistic" probabilities
(label rolls of ~6,000 random notes, blurred and noised) and a worst case of uniform noise,
which yields hundreds of thousands of notes.
"""

from __future__ import annotations

import time

import numpy as np

from polyamp.decode.onsets_frames import OnsetsFramesDecoder
from polyamp.metrics import transcription_metrics
from polyamp.notes.rolls import _music_pb2, sequence_to_rolls

NUM_FRAMES = 18_750  # 10 min at 31.25 frames/s


def _random_sequence(rng: np.random.Generator, num_notes: int, duration_s: float) -> object:
    sequence = _music_pb2().NoteSequence()
    starts = rng.uniform(0, duration_s - 2, num_notes)
    for start in starts:
        sequence.notes.add(
            pitch=int(rng.integers(21, 109)),
            start_time=float(start),
            end_time=float(start + rng.uniform(0.05, 1.5)),
            velocity=int(rng.integers(20, 120)),
        )
    return sequence


def _best_of(repeats: int, function: object, *args: object) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        began = time.perf_counter()
        result = function(*args)
        best = min(best, time.perf_counter() - began)
    return best, result


def main() -> None:
    rng = np.random.default_rng(0)
    sequence = _random_sequence(rng, 6000, NUM_FRAMES / 31.25)
    seconds, rolls = _best_of(3, sequence_to_rolls, sequence, NUM_FRAMES)
    print(f"sequence_to_rolls, 6000 notes, {NUM_FRAMES} frames: {seconds * 1000:.1f} ms")

    def noisy(roll: np.ndarray) -> np.ndarray:
        return np.clip(0.8 * roll + rng.uniform(0, 0.3, roll.shape), 0, 1).astype(np.float32)

    probs = [noisy(rolls.frames), noisy(rolls.onsets), noisy(rolls.offsets), rolls.velocities]
    decoder = OnsetsFramesDecoder()
    seconds, notes = _best_of(5, decoder.decode, *probs)
    print(f"decode realistic: {seconds * 1000:.1f} ms, {len(notes)} notes")

    noise = [rng.uniform(0, 1, (NUM_FRAMES, 88)).astype(np.float32) for _ in range(4)]
    seconds, notes = _best_of(3, decoder.decode, *noise)
    print(f"decode uniform noise (worst case): {seconds * 1000:.1f} ms, {len(notes)} notes")

    decoded = decoder.decode(*probs)
    seconds, scores = _best_of(1, transcription_metrics, sequence, decoded)
    print(f"transcription_metrics, 10 min, 6000 notes: {seconds * 1000:.0f} ms, note_f1={scores['note_f1']:.3f}")


if __name__ == "__main__":
    main()
