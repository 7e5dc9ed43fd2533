"""Synthetic pieces: musical constraints, determinism, rendering, writers."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile
from note_seq.protobuf import music_pb2

from polyamp.data.synthetic import (
    make_synthetic_examples,
    random_note_sequence,
    synthesize,
    write_synthetic_folder,
)
from polyamp.errors import OutputExistsError
from polyamp.notes.midi import read_midi

SR = 16000


def _polyphony(sequence: music_pb2.NoteSequence, duration_s: float, step_s: float = 0.01) -> np.ndarray:
    grid = np.arange(0.0, duration_s, step_s)
    counts = np.zeros(grid.shape, np.int64)
    for note in sequence.notes:
        counts += (grid >= note.start_time) & (grid < note.end_time)
    return counts


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_sequence_respects_the_constraints(seed: int) -> None:
    duration = 30.0
    sequence = random_note_sequence(np.random.default_rng(seed), duration)
    assert sequence.total_time == duration
    assert len(sequence.notes) > 60
    lengths = np.array([note.end_time - note.start_time for note in sequence.notes])
    assert lengths.min() >= 0.15 - 1e-9 and lengths.max() <= 1.5 + 1e-9
    velocities = [note.velocity for note in sequence.notes]
    assert min(velocities) >= 40 and max(velocities) <= 120
    assert len(set(velocities)) > 10
    pitches = [note.pitch for note in sequence.notes]
    assert min(pitches) >= 36 and max(pitches) <= 84
    assert all(0 <= note.start_time < note.end_time <= duration for note in sequence.notes)

    by_pitch = defaultdict(list)
    for note in sequence.notes:
        by_pitch[note.pitch].append((note.start_time, note.end_time))
    for intervals in by_pitch.values():
        intervals.sort()
        for (_, end), (next_start, _) in zip(intervals, intervals[1:], strict=False):
            assert next_start >= end + 0.032 - 1e-9  # same pitch: no overlap, >= one frame apart

    counts = _polyphony(sequence, duration)
    assert (counts >= 3).mean() > 0.7  # three or more voices most of the time
    assert (counts == 0).mean() < 0.1

    # both block chords (3+ notes starting together) and independent voices (staggered onsets)
    onsets = np.array(sorted(note.start_time for note in sequence.notes))
    groups = np.split(onsets, np.nonzero(np.diff(onsets) > 1e-6)[0] + 1)
    assert sum(len(group) >= 3 for group in groups) >= 3
    assert sum(len(group) == 1 for group in groups) >= 20


def test_voice_and_pitch_options() -> None:
    sequence = random_note_sequence(
        np.random.default_rng(5), 20.0, min_voices=2, max_voices=2, min_pitch=48, max_pitch=72
    )
    pitches = [note.pitch for note in sequence.notes]
    assert min(pitches) >= 48 and max(pitches) <= 72
    assert (_polyphony(sequence, 20.0) >= 2).mean() > 0.6


def test_examples_are_deterministic_per_seed() -> None:
    first = list(make_synthetic_examples(2, 3.0, seed=7))
    again = list(make_synthetic_examples(2, 3.0, seed=7))
    other = list(make_synthetic_examples(2, 3.0, seed=8))
    for (name_a, seq_a, audio_a), (name_b, seq_b, audio_b) in zip(first, again, strict=True):
        assert name_a == name_b
        assert seq_a == seq_b
        np.testing.assert_array_equal(audio_a, audio_b)
    assert first[0][0] != first[1][0]
    assert first[0][1] != first[1][1]
    assert first[0][1] != other[0][1]
    name, sequence, audio = first[0]
    assert audio.dtype == np.float32 and audio.shape == (3 * SR,)


def test_synthesize_renders_a_harmonic_tone_with_envelope() -> None:
    sequence = music_pb2.NoteSequence(total_time=3.0)
    sequence.notes.add(pitch=69, velocity=100, start_time=1.0, end_time=2.0)
    audio = synthesize(sequence, SR, np.random.default_rng(0))
    assert audio.dtype == np.float32 and audio.shape == (3 * SR,)
    assert np.max(np.abs(audio)) == pytest.approx(0.9, abs=1e-4)
    assert np.all(audio[:SR] == 0)  # silent before the onset
    assert np.all(audio[int(2.04 * SR) :] == 0)  # silent after the 30 ms release
    assert np.abs(audio[SR : SR + 16]).max() < 0.1  # ~10 ms attack ramp
    held = audio[int(1.1 * SR) : int(1.9 * SR)]
    spectrum = np.abs(np.fft.rfft(held * np.hanning(held.size)))
    freqs = np.fft.rfftfreq(held.size, 1 / SR)
    assert freqs[np.argmax(spectrum)] == pytest.approx(440.0, abs=3.0)
    harmonic = spectrum[np.argmin(np.abs(freqs - 880.0))]
    assert harmonic > 0.01 * spectrum.max()  # overtones present
    early = np.sqrt(np.mean(audio[int(1.05 * SR) : int(1.15 * SR)] ** 2))
    late = np.sqrt(np.mean(audio[int(1.85 * SR) : int(1.95 * SR)] ** 2))
    assert late < early  # decays


def test_louder_velocity_gives_louder_note() -> None:
    sequence = music_pb2.NoteSequence(total_time=2.0)
    sequence.notes.add(pitch=60, velocity=40, start_time=0.0, end_time=0.5)
    sequence.notes.add(pitch=60, velocity=120, start_time=1.0, end_time=1.5)
    audio = synthesize(sequence, SR, np.random.default_rng(0))
    quiet = np.abs(audio[: int(0.5 * SR)]).max()
    loud = np.abs(audio[SR : int(1.5 * SR)]).max()
    assert loud / quiet == pytest.approx(3.0, rel=0.15)


def test_synthesize_sixty_seconds_of_four_voices() -> None:
    # Speed is a benchmark's job (it failed here under load); this checks the output only.
    sequence = random_note_sequence(np.random.default_rng(3), 60.0, min_voices=4, max_voices=4)
    audio = synthesize(sequence, SR, np.random.default_rng(3))
    assert audio.shape == (60 * SR,)
    assert np.isfinite(audio).all() and np.abs(audio).max() > 0.01


def test_empty_sequence_is_silence() -> None:
    audio = synthesize(music_pb2.NoteSequence(total_time=1.0), SR)
    assert audio.shape == (SR,) and not audio.any()


def test_write_synthetic_folder_writes_wav_and_midi_pairs(tmp_path: Path) -> None:
    wavs = write_synthetic_folder(tmp_path, num_examples=2, duration_s=2.5, seed=4)
    assert len(wavs) == 2
    expected = list(make_synthetic_examples(2, 2.5, seed=4))
    for wav, (name, sequence, samples) in zip(wavs, expected, strict=True):
        assert wav.name == f"{name}.wav"
        audio, rate = soundfile.read(wav, dtype="float32")
        assert rate == SR and audio.ndim == 1 and audio.shape == samples.shape
        np.testing.assert_allclose(audio, samples, atol=1.0 / 16000)
        back = read_midi(wav.with_suffix(".mid"))
        assert len(back.notes) == len(sequence.notes)
        for got, want in zip(sorted(back.notes, key=lambda n: (n.start_time, n.pitch)), sequence.notes, strict=True):
            assert got.pitch == want.pitch and got.velocity == want.velocity
            assert got.start_time == pytest.approx(want.start_time, abs=2e-3)
            assert got.end_time == pytest.approx(want.end_time, abs=2e-3)
    with pytest.raises(OutputExistsError, match=r"synthetic_4_0000\.(wav|mid)"):
        write_synthetic_folder(tmp_path, num_examples=2, duration_s=2.5, seed=4)
    write_synthetic_folder(tmp_path, num_examples=2, duration_s=2.5, seed=4, overwrite=True)
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".mid", ".mid", ".wav", ".wav"]
