"""MIDI reading and writing: round trips, tempo, instruments, overwrite refusal, bad files."""

from __future__ import annotations

from pathlib import Path

import pytest
from note_seq.protobuf import music_pb2

from polyamp.errors import ConfigError, MidiError, OutputExistsError
from polyamp.notes.midi import read_midi, write_midi


def _sequence() -> music_pb2.NoteSequence:
    sequence = music_pb2.NoteSequence()
    sequence.notes.add(pitch=60, velocity=80, start_time=0.0, end_time=0.5, instrument=0, program=0)
    sequence.notes.add(pitch=64, velocity=100, start_time=0.25, end_time=1.75, instrument=0, program=0)
    sequence.notes.add(pitch=67, velocity=45, start_time=1.003, end_time=2.5, instrument=1, program=40)
    sequence.notes.add(pitch=38, velocity=120, start_time=1.5, end_time=1.6, instrument=2, program=0, is_drum=True)
    sequence.total_time = 2.5
    return sequence


def _note_tuples(sequence: music_pb2.NoteSequence) -> list[tuple]:
    return sorted(
        (note.pitch, note.velocity, note.program, note.is_drum, note.start_time, note.end_time)
        for note in sequence.notes
    )


def _assert_same_notes(actual: music_pb2.NoteSequence, expected: music_pb2.NoteSequence, tol: float = 2e-3) -> None:
    got, want = _note_tuples(actual), _note_tuples(expected)
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        assert a[:4] == b[:4]
        assert a[4] == pytest.approx(b[4], abs=tol)
        assert a[5] == pytest.approx(b[5], abs=tol)


def test_round_trip_keeps_notes_programs_and_drums(tmp_path: Path) -> None:
    path = write_midi(_sequence(), tmp_path / "out.mid")
    assert path == tmp_path / "out.mid"
    back = read_midi(path)
    _assert_same_notes(back, _sequence())
    # notes of different instruments stay in different instrument groups
    groups = {(note.program, note.is_drum): note.instrument for note in back.notes}
    assert len(set(groups.values())) == 3


@pytest.mark.parametrize("qpm", [60.0, 90.0, 173.5])
def test_qpm_sets_tempo_without_moving_notes(tmp_path: Path, qpm: float) -> None:
    sequence = _sequence()
    sequence.tempos.add(time=0.0, qpm=100.0)
    sequence.tempos.add(time=1.0, qpm=50.0)  # replaced by the single requested tempo
    back = read_midi(write_midi(sequence, tmp_path / "tempo.mid", qpm=qpm))
    assert [round(tempo.qpm, 2) for tempo in back.tempos] == [round(qpm, 2)]
    _assert_same_notes(back, _sequence())
    assert len(sequence.tempos) == 2  # the caller's sequence is not modified


def test_same_instrument_number_with_two_programs_keeps_every_note(tmp_path: Path) -> None:
    sequence = music_pb2.NoteSequence()
    sequence.notes.add(pitch=60, velocity=90, start_time=0.0, end_time=1.0, instrument=0, program=0)
    sequence.notes.add(pitch=72, velocity=90, start_time=0.5, end_time=1.0, instrument=0, program=24)
    sequence.notes.add(pitch=48, velocity=90, start_time=0.0, end_time=0.4, instrument=0, program=0, is_drum=True)
    back = read_midi(write_midi(sequence, tmp_path / "clash.mid"))
    _assert_same_notes(back, sequence)


def test_refuses_existing_file_unless_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "song.mid"
    write_midi(_sequence(), path)  # creates parent directories
    before = path.read_bytes()
    shorter = music_pb2.NoteSequence()
    shorter.notes.add(pitch=50, velocity=70, start_time=0.0, end_time=0.3)
    with pytest.raises(OutputExistsError, match="song.mid"):
        write_midi(shorter, path)
    assert path.read_bytes() == before
    write_midi(shorter, path, overwrite=True)
    assert len(read_midi(path).notes) == 1
    assert sorted(p.name for p in path.parent.iterdir()) == ["song.mid"]  # no temporary files left


def test_bad_qpm_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="qpm"):
        write_midi(_sequence(), tmp_path / "x.mid", qpm=0)
    assert not (tmp_path / "x.mid").exists()


def test_empty_sequence_round_trips(tmp_path: Path) -> None:
    back = read_midi(write_midi(music_pb2.NoteSequence(), tmp_path / "empty.mid"))
    assert len(back.notes) == 0


def test_missing_midi_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(MidiError, match="nothere.mid"):
        read_midi(tmp_path / "nothere.mid")


def test_corrupt_midi_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "garbage.mid"
    bad.write_bytes(b"this is not a MIDI file at all" * 10)
    with pytest.raises(MidiError, match="garbage.mid") as info:
        read_midi(bad)
    assert "\n" not in str(info.value)

    truncated = tmp_path / "truncated.mid"
    truncated.write_bytes(write_midi(_sequence(), tmp_path / "good.mid").read_bytes()[:30])
    with pytest.raises(MidiError, match="truncated.mid"):
        read_midi(truncated)


def test_empty_file_and_directory_are_midi_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mid"
    empty.write_bytes(b"")
    with pytest.raises(MidiError, match="empty.mid"):
        read_midi(empty)
    with pytest.raises(MidiError, match="directory"):
        read_midi(tmp_path)
