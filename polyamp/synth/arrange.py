"""Arranging a piece for rendering: instruments, humanised timing and dynamics, tempo, key, gain.

:func:`arrange_piece` turns a source :class:`~polyamp.synth.piece.Piece` into the piece that is
rendered and labelled. Every random choice comes from one generator seeded by
``(seed, piece_id)`` through SHA-256, so a piece is arranged the same way in any process and
in any order. Drum parts keep their kit (program) and ``is_drum``; they are never given a
pitched program and never transposed, but their timing and velocities are humanised too.

The result is a faithful score of what is rendered: after jitter, overlapping notes of one
pitch in one part are split where the later note starts (or fused when they start together),
notes last just over 10 ms at least, times are never negative, and nothing outlasts
``max_piece_s``. Parts left without notes are dropped; a piece may come back with no parts
if none of its notes start before ``max_piece_s`` (callers skip such pieces).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math

import gin
import numpy as np

from polyamp.constants import MAX_MIDI_PITCH, MIN_MIDI_PITCH
from polyamp.errors import ConfigError
from polyamp.notes.families import FAMILY_NAMES, NUM_NSYNTH_FAMILIES, family_of, programs_of_family
from polyamp.synth.piece import NoteEvent, Part, Piece

PROGRAM_STRATEGIES: tuple[str, ...] = ("keep", "family", "balanced", "piano")

PIANO_PROGRAMS: tuple[int, ...] = (0, 1)
"""Programs of the ``"piano"`` strategy: Acoustic Grand and Bright Acoustic Piano (one per piece)."""

MIN_NOTE_DURATION_S = 0.011
"""Shortest note after arranging: just over 10 ms."""

FAMILY_PITCH_RANGES: dict[str, tuple[int, int]] = {
    "bass": (24, 67),  # electric/acoustic/synth bass, C1-G4 (tuba and contrabass reach lower still)
    "brass": (34, 84),  # trombone/tuba low notes up to trumpet highs
    "flute": (55, 100),  # alto flute and recorders up to piccolo
    "guitar": (40, 88),  # E2 up to the 24th fret of the top string
    "keyboard": (21, 108),  # the piano keyboard
    "mallet": (41, 108),  # marimba/vibraphone up to glockenspiel and celesta
    "organ": (24, 96),  # pedals to the top of the manuals
    "reed": (34, 91),  # bassoon up to clarinet and oboe highs
    "string": (28, 100),  # contrabass up to violin highs
    "synth_lead": (36, 96),
    "vocal": (40, 84),  # bass voice E2 to soprano C6
}
"""Typical sounding range (MIDI pitch, inclusive) of each NSynth family, used by ``"balanced"``."""

_NOT_ASSIGNED = frozenset({113, *range(115, 128)})
"""Programs never chosen at random: agogo, woodblock, taiko, toms, synth drum and sound effects
(breath, seashore, bird, telephone, helicopter, applause, gunshot) have no usable pitch."""


SOUND_VARIATION_RANGES: dict[int, tuple[str, float, float]] = {
    8: ("filter cutoff, cents", -2400.0, 0.0),
    9: ("filter resonance, centibels", 0.0, 120.0),
    34: ("volume attack, timecents", -600.0, 2400.0),
    36: ("volume decay, timecents", -1200.0, 1200.0),
    37: ("volume sustain attenuation, centibels", 0.0, 150.0),
    38: ("volume release, timecents", -1200.0, 1200.0),
    6: ("vibrato depth, cents", 0.0, 25.0),
    24: ("vibrato rate, cents", -1200.0, 0.0),
}
"""SF2 generator number -> (what it is, low, high): the offsets ``ArrangeOptions.sound_variation``
draws per pitched part (each generator with probability 1/2, uniform in ``variation x [low, high]``).
A darker or more resonant filter, slower or faster attack, decay and release, a decaying sustain and
some vibrato: how another SoundFont's sample of the same instrument may differ. Pitch is never moved."""


@gin.configurable
@dataclasses.dataclass(frozen=True)
class ArrangeOptions:
    """How :func:`arrange_piece` varies a piece.

    ``program_strategy``: ``"keep"`` (the file's programs), ``"family"`` (a random program of
    each part's family), ``"balanced"`` (for each part a family drawn uniformly among the 11
    NSynth families whose :data:`FAMILY_PITCH_RANGES` entry covers the part's pitches, or among
    all 11 if none does, then a random program of it) or ``"piano"`` (every pitched part on one
    piano, a program of :data:`PIANO_PROGRAMS` drawn per piece: piano-only pieces).
    ``distinct_programs``: avoid giving two pitched parts of a piece the same program when the
    family has another one left (not applied to ``"keep"`` and ``"piano"``).
    ``velocity_jitter``: std dev of per-note velocity noise (MIDI velocity units);
    ``part_velocity_offset``: each part's velocities shift by a uniform draw in ±this.
    ``timing_jitter_ms``: std dev of independent start and end noise (ms).
    ``tempo_scale``: (low, high) of a uniform tempo factor; times are divided by it (1.1 = 10 %
    faster). ``transpose_semitones``: (low, high) integer range; the shift is drawn among those
    keeping every pitched note within MIDI 21-108. ``gain_db_range``: (low, high) of a uniform
    gain added to each stem (dB). ``max_piece_s``: notes starting at or after it are dropped and
    ends are cut there (seconds, after tempo scaling); None keeps the whole piece.
    ``parts_range``: (low, high) or None; with a range, a piece with more than ``high`` pitched parts
    keeps a random subset of them, of a size drawn uniformly in ``[low, high]`` (drum parts are always
    kept; pieces with fewer parts keep them all). ``(2, 4)`` gives the 2-4-instrument mixes of the
    learning checks. ``sound_variation``: 0 (off) to 1 (the full :data:`SOUND_VARIATION_RANGES`): each
    pitched part's preset gets random SoundFont generator offsets, drawn from a generator of its own
    (the rest of the arrangement is the same with it on or off).
    """

    program_strategy: str = "balanced"
    distinct_programs: bool = True
    velocity_jitter: float = 8.0
    part_velocity_offset: float = 12.0
    timing_jitter_ms: float = 10.0
    tempo_scale: tuple[float, float] = (0.9, 1.1)
    transpose_semitones: tuple[int, int] = (0, 0)
    gain_db_range: tuple[float, float] = (-6.0, 0.0)
    max_piece_s: float | None = 120.0
    parts_range: tuple[int, int] | None = None
    sound_variation: float = 0.0

    def __post_init__(self) -> None:
        if self.program_strategy not in PROGRAM_STRATEGIES:
            raise ConfigError(
                f"unknown program_strategy {self.program_strategy!r}; choose one of {', '.join(PROGRAM_STRATEGIES)}"
            )
        variation = self.sound_variation
        if not isinstance(variation, (int, float)) or not math.isfinite(variation) or not 0 <= variation <= 1:
            raise ConfigError(f"ArrangeOptions.sound_variation must be a number in [0, 1], got {variation!r}")
        for name in ("velocity_jitter", "part_velocity_offset", "timing_jitter_ms"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"ArrangeOptions.{name} must be a number >= 0, got {value!r}")
        object.__setattr__(self, "tempo_scale", _range("tempo_scale", self.tempo_scale, float))
        if self.tempo_scale[0] <= 0:
            raise ConfigError(f"ArrangeOptions.tempo_scale must be positive, got {self.tempo_scale}")
        object.__setattr__(self, "transpose_semitones", _range("transpose_semitones", self.transpose_semitones, int))
        object.__setattr__(self, "gain_db_range", _range("gain_db_range", self.gain_db_range, float))
        if self.max_piece_s is not None and (
            not isinstance(self.max_piece_s, (int, float)) or not self.max_piece_s > MIN_NOTE_DURATION_S
        ):
            raise ConfigError(
                f"ArrangeOptions.max_piece_s must be a positive number of seconds or None, got {self.max_piece_s!r}"
            )
        if self.parts_range is not None:
            object.__setattr__(self, "parts_range", _range("parts_range", self.parts_range, int))
            if self.parts_range[0] < 1:
                raise ConfigError(f"ArrangeOptions.parts_range must start at 1 or more, got {self.parts_range}")


def _range(name: str, value: object, kind: type) -> tuple:
    """``value`` as a (low, high) tuple of ``kind`` with low <= high, or ConfigError."""
    try:
        low, high = value  # type: ignore[misc]
        if kind is int and (float(low) != int(low) or float(high) != int(high)):
            raise ValueError
        low, high = kind(low), kind(high)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(
            f"ArrangeOptions.{name} must be a (low, high) pair of {kind.__name__}s, got {value!r}"
        ) from None
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise ConfigError(f"ArrangeOptions.{name} must have finite low <= high, got {value!r}")
    return (low, high)


def piece_rng(seed: int, piece_id: str) -> np.random.Generator:
    """The generator of a piece's arrangement: seeded by SHA-256 of ``(seed, piece_id)``, so it is
    the same in every process (Python's ``hash()`` is salted per process and never used)."""
    digest = hashlib.sha256(f"polyamp-arrange\x00{int(seed)}\x00{piece_id}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little"))


def assignable_programs(family: int) -> tuple[int, ...]:
    """Programs of ``family`` that random strategies may choose (the unpitched ones left out)."""
    programs = tuple(program for program in programs_of_family(family) if program not in _NOT_ASSIGNED)
    return programs or programs_of_family(family)


def covering_families(low_pitch: int, high_pitch: int) -> tuple[int, ...]:
    """NSynth families whose typical range holds MIDI pitches ``low_pitch``..``high_pitch``."""
    return tuple(
        family
        for family in range(NUM_NSYNTH_FAMILIES)
        if FAMILY_PITCH_RANGES[FAMILY_NAMES[family]][0] <= low_pitch
        and high_pitch <= FAMILY_PITCH_RANGES[FAMILY_NAMES[family]][1]
    )


def _family_choice_weights() -> tuple[float, ...]:
    """Weight of each NSynth family in the ``balanced`` draw: 1 / (share of typical part ranges it covers).

    A family with a narrow range (bass, flute) is eligible for few parts, so when it is eligible
    it is drawn more often than a family that can play anything (keyboard, organ); over many
    parts every family ends up with a similar number of parts. Typical part ranges: every
    window of 12-24 semitones with its lowest note in 28-84.
    """
    counts = [0] * NUM_NSYNTH_FAMILIES
    for low in range(28, 85):
        for span in (12, 16, 20, 24):
            for family in covering_families(low, low + span):
                counts[family] += 1
    return tuple(1.0 / max(count, 1) for count in counts)


FAMILY_CHOICE_WEIGHTS = _family_choice_weights()


def _choose_transposition(piece: Piece, semitones: tuple[int, int], rng: np.random.Generator) -> int:
    low, high = semitones
    if low == high:
        return low
    pitches = [note.pitch for part in piece.parts if not part.is_drum for note in part.notes]
    if not pitches:
        return int(rng.integers(low, high + 1))
    lowest, highest = min(pitches), max(pitches)

    def outside(shift: int) -> int:
        return sum(not MIN_MIDI_PITCH <= pitch + shift <= MAX_MIDI_PITCH for pitch in (lowest, highest))

    candidates = list(range(low, high + 1))
    best = min(outside(shift) for shift in candidates)
    fitting = [shift for shift in candidates if outside(shift) == best]
    if best > 0:  # nothing fits: the least harmful shift, nearest to no shift
        return min(fitting, key=lambda shift: (abs(shift), shift))
    return int(rng.choice(fitting))


def _choose_programs(piece: Piece, options: ArrangeOptions, shift: int, rng: np.random.Generator) -> list[int]:
    """One program per part, in part order; drum parts and ``"keep"`` keep theirs."""
    programs: list[int] = []
    used: set[int] = set()
    piano = int(rng.choice(PIANO_PROGRAMS)) if options.program_strategy == "piano" else None
    for part in piece.parts:
        if part.is_drum or options.program_strategy == "keep":
            programs.append(part.program)
            continue
        if piano is not None:
            programs.append(piano)
            continue
        if options.program_strategy == "family":
            family = family_of(part.program)
        else:
            pitches = [note.pitch + shift for note in part.notes]
            covering = covering_families(min(pitches), max(pitches)) if pitches else ()
            covering = covering or tuple(range(NUM_NSYNTH_FAMILIES))
            weights = np.array([FAMILY_CHOICE_WEIGHTS[family] for family in covering])
            family = int(rng.choice(covering, p=weights / weights.sum()))
        pool = assignable_programs(family)
        if options.distinct_programs:
            pool = tuple(program for program in pool if program not in used) or pool
        program = int(rng.choice(pool))
        used.add(program)
        programs.append(program)
    return programs


def merge_same_pitch_overlaps(notes: list[NoteEvent]) -> list[NoteEvent]:
    """Notes of one part with no two of the same pitch overlapping, sorted by (start, pitch).

    A note that overlaps an earlier one of its pitch cuts the earlier one at its start (both
    onsets stay); notes starting less than :data:`MIN_NOTE_DURATION_S` apart become one note
    (the later end, the louder velocity).
    """
    merged: list[NoteEvent] = []
    for note in sorted(notes, key=lambda event: (event.pitch, event.start_s, event.end_s)):
        if merged and merged[-1].pitch == note.pitch and note.start_s < merged[-1].end_s:
            previous = merged[-1]
            if note.start_s - previous.start_s < MIN_NOTE_DURATION_S:
                merged[-1] = NoteEvent(
                    note.pitch, previous.start_s, max(previous.end_s, note.end_s), max(previous.velocity, note.velocity)
                )
                continue
            merged[-1] = dataclasses.replace(previous, end_s=note.start_s)
        merged.append(note)
    merged.sort(key=lambda event: (event.start_s, event.pitch, event.end_s))
    return merged


def _arrange_notes(
    part: Part,
    options: ArrangeOptions,
    scale: float,
    shift: int,
    velocity_offset: float,
    rng: np.random.Generator,
) -> tuple[NoteEvent, ...]:
    count = len(part.notes)
    if count == 0:
        return ()
    pitches = np.array([note.pitch for note in part.notes], dtype=np.int64)
    starts = np.array([note.start_s for note in part.notes], dtype=np.float64) / scale
    ends = np.array([note.end_s for note in part.notes], dtype=np.float64) / scale
    velocities = np.array([note.velocity for note in part.notes], dtype=np.float64)
    if not part.is_drum:
        pitches = pitches + shift
    sigma_s = options.timing_jitter_ms / 1000.0
    start_noise = rng.normal(0.0, sigma_s, count) if sigma_s > 0 else np.zeros(count)
    end_noise = rng.normal(0.0, sigma_s, count) if sigma_s > 0 else np.zeros(count)
    velocity_noise = rng.normal(0.0, options.velocity_jitter, count) if options.velocity_jitter > 0 else np.zeros(count)
    starts = np.maximum(starts + start_noise, 0.0)
    ends = np.maximum(ends + end_noise, starts + MIN_NOTE_DURATION_S)
    velocities = np.clip(np.rint(velocities + velocity_offset + velocity_noise), 1, 127)
    notes = [
        NoteEvent(int(pitch), float(start), float(end), int(velocity))
        for pitch, start, end, velocity in zip(pitches, starts, ends, velocities, strict=True)
    ]
    notes = merge_same_pitch_overlaps(notes)
    if options.max_piece_s is not None:
        limit = float(options.max_piece_s)
        kept = []
        for note in notes:
            end = min(note.end_s, limit)
            if note.start_s < limit and end - note.start_s >= MIN_NOTE_DURATION_S:
                kept.append(note if end == note.end_s else dataclasses.replace(note, end_s=end))
        notes = kept
    return tuple(notes)


def arrange_piece(piece: Piece, options: ArrangeOptions, seed: int) -> Piece:
    """A new Piece: ``piece`` with programs, timing, velocities, tempo, key and stem gains varied
    as ``options`` says. Deterministic in ``(piece, options, seed)``; see :func:`piece_rng`."""
    if options.parts_range is not None:
        piece = _keep_some_parts(piece, options.parts_range, piece_rng(seed, piece.piece_id + "\x00parts"))
    rng = piece_rng(seed, piece.piece_id)
    low, high = options.tempo_scale
    scale = float(rng.uniform(low, high)) if high > low else low
    shift = _choose_transposition(piece, options.transpose_semitones, rng)
    programs = _choose_programs(piece, options, shift, rng)
    parts = []
    for part, program in zip(piece.parts, programs, strict=True):
        offset = float(rng.uniform(-options.part_velocity_offset, options.part_velocity_offset))
        gain_low, gain_high = options.gain_db_range
        gain_db = float(rng.uniform(gain_low, gain_high)) if gain_high > gain_low else gain_low
        notes = _arrange_notes(part, options, scale, shift, offset, rng)
        if notes:
            parts.append(dataclasses.replace(part, program=program, notes=notes, gain_db=part.gain_db + gain_db))
    if options.sound_variation > 0:
        sound_rng = piece_rng(seed, piece.piece_id + "\x00sound")
        parts = [
            part
            if part.is_drum
            else dataclasses.replace(part, sound_offsets=draw_sound_offsets(options.sound_variation, sound_rng))
            for part in parts
        ]
    return piece.replace_parts(tuple(parts))


def draw_sound_offsets(variation: float, rng: np.random.Generator) -> tuple[tuple[int, float], ...]:
    """Random (SF2 generator, offset) pairs for one part: each generator of :data:`SOUND_VARIATION_RANGES`
    with probability 1/2, its offset uniform in ``variation x [low, high]``."""
    offsets = []
    for generator, (_, low, high) in SOUND_VARIATION_RANGES.items():
        value = float(rng.uniform(low, high)) * variation
        if rng.random() < 0.5 and value != 0.0:
            offsets.append((generator, round(value, 1)))
    return tuple(offsets)


def parse_parts_range(text: str) -> tuple[int, int]:
    """``"2-4"`` -> (2, 4) (``"3"`` -> (3, 3)); ConfigError for anything else."""
    low, _, high = text.strip().partition("-")
    try:
        values = (int(low), int(high or low))
    except ValueError:
        raise ConfigError(f"--parts must look like 2-4 (fewest-most pitched parts), got {text!r}") from None
    return ArrangeOptions(parts_range=values).parts_range  # type: ignore[return-value]


def _keep_some_parts(piece: Piece, parts_range: tuple[int, int], rng: np.random.Generator) -> Piece:
    """``piece`` with at most ``parts_range[1]`` pitched parts: a random subset of a size drawn in the range."""
    pitched = [index for index, part in enumerate(piece.parts) if not part.is_drum and part.notes]
    low, high = parts_range
    if len(pitched) <= high:
        return piece
    count = int(rng.integers(low, high + 1))
    kept = {int(index) for index in rng.choice(pitched, size=count, replace=False)}
    parts = tuple(part for index, part in enumerate(piece.parts) if part.is_drum or index in kept)
    return piece.replace_parts(parts)
