"""Where ``polyamp synth`` gets its pieces: reserved works, the music21 corpus and MIDI folders."""

from __future__ import annotations

import sys
from pathlib import Path

import pretty_midi
import pytest

from polyamp.errors import ConfigError, DatasetError, MidiError, MissingDependencyError
from polyamp.synth.reserved import (
    corpus_root,
    is_reserved,
    normalize_corpus_path,
    reserved_entries,
    reserved_work_keys,
    strip_score_extension,
    work_key,
)
from polyamp.synth.sources import (
    corpus_piece_id,
    list_corpus_works,
    list_midi_files,
    midi_piece_id,
    midi_piece_ids,
    piece_from_corpus,
    piece_from_midi_file,
    safe_piece_id,
)

# ---------------------------------------------------------------------------------------------
# Reserved works: pure path rules (no corpus needed).


def test_reserved_list_is_the_package_copy():
    entries = reserved_entries()
    assert len(entries) == 34
    assert entries[0] == "bach/bwv244.62"
    assert "trecento/PMFC_04-Cara mi donna" in entries
    assert all(not entry.startswith("#") for entry in entries)


@pytest.mark.parametrize(
    ("entry", "key"),
    [
        ("beethoven/opus59no1/movement1", "beethoven/opus59no1"),
        ("beethoven/opus18no1/movement1.mxl", "beethoven/opus18no1"),
        ("corelli/opus3no1/1grave.xml", "corelli/opus3no1"),
        ("handel/rinaldo/Lascia_chio_pianga", "handel/rinaldo"),
        ("bach/bwv66.6", "bach/bwv66"),
        ("bach/bwv244.62", "bach/bwv244"),
        ("monteverdi/madrigal.3.1", "monteverdi/madrigal.3"),
        ("bach/bwv269", "bach/bwv269"),
        ("chopin/mazurka06-2", "chopin/mazurka06-2"),
        ("trecento/PMFC_04-Cara mi donna", "trecento/PMFC_04-Cara mi donna"),
    ],
)
def test_work_key(entry, key):
    assert work_key(entry) == key


def test_strip_score_extension_keeps_movement_numbers():
    assert strip_score_extension("bach/bwv66.6") == "bach/bwv66.6"
    assert strip_score_extension("bach/bwv66.6.mxl") == "bach/bwv66.6"
    assert strip_score_extension("monteverdi/madrigal.3.1.rntxt") == "monteverdi/madrigal.3.1"
    assert strip_score_extension("song.MIDI") == "song"
    assert normalize_corpus_path("./bach\\bwv66.6.mxl") == "bach/bwv66.6"


@pytest.mark.parametrize(
    "path",
    [
        "bach/bwv66.6",
        "bach/bwv66.6.mxl",
        "bach/bwv66.2.mxl",  # another movement of the same cantata
        "bach/bwv244.3",
        "bach/bwv244.29-a.mxl",
        "bach/bwv269.mxl",
        "BACH/BWV66.6",
        "beethoven/opus59no1/movement3.mxl",
        "beethoven/opus18no1/movement2.krn",
        "corelli/opus3no1/2vivace.xml",
        "handel/rinaldo/another_aria.mxl",
        "monteverdi/madrigal.3.15.mxl",
        "monteverdi/madrigal.3.1_old.mxl",
        "monteverdi/madrigal.4.20.rntxt",
        "mozart/k545/movement2",
        "schoenberg/opus19/movement1.mxl",
        "/some/other/copy/bach/bwv244.3.mxl",
        "bwv66.6",  # a bare name, as corpus.parse also accepts
        "Lindenbaum.xml",
    ],
)
def test_reserved_paths(path):
    assert is_reserved(path)


@pytest.mark.parametrize(
    "path",
    [
        "bach/bwv2440",
        "bach/bwv26.6",
        "bach/bwv6.6.mxl",
        "bach/bwv2690.mxl",
        "bach/bwv347b",
        "beethoven/opus59no2/movement1.mxl",
        "beethoven/opus18no3.mxl",
        "haydn/opus74no2/movement1",
        "monteverdi/madrigal.5.1.mxl",
        "monteverdi/madrigal.30.1",
        "mozart/k156/movement1.mxl",
        "mozart/k5450/movement1",
        "schumann_clara/polonaise_op1n2.mxl",
        "schumann_clara/opus170/movement1",
        "luca/gloriosa.xml",
        "palestrina/Agnus_02.krn",
        "palestrina/Agnus_I_01.krn",
        "",
    ],
)
def test_near_misses_are_not_reserved(path):
    assert not is_reserved(path)


# ---------------------------------------------------------------------------------------------
# Reserved works against the installed music21 corpus.


@pytest.fixture(scope="module")
def core_paths() -> list[str]:
    pytest.importorskip("music21")
    from music21 import corpus

    root = corpus_root()
    assert root is not None
    return sorted(Path(path).relative_to(root).as_posix() for path in corpus.getCorePaths())


def test_every_reserved_entry_exists_in_the_corpus(core_paths):
    missing = [
        entry
        for entry in reserved_entries()
        if not any(normalize_corpus_path(path).lower() == normalize_corpus_path(entry).lower() for path in core_paths)
    ]
    assert missing == [], f"reserved entries not in the installed music21 corpus: {missing}"
    for entry in reserved_entries():
        assert any(is_reserved(path) for path in core_paths if normalize_corpus_path(path).startswith(work_key(entry)))


def test_reserved_set_in_the_corpus(core_paths):
    reserved = [path for path in core_paths if is_reserved(path)]
    print(f"\n{len(reserved)} of {len(core_paths)} music21 core corpus files are reserved")
    # Every file of a reserved work folder, every movement of a reserved cantata/book.
    for path in core_paths:
        lowered = path.lower()
        if lowered.startswith(("beethoven/opus59no1/", "haydn/opus74no1/", "mozart/k80/", "schoenberg/opus19/")):
            assert path in reserved
        if lowered.startswith(("bach/bwv244.", "monteverdi/madrigal.3.", "monteverdi/madrigal.4.")):
            assert path in reserved
    # A Palestrina Agnus reserves the other movements of its mass (same !!!OPR parent work).
    assert "palestrina/Kyrie_12.krn" in reserved
    assert is_reserved("Kyrie_12") and not is_reserved("Kyrie_11")
    assert "palestrina/Credo_10_a.krn" in reserved
    # Real neighbours stay available.
    for near_miss in (
        "bach/bwv26.6.mxl",
        "bach/bwv260.mxl",
        "bach/bwv347.mxl",  # sanity: this one IS reserved
        "beethoven/opus59no2/movement1.mxl",
        "mozart/k156/movement1.mxl",
        "monteverdi/madrigal.5.1.mxl",
        "schumann_clara/polonaise_op1n2.mxl",
        "palestrina/Agnus_02.krn",
    ):
        assert near_miss in core_paths
        assert is_reserved(near_miss) == (near_miss == "bach/bwv347.mxl")
    assert 150 <= len(reserved) <= 200
    assert set(reserved_work_keys()) >= {"bach/bwv66", "monteverdi/madrigal.3", "handel/rinaldo"}


# ---------------------------------------------------------------------------------------------
# The music21 corpus.


def test_list_corpus_works_is_seeded_and_never_reserved(core_paths):
    works = list_corpus_works(seed=3)
    assert works == list_corpus_works(seed=3)
    assert works != list_corpus_works(seed=4)
    assert sorted(works) == sorted(list_corpus_works(seed=4))
    assert len(works) == len(set(works)) > 1000
    assert not any(is_reserved(work) for work in works)
    assert all(work in core_paths for work in works)
    assert all(Path(work).suffix in (".mxl", ".xml", ".musicxml", ".krn", ".mid") for work in works)
    assert not any(work.startswith(("demos/", "theoryExercises/")) for work in works)
    assert "bach/bwv26.6.mxl" in works
    # One entry per work even when it exists in several formats.
    stems = [strip_score_extension(work) for work in works]
    assert len(stems) == len(set(stems))


def test_list_corpus_works_include_and_formats():
    beethoven = list_corpus_works(seed=0, include="beethoven")  # one prefix may be a plain string
    assert beethoven and all(work.startswith("beethoven/") for work in beethoven)
    assert not any(work.startswith(("beethoven/opus18no1/", "beethoven/opus59no1/")) for work in beethoven)
    quartet = list_corpus_works(seed=0, include=["beethoven/opus59no2"])
    assert sorted(quartet) == [f"beethoven/opus59no2/movement{n}.mxl" for n in range(1, 5)]
    # Madrigals exist as .mxl scores and .rntxt analyses: the preferred (first) format wins.
    madrigals = list_corpus_works(seed=0, extensions=(".mxl", ".rntxt"), include=["monteverdi"])
    assert madrigals and all(work.endswith(".mxl") for work in madrigals)
    assert list_corpus_works(seed=0, include=["demos/drum_sample.xml"]) == ["demos/drum_sample.xml"]
    with pytest.raises(DatasetError, match="no music21 corpus works under bach/bwv66.6"):
        list_corpus_works(seed=0, include=["bach/bwv66.6"])  # reserved: nothing left
    with pytest.raises(DatasetError, match="nosuchcomposer"):
        list_corpus_works(seed=0, include=["nosuchcomposer"])


def test_missing_music21_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "music21", None)  # what Python does when a package is absent
    with pytest.raises(MissingDependencyError, match=r"pip install 'polyamp\[synth\]'"):
        list_corpus_works(seed=0)
    with pytest.raises(MissingDependencyError):
        piece_from_corpus("bach/bwv10.7")


def test_piece_from_corpus_chorale(core_paths):
    from music21 import corpus

    piece = piece_from_corpus("bach/bwv10.7")
    assert piece.piece_id == "bach_bwv10.7"
    assert piece.source == "bach/bwv10.7.mxl"
    assert [part.name for part in piece.parts] == ["Soprano", "Alto", "Tenor", "Bass"]
    assert all(part.notes and part.program == 0 and not part.is_drum for part in piece.parts)
    score = corpus.parse("bach/bwv10.7")
    # Ties are music21's to strip: one note per sounded pitch.
    for part, source_part in zip(piece.parts, score.parts, strict=True):
        expected = sum(len(element.pitches) for element in source_part.stripTies().flatten().notes)
        assert len(part.notes) == expected
    # No tempo mark: music21 writes 120 quarter notes per minute.
    assert piece.duration_s == pytest.approx(score.highestTime * 0.5, abs=0.01)
    assert all(0 <= note.start_s < note.end_s for part in piece.parts for note in part.notes)

    with_horn = piece_from_corpus("bach/bwv1.6.mxl")  # this chorale has a horn part as well
    assert with_horn.piece_id == "bach_bwv1.6"
    assert [part.name for part in with_horn.parts] == ["Horn 2", "Soprano", "Alto", "Tenor", "Bass"]


def test_piece_from_corpus_keeps_drums(core_paths):
    piece = piece_from_corpus("demos/drum_sample.xml")
    assert piece.parts and all(part.is_drum for part in piece.parts)


@pytest.mark.parametrize(
    "path", ["bach/bwv66.6", "bach/bwv66.6.mxl", "bach/bwv244.3", "beethoven/opus18no1/movement2.krn", "bwv269"]
)
def test_piece_from_corpus_refuses_reserved_works(core_paths, path):
    with pytest.raises(ConfigError, match="reserved for independent evaluation"):
        piece_from_corpus(path)


def test_piece_from_corpus_unknown_work(core_paths):
    with pytest.raises(DatasetError, match="nosuch/work is not a music21 corpus work"):
        piece_from_corpus("nosuch/work")
    with pytest.raises(DatasetError, match="not a music21 corpus work"):
        piece_from_corpus("../corpus/bach/bwv10.7.mxl")  # only paths inside the corpus


def test_piece_from_music21_long_score_and_empty_score(core_paths):
    from music21 import note, stream, tempo

    from polyamp.synth.sources import piece_from_music21

    # 1100 quarters at music21's 10080 ticks per quarter exceed pretty_midi's 1e7-tick limit.
    part = stream.Part()
    part.append(tempo.MetronomeMark(number=240))
    for index in range(1100):
        part.append(note.Note(60 + index % 12, quarterLength=1))
    piece = piece_from_music21(part, piece_id="long", source="test/long")
    assert len(piece.parts[0].notes) == 1100
    assert piece.duration_s == pytest.approx(275.0, abs=1e-3)
    assert piece.parts[0].notes[-1].start_s == pytest.approx(274.75, abs=1e-3)

    with pytest.raises(DatasetError, match="test/empty has no notes"):
        piece_from_music21(stream.Score(), piece_id="empty", source="test/empty")
    with pytest.raises(ConfigError, match="reserved"):
        piece_from_music21(part, piece_id="x", source="bach/bwv66.6")


# ---------------------------------------------------------------------------------------------
# MIDI files.


def _write_song(path: Path, with_drums: bool = True, tempo: float = 120.0) -> None:
    midi = pretty_midi.PrettyMIDI(initial_tempo=tempo)
    bass = pretty_midi.Instrument(program=33, name="Bass")
    bass.notes += [pretty_midi.Note(80, 40, 0.0, 0.5), pretty_midi.Note(90, 43, 0.5, 1.0)]
    piano = pretty_midi.Instrument(program=0, name="")
    piano.notes += [pretty_midi.Note(70, 60, 0.25, 2.0), pretty_midi.Note(70, 64, 1.0, 1.0)]  # 2nd: no length
    midi.instruments += [bass, piano, pretty_midi.Instrument(program=40, name="Silent")]
    if with_drums:
        drums = pretty_midi.Instrument(program=25, is_drum=True, name="Kit")
        drums.notes += [pretty_midi.Note(100, 36, 0.0, 0.1), pretty_midi.Note(100, 42, 0.5, 0.6)]
        midi.instruments.append(drums)
    path.parent.mkdir(parents=True, exist_ok=True)
    midi.write(str(path))


def test_piece_from_midi_file(tmp_path):
    path = tmp_path / "My Song.mid"
    _write_song(path)
    piece = piece_from_midi_file(path)
    assert piece.piece_id == "My_Song"
    assert piece.source == str(path)
    assert [(part.name, part.program, part.is_drum) for part in piece.parts] == [
        ("Bass", 33, False),
        ("program 0", 0, False),
        ("Kit", 25, True),
    ]
    bass, piano, drums = piece.parts
    assert [(note.pitch, note.velocity) for note in bass.notes] == [(40, 80), (43, 90)]
    assert bass.notes[1].start_s == pytest.approx(0.5, abs=1e-3)
    assert len(piano.notes) == 1  # the zero-length pitched note does not sound
    assert [note.pitch for note in drums.notes] == [36, 42]
    assert piece_from_midi_file(path, piece_id="custom").piece_id == "custom"


def test_piece_from_midi_file_applies_tempo(tmp_path):
    path = tmp_path / "slow.mid"
    _write_song(path, tempo=60.0)
    assert piece_from_midi_file(path).duration_s == pytest.approx(2.0, abs=1e-3)


def test_piece_from_midi_file_errors(tmp_path):
    with pytest.raises(MidiError, match="MIDI file not found"):
        piece_from_midi_file(tmp_path / "missing.mid")
    corrupt = tmp_path / "corrupt.mid"
    corrupt.write_bytes(b"MThd this is not MIDI")
    with pytest.raises(MidiError, match="corrupt.mid"):
        piece_from_midi_file(corrupt)
    empty = tmp_path / "empty.mid"
    midi = pretty_midi.PrettyMIDI()
    midi.instruments.append(pretty_midi.Instrument(program=0))
    midi.write(str(empty))
    with pytest.raises(DatasetError, match="empty.mid has no notes"):
        piece_from_midi_file(empty)


def test_list_midi_files(tmp_path):
    for relative in ("b/song.mid", "a/song.MIDI", "a/intro.midi", "top.mid"):
        _write_song(tmp_path / relative, with_drums=False)
    (tmp_path / "notes.txt").write_text("not midi")
    files = list_midi_files(tmp_path)
    assert [path.relative_to(tmp_path).as_posix() for path in files] == [
        "a/intro.midi",
        "a/song.MIDI",
        "b/song.mid",
        "top.mid",
    ]
    assert midi_piece_ids(files, tmp_path) == ["intro", "a_song", "b_song", "top"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no .mid or .midi files"):
        list_midi_files(tmp_path / "empty")
    with pytest.raises(DatasetError, match="MIDI folder not found"):
        list_midi_files(tmp_path / "nowhere")


def test_piece_ids_are_filesystem_safe():
    assert corpus_piece_id("bach/bwv1.6.mxl") == "bach_bwv1.6"
    assert corpus_piece_id("trecento/PMFC_04-Quanto piu caro.xml") == "trecento_PMFC_04-Quanto_piu_caro"
    assert midi_piece_id("/x/../weird name?.mid") == "weird_name"
    assert safe_piece_id("../..") == "piece"
    assert midi_piece_ids([Path("r/a/x.mid"), Path("r/a/x.midi")], "r") == ["a_x.mid", "a_x.midi"]
