"""SoundFont rendering with FluidSynth: sample-exact onsets, exact lengths, determinism, drums, errors.

Uses the small TimGM6mb General MIDI SoundFont; skipped only if libfluidsynth or that file is missing.
"""

from __future__ import annotations

import dataclasses
import struct
from pathlib import Path

import numpy as np
import pytest

from polyamp.errors import MissingDependencyError, SoundFontError
from polyamp.synth.piece import NoteEvent, Part

TIMGM6MB = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")
SR = 16000
MARIMBA = 12
PIANO = 0


def _require_fluidsynth() -> None:
    from polyamp.synth.fluidsynth import load_library

    try:
        load_library()
    except MissingDependencyError as error:
        pytest.skip(str(error))


@pytest.fixture(scope="module")
def renderer():
    """The default configuration: reverb on, 32 kHz synthesis resampled to 16 kHz."""
    _require_fluidsynth()
    if not TIMGM6MB.is_file():
        pytest.skip(f"{TIMGM6MB} is not installed (apt-get install timgm6mb-soundfont)")
    from polyamp.synth.render import SoundFontRenderer

    with SoundFontRenderer(TIMGM6MB) as instance:
        yield instance


@pytest.fixture(scope="module")
def dry_renderer():
    """Dry synthesis directly at 16 kHz: the rendered signal starts exactly where FluidSynth starts a voice."""
    _require_fluidsynth()
    if not TIMGM6MB.is_file():
        pytest.skip(f"{TIMGM6MB} is not installed")
    from polyamp.synth.render import SoundFontRenderer

    with SoundFontRenderer(TIMGM6MB, reverb=False, internal_rate_hz=SR) as instance:
        yield instance


def _part(program: int, notes: list[tuple[int, float, float, int]], is_drum: bool = False) -> Part:
    return Part("test", program, is_drum, tuple(NoteEvent(p, s, e, v) for p, s, e, v in notes))


def _envelope(signal: np.ndarray, width: int = 16) -> np.ndarray:
    """Short-time RMS over ``width`` samples, aligned to the window's first sample."""
    energy = np.convolve(signal.astype(np.float64) ** 2, np.ones(width) / width)[width - 1 :]
    return np.sqrt(energy)


def _detect_onset(signal: np.ndarray, expected: int, search: int = 800) -> int:
    """First sample near ``expected`` where the short-time energy rises above a tenth of the
    note's peak, after a stretch that stays below that level."""
    envelope = _envelope(signal)
    start = max(expected - search, 0)
    level = 0.1 * envelope[start : expected + 4 * search].max()
    above = np.nonzero(envelope[start : expected + search] > level)[0]
    assert above.size, "no onset found"
    onset = start + int(above[0])
    assert envelope[max(onset - 400, 0) : onset].max(initial=0.0) <= level, "onset not preceded by silence"
    return onset


# (a) ground truth: onsets where the part says -------------------------------------------------------


def test_onsets_match_the_written_times_within_2_ms(renderer):
    starts = [0.1234, 0.9871, 1.7313, 2.4042, 3.3337, 4.0109]
    pitches = [72, 79, 67, 84, 76, 71]
    part = _part(MARIMBA, [(p, s, s + 0.15, 110) for p, s in zip(pitches, starts, strict=True)])
    audio = renderer.render_part(part, 5.0)
    for start in starts:
        expected = round(start * SR)
        detected = _detect_onset(audio, expected)
        assert abs(detected - expected) <= 32, f"note at {start} s detected at sample {detected}, not {expected}"


def test_voices_start_on_the_exact_written_sample(dry_renderer):
    """Wherever a note falls inside FluidSynth's 64-sample blocks, and whatever else sounds in the
    part, it sounds from the same offset after its written sample (FluidSynth on its own would
    delay it by 0-63 samples)."""
    background = [(48, 0.0, 1.6, 90), (55, 0.0007, 1.6, 90)]
    without = dry_renderer.render_part(_part(PIANO, background), 1.6)
    leads = set()
    for start in [0.0011, 0.25, 0.50199, 0.7777, 1.03125, 1.23456]:
        audio = dry_renderer.render_part(_part(PIANO, [*background, (72, start, start + 0.3, 100)]), 1.6)
        added = audio - without
        leads.add(int(np.argmax(np.abs(added) > 0)) - round(start * SR))
    assert len(leads) == 1, f"onset offsets vary with the time: {sorted(leads)}"
    assert leads.pop() in (0, 1)


def test_resampled_render_shifts_by_exactly_the_onset_difference():
    """Default 32 kHz synthesis: one note written at two times renders the same samples, shifted by
    exactly the difference of the onset samples."""
    _require_fluidsynth()
    if not TIMGM6MB.is_file():
        pytest.skip(f"{TIMGM6MB} is not installed")
    from polyamp.synth.render import SoundFontRenderer

    with SoundFontRenderer(TIMGM6MB, reverb=False) as dry:
        assert dry.internal_rate_hz == 32000
        first = dry.render_part(_part(MARIMBA, [(72, 0.1234, 0.4, 100)]), 1.5)
        second = dry.render_part(_part(MARIMBA, [(72, 0.98713, 1.2637, 100)]), 2.5)
    shift = round(0.98713 * SR) - round(0.1234 * SR)
    assert np.abs(first).max() > 0.01
    np.testing.assert_allclose(second[shift : shift + 18000], first[:18000], rtol=0, atol=1e-7)


def test_notes_of_many_block_phases_in_one_part(dry_renderer):
    """A part whose notes fall on different block phases equals the sum of its notes rendered alone
    (the phase passes add up; no note is lost or moved)."""
    notes = [(60 + 3 * i, 0.05 + 0.3131 * i, 0.05 + 0.3131 * i + 0.2, 90) for i in range(6)]
    together = dry_renderer.render_part(_part(PIANO, notes), 2.5)
    alone = sum(dry_renderer.render_part(_part(PIANO, [note]), 2.5) for note in notes)
    np.testing.assert_allclose(together, alone, rtol=0, atol=1e-6)


def test_binding_write_float_is_dry_plus_effects():
    """FluidSynth's own stereo output (write_float) = our dry mix + our effects-only mix."""
    _require_fluidsynth()
    if not TIMGM6MB.is_file():
        pytest.skip(f"{TIMGM6MB} is not installed")
    from polyamp.synth.fluidsynth import FluidSynth

    outputs = []
    for method in ("write", "mix_dry", "mix_effects"):
        with FluidSynth(SR, gain=0.25, reverb=True) as synth:
            sfont_id = synth.load_soundfont(TIMGM6MB)
            assert synth.has_preset(sfont_id, 0, 0) and synth.has_preset(sfont_id, 128, 0)
            assert not synth.has_preset(sfont_id, 0, 128)
            synth.program_select(0, sfont_id, 0, 0)
            left, right = np.zeros(8000, np.float32), np.zeros(8000, np.float32)
            synth.noteon(0, 60, 100)
            getattr(synth, method)(left, right, 0, 4000)
            synth.noteoff(0, 60)
            getattr(synth, method)(left, right, 4000, 8000)
            outputs.append(np.stack([left, right]))
    full, dry, wet = outputs
    assert np.abs(wet).max() > 1e-4 and np.abs(dry).max() > 0.01
    np.testing.assert_allclose(full, dry + wet, rtol=0, atol=1e-6)


# (b) lengths ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("duration_s", [0.0, 0.5, 1.23456, 2.00003])
def test_length_is_exactly_round_duration_times_rate(renderer, duration_s):
    part = _part(PIANO, [(60, 0.1, 3.0, 100), (64, 2.5, 2.6, 100)])  # one note runs past the end, one starts after
    audio = renderer.render_part(part, duration_s)
    assert audio.dtype == np.float32
    assert audio.shape == (round(duration_s * SR),)
    if duration_s >= 0.5:
        assert np.abs(audio).max() > 0.01


def test_empty_part_is_silence(renderer):
    audio = renderer.render_part(_part(PIANO, []), 1.0)
    assert audio.shape == (SR,) and not audio.any()


# (c) determinism ------------------------------------------------------------------------------------


def test_renders_are_identical_across_runs_history_and_instances(renderer):
    from polyamp.synth.render import SoundFontRenderer

    rng = np.random.default_rng(7)
    notes = [
        (int(rng.integers(48, 80)), float(t), float(t + rng.uniform(0.05, 0.8)), int(rng.integers(30, 127)))
        for t in np.sort(rng.uniform(0, 2.5, 25))
    ]
    part = _part(PIANO, notes)
    first = renderer.render_part(part, 3.0)
    renderer.render_part(_part(48, [(50, 0.0, 2.0, 127), (57, 0.01, 2.0, 127)]), 2.5)  # other history
    renderer.render_part(_part(0, [(36, 0.2, 1.0, 127), (42, 0.25, 0.3, 127)], is_drum=True), 1.5)
    second = renderer.render_part(part, 3.0)
    with SoundFontRenderer(TIMGM6MB) as other:
        third = other.render_part(part, 3.0)
    assert np.abs(first).max() > 0.01
    assert np.array_equal(first, second)
    assert np.array_equal(first, third)


def test_sound_offsets_change_the_preset_and_do_not_leak_into_later_parts(renderer):
    notes = [(60 + step, 0.5 * step, 0.5 * step + 0.45, 100) for step in range(4)]
    lead = _part(81, notes)  # sawtooth lead: bright and sustained
    plain = renderer.render_part(lead, 2.5)

    def high_share(signal: np.ndarray) -> float:
        power = np.abs(np.fft.rfft(signal)) ** 2
        return float(power[len(power) // 8 :].sum() / power.sum())  # above 1 kHz

    dark = renderer.render_part(dataclasses.replace(lead, sound_offsets=((8, -2400.0),)), 2.5)
    assert high_share(dark) < 0.5 * high_share(plain)  # cutoff two octaves lower
    decaying = renderer.render_part(dataclasses.replace(lead, sound_offsets=((37, 150.0), (36, -1200.0))), 2.5)
    assert np.sqrt(np.mean(decaying**2)) < 0.92 * np.sqrt(np.mean(plain**2))  # sustain 15 dB down, faster decay
    assert np.array_equal(renderer.render_part(lead, 2.5), plain)


# (d) drums ------------------------------------------------------------------------------------------


def test_drum_part_plays_the_percussion_bank(renderer):
    beat = [(36, 0.0), (42, 0.25), (38, 0.5), (42, 0.75), (36, 1.0), (46, 1.25), (38, 1.5), (49, 1.75)]
    drums = renderer.render_part(_part(0, [(key, t, t + 0.1, 110) for key, t in beat], is_drum=True), 2.5)
    assert np.sqrt(np.mean(drums**2)) > 1e-3
    # The same keys on a melodic channel play pitched piano notes: a different signal.
    pitched = renderer.render_part(_part(0, [(key, t, t + 0.1, 110) for key, t in beat]), 2.5)
    assert not np.allclose(drums, pitched, atol=1e-3)
    for _, t in beat:
        expected = round(t * SR)
        assert np.abs(drums[expected : expected + 800]).max() > 0.01


def test_closed_hi_hat_chokes_an_open_one_across_block_phases(dry_renderer):
    open_at, closed_at = 0.1, 0.30131  # different positions inside FluidSynth's blocks
    open_only = dry_renderer.render_part(_part(0, [(46, open_at, open_at + 0.5, 110)], is_drum=True), 1.2)
    choked = dry_renderer.render_part(
        _part(0, [(46, open_at, open_at + 0.5, 110), (42, closed_at, closed_at + 0.05, 110)], is_drum=True), 1.2
    )
    window = slice(round((closed_at + 0.1) * SR), round((closed_at + 0.5) * SR))
    ringing = np.sqrt(np.mean(open_only[window] ** 2))
    after_choke = np.sqrt(np.mean(choked[window] ** 2))
    assert after_choke < 0.3 * ringing  # FluidR3 and TimGM6mb: about -14 dB


def test_restruck_pitch_releases_the_earlier_note_at_the_restrike(dry_renderer):
    overlapping = dry_renderer.render_part(_part(PIANO, [(60, 0.1, 1.0, 100), (60, 0.6, 1.2, 100)]), 1.6)
    sequential = dry_renderer.render_part(_part(PIANO, [(60, 0.1, 0.6, 100), (60, 0.6, 1.2, 100)]), 1.6)
    first_only = dry_renderer.render_part(_part(PIANO, [(60, 0.1, 1.0, 100)]), 1.6)
    np.testing.assert_array_equal(overlapping, sequential)
    window = slice(round(0.6 * SR), round(0.65 * SR))
    assert np.sqrt(np.mean(overlapping[window] ** 2)) > 1.25 * np.sqrt(np.mean(first_only[window] ** 2))


# (e) bad SoundFonts ---------------------------------------------------------------------------------


def test_missing_soundfont_raises_soundfont_error(tmp_path):
    _require_fluidsynth()
    from polyamp.synth.render import SoundFontRenderer

    missing = tmp_path / "nowhere.sf2"
    with pytest.raises(SoundFontError, match="nowhere.sf2"):
        SoundFontRenderer(missing)
    with pytest.raises(SoundFontError, match="is not a file"):
        SoundFontRenderer(tmp_path)


def test_garbage_and_truncated_soundfonts_raise_soundfont_error_quietly(tmp_path, capfd):
    _require_fluidsynth()
    from polyamp.synth.render import SoundFontRenderer

    garbage = tmp_path / "x.sf2"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(SoundFontError, match=r"x\.sf2.*not a valid \.sf2/\.sf3 SoundFont"):
        SoundFontRenderer(garbage)
    if TIMGM6MB.is_file():
        truncated = tmp_path / "cut.sf2"
        truncated.write_bytes(TIMGM6MB.read_bytes()[:100_000])
        with pytest.raises(SoundFontError, match=r"cut\.sf2.*not a valid \.sf2/\.sf3 SoundFont"):
            SoundFontRenderer(truncated)
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == "", "FluidSynth or its loaders printed to the terminal"


def test_soundfont_error_first_line_names_the_file(tmp_path):
    _require_fluidsynth()
    from polyamp.synth.render import SoundFontRenderer

    bad = tmp_path / "bad.sf2"
    bad.write_bytes(b"RIFF\x04\x00\x00\x00sfbk")
    with pytest.raises(SoundFontError) as info:
        SoundFontRenderer(bad)
    # gin appends "In call to configurable ..." lines, which the CLI drops: the first line says it all.
    first_line = str(info.value).splitlines()[0]
    assert "bad.sf2" in first_line and "SoundFont" in first_line


# (f) NSynth-style single notes ----------------------------------------------------------------------


def test_render_note_is_silent_after_the_release_tail(renderer):
    audio = renderer.render_note(PIANO, 60, 100, 1.0, 4.0)
    assert audio.shape == (4 * SR,)
    held = np.sqrt(np.mean(audio[: SR // 2] ** 2))
    tail = np.sqrt(np.mean(audio[3 * SR :] ** 2))
    assert held > 0.005
    assert tail < 1e-3 * held  # at least 60 dB down by 3-4 s (the piano's release is well under 2 s)


# presets missing from a SoundFont -------------------------------------------------------------------


def _chunk(tag: bytes, data: bytes) -> bytes:
    data += b"\0" * (len(data) % 2)
    return tag + struct.pack("<I", len(data)) + data


def _name(text: str) -> bytes:
    return text.encode().ljust(20, b"\0")


def _one_preset_soundfont(program: int) -> bytes:
    """A valid SoundFont 2.01 file with a single preset (bank 0, ``program``): a looped 500 Hz sine."""
    period, count = 64, 6400
    wave = (16000 * np.sin(2 * np.pi * np.arange(count) / period)).astype("<i2")
    info = _chunk(b"LIST", b"INFO" + _chunk(b"ifil", struct.pack("<HH", 2, 1)) + _chunk(b"isng", b"EMU8000\0"))
    sdta = _chunk(b"LIST", b"sdta" + _chunk(b"smpl", wave.tobytes() + bytes(2 * 46)))
    sample = struct.pack("<IIIIIBbHH", 0, count, period, count - period, 32000, 69, 0, 0, 1)
    records = [
        (
            b"phdr",
            _name("Sine")
            + struct.pack("<HHHIII", program, 0, 0, 0, 0, 0)
            + _name("EOP")
            + struct.pack("<HHHIII", 0, 0, 1, 0, 0, 0),
        ),
        (b"pbag", struct.pack("<HHHH", 0, 0, 1, 0)),
        (b"pmod", bytes(10)),
        (b"pgen", struct.pack("<HHHH", 41, 0, 0, 0)),  # the zone plays instrument 0
        (b"inst", _name("Sine") + struct.pack("<H", 0) + _name("EOI") + struct.pack("<H", 1)),
        (b"ibag", struct.pack("<HHHH", 0, 0, 2, 0)),
        (b"imod", bytes(10)),
        (b"igen", struct.pack("<HHHHHH", 54, 1, 53, 0, 0, 0)),  # looped, sample 0
        (b"shdr", _name("sine") + sample + _name("EOS") + bytes(len(sample))),
    ]
    pdta = _chunk(b"LIST", b"pdta" + b"".join(_chunk(tag, data) for tag, data in records))
    body = b"sfbk" + info + sdta + pdta
    return b"RIFF" + struct.pack("<I", len(body)) + body


def test_missing_program_falls_back_and_is_recorded(tmp_path):
    _require_fluidsynth()
    from polyamp.synth.render import SoundFontRenderer

    path = tmp_path / "one_preset.sf2"
    path.write_bytes(_one_preset_soundfont(program=5))
    with SoundFontRenderer(path, reverb=False, internal_rate_hz=SR) as single:
        assert not single.has_drum_kits
        present = single.render_part(_part(5, [(69, 0.1, 0.6, 100)]), 1.0)
        fallback = single.render_part(_part(40, [(69, 0.1, 0.6, 100)]), 1.0)
        assert single.missing_programs == {40}
        np.testing.assert_array_equal(present, fallback)
        # The sine's voice starts on the written sample (plus FluidSynth's one-sample gain ramp).
        assert int(np.argmax(np.abs(present) > 0)) - round(0.1 * SR) in (0, 1)
        spectrum = np.abs(np.fft.rfft(present[2000:8000]))
        assert abs(np.argmax(spectrum) * SR / 6000 - 500) < 5
        with pytest.raises(SoundFontError, match="no drum kits"):
            single.render_part(_part(0, [(36, 0.1, 0.2, 100)], is_drum=True), 1.0)


def test_missing_drum_kit_falls_back_to_the_standard_kit(renderer):
    kits = [program for bank, program in renderer._presets if bank == 128]
    absent = next(program for program in range(128) if program not in kits)
    part = _part(absent, [(38, 0.1, 0.2, 100)], is_drum=True)
    standard = _part(0, [(38, 0.1, 0.2, 100)], is_drum=True)
    np.testing.assert_array_equal(renderer.render_part(part, 1.0), renderer.render_part(standard, 1.0))
    assert absent in renderer.missing_drum_kits


def test_invalid_inputs_raise_value_error(renderer):
    with pytest.raises(ValueError, match="velocity"):
        renderer.render_part(_part(0, [(60, 0.1, 0.2, 0)]), 1.0)
    with pytest.raises(ValueError, match="pitch"):
        renderer.render_part(_part(0, [(128, 0.1, 0.2, 64)]), 1.0)
    with pytest.raises(ValueError, match="duration_s"):
        renderer.render_part(_part(0, []), -1.0)
    with pytest.raises(ValueError, match="program"):
        renderer.render_part(_part(200, []), 1.0)


def test_closed_renderer_refuses_to_render():
    _require_fluidsynth()
    if not TIMGM6MB.is_file():
        pytest.skip(f"{TIMGM6MB} is not installed")
    from polyamp.synth.render import SoundFontRenderer

    closed = SoundFontRenderer(TIMGM6MB)
    closed.close()
    closed.close()
    with pytest.raises(RuntimeError, match="closed"):
        closed.render_part(_part(0, [(60, 0.1, 0.2, 100)]), 1.0)
