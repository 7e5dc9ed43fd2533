"""Synthetic polyphonic music for tests, benchmarks and the demo (no downloads).

``random_note_sequence`` draws a piece mixing block chords and several independent melodic
voices; ``synthesize`` renders it with harmonic tones (attack, exponential decay, release).
Examples are deterministic functions of ``(seed, index)``.
"""

from __future__ import annotations

import math
import os
import pathlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from polyamp.constants import FRAMES_PER_SECOND, SAMPLE_RATE_HZ
from polyamp.errors import ConfigError, OutputExistsError

if TYPE_CHECKING:
    from note_seq.protobuf.music_pb2 import NoteSequence

MIN_NOTE_S = 0.15
MAX_NOTE_S = 1.5
SAME_PITCH_GAP_S = 1.0 / FRAMES_PER_SECOND
"""Two notes of the same pitch are at least one frame (32 ms) apart."""
ATTACK_S = 0.01
RELEASE_S = 0.03
PEAK_LEVEL = 0.9

_CHORD_SHAPES = (
    (0, 4, 7),
    (0, 3, 7),
    (0, 4, 7, 11),
    (0, 3, 7, 10),
    (0, 4, 7, 10),
    (0, 5, 7),
    (0, 3, 6),
    (0, 4, 7, 12),
    (0, 7, 12, 16),
    (0, 2, 7),
)


class _PitchBook:
    """Remembers when each pitch is free again, so that same-pitch notes never overlap."""

    def __init__(self) -> None:
        self.free_at: dict[int, float] = {}

    def is_free(self, pitch: int, start: float) -> bool:
        return start >= self.free_at.get(pitch, -math.inf) + SAME_PITCH_GAP_S

    def take(self, pitch: int, end: float) -> None:
        self.free_at[pitch] = end


def random_note_sequence(
    rng: np.random.Generator,
    duration_s: float,
    min_voices: int = 3,
    max_voices: int = 4,
    min_pitch: int = 36,
    max_pitch: int = 84,
) -> NoteSequence:
    """A random piece ``duration_s`` seconds long of chords and independent melodic voices.

    Notes last 0.15-1.5 s with velocities 40-120 and pitches in ``[min_pitch, max_pitch]``;
    at least ``min_voices`` notes sound together most of the time; two notes of the same pitch
    never overlap and are at least one frame (32 ms) apart. ``total_time`` is ``duration_s``.
    """
    from note_seq.protobuf import music_pb2

    if duration_s <= 0:
        raise ConfigError(f"synthetic duration must be positive, got {duration_s} s")
    if not 1 <= min_voices <= max_voices:
        raise ConfigError(f"need 1 <= min_voices <= max_voices, got {min_voices} and {max_voices}")
    if max_pitch - min_pitch < 12 + 2 * max_voices:
        raise ConfigError(f"pitch range {min_pitch}-{max_pitch} is too narrow for {max_voices} voices")

    sequence = music_pb2.NoteSequence()
    sequence.ticks_per_quarter = 480
    sequence.tempos.add(time=0.0, qpm=120.0)
    book = _PitchBook()
    time = 0.0
    while time < duration_s - MIN_NOTE_S:
        segment_s = float(rng.uniform(1.5, 4.0))
        segment_end = min(duration_s, time + segment_s)
        voices = int(rng.integers(min_voices, max_voices + 1))
        if rng.random() < 0.45:
            time = _add_chords(sequence, rng, book, time, segment_end, voices, min_pitch, max_pitch)
        else:
            time = _add_melodies(sequence, rng, book, time, segment_end, duration_s, voices, min_pitch, max_pitch)

    notes = sorted(sequence.notes, key=lambda note: (note.start_time, note.pitch))
    del sequence.notes[:]
    sequence.notes.extend(notes)
    sequence.total_time = float(duration_s)
    return sequence


def _add_note(
    sequence: Any, book: _PitchBook, pitch: int, start: float, end: float, velocity: int, limit: float
) -> bool:
    end = min(end, limit)
    if end - start < MIN_NOTE_S or not book.is_free(pitch, start):
        return False
    sequence.notes.add(pitch=pitch, start_time=start, end_time=end, velocity=velocity, program=0)
    book.take(pitch, end)
    return True


def _add_chords(
    sequence: Any,
    rng: np.random.Generator,
    book: _PitchBook,
    time: float,
    segment_end: float,
    voices: int,
    min_pitch: int,
    max_pitch: int,
) -> float:
    """Block chords (``voices``+ notes at once) from ``time`` to ``segment_end``; returns the end."""
    limit = segment_end
    while time < segment_end - MIN_NOTE_S:
        length = float(rng.uniform(0.3, MAX_NOTE_S))
        shape = list(_CHORD_SHAPES[int(rng.integers(len(_CHORD_SHAPES)))])
        while len(shape) < voices:  # double a chord tone an octave up
            shape.append(shape[len(shape) - 3] + 12)
        span = max(shape)
        placed = 0
        for _ in range(8):  # a few tries to find a root whose chord tones are all free
            root = int(rng.integers(min_pitch, max(min_pitch, max_pitch - span) + 1))
            pitches = [root + step for step in shape if root + step <= max_pitch]
            if all(book.is_free(pitch, time) for pitch in pitches):
                base_velocity = int(rng.integers(40, 121))
                for pitch in pitches:
                    note_length = length * float(rng.uniform(0.85, 1.0))
                    velocity = int(np.clip(base_velocity + rng.integers(-8, 9), 40, 120))
                    placed += _add_note(sequence, book, pitch, time, time + note_length, velocity, limit)
                break
        # The next chord starts right after this one (a frame later), sometimes a little overlapped.
        if placed:
            time += length + float(rng.uniform(SAME_PITCH_GAP_S, 0.06)) * (rng.random() < 0.7)
        else:
            time += SAME_PITCH_GAP_S
    return min(time, segment_end)  # the last chord is cut at segment_end


def _add_melodies(
    sequence: Any,
    rng: np.random.Generator,
    book: _PitchBook,
    time: float,
    segment_end: float,
    duration_s: float,
    voices: int,
    min_pitch: int,
    max_pitch: int,
) -> float:
    """``voices`` independent melodic lines, each in its own register, until ``segment_end``."""
    limit = min(duration_s, segment_end + 0.1)  # lines may ring briefly into the next segment
    edges = np.linspace(min_pitch, max_pitch, voices + 1)
    for voice in range(voices):
        low, high = int(round(edges[voice])), int(round(edges[voice + 1])) - 1
        pitch = int(rng.integers(low, high + 1))
        # Voices start slightly staggered, then move independently.
        t = time + float(rng.uniform(0.0, 0.12))
        while t < segment_end - MIN_NOTE_S:
            length = float(np.clip(rng.lognormal(math.log(0.35), 0.5), MIN_NOTE_S, MAX_NOTE_S))
            step = int(rng.choice([-5, -4, -3, -2, -1, 1, 2, 3, 4, 5, 7, -7]))
            pitch = int(np.clip(pitch + step, low, high))
            velocity = int(rng.integers(40, 121))
            if not book.is_free(pitch, t):
                pitch = next((candidate for candidate in range(low, high + 1) if book.is_free(candidate, t)), pitch)
            if _add_note(sequence, book, pitch, t, t + length, velocity, limit):
                # legato or detached by a short gap (>= 1 frame when re-striking a pitch is checked above)
                t += length + float(rng.uniform(0.0, 0.08))
            else:
                t += SAME_PITCH_GAP_S
    return segment_end


def synthesize(
    sequence: NoteSequence, sample_rate_hz: int = SAMPLE_RATE_HZ, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Renders ``sequence`` to float32 mono samples at ``sample_rate_hz``, peak-normalised to 0.9.

    Each note is a harmonic tone (fundamental plus up to 8 harmonics below Nyquist) with a
    10 ms attack, an exponential decay, a 30 ms release after its end, amplitude proportional to
    velocity. The timbre (harmonic weights, decay rates) and phases come from ``rng`` (default:
    seed 0), so the same rng seed gives the same audio. Length: ``max(total_time, last note end)``.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    notes = list(sequence.notes)
    end_s = max([sequence.total_time] + [note.end_time for note in notes])
    num_samples = int(math.ceil(end_s * sample_rate_hz))
    output = np.zeros(num_samples, np.float64)
    if not notes or num_samples == 0:
        return output.astype(np.float32)

    num_harmonics = 8
    harmonic_numbers = np.arange(1, num_harmonics + 1, dtype=np.float64)
    rolloff = float(rng.uniform(0.8, 1.6))
    weights = harmonic_numbers**-rolloff * rng.uniform(0.4, 1.0, num_harmonics)
    weights[0] = 1.0
    decay_scale = float(rng.uniform(0.9, 1.8))  # seconds, for the fundamental at A4
    decay_growth = rng.uniform(0.15, 0.5)  # higher harmonics decay faster
    nyquist = sample_rate_hz / 2
    attack = max(1, int(round(ATTACK_S * sample_rate_hz)))
    release = max(1, int(round(RELEASE_S * sample_rate_hz)))

    for note in notes:
        start = int(round(note.start_time * sample_rate_hz))
        if start >= num_samples:
            continue
        held = max(1, int(round((note.end_time - note.start_time) * sample_rate_hz)))
        length = min(held + release, num_samples - start)
        frequency = 440.0 * 2.0 ** ((note.pitch - 69) / 12.0)
        audible = harmonic_numbers * frequency < 0.95 * nyquist
        if not audible.any():
            continue
        numbers = harmonic_numbers[audible]
        t = np.arange(length, dtype=np.float64) / sample_rate_hz
        tau = decay_scale * (440.0 / frequency) ** 0.3 / (1.0 + decay_growth * (numbers - 1))
        phases = rng.uniform(0, 2 * np.pi, len(numbers))
        # [harmonics, samples] partials, each with its own decay, summed over harmonics.
        partials = np.sin(2 * np.pi * frequency * numbers[:, None] * t[None, :] + phases[:, None])
        partials *= np.exp(-t[None, :] / tau[:, None])
        tone = weights[audible] @ partials
        envelope = np.ones(length)
        ramp = min(attack, length)
        envelope[:ramp] = np.linspace(0.0, 1.0, ramp, endpoint=False)
        if length > held:
            envelope[held:] *= np.linspace(1.0, 0.0, length - held, endpoint=False)
        output[start : start + length] += (note.velocity / 127.0) * tone * envelope

    peak = float(np.max(np.abs(output)))
    if peak > 0:
        output *= PEAK_LEVEL / peak
    return output.astype(np.float32)


def make_synthetic_examples(
    num_examples: int,
    duration_s: float,
    seed: int,
    sample_rate_hz: int = SAMPLE_RATE_HZ,
    **kw: Any,
) -> Iterator[tuple[str, NoteSequence, np.ndarray]]:
    """Yields ``(name, sequence, samples)`` for ``num_examples`` random pieces of ``duration_s`` s.

    Example ``i`` depends only on ``(seed, i)``; ``kw`` goes to :func:`random_note_sequence`.
    ``samples`` is float32 mono at ``sample_rate_hz``.
    """
    for index in range(num_examples):
        notes_rng = np.random.default_rng([seed, index, 0])
        sound_rng = np.random.default_rng([seed, index, 1])
        name = f"synthetic_{seed}_{index:04d}"
        sequence = random_note_sequence(notes_rng, duration_s, **kw)
        sequence.id = name
        sequence.filename = name
        yield name, sequence, synthesize(sequence, sample_rate_hz, sound_rng)


def write_synthetic_folder(
    output_dir: str | os.PathLike[str],
    num_examples: int,
    duration_s: float,
    seed: int,
    sample_rate_hz: int = SAMPLE_RATE_HZ,
    overwrite: bool = False,
    **kw: Any,
) -> list[pathlib.Path]:
    """Writes ``NAME.wav`` (16-bit PCM mono) + ``NAME.mid`` pairs into ``output_dir``.

    Returns the WAV paths (each MIDI file is ``path.with_suffix('.mid')``). Refuses existing
    files (OutputExistsError) unless ``overwrite``.
    """
    from polyamp.notes.midi import write_midi

    output_dir = pathlib.Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, sequence, samples in make_synthetic_examples(num_examples, duration_s, seed, sample_rate_hz, **kw):
        wav_path = output_dir / f"{name}.wav"
        if wav_path.exists() and not overwrite:
            raise OutputExistsError(f"output file already exists: {wav_path} (use --overwrite to replace it)")
        write_midi(sequence, wav_path.with_suffix(".mid"), overwrite=overwrite)
        _write_bytes_atomically(wav_path, _encode_wav(samples, sample_rate_hz))
        written.append(wav_path)
    return written


def write_synthetic_tfrecord(
    output_path: str | os.PathLike[str],
    num_examples: int,
    duration_s: float,
    seed: int,
    sample_rate_hz: int = SAMPLE_RATE_HZ,
    overwrite: bool = False,
    **kw: Any,
) -> pathlib.Path:
    """Writes ``num_examples`` synthetic pieces to one Magenta-style TFRecord file at ``output_path``."""
    from polyamp.data.tfrecord import make_example, write_tfrecord

    output_path = pathlib.Path(output_path)
    if output_path.exists() and not overwrite:
        raise OutputExistsError(f"output file already exists: {output_path} (use --overwrite to replace it)")
    output_path.parent.mkdir(parents=True, exist_ok=True)
    records = (
        make_example(name, sequence, _encode_wav(samples, sample_rate_hz))
        for name, sequence, samples in make_synthetic_examples(num_examples, duration_s, seed, sample_rate_hz, **kw)
    )
    return write_tfrecord(output_path, records)


def _encode_wav(samples: np.ndarray, sample_rate_hz: int) -> bytes:
    """16-bit PCM mono WAV bytes of ``samples`` (float in [-1, 1])."""
    from polyamp.audio.decode import encode_wav

    return encode_wav(samples, sample_rate_hz)


def _write_bytes_atomically(path: pathlib.Path, data: bytes) -> None:
    from polyamp.fileio import atomic_write_bytes

    atomic_write_bytes(path, data)
