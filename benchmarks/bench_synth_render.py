"""Speed (and aliasing) of SoundFont rendering: random 4-part music with FluidR3_GM.

Run: ``PYTHONPATH=. python benchmarks/bench_synth_render.py [MINUTES] [--quality] [--soundfont PATH]``.

For each configuration it renders the same random piece (piano, fingered bass, string ensemble,
drums; 4-8 onsets per second per part, chords of 1-3 notes, velocities 40-120) and prints the
wall time and the speed in x real time per stem on one core. Configurations: synthesis directly
at 16 kHz, at 32 kHz resampled 2:1 (the default) and at 44.1 kHz resampled 160/441, each with
FluidSynth's reverb on (the default) and off.

``--quality`` also compares single notes rendered at 16 kHz and 32 kHz with the 44.1 kHz render
(waveform SNR and log-spectral distance over the loud STFT bins): FluidSynth does not low-pass
samples it plays at a lower rate, so direct 16 kHz synthesis folds their 8-22 kHz content into
the band.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from polyamp.synth.piece import NoteEvent, Part
from polyamp.synth.render import SoundFontRenderer

FLUIDR3 = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
SAMPLE_RATE_HZ = 16000
PARTS = (("piano", 0, False, (48, 84)), ("bass", 33, False, (28, 52)), ("strings", 48, False, (48, 79)))
DRUM_KEYS = (36, 38, 42, 42, 42, 44, 46, 49, 51)


def random_parts(minutes: float, seed: int = 0) -> list[Part]:
    """Three pitched parts and a drum part filling ``minutes`` minutes."""
    rng = np.random.default_rng(seed)
    duration_s = minutes * 60.0
    parts = []
    for name, program, is_drum, (low, high) in PARTS:
        notes, time_s = [], 0.0
        while True:
            time_s += float(rng.exponential(1 / 6))
            if time_s >= duration_s - 1:
                break
            for pitch in rng.choice(np.arange(low, high), int(rng.integers(1, 4)), replace=False):
                end_s = time_s + float(rng.uniform(0.1, 1.2))
                notes.append(NoteEvent(int(pitch), time_s, end_s, int(rng.integers(40, 121))))
        parts.append(Part(name, program, is_drum, tuple(notes)))
    drums, time_s = [], 0.0
    while True:
        time_s += float(rng.exponential(1 / 8))
        if time_s >= duration_s - 1:
            break
        key = int(rng.choice(DRUM_KEYS))
        drums.append(NoteEvent(key, time_s, time_s + 0.1, int(rng.integers(40, 121))))
    parts.append(Part("drums", 0, True, tuple(drums)))
    return parts


def time_configuration(soundfont: Path, parts: list[Part], duration_s: float, rate: int, reverb: bool) -> None:
    with SoundFontRenderer(soundfont, reverb=reverb, internal_rate_hz=rate) as renderer:
        renderer.render_note(0, 60, 100, 0.1, 0.2)  # imports and first-use costs out of the timing
        began = time.perf_counter()
        stems = [renderer.render_part(part, duration_s) for part in parts]
        seconds = time.perf_counter() - began
    speed = duration_s * len(parts) / seconds
    peaks = " ".join(f"{np.abs(stem).max():.2f}" for stem in stems)
    mode = "direct" if rate == SAMPLE_RATE_HZ else "resampled"
    print(
        f"synthesis at {rate / 1000:g} kHz ({mode}), reverb {'on ' if reverb else 'off'}: "
        f"{seconds:6.2f} s, {speed:6.1f} x real time per stem-core; stem peaks {peaks}"
    )


def quality_table(soundfont: Path) -> None:
    from scipy.signal import stft

    rates = (16000, 32000, 44100)
    renderers = {rate: SoundFontRenderer(soundfont, reverb=False, internal_rate_hz=rate) for rate in rates}

    def log_power(audio: np.ndarray) -> np.ndarray:
        return 10 * np.log10(np.abs(stft(audio, SAMPLE_RATE_HZ, nperseg=512, noverlap=384)[2]) ** 2 + 1e-10)

    def compare(render: object) -> str:
        reference = render(renderers[44100])
        cells = []
        for rate in (16000, 32000):
            audio = render(renderers[rate])
            snr = 10 * np.log10(np.sum(reference**2) / np.sum((audio - reference) ** 2))
            spec, ref_spec = log_power(audio), log_power(reference)
            loud = ref_spec > ref_spec.max() - 60
            distance = np.sqrt(np.mean((spec - ref_spec)[loud] ** 2))
            cells.append(f"{rate // 1000} kHz: SNR {snr:5.1f} dB, LSD {distance:5.2f} dB")
        return " | ".join(cells)

    print("\nSingle notes vs 44.1 kHz synthesis (higher SNR, lower log-spectral distance = closer):")
    for name, program in (("piano", 0), ("trumpet", 56), ("violin", 40), ("saw lead", 81), ("flute", 73)):
        for pitch in (48, 72, 84):
            row = compare(lambda r, p=program, k=pitch: r.render_note(p, k, 100, 1.0, 1.5))
            print(f"  {name:9s} {pitch:3d}  {row}")
    for name, key in (("kick", 36), ("snare", 38), ("closed hh", 42), ("crash", 49)):
        part = Part(name, 0, True, (NoteEvent(key, 0.0, 0.3, 100),))
        print(f"  {name:13s} {compare(lambda r, part=part: r.render_part(part, 1.5))}")
    for renderer in renderers.values():
        renderer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("minutes", nargs="?", type=float, default=2.0, help="length of the random piece")
    parser.add_argument("--soundfont", type=Path, default=FLUIDR3)
    parser.add_argument("--quality", action="store_true", help="also print the aliasing comparison")
    args = parser.parse_args()
    parts = random_parts(args.minutes)
    duration_s = args.minutes * 60.0
    notes = sum(len(part.notes) for part in parts)
    print(f"{args.soundfont.name}: {len(parts)} parts x {args.minutes:g} min, {notes} notes")
    for rate in (16000, 32000, 44100):
        for reverb in (True, False):
            time_configuration(args.soundfont, parts, duration_s, rate, reverb)
    if args.quality:
        quality_table(args.soundfont)


if __name__ == "__main__":
    main()
