"""The General MIDI -> instrument family table, checked program by program against the GM list."""

from __future__ import annotations

import pytest

from polyamp.notes.families import (
    DEFAULT_PROGRAMS,
    DRUMS_NAME,
    FAMILY_NAMES,
    NUM_FAMILIES,
    family_index,
    family_name_of,
    family_of,
    programs_of_family,
)

# The General MIDI Level 1 sound set (0-based program, instrument name) with the family each
# instrument must get. Written out by hand from the GM 1 specification, independent of the table.
GM_PROGRAMS: list[tuple[str, str]] = [
    ("Acoustic Grand Piano", "keyboard"),
    ("Bright Acoustic Piano", "keyboard"),
    ("Electric Grand Piano", "keyboard"),
    ("Honky-tonk Piano", "keyboard"),
    ("Electric Piano 1", "keyboard"),
    ("Electric Piano 2", "keyboard"),
    ("Harpsichord", "keyboard"),
    ("Clavinet", "keyboard"),
    ("Celesta", "mallet"),
    ("Glockenspiel", "mallet"),
    ("Music Box", "mallet"),
    ("Vibraphone", "mallet"),
    ("Marimba", "mallet"),
    ("Xylophone", "mallet"),
    ("Tubular Bells", "mallet"),
    ("Dulcimer", "mallet"),
    ("Drawbar Organ", "organ"),
    ("Percussive Organ", "organ"),
    ("Rock Organ", "organ"),
    ("Church Organ", "organ"),
    ("Reed Organ", "organ"),
    ("Accordion", "organ"),
    ("Harmonica", "organ"),
    ("Tango Accordion", "organ"),
    ("Acoustic Guitar (nylon)", "guitar"),
    ("Acoustic Guitar (steel)", "guitar"),
    ("Electric Guitar (jazz)", "guitar"),
    ("Electric Guitar (clean)", "guitar"),
    ("Electric Guitar (muted)", "guitar"),
    ("Overdriven Guitar", "guitar"),
    ("Distortion Guitar", "guitar"),
    ("Guitar Harmonics", "guitar"),
    ("Acoustic Bass", "bass"),
    ("Electric Bass (finger)", "bass"),
    ("Electric Bass (pick)", "bass"),
    ("Fretless Bass", "bass"),
    ("Slap Bass 1", "bass"),
    ("Slap Bass 2", "bass"),
    ("Synth Bass 1", "bass"),
    ("Synth Bass 2", "bass"),
    ("Violin", "string"),
    ("Viola", "string"),
    ("Cello", "string"),
    ("Contrabass", "string"),
    ("Tremolo Strings", "string"),
    ("Pizzicato Strings", "string"),
    ("Orchestral Harp", "string"),
    ("Timpani", "mallet"),
    ("String Ensemble 1", "string"),
    ("String Ensemble 2", "string"),
    ("Synth Strings 1", "string"),
    ("Synth Strings 2", "string"),
    ("Choir Aahs", "vocal"),
    ("Voice Oohs", "vocal"),
    ("Synth Voice", "vocal"),
    ("Orchestra Hit", "other"),
    ("Trumpet", "brass"),
    ("Trombone", "brass"),
    ("Tuba", "brass"),
    ("Muted Trumpet", "brass"),
    ("French Horn", "brass"),
    ("Brass Section", "brass"),
    ("Synth Brass 1", "brass"),
    ("Synth Brass 2", "brass"),
    ("Soprano Sax", "reed"),
    ("Alto Sax", "reed"),
    ("Tenor Sax", "reed"),
    ("Baritone Sax", "reed"),
    ("Oboe", "reed"),
    ("English Horn", "reed"),
    ("Bassoon", "reed"),
    ("Clarinet", "reed"),
    ("Piccolo", "flute"),
    ("Flute", "flute"),
    ("Recorder", "flute"),
    ("Pan Flute", "flute"),
    ("Blown Bottle", "flute"),
    ("Shakuhachi", "flute"),
    ("Whistle", "flute"),
    ("Ocarina", "flute"),
    ("Lead 1 (square)", "synth_lead"),
    ("Lead 2 (sawtooth)", "synth_lead"),
    ("Lead 3 (calliope)", "synth_lead"),
    ("Lead 4 (chiff)", "synth_lead"),
    ("Lead 5 (charang)", "synth_lead"),
    ("Lead 6 (voice)", "synth_lead"),
    ("Lead 7 (fifths)", "synth_lead"),
    ("Lead 8 (bass + lead)", "synth_lead"),
    ("Pad 1 (new age)", "other"),
    ("Pad 2 (warm)", "other"),
    ("Pad 3 (polysynth)", "other"),
    ("Pad 4 (choir)", "other"),
    ("Pad 5 (bowed)", "other"),
    ("Pad 6 (metallic)", "other"),
    ("Pad 7 (halo)", "other"),
    ("Pad 8 (sweep)", "other"),
    ("FX 1 (rain)", "other"),
    ("FX 2 (soundtrack)", "other"),
    ("FX 3 (crystal)", "other"),
    ("FX 4 (atmosphere)", "other"),
    ("FX 5 (brightness)", "other"),
    ("FX 6 (goblins)", "other"),
    ("FX 7 (echoes)", "other"),
    ("FX 8 (sci-fi)", "other"),
    ("Sitar", "guitar"),
    ("Banjo", "guitar"),
    ("Shamisen", "guitar"),
    ("Koto", "guitar"),
    ("Kalimba", "mallet"),
    ("Bagpipe", "reed"),
    ("Fiddle", "string"),
    ("Shanai", "reed"),
    ("Tinkle Bell", "mallet"),
    ("Agogo", "mallet"),
    ("Steel Drums", "mallet"),
    ("Woodblock", "other"),
    ("Taiko Drum", "other"),
    ("Melodic Tom", "other"),
    ("Synth Drum", "other"),
    ("Reverse Cymbal", "other"),
    ("Guitar Fret Noise", "other"),
    ("Breath Noise", "other"),
    ("Seashore", "other"),
    ("Bird Tweet", "other"),
    ("Telephone Ring", "other"),
    ("Helicopter", "other"),
    ("Applause", "other"),
    ("Gunshot", "other"),
]

NSYNTH_ORDER = (
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
)


def test_gm_list_is_complete() -> None:
    assert len(GM_PROGRAMS) == 128


@pytest.mark.parametrize("program", range(128), ids=[f"{p}-{name}" for p, (name, _) in enumerate(GM_PROGRAMS)])
def test_every_program_maps_to_its_family(program: int) -> None:
    name, expected = GM_PROGRAMS[program]
    assert family_name_of(program) == expected, f"program {program} ({name})"
    assert FAMILY_NAMES[family_of(program)] == expected


def test_families_follow_nsynth_order_then_other() -> None:
    assert FAMILY_NAMES[:11] == NSYNTH_ORDER
    assert FAMILY_NAMES[11] == "other"
    assert NUM_FAMILIES == 12


@pytest.mark.parametrize("program", range(128))
def test_drum_tracks_never_get_a_pitched_family(program: int) -> None:
    assert family_of(program, is_drum=True) is None
    assert family_name_of(program, is_drum=True) == DRUMS_NAME
    assert DRUMS_NAME not in FAMILY_NAMES


def test_the_2020_off_by_one_programs_are_fixed() -> None:
    # 0-based 104 is Sitar (a plucked string), 108 Kalimba, 109 Bagpipe, 110 Fiddle, 111 Shanai.
    assert [family_name_of(p) for p in (104, 108, 109, 110, 111, 112)] == [
        "guitar",
        "mallet",
        "reed",
        "string",
        "reed",
        "mallet",
    ]


def test_default_program_of_each_family_maps_back_to_it() -> None:
    assert len(DEFAULT_PROGRAMS) == NUM_FAMILIES
    for family, program in enumerate(DEFAULT_PROGRAMS):
        assert family_of(program) == family
        assert program in programs_of_family(family)


def test_every_family_has_programs_and_programs_partition() -> None:
    seen = [program for family in range(NUM_FAMILIES) for program in programs_of_family(family)]
    assert sorted(seen) == list(range(128))


def test_bad_program_and_family_names_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="0-127"):
        family_of(128)
    with pytest.raises(ValueError, match="valid families: bass"):
        family_index("kazoo")
    assert family_index("string") == 8
