"""Arranging pieces for rendering: programs, humanisation, tempo, transposition, gain, truncation."""

from __future__ import annotations

import collections
import dataclasses
import os
import subprocess
import sys

import gin
import numpy as np
import pytest

from polyamp.errors import ConfigError
from polyamp.notes.families import FAMILY_NAMES, NUM_NSYNTH_FAMILIES, family_index, family_of
from polyamp.synth.arrange import (
    FAMILY_PITCH_RANGES,
    MIN_NOTE_DURATION_S,
    ArrangeOptions,
    arrange_piece,
    assignable_programs,
    covering_families,
    merge_same_pitch_overlaps,
    piece_rng,
)
from polyamp.synth.piece import NoteEvent, Part, Piece

QUIET = {
    "velocity_jitter": 0.0,
    "part_velocity_offset": 0.0,
    "timing_jitter_ms": 0.0,
    "tempo_scale": (1.0, 1.0),
    "gain_db_range": (0.0, 0.0),
    "max_piece_s": None,
}
"""Options under which only the program strategy acts."""


def _part(name: str, program: int, pitches: list[int], is_drum: bool = False, step: float = 0.25) -> Part:
    notes = tuple(NoteEvent(pitch, index * step, index * step + step, 80) for index, pitch in enumerate(pitches))
    return Part(name=name, program=program, is_drum=is_drum, notes=notes)


def _piece(piece_id: str = "song", seed: int = 0, num_notes: int = 64) -> Piece:
    rng = np.random.default_rng(seed)
    return Piece(
        piece_id=piece_id,
        source=f"test/{piece_id}",
        parts=(
            _part("melody", 73, [int(p) for p in rng.integers(62, 84, num_notes)]),
            _part("chords", 0, [int(p) for p in rng.integers(48, 72, num_notes)], step=0.125),
            _part("bass", 33, [int(p) for p in rng.integers(28, 50, num_notes)], step=0.5),
            _part("kit", 0, [36, 38, 42, 46] * (num_notes // 4), is_drum=True),
        ),
    )


def _overlaps(part: Part) -> bool:
    by_pitch = collections.defaultdict(list)
    for note in part.notes:
        by_pitch[note.pitch].append(note)
    for notes in by_pitch.values():
        notes.sort(key=lambda note: note.start_s)
        if any(later.start_s < earlier.end_s for earlier, later in zip(notes, notes[1:], strict=False)):
            return True
    return False


# ---------------------------------------------------------------------------------------------
# Options.


def test_options_validation():
    with pytest.raises(ConfigError, match="program_strategy"):
        ArrangeOptions(program_strategy="random")
    with pytest.raises(ConfigError, match="tempo_scale"):
        ArrangeOptions(tempo_scale=(1.2, 0.9))
    with pytest.raises(ConfigError, match="tempo_scale"):
        ArrangeOptions(tempo_scale=(0.0, 1.0))
    with pytest.raises(ConfigError, match="transpose_semitones"):
        ArrangeOptions(transpose_semitones=(-1.5, 2))
    with pytest.raises(ConfigError, match="timing_jitter_ms"):
        ArrangeOptions(timing_jitter_ms=-1.0)
    with pytest.raises(ConfigError, match="max_piece_s"):
        ArrangeOptions(max_piece_s=0)
    assert ArrangeOptions(tempo_scale=[0.8, 1.2]).tempo_scale == (0.8, 1.2)  # gin hands lists


def test_options_are_gin_configurable():
    gin.parse_config(
        [
            "test_arrange/ArrangeOptions.program_strategy = 'family'",
            "test_arrange/ArrangeOptions.tempo_scale = (0.95, 1.05)",
        ]
    )
    with gin.config_scope("test_arrange"):
        options = ArrangeOptions()
    assert options.program_strategy == "family"
    assert options.tempo_scale == (0.95, 1.05)
    assert ArrangeOptions().program_strategy == "balanced"  # outside the scope: the default


# ---------------------------------------------------------------------------------------------
# Determinism.


def test_same_inputs_same_arrangement():
    piece = _piece()
    options = ArrangeOptions(transpose_semitones=(-3, 3))
    first = arrange_piece(piece, options, seed=7)
    assert arrange_piece(piece, options, seed=7) == first
    assert arrange_piece(piece, options, seed=8) != first
    # Independent of the order pieces are arranged in.
    other = _piece("other", seed=1)
    arrange_piece(other, options, seed=7)
    assert arrange_piece(piece, options, seed=7) == first
    # The piece id, not its position in a list, seeds it.
    renamed = dataclasses.replace(piece, piece_id="renamed")
    assert arrange_piece(renamed, options, seed=7).parts != first.parts


def _summary(piece: Piece) -> list:
    return [
        (part.program, round(part.gain_db, 9), [(n.pitch, round(n.start_s, 9), n.velocity) for n in part.notes[:20]])
        for part in piece.parts
    ]


def test_same_arrangement_in_another_process():
    script = (
        "from tests.test_synth_arrange import _piece, _summary\n"
        "from polyamp.synth.arrange import ArrangeOptions, arrange_piece\n"
        "print(repr(_summary(arrange_piece(_piece(), ArrangeOptions(transpose_semitones=(-3, 3)), seed=7))))\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONHASHSEED="12345", PYTHONPATH=root)
    output = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=root, env=env
    ).stdout
    local = arrange_piece(_piece(), ArrangeOptions(transpose_semitones=(-3, 3)), seed=7)
    assert output.strip() == repr(_summary(local))


def test_piece_rng_is_keyed_by_seed_and_piece_id():
    assert piece_rng(1, "a").integers(1 << 62) == piece_rng(1, "a").integers(1 << 62)
    assert piece_rng(1, "a").integers(1 << 62) != piece_rng(2, "a").integers(1 << 62)
    assert piece_rng(1, "a").integers(1 << 62) != piece_rng(1, "b").integers(1 << 62)


# ---------------------------------------------------------------------------------------------
# Program strategies.


def test_keep_strategy_and_quiet_options_change_nothing():
    piece = _piece()
    arranged = arrange_piece(piece, ArrangeOptions(program_strategy="keep", **QUIET), seed=0)
    assert arranged == piece


def test_family_strategy_keeps_each_family():
    piece = _piece()
    seen = collections.defaultdict(set)
    for seed in range(60):
        arranged = arrange_piece(piece, ArrangeOptions(program_strategy="family", **QUIET), seed=seed)
        for source, part in zip(piece.parts, arranged.parts, strict=True):
            assert part.name == source.name
            if source.is_drum:
                assert (part.program, part.is_drum) == (source.program, True)
                continue
            assert family_of(part.program) == family_of(source.program)
            assert part.program in assignable_programs(family_of(source.program))
            seen[part.name].add(part.program)
        pitched = [part.program for part in arranged.parts if not part.is_drum]
        assert len(set(pitched)) == len(pitched)
    assert all(len(programs) > 3 for programs in seen.values())  # it does vary


def test_distinct_programs_within_a_piece():
    parts = tuple(_part(f"voice {index}", 52, [60, 62, 64]) for index in range(3))  # vocal: programs 52-54
    piece = Piece("choir", "test/choir", parts)
    for seed in range(20):
        programs = [part.program for part in arrange_piece(piece, ArrangeOptions("family", **QUIET), seed).parts]
        assert sorted(programs) == [52, 53, 54]
    crowded = Piece("crowd", "test/crowd", parts + (_part("voice 4", 53, [60]),))
    programs = [part.program for part in arrange_piece(crowded, ArrangeOptions("family", **QUIET), 0).parts]
    assert set(programs) == {52, 53, 54}  # four parts, three programs: one repeats, no failure


def test_balanced_strategy_evens_out_families_over_typical_parts():
    """Over soprano, alto, tenor and bass ranges every family gets a similar share of parts, even
    bass and flute, which can play only the lowest or highest parts."""
    ranges = {"s": [60, 67, 72, 79], "a": [55, 62, 67, 74], "t": [48, 55, 62, 69], "b": [36, 43, 55, 62]}
    counts = collections.Counter()
    for index in range(600):
        parts = tuple(_part(name, 0, pitches) for name, pitches in ranges.items())
        for part in arrange_piece(Piece(f"p{index}", "test", parts), ArrangeOptions("balanced", **QUIET), seed=5).parts:
            counts[family_of(part.program)] += 1
    assert set(counts) == set(range(NUM_NSYNTH_FAMILIES))
    share = {FAMILY_NAMES[family]: count / 2400 for family, count in counts.items()}
    assert all(0.04 <= value <= 0.16 for value in share.values()), share  # uniform would be 0.091 each


def test_balanced_strategy_respects_pitch_ranges():
    low = Piece("low", "test", (_part("low", 0, [28, 33, 40]),))
    expected = set(covering_families(28, 40))
    assert {FAMILY_NAMES[family] for family in expected} == {"bass", "keyboard", "organ", "string"}
    chosen = set()
    for seed in range(200):
        (part,) = arrange_piece(low, ArrangeOptions("balanced", **QUIET), seed).parts
        chosen.add(family_of(part.program))
    assert chosen == expected
    # Nothing covers 10..120: any NSynth family (never "other").
    wide = Piece("wide", "test", (_part("wide", 0, [10, 120]),))
    families = {
        family_of(arrange_piece(wide, ArrangeOptions("balanced", **QUIET), s).parts[0].program) for s in range(300)
    }
    assert families == set(range(NUM_NSYNTH_FAMILIES))
    for name, (lowest, highest) in FAMILY_PITCH_RANGES.items():
        assert family_index(name) < NUM_NSYNTH_FAMILIES and 0 <= lowest < highest <= 127


@pytest.mark.parametrize("strategy", ["keep", "family", "balanced"])
def test_drums_are_untouched_by_programs_and_transposition(strategy):
    piece = _piece()
    drums = piece.parts[3]
    for seed in range(10):
        options = ArrangeOptions(strategy, transpose_semitones=(-5, 5), timing_jitter_ms=0.0, tempo_scale=(1.0, 1.0))
        arranged = [part for part in arrange_piece(piece, options, seed).parts if part.name == "kit"]
        assert len(arranged) == 1
        kit = arranged[0]
        assert kit.is_drum and kit.program == drums.program
        assert [note.pitch for note in kit.notes] == [note.pitch for note in drums.notes]


# ---------------------------------------------------------------------------------------------
# Humanisation, tempo, transposition, gain, truncation.


def test_timing_and_velocity_jitter_bounds():
    piece = _piece(num_notes=400)
    options = ArrangeOptions("keep", tempo_scale=(1.0, 1.0), max_piece_s=None, gain_db_range=(-6.0, 0.0))
    for seed in range(5):
        arranged = arrange_piece(piece, options, seed)
        for source, part in zip(piece.parts, arranged.parts, strict=True):
            assert -6.0 <= part.gain_db <= 0.0
            assert not _overlaps(part)
            for note in part.notes:
                assert note.start_s >= 0.0
                assert note.end_s - note.start_s > 0.010
                assert 1 <= note.velocity <= 127
            starts = np.array(sorted(note.start_s for note in part.notes))
            original = np.array(sorted(note.start_s for note in source.notes))
            if len(starts) == len(original):  # no merges: starts moved by ~N(0, 10 ms)
                moved = np.abs(starts - original)
                assert moved.max() < 0.06 and 0.003 < moved.mean() < 0.015
            velocities = np.array([note.velocity for note in part.notes])
            assert 1.0 < velocities.std() < 16.0  # per-note jitter of std 8 around one part offset
            assert abs(velocities.mean() - 80) <= 14.0  # the per-part offset is within +-12


def test_part_velocity_offset_is_shared_by_the_part():
    piece = _piece()
    options = ArrangeOptions("keep", **{**QUIET, "part_velocity_offset": 20.0})
    arranged = arrange_piece(piece, options, seed=3)
    offsets = []
    for part in arranged.parts:
        shifts = {note.velocity - 80 for note in part.notes}
        assert len(shifts) == 1
        offsets.append(shifts.pop())
    assert all(abs(offset) <= 20 for offset in offsets) and len(set(offsets)) > 1


def test_tempo_scale_stretches_every_time():
    piece = _piece()
    arranged = arrange_piece(piece, ArrangeOptions("keep", **{**QUIET, "tempo_scale": (2.0, 2.0)}), seed=0)
    for source, part in zip(piece.parts, arranged.parts, strict=True):
        for before, after in zip(source.notes, part.notes, strict=True):
            assert after.start_s == pytest.approx(before.start_s / 2)
            assert after.end_s == pytest.approx(before.end_s / 2)
    durations = {
        round(arrange_piece(piece, ArrangeOptions("keep", **{**QUIET, "tempo_scale": (0.9, 1.1)}), s).duration_s, 6)
        for s in range(10)
    }
    assert len(durations) == 10
    assert all(piece.duration_s / 1.1 - 1e-6 <= d <= piece.duration_s / 0.9 + 1e-6 for d in durations)


def test_transposition_stays_on_the_piano():
    high = Piece("high", "test", (_part("high", 0, [100, 103, 105]), _part("kit", 0, [42], is_drum=True)))
    shifts = set()
    for seed in range(300):
        arranged = arrange_piece(high, ArrangeOptions("keep", **{**QUIET, "transpose_semitones": (-12, 12)}), seed)
        pitches = [note.pitch for note in arranged.parts[0].notes]
        assert all(21 <= pitch <= 108 for pitch in pitches)
        shifts.add(pitches[0] - 100)
        assert arranged.parts[1].notes[0].pitch == 42  # drums are never transposed
    assert shifts == set(range(-12, 4))
    full = Piece("full", "test", (_part("full", 0, [21, 108]),))
    for seed in range(20):
        arranged = arrange_piece(full, ArrangeOptions("keep", **{**QUIET, "transpose_semitones": (-2, 2)}), seed)
        assert [note.pitch for note in arranged.parts[0].notes] == [21, 108]
    off = arrange_piece(high, ArrangeOptions("keep", **QUIET), 0)
    assert [note.pitch for note in off.parts[0].notes] == [100, 103, 105]  # default (0, 0): off


def test_max_piece_s_truncates_and_drops_empty_parts():
    late = Part("late", 40, False, (NoteEvent(60, 30.0, 31.0, 80),))
    piece = Piece("long", "test", (_part("long", 0, list(range(40, 80)) * 4, step=0.5), late))  # 80 s
    arranged = arrange_piece(piece, ArrangeOptions("keep", **{**QUIET, "max_piece_s": 10.0}), seed=0)
    assert [part.name for part in arranged.parts] == ["long"]
    notes = arranged.parts[0].notes
    assert len(notes) == 20 and arranged.duration_s == pytest.approx(10.0)
    assert all(note.start_s < 10.0 and note.end_s <= 10.0 for note in notes)
    cut = Piece("cut", "test", (Part("held", 0, False, (NoteEvent(60, 9.0, 15.0, 80),)),))
    held = arrange_piece(cut, ArrangeOptions("keep", **{**QUIET, "max_piece_s": 10.0}), 0).parts[0].notes[0]
    assert (held.start_s, held.end_s) == (9.0, 10.0)
    whole = arrange_piece(piece, ArrangeOptions("keep", **QUIET), seed=0)
    assert whole.duration_s == pytest.approx(80.0)
    late_only = Piece("x", "t", (late,))
    nothing = arrange_piece(late_only, ArrangeOptions("keep", **{**QUIET, "max_piece_s": 5.0}), 0)
    assert nothing.parts == () and nothing.num_notes == 0


def test_merge_same_pitch_overlaps():
    notes = [
        NoteEvent(60, 0.0, 1.0, 70),
        NoteEvent(60, 0.5, 1.5, 90),  # re-struck while sounding: the first note stops at 0.5
        NoteEvent(62, 0.0, 1.0, 50),
        NoteEvent(62, 0.005, 0.8, 100),  # struck together: one note, longest end, loudest velocity
        NoteEvent(64, 0.0, 0.5, 60),
        NoteEvent(64, 0.5, 1.0, 60),  # touching is fine
    ]
    assert merge_same_pitch_overlaps(notes) == [
        NoteEvent(60, 0.0, 0.5, 70),
        NoteEvent(62, 0.0, 1.0, 100),
        NoteEvent(64, 0.0, 0.5, 60),
        NoteEvent(60, 0.5, 1.5, 90),
        NoteEvent(64, 0.5, 1.0, 60),
    ]
    assert MIN_NOTE_DURATION_S > 0.010


def test_jitter_never_leaves_overlaps_in_dense_repeated_notes():
    repeated = Part("repeated", 0, False, tuple(NoteEvent(60, i * 0.02, i * 0.02 + 0.02, 80) for i in range(200)))
    piece = Piece("dense", "test", (repeated,))
    for seed in range(5):
        (part,) = arrange_piece(piece, ArrangeOptions("keep", timing_jitter_ms=15.0), seed).parts
        assert not _overlaps(part)
        assert all(note.end_s - note.start_s > 0.010 and note.start_s >= 0 for note in part.notes)


def test_arranging_a_real_chorale():
    pytest.importorskip("music21")
    from polyamp.synth.sources import piece_from_corpus

    chorale = piece_from_corpus("bach/bwv10.7")
    families = collections.Counter()
    for seed in range(30):
        arranged = arrange_piece(chorale, ArrangeOptions(), seed)
        assert [part.name for part in arranged.parts] == ["Soprano", "Alto", "Tenor", "Bass"]
        assert arranged.num_notes == chorale.num_notes
        assert 0 < arranged.duration_s <= 120.0
        for part in arranged.parts:
            assert not _overlaps(part)
            lowest = min(note.pitch for note in part.notes)
            highest = max(note.pitch for note in part.notes)
            assert family_of(part.program) in (covering_families(lowest, highest) or range(NUM_NSYNTH_FAMILIES))
            families[family_of(part.program)] += 1
        assert len({part.program for part in arranged.parts}) == 4
    assert len(families) >= 8


def test_parts_range_keeps_a_random_subset_of_pitched_parts():
    many = Piece(
        piece_id="choir",
        source="test/choir",
        parts=tuple(_part(f"voice{index}", 52, [60 + index] * 8) for index in range(6))
        + (_part("kit", 0, [36, 38] * 4, is_drum=True),),
    )
    options = ArrangeOptions(parts_range=(2, 4), **QUIET)
    sizes = set()
    for seed in range(30):
        arranged = arrange_piece(many, options, seed)
        pitched = [part for part in arranged.parts if not part.is_drum]
        assert 2 <= len(pitched) <= 4
        assert sum(part.is_drum for part in arranged.parts) == 1
        assert len({part.name for part in pitched}) == len(pitched)
        sizes.add(len(pitched))
        assert arrange_piece(many, options, seed) == arranged
    assert sizes == {2, 3, 4}
    small = _piece()  # 3 pitched parts: all kept
    assert len(arrange_piece(small, options, 0).parts) == len(small.parts)
    with pytest.raises(ConfigError, match="parts_range"):
        ArrangeOptions(parts_range=(0, 3))
    with pytest.raises(ConfigError, match="parts_range"):
        ArrangeOptions(parts_range=(4, 2))


def test_sound_variation_draws_generator_offsets_for_pitched_parts_only() -> None:
    from polyamp.synth.arrange import SOUND_VARIATION_RANGES

    piece = _piece()
    plain = arrange_piece(piece, ArrangeOptions(), seed=3)
    varied = arrange_piece(piece, ArrangeOptions(sound_variation=1.0), seed=3)
    half = arrange_piece(piece, ArrangeOptions(sound_variation=0.5), seed=3)
    assert all(part.sound_offsets == () for part in plain.parts)
    # The arrangement itself does not move: the offsets come from a generator of their own.
    assert [dataclasses.replace(part, sound_offsets=()) for part in varied.parts] == list(plain.parts)
    assert arrange_piece(piece, ArrangeOptions(sound_variation=1.0), seed=3) == varied
    pitched = [part for part in varied.parts if not part.is_drum]
    assert all(part.sound_offsets == () for part in varied.parts if part.is_drum)
    assert any(part.sound_offsets for part in pitched)
    for full, scaled in zip(pitched, (part for part in half.parts if not part.is_drum), strict=True):
        for generator, value in full.sound_offsets:
            _, low, high = SOUND_VARIATION_RANGES[generator]
            assert low <= value <= high
        for generator, value in scaled.sound_offsets:
            _, low, high = SOUND_VARIATION_RANGES[generator]
            assert 0.5 * low - 0.1 <= value <= 0.5 * high + 0.1
    for bad in (-0.1, 1.5, float("nan"), "lots"):
        with pytest.raises(ConfigError, match="sound_variation"):
            ArrangeOptions(sound_variation=bad)
