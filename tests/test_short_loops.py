"""Short-loop SoundFont copies: only loop points change, loops are a few cycles after a short attack,
the sustain of a rendered note stops evolving, and bad input gets a SoundFontError.

Uses FluidR3 GM (the training SoundFont, installed by scripts/install-system-deps.sh).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from polyamp.errors import MissingDependencyError, SoundFontError
from polyamp.synth.piece import NoteEvent, Part
from polyamp.synth.short_loops import (
    ShortLoopOptions,
    find_sample_headers,
    loop_statistics,
    read_sample_headers,
    short_loop,
    write_short_loop_soundfont,
)

FLUIDR3 = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
SR = 16000
FLUTE = 73


@pytest.fixture(scope="module")
def short_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not FLUIDR3.is_file():
        pytest.skip(f"{FLUIDR3} is not installed (apt-get install fluid-soundfont-gm)")
    destination = tmp_path_factory.mktemp("sf") / "FluidR3_short.sf2"
    changed = write_short_loop_soundfont(FLUIDR3, destination, ShortLoopOptions(attack_s=0.05, loop_cycles=2))
    assert changed > 500
    return destination


def test_only_loop_points_change(short_copy: Path) -> None:
    original, copy = FLUIDR3.read_bytes(), short_copy.read_bytes()
    assert len(original) == len(copy)
    offset, size = find_sample_headers(original)
    assert original[:offset] == copy[:offset] and original[offset + size :] == copy[offset + size :]
    before, after = read_sample_headers(original), read_sample_headers(copy)
    assert len(before) == len(after)
    for old, new in zip(before, after, strict=True):
        assert (old.name, old.start, old.end, old.rate_hz, old.original_pitch) == (
            new.name,
            new.start,
            new.end,
            new.rate_hz,
            new.original_pitch,
        )
        if (old.loop_start, old.loop_end) != (new.loop_start, new.loop_end):
            assert old.start <= new.loop_start <= old.loop_start  # the loop starts no later than before
            assert new.loop_start - old.start <= round(0.05 * old.rate_hz)
            assert new.loop_end < old.end


def test_loops_are_a_few_cycles_long(short_copy: Path) -> None:
    stats_before, stats_after = loop_statistics(FLUIDR3), loop_statistics(short_copy)
    assert stats_before["median_loop_s"] > 0.1  # FluidR3 loops long stretches of its recordings
    assert stats_after["median_loop_s"] < 0.02
    assert stats_after["median_sample_s"] == stats_before["median_sample_s"]
    before, after = read_sample_headers(FLUIDR3.read_bytes()), read_sample_headers(short_copy.read_bytes())
    for old, new in zip(before, after, strict=True):
        if (old.loop_start, old.loop_end) != (new.loop_start, new.loop_end):
            assert (new.loop_start, new.loop_end) == short_loop(old, ShortLoopOptions(attack_s=0.05, loop_cycles=2))
            frequency_hz = 440.0 * 2.0 ** ((old.original_pitch - 69 - old.pitch_correction_cents / 100) / 12.0)
            cycles = (new.loop_end - new.loop_start) * frequency_hz / old.rate_hz
            assert old.original_pitch > 127 or new.loop_end - new.loop_start == 32 or abs(cycles - 2.0) < 0.1


def _sustain_flux(soundfont: Path) -> float:
    """Mean frame-to-frame change of the log spectrum of a held flute note, 0.4-1.8 s after its onset."""
    from polyamp.synth.render import SoundFontRenderer

    try:
        renderer = SoundFontRenderer(soundfont, reverb=False, internal_rate_hz=SR)
    except MissingDependencyError as error:
        pytest.skip(str(error))
    part = Part("flute", FLUTE, False, (NoteEvent(72, 0.1, 2.1, 90),))
    with renderer:
        audio = renderer.render_part(part, 2.5)
    mono = audio.mean(axis=0) if audio.ndim == 2 else audio
    hop, window = 256, 1024
    frames = np.stack([mono[i : i + window] * np.hanning(window) for i in range(0, len(mono) - window, hop)])
    log_spectrum = np.log(np.abs(np.fft.rfft(frames, axis=1)) + 1e-6)
    sustain = log_spectrum[int(0.5 * SR / hop) : int(1.9 * SR / hop)]
    return float(np.mean(np.abs(np.diff(sustain, axis=0))))


def test_short_loops_freeze_the_sustain(short_copy: Path) -> None:
    assert _sustain_flux(short_copy) < 0.5 * _sustain_flux(FLUIDR3)


def test_refuses_overwrite_and_bad_files(short_copy: Path, tmp_path: Path) -> None:
    with pytest.raises(SoundFontError, match="exists"):
        write_short_loop_soundfont(FLUIDR3, short_copy)
    with pytest.raises(SoundFontError, match="not found"):
        write_short_loop_soundfont(tmp_path / "missing.sf2", tmp_path / "out.sf2")
    garbage = tmp_path / "garbage.sf2"
    garbage.write_bytes(b"RIFF\x04\x00\x00\x00junk" + bytes(64))
    with pytest.raises(SoundFontError, match="not a SoundFont 2"):
        write_short_loop_soundfont(garbage, tmp_path / "out.sf2")
    compressed = tmp_path / "x.sf3"
    compressed.write_bytes(b"")
    with pytest.raises(SoundFontError, match=r"\.sf2"):
        write_short_loop_soundfont(compressed, tmp_path / "out.sf2")
    assert not (tmp_path / "out.sf2").exists()


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="loop_cycles"):
        ShortLoopOptions(loop_cycles=0)
    with pytest.raises(ValueError, match="attack_s"):
        ShortLoopOptions(attack_s=-1.0)
