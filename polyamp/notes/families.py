"""Instrument families: the 11 NSynth families plus ``other``, and the General MIDI table.

Programs are 0-based General MIDI numbers (0 = Acoustic Grand Piano ... 127 = Gunshot).
Families are indices into :data:`FAMILY_NAMES` (NSynth's order, then ``other``). Drum tracks
(MIDI channel 10, ``is_drum``) have no family: :func:`family_of` returns ``None`` for them so
they can never be mistaken for a pitched family.

Decisions where General MIDI and NSynth disagree (see ``docs/families.md``):
accordion/harmonica stay with the organ group as GM and Slakh place them; timpani (47) is
``mallet``; orchestra hit (55) and the unpitched percussion 115-119 are ``other``; Lead 6
"voice" (85) is ``synth_lead``; sitar, banjo, shamisen, koto (104-107) are ``guitar``;
kalimba and tinkle bell (108, 112), agogo and steel drums (113, 114) are ``mallet``; bagpipe
and shanai (109, 111) are ``reed``; fiddle (110) is ``string``; pads and effects are ``other``.
"""

from __future__ import annotations

FAMILY_NAMES: tuple[str, ...] = (
    "bass",
    "brass",
    "flute",
    "guitar",
    "keyboard",
    "mallet",
    "organ",
    "reed",
    "string",
    "synth_lead",
    "vocal",
    "other",
)
"""The 11 NSynth families in NSynth's ``instrument_family`` order (0-10), then ``other`` (11)."""

NUM_FAMILIES = len(FAMILY_NAMES)
NUM_PROGRAMS = 128
"""General MIDI programs 0-127."""
NUM_NSYNTH_FAMILIES = 11
OTHER = FAMILY_NAMES.index("other")
DRUMS_NAME = "drums"
"""Name used for drum tracks, which are kept apart from every family."""

_FAMILY_INDEX = {name: index for index, name in enumerate(FAMILY_NAMES)}

# (first program, last program inclusive, family name); every program 0-127 is covered once.
_PROGRAM_RANGES: tuple[tuple[int, int, str], ...] = (
    (0, 7, "keyboard"),  # pianos, electric pianos, harpsichord, clavinet
    (8, 15, "mallet"),  # chromatic percussion: celesta ... dulcimer
    (16, 23, "organ"),  # organs, accordion, harmonica, tango accordion
    (24, 31, "guitar"),
    (32, 39, "bass"),  # acoustic, electric, fretless, slap and synth basses
    (40, 46, "string"),  # violin, viola, cello, contrabass, tremolo, pizzicato, harp
    (47, 47, "mallet"),  # timpani
    (48, 51, "string"),  # string ensembles, synth strings
    (52, 54, "vocal"),  # choir aahs, voice oohs, synth voice
    (55, 55, "other"),  # orchestra hit
    (56, 63, "brass"),  # trumpet ... synth brass
    (64, 71, "reed"),  # saxophones, oboe, english horn, bassoon, clarinet
    (72, 79, "flute"),  # piccolo ... ocarina
    (80, 87, "synth_lead"),
    (88, 103, "other"),  # synth pads and synth effects
    (104, 107, "guitar"),  # sitar, banjo, shamisen, koto
    (108, 108, "mallet"),  # kalimba
    (109, 109, "reed"),  # bagpipe
    (110, 110, "string"),  # fiddle
    (111, 111, "reed"),  # shanai
    (112, 114, "mallet"),  # tinkle bell, agogo, steel drums
    (115, 127, "other"),  # woodblock, taiko, toms, synth drum, reverse cymbal, sound effects
)

PROGRAM_FAMILIES: tuple[int, ...] = tuple(
    _FAMILY_INDEX[name] for first, last, name in _PROGRAM_RANGES for _ in range(first, last + 1)
)
"""Family index of each General MIDI program 0-127."""

DEFAULT_PROGRAMS: tuple[int, ...] = (
    33,  # bass: Electric Bass (finger)
    61,  # brass: Brass Section
    73,  # flute: Flute
    25,  # guitar: Acoustic Guitar (steel)
    0,  # keyboard: Acoustic Grand Piano
    11,  # mallet: Vibraphone
    16,  # organ: Drawbar Organ
    65,  # reed: Alto Sax
    48,  # string: String Ensemble 1
    80,  # synth_lead: Lead 1 (square)
    52,  # vocal: Choir Aahs
    88,  # other: Pad 1 (new age)
)
"""Program written for each family's track when exporting MIDI (and given to NSynth notes)."""

if len(PROGRAM_FAMILIES) != 128:  # pragma: no cover - guards edits to the table
    raise AssertionError("the General MIDI family table must cover programs 0-127 exactly once")


def family_of(program: int, is_drum: bool = False) -> int | None:
    """Family index of a 0-based GM ``program``; ``None`` for drum tracks (never a pitched family)."""
    if is_drum:
        return None
    if not 0 <= int(program) <= 127:
        raise ValueError(f"MIDI program must be 0-127, got {program}")
    return PROGRAM_FAMILIES[int(program)]


def family_name_of(program: int, is_drum: bool = False) -> str:
    """Family name of a program, or ``"drums"`` for drum tracks."""
    family = family_of(program, is_drum)
    return DRUMS_NAME if family is None else FAMILY_NAMES[family]


def family_index(name: str) -> int:
    """Index of a family name; raises ValueError listing the valid names."""
    try:
        return _FAMILY_INDEX[name]
    except KeyError:
        raise ValueError(f"unknown instrument family {name!r}; valid families: {', '.join(FAMILY_NAMES)}") from None


def programs_of_family(family: int) -> tuple[int, ...]:
    """Every GM program whose family is ``family``, ascending."""
    return tuple(program for program, value in enumerate(PROGRAM_FAMILIES) if value == family)
