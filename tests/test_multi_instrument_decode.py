"""Full-model decoding: per-note family assignment, family rolls, and multi-track MIDI files."""

from __future__ import annotations

import os
from pathlib import Path

import gin
import numpy as np
import pretty_midi
import pytest

from polyamp.decode.multi_instrument import (
    AGNOSTIC_CHANNEL,
    MultiInstrumentDecoder,
    assign_families,
    family_mask,
    family_rolls_from_notes,
    family_rolls_from_sequence,
    notes_from_family_rolls,
    parse_families,
    present_families,
    present_instruments_to_families,
    present_instruments_vector,
    restrict_to_recording_families,
)
from polyamp.decode.onsets_frames import Note, OnsetsFramesDecoder
from polyamp.errors import ConfigError, MidiError, OutputExistsError
from polyamp.notes.families import DEFAULT_PROGRAMS, FAMILY_NAMES, family_index
from polyamp.notes.midi import write_midi
from polyamp.notes.multitrack import (
    multitrack_note_sequence,
    notes_by_program_family,
    read_multitrack_midi,
    split_sequence_by_family,
    write_multitrack_midi,
)
from polyamp.notes.rolls import _music_pb2
from polyamp.registry import POSTPROCESSORS

FPS = 31.25
BASS, BRASS, GUITAR, KEYBOARD, STRING, OTHER = (
    family_index(name) for name in ("bass", "brass", "guitar", "keyboard", "string", "other")
)


def probs(**values: float) -> np.ndarray:
    """One note's [12] family probabilities: the named families get the given values, others 0.05."""
    row = np.full(12, 0.05, np.float32)
    for name, value in values.items():
        row[family_index(name)] = value
    return row


# ------------------------------------------------------------------------------------- the rule


def test_single_confident_family():
    assert assign_families(np.stack([probs(string=0.9), probs(bass=0.51)])) == [[STRING], [BASS]]


def test_every_family_above_the_multiple_threshold_is_kept():
    note = probs(string=0.9, brass=0.7, guitar=0.58)  # guitar is above 0.5 but not the best nor above 0.6
    assert assign_families(note[None]) == [[BRASS, STRING]]
    assert assign_families(note[None], multiple_instruments_threshold=0.55) == [[BRASS, GUITAR, STRING]]
    assert assign_families(note[None], multiple_instruments_threshold=0.95) == [[STRING]]


def test_best_at_or_below_half_keeps_the_note_on_its_best_family_unless_asked_not_to():
    notes = np.stack([probs(keyboard=0.5, guitar=0.3), probs(guitar=0.2), probs(string=0.8)])
    assert assign_families(notes) == [[KEYBOARD], [GUITAR], [STRING]]
    # the 2020 behaviour: such notes vanish from every track
    assert assign_families(notes, keep_unassigned=False) == [[], [], [STRING]]
    mask = family_mask(notes, keep_unassigned=False)
    assert mask.shape == (3, 12) and mask.dtype == bool and mask.sum() == 1


def test_lower_multiple_threshold_than_best_threshold_follows_the_2020_rule():
    note = probs(keyboard=0.45, guitar=0.35)
    assert assign_families(note[None], multiple_instruments_threshold=0.3, keep_unassigned=False) == [
        [GUITAR, KEYBOARD]
    ]


def test_ties_go_to_the_lowest_family_index():
    assert assign_families(probs(string=0.4, brass=0.4)[None]) == [[BRASS]]


def test_allowed_families_restrict_both_the_best_and_the_extra_families():
    notes = np.stack([probs(string=0.9, brass=0.3), probs(string=0.9, brass=0.7), probs(keyboard=0.9)])
    assert assign_families(notes, allowed_families=[BRASS]) == [[BRASS], [BRASS], [BRASS]]
    assert assign_families(notes, allowed_families=[BRASS], keep_unassigned=False) == [[], [BRASS], []]
    assert assign_families(notes, allowed_families=[BRASS, KEYBOARD]) == [[BRASS], [BRASS], [KEYBOARD]]
    with pytest.raises(ConfigError, match="at least one"):
        assign_families(notes, allowed_families=[])
    with pytest.raises(ConfigError, match="0-11"):
        assign_families(notes, allowed_families=[12])


def test_min_family_share_moves_notes_off_families_the_recording_is_rarely_heard_as():
    # 9 string-like notes and one note heard as guitar: guitar's mean probability is 0.105.
    notes = np.stack([probs(string=0.9)] * 9 + [probs(guitar=0.6, string=0.3)])
    assert assign_families(notes)[-1] == [GUITAR]
    assert assign_families(notes, min_family_share=0.15) == [[STRING]] * 10
    assert assign_families(notes, min_family_share=0.1)[-1] == [GUITAR]
    # A share the recording's families reach keeps them all; a share none reaches keeps the best one.
    mixed = np.stack([probs(string=0.9)] * 6 + [probs(guitar=0.9)] * 4)  # means 0.56 and 0.39
    assert assign_families(mixed, min_family_share=0.3) == [[STRING]] * 6 + [[GUITAR]] * 4
    assert assign_families(mixed, min_family_share=0.9) == [[STRING]] * 10
    # Applied after the user's restriction: the best allowed family stays.
    assert assign_families(notes, allowed_families=[BRASS, GUITAR], min_family_share=0.5) == [[GUITAR]] * 10
    assert assign_families(np.zeros((0, 12)), min_family_share=0.2) == []
    with pytest.raises(ConfigError, match="min_family_share"):
        assign_families(notes, min_family_share=-0.1)
    assert MultiInstrumentDecoder(min_family_share=0.15).assign(notes) == [[STRING]] * 10
    # Evaluation scores the same choice: the dropped families' probabilities become 0.
    restricted = restrict_to_recording_families(notes, 0.15)
    assert restricted[:, GUITAR].max() == 0.0 and np.array_equal(restricted[:, STRING], notes[:, STRING])
    assert np.array_equal(restrict_to_recording_families(notes, 0.0), notes)


def test_min_family_share_is_a_timbre_hparam_that_reaches_both_decoders():
    from polyamp.components import build_components
    from polyamp.config import bind_hparams, parse_gin, parse_hparams_json

    try:
        parse_gin(["full/tiny.gin"])
        bind_hparams("full", parse_hparams_json("full", '{"min_family_share": 0.12}'))
        assert build_components(model_type="timbre").decoder.min_family_share == 0.12
        assert build_components(model_type="full").decoder.min_family_share == 0.12
    finally:
        with gin.unlock_config():
            gin.clear_config()


def test_no_notes_and_bad_inputs():
    assert assign_families(np.zeros((0, 12))) == []
    assert assign_families([]) == []
    with pytest.raises(ValueError, match="shape"):
        assign_families(np.zeros((3, 11)))
    with pytest.raises(ValueError, match="NaN"):
        assign_families(np.full((1, 12), np.nan))
    with pytest.raises(ConfigError, match="multiple_instruments_threshold"):
        assign_families(np.zeros((1, 12)), multiple_instruments_threshold=1.5)
    with pytest.raises(ConfigError, match="best_threshold"):
        assign_families(np.zeros((1, 12)), best_threshold="high")


# ----------------------------------------------------------------------- choosing the families


def test_parse_families_accepts_names_in_any_case_and_order():
    assert parse_families("string,brass") == [BRASS, STRING]
    assert parse_families(" String , synth-lead,string ") == [STRING, family_index("synth_lead")]


@pytest.mark.parametrize("text", ["strings,brass", "drums", "", "string,,brass"])
def test_parse_families_errors_are_one_line_and_list_the_valid_names(text: str):
    with pytest.raises(ConfigError) as error:
        parse_families(text)
    message = str(error.value)
    assert "\n" not in message
    assert "--families" in message
    assert ", ".join(FAMILY_NAMES) in message
    if text == "strings,brass":
        assert "did you mean 'string'" in message


def test_present_instruments_forms():
    vector = [0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]
    assert present_instruments_to_families(vector) == [BRASS, STRING]
    assert present_instruments_to_families(np.array(vector, bool)) == [BRASS, STRING]
    assert present_instruments_to_families([float(v) for v in vector]) == [BRASS, STRING]
    assert present_instruments_to_families(["string", "Brass"]) == [BRASS, STRING]
    assert present_instruments_to_families("brass,string") == [BRASS, STRING]
    assert present_instruments_to_families(None) is None
    for bad in ([1, 0], [0.5] * 12, [2] * 12, ["string", 1], 3):
        with pytest.raises(ConfigError, match="present_instruments must be 12 numbers") as error:
            present_instruments_to_families(bad)
        assert "\n" not in str(error.value)
    with pytest.raises(ConfigError, match="allows no instrument family"):
        present_instruments_to_families([0] * 12)
    with pytest.raises(ConfigError, match="in present_instruments"):
        present_instruments_to_families(["violin"])


def test_present_families_ignore_drums_and_vector():
    sequence = _music_pb2().NoteSequence()
    sequence.notes.add(pitch=36, velocity=100, start_time=0, end_time=0.1, program=0, is_drum=True)
    sequence.notes.add(pitch=60, velocity=80, start_time=0, end_time=1, program=40)  # violin
    sequence.notes.add(pitch=40, velocity=80, start_time=0, end_time=1, program=33)  # bass
    assert present_families(sequence) == [BASS, STRING]  # the drum note does not mark keyboard
    assert present_instruments_vector(present_families(sequence)).tolist() == [
        1.0 if family in (BASS, STRING) else 0.0 for family in range(12)
    ]
    assert present_instruments_vector(None).tolist() == [1.0] * 12


# ------------------------------------------------------------------------------- the decoder


def test_decoder_is_a_registered_gin_configurable_postprocessor():
    assert POSTPROCESSORS.get("multi_instrument") is MultiInstrumentDecoder
    with gin.unlock_config():
        gin.bind_parameter("MultiInstrumentDecoder.multiple_instruments_threshold", 0.8)
        gin.bind_parameter("MultiInstrumentDecoder.present_instruments", ["string", "brass"])
        gin.bind_parameter("OnsetsFramesDecoder.min_duration_ms", 40.0)
    try:
        # build_components passes the agnostic thresholds by keyword
        decoder = MultiInstrumentDecoder(frame_threshold=0.3, onset_threshold=0.4)
    finally:
        gin.clear_config()
    assert decoder.multiple_instruments_threshold == 0.8
    assert decoder.allowed_families == [BRASS, STRING]
    assert decoder.agnostic_decoder.frame_threshold == 0.3
    assert decoder.agnostic_decoder.onset_threshold == 0.4
    assert decoder.agnostic_decoder.min_duration_ms == 40.0
    with pytest.raises(ConfigError, match="not both"):
        MultiInstrumentDecoder(agnostic_decoder=OnsetsFramesDecoder(), frame_threshold=0.3)
    with pytest.raises(ConfigError, match="keep_unassigned"):
        MultiInstrumentDecoder(keep_unassigned="no")
    with pytest.raises(ConfigError, match="present_instruments"):
        MultiInstrumentDecoder(present_instruments="strings")


def test_decoder_from_rolls_to_a_multitrack_file(tmp_path: Path):
    frames = np.zeros((100, 88), np.float32)
    onsets = np.zeros_like(frames)
    for pitch, first, stop in ((60, 10, 40), (64, 20, 50), (40, 5, 90)):
        frames[first:stop, pitch - 21] = 0.9
        onsets[first : first + 2, pitch - 21] = 0.9
    decoder = MultiInstrumentDecoder()
    notes = decoder.decode(frames, onsets, None)
    assert [note.pitch for note in notes] == [40, 60, 64]
    family_probs = np.stack([probs(bass=0.95), probs(string=0.8, brass=0.75), probs(keyboard=0.4)])
    by_family = decoder(notes, family_probs)
    assert {family: [n.pitch for n in group] for family, group in by_family.items()} == {
        BASS: [40],
        BRASS: [60],
        KEYBOARD: [64],
        STRING: [60],
    }
    only = MultiInstrumentDecoder(present_instruments="string,bass").split(notes, family_probs)
    # 64 (best: keyboard, not allowed) ties at 0.05 between bass and string and goes to bass
    assert {family: [n.pitch for n in group] for family, group in only.items()} == {BASS: [40, 64], STRING: [60]}

    path = write_multitrack_midi(by_family, tmp_path / "mix.mid")
    midi = pretty_midi.PrettyMIDI(str(path))
    assert [(track.name, track.program, track.is_drum) for track in midi.instruments] == [
        ("bass", DEFAULT_PROGRAMS[BASS], False),
        ("brass", DEFAULT_PROGRAMS[BRASS], False),
        ("keyboard", DEFAULT_PROGRAMS[KEYBOARD], False),
        ("string", DEFAULT_PROGRAMS[STRING], False),
    ]
    sequence = decoder.to_multitrack_sequence(by_family)
    assert sorted((note.pitch, note.instrument, note.program) for note in sequence.notes) == [
        (40, BASS, DEFAULT_PROGRAMS[BASS]),
        (60, BRASS, DEFAULT_PROGRAMS[BRASS]),
        (60, STRING, DEFAULT_PROGRAMS[STRING]),
        (64, KEYBOARD, DEFAULT_PROGRAMS[KEYBOARD]),
    ]


# ----------------------------------------------------------------------------- family rolls


def test_family_rolls_paint_families_and_the_agnostic_channel():
    notes = [Note(60, 0.32, 0.64, 80), Note(60, 0.48, 0.96, 90), Note(30, 0.0, 0.1, 70), Note(10, 0.0, 1.0, 70)]
    rolls = family_rolls_from_notes(notes, [[STRING], [STRING, BRASS], [BASS], [BASS]], num_frames=40)
    assert rolls.shape == (40, 88, 13) and rolls.dtype == np.float32
    row = 60 - 21
    assert np.flatnonzero(rolls[:, row, STRING]).tolist() == list(range(10, 30))
    assert np.flatnonzero(rolls[:, row, BRASS]).tolist() == list(range(15, 30))
    assert rolls.max() == 1.0  # overlapping notes do not add up
    assert np.flatnonzero(rolls[:, 30 - 21, BASS]).tolist() == [0, 1, 2, 3]
    assert rolls[:, :, AGNOSTIC_CHANNEL].sum() == 20 + 4  # the pitch-10 note is off the 88 keys

    soft = family_rolls_from_notes(notes[:2], np.stack([probs(string=0.7), probs(string=0.9)]), num_frames=40)
    assert soft[12, row, STRING] == pytest.approx(0.7)
    assert soft[20, row, STRING] == pytest.approx(0.9)  # the maximum where the notes overlap
    agnostic = np.full((40, 88), 0.25, np.float32)
    given = family_rolls_from_notes(notes[:1], [[STRING]], num_frames=40, agnostic=agnostic)
    assert np.all(given[:, :, AGNOSTIC_CHANNEL] == 0.25)
    with pytest.raises(ValueError, match="rows for 4 notes"):
        family_rolls_from_notes(notes, [[STRING]], num_frames=40)


def test_family_rolls_decode_back_to_the_family_notes():
    sequence = _music_pb2().NoteSequence()
    sequence.notes.add(pitch=60, velocity=80, start_time=0.32, end_time=0.96, program=40)
    sequence.notes.add(pitch=45, velocity=80, start_time=0.64, end_time=1.6, program=33)
    sequence.notes.add(pitch=45, velocity=80, start_time=0.0, end_time=1.0, program=0, is_drum=True)
    rolls = family_rolls_from_sequence(sequence, num_frames=60)
    assert rolls[:, :, KEYBOARD].sum() == 0  # the drum note is skipped
    decoded = notes_from_family_rolls(rolls, decoder=OnsetsFramesDecoder(onset_threshold=0, active_onset_threshold=0))
    assert {
        family: [(n.pitch, round(n.start_s * FPS), round(n.end_s * FPS)) for n in group]
        for family, group in decoded.items()
    } == {
        BASS: [(45, 20, 50)],
        STRING: [(60, 10, 30)],
    }
    with pytest.raises(ValueError, match="frame_rolls"):
        notes_from_family_rolls(rolls[:, :, :12])


# -------------------------------------------------------------------------- multi-track MIDI


def _notes_by_family() -> dict[int, list[Note]]:
    shared = Note(67, 1.0, 2.5, 100)
    return {
        STRING: [Note(60, 0.0, 1.0, 80), shared, Note(72, 2.0, 3.0, 64)],
        BASS: [Note(36, 0.5, 1.5, 110)],
        BRASS: [shared],
        GUITAR: [],
    }


def test_multitrack_file_has_one_named_track_per_family_with_its_program(tmp_path: Path):
    path = write_multitrack_midi(_notes_by_family(), tmp_path / "sub" / "song.mid", qpm=90.0)
    assert path == tmp_path / "sub" / "song.mid"
    midi = pretty_midi.PrettyMIDI(str(path))
    tracks = [(track.name, track.program, track.is_drum, len(track.notes)) for track in midi.instruments]
    assert tracks == [  # family order; guitar has no notes so no track
        ("bass", DEFAULT_PROGRAMS[BASS], False, 1),
        ("brass", DEFAULT_PROGRAMS[BRASS], False, 1),
        ("string", DEFAULT_PROGRAMS[STRING], False, 3),
    ]
    # the note played by two families is in both tracks, with its velocity and times
    for track in (midi.instruments[1], midi.instruments[2]):
        shared = [note for note in track.notes if note.pitch == 67]
        assert len(shared) == 1 and shared[0].velocity == 100
        assert shared[0].start == pytest.approx(1.0, abs=2e-3) and shared[0].end == pytest.approx(2.5, abs=2e-3)
    assert midi.get_tempo_changes()[1][0] == pytest.approx(90.0, abs=1e-3)


def test_read_multitrack_round_trip(tmp_path: Path):
    path = write_multitrack_midi(_notes_by_family(), tmp_path / "song.mid")
    back = read_multitrack_midi(path)
    expected = {family: notes for family, notes in _notes_by_family().items() if notes}
    assert sorted(back) == sorted(expected)
    for family, notes in expected.items():
        want = sorted(notes, key=lambda note: (note.start_s, note.pitch))
        assert [(n.pitch, n.velocity) for n in back[family]] == [(n.pitch, n.velocity) for n in want]
        for got, note in zip(back[family], want, strict=True):
            assert got.start_s == pytest.approx(note.start_s, abs=2e-3)
            assert got.end_s == pytest.approx(note.end_s, abs=2e-3)


def test_reader_falls_back_to_the_program_for_unnamed_tracks(tmp_path: Path):
    sequence = _music_pb2().NoteSequence()
    sequence.notes.add(pitch=60, velocity=80, start_time=0.0, end_time=1.0, instrument=0, program=41)  # viola
    sequence.notes.add(pitch=38, velocity=90, start_time=0.0, end_time=0.2, instrument=1, is_drum=True)
    sequence.notes.add(pitch=50, velocity=70, start_time=0.5, end_time=1.0, instrument=2, program=26)
    write_midi(sequence, tmp_path / "plain.mid")
    back = read_multitrack_midi(tmp_path / "plain.mid")
    assert {family: [n.pitch for n in notes] for family, notes in back.items()} == {GUITAR: [50], STRING: [60]}


def test_note_sequence_input_is_split_by_program_family_with_a_drum_track(tmp_path: Path):
    sequence = _music_pb2().NoteSequence()
    sequence.tempos.add(qpm=120)
    sequence.notes.add(pitch=60, velocity=80, start_time=0.0, end_time=1.0, program=40)
    sequence.notes.add(pitch=64, velocity=80, start_time=0.0, end_time=1.0, program=48)
    sequence.notes.add(pitch=38, velocity=90, start_time=0.0, end_time=0.2, is_drum=True)
    midi = pretty_midi.PrettyMIDI(str(write_multitrack_midi(sequence, tmp_path / "seq.mid")))
    assert [(t.name, t.program, t.is_drum, len(t.notes)) for t in midi.instruments] == [
        ("string", DEFAULT_PROGRAMS[STRING], False, 2),
        ("drums", 0, True, 1),
    ]
    assert {family: len(notes) for family, notes in notes_by_program_family(sequence).items()} == {STRING: 2}
    # a multi-track NoteSequence comes back with the same families
    round_trip = multitrack_note_sequence(_notes_by_family())
    assert {family: len(notes) for family, notes in notes_by_program_family(round_trip).items()} == {
        BASS: 1,
        BRASS: 1,
        STRING: 3,
    }


def test_family_names_as_keys_and_unknown_keys(tmp_path: Path):
    path = write_multitrack_midi({"string": [Note(60, 0, 1, 70)], "other": [Note(62, 0, 1, 70)]}, tmp_path / "a.mid")
    assert sorted(read_multitrack_midi(path)) == [STRING, OTHER]
    for key in ("violin", 12, -1):
        with pytest.raises(ConfigError, match="unknown instrument family"):
            write_multitrack_midi({key: [Note(60, 0, 1, 70)]}, tmp_path / "b.mid")
    assert not (tmp_path / "b.mid").exists()


def test_split_sequence_by_family_puts_a_note_in_every_family_given():
    sequence = multitrack_note_sequence({KEYBOARD: [Note(60, 0.0, 1.0, 80), Note(62, 1.0, 2.0, 90)]})
    split = split_sequence_by_family(sequence, [[STRING, BRASS], []])
    assert split == {BRASS: [Note(60, 0.0, 1.0, 80)], STRING: [Note(60, 0.0, 1.0, 80)]}
    with pytest.raises(ValueError, match="2 notes"):
        split_sequence_by_family(sequence, [[STRING]])


def test_existing_file_is_refused_unless_overwrite(tmp_path: Path):
    path = tmp_path / "song.mid"
    path.write_bytes(b"keep me")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        write_multitrack_midi(_notes_by_family(), path)
    assert path.read_bytes() == b"keep me"
    write_multitrack_midi(_notes_by_family(), path, overwrite=True)
    assert len(pretty_midi.PrettyMIDI(str(path)).instruments) == 3


@pytest.mark.parametrize(
    "bad",
    [Note(60, 1.0, 0.5, 80), Note(60, 0.0, 1.0, 0), Note(130, 0.0, 1.0, 80), Note(60, float("nan"), 1.0, 80)],
)
def test_a_bad_note_leaves_no_partial_file(tmp_path: Path, bad: Note):
    notes = _notes_by_family()
    notes[BRASS] = [*notes[BRASS], bad]
    with pytest.raises(MidiError) as error:
        write_multitrack_midi(notes, tmp_path / "new.mid")
    assert "\n" not in str(error.value) and "new.mid" in str(error.value) and "'brass'" in str(error.value)
    assert os.listdir(tmp_path) == []
    # an existing file is left untouched even with overwrite
    (tmp_path / "old.mid").write_bytes(b"old")
    with pytest.raises(MidiError):
        write_multitrack_midi(notes, tmp_path / "old.mid", overwrite=True)
    assert os.listdir(tmp_path) == ["old.mid"] and (tmp_path / "old.mid").read_bytes() == b"old"


def test_empty_transcription_writes_a_file_without_tracks(tmp_path: Path):
    path = write_multitrack_midi({}, tmp_path / "silence.mid")
    assert pretty_midi.PrettyMIDI(str(path)).instruments == []
    assert read_multitrack_midi(path) == {}


def test_reader_errors_name_the_file(tmp_path: Path):
    with pytest.raises(MidiError, match="not found"):
        read_multitrack_midi(tmp_path / "missing.mid")
    (tmp_path / "empty.mid").write_bytes(b"")
    with pytest.raises(MidiError, match="empty"):
        read_multitrack_midi(tmp_path / "empty.mid")
    (tmp_path / "junk.mid").write_bytes(b"not a midi file at all")
    with pytest.raises(MidiError, match="junk.mid") as error:
        read_multitrack_midi(tmp_path / "junk.mid")
    assert "\n" not in str(error.value)
    with pytest.raises(MidiError, match="directory"):
        read_multitrack_midi(tmp_path)
    with pytest.raises(ConfigError, match="qpm"):
        write_multitrack_midi({}, tmp_path / "x.mid", qpm=0)
