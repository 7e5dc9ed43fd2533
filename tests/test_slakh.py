"""Slakh2100 layout: writing tracks, reading them back, the ``slakh`` dataset plugin (splits, bad tracks, submixes)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
import yaml

from polyamp.data.slakh import SlakhDataset
from polyamp.data.slakh_layout import (
    GM_PROGRAM_NAMES,
    find_slakh_tracks,
    gm_class_name,
    read_track_metadata,
    track_sequence,
    write_slakh_track,
)
from polyamp.errors import ConfigError, DatasetError, MidiError, OutputExistsError
from polyamp.notes.families import family_of
from polyamp.notes.midi import read_midi
from polyamp.synth.piece import NoteEvent, Part, Piece

SR = 16000


def render_part(part: Part, duration_s: float, seed: int = 0) -> np.ndarray:
    """Unit-gain mono audio of a part: decaying sines for pitched parts, noise bursts for drums."""
    rng = np.random.default_rng(seed)
    out = np.zeros(int(round(duration_s * SR)), np.float64)
    for note in part.notes:
        start, end = int(round(note.start_s * SR)), int(round(note.end_s * SR))
        t = np.arange(end - start) / SR
        level = 0.4 * note.velocity / 127
        if part.is_drum:
            out[start:end] += level * rng.standard_normal(end - start) * np.exp(-t * 40)
        else:
            frequency = 440.0 * 2.0 ** ((note.pitch - 69) / 12)
            out[start:end] += level * np.sin(2 * np.pi * frequency * t) * np.exp(-t * 2)
    return out.astype(np.float32)


def make_piece(seed: int = 0, piece_id: str = "piece") -> Piece:
    """Four parts of different programs incl. a drum part, with note times off any tick grid."""
    rng = np.random.default_rng(seed)

    def notes(pitches: list[int], count: int, length: float) -> tuple[NoteEvent, ...]:
        """``count`` notes, one after the other within 2.2 s (no two notes of a part overlap)."""
        spacing = 2.2 / count
        starts = np.arange(count) * spacing + rng.uniform(0.0, 0.1 * spacing, count)
        lengths = np.minimum(length, 0.8 * spacing) * rng.uniform(0.5, 1.0, count)
        return tuple(
            NoteEvent(int(rng.choice(pitches)), float(start), float(start + duration), int(rng.integers(40, 128)))
            for start, duration in zip(starts, lengths, strict=True)
        )

    return Piece(
        piece_id=piece_id,
        source=f"corpus/{piece_id}.mxl",
        parts=(
            Part("Piano", 0, False, notes([60, 64, 67, 72], 5, 0.6)),
            Part("Bass", 33, False, notes([36, 40, 43], 3, 0.8), gain_db=-3.0),
            Part("Drums", 0, True, notes([36, 38, 42], 6, 0.1)),
            Part("Violin", 40, False, notes([76, 79, 81], 3, 0.5), gain_db=2.0),
        ),
    )


def write_track(track_dir: Path, seed: int = 0, silent_parts: tuple[int, ...] = (), **kw) -> tuple[Path, Piece]:
    piece = make_piece(seed, piece_id=f"piece{seed}")
    stems = [render_part(part, 3.0, seed=index) for index, part in enumerate(piece.parts)]
    for index in silent_parts:
        stems[index] = np.zeros_like(stems[index])
    kw.setdefault("metadata_extra", {"seed": seed})
    return write_slakh_track(track_dir, piece, stems, **kw), piece


def read_pcm(path: Path) -> np.ndarray:
    samples, rate = soundfile.read(path, dtype="int16")
    assert rate == SR and samples.ndim == 1
    return samples.astype(np.int64)


def tree_bytes(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture(scope="module")
def track(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Piece]:
    return write_track(tmp_path_factory.mktemp("slakh") / "train" / "Track00001", seed=1)


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """train (3 tracks), validation (1), test (1) and omitted (1)."""
    root = tmp_path_factory.mktemp("slakh2100")
    layout = {"train": [1, 2, 3], "validation": [4], "test": [5], "omitted": [6]}
    for split, numbers in layout.items():
        for number in numbers:
            write_track(root / split / f"Track{number:05d}", seed=number)
    return root


def copy_root(root: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    return copy


# ------------------------------------------------------------------------------------------------------------
# Writing
# ------------------------------------------------------------------------------------------------------------


def test_written_track_has_the_slakh_layout_and_metadata(track: tuple[Path, Piece]) -> None:
    track_dir, piece = track
    assert (track_dir / "mix.flac").is_file() and (track_dir / "all_src.mid").is_file()
    assert sorted(path.name for path in (track_dir / "stems").iterdir()) == [
        "S00.flac",
        "S01.flac",
        "S02.flac",
        "S03.flac",
    ]
    assert sorted(path.name for path in (track_dir / "MIDI").iterdir()) == ["S00.mid", "S01.mid", "S02.mid", "S03.mid"]
    assert not [path for path in track_dir.parent.iterdir() if path.name.startswith(".")]  # no temp folder left
    info = soundfile.info(track_dir / "mix.flac")
    assert (info.samplerate, info.channels, info.subtype) == (SR, 1, "PCM_16")

    metadata = yaml.safe_load((track_dir / "metadata.yaml").read_text())
    for key in ("UUID", "audio_dir", "midi_dir", "lmd_midi_dir", "normalization_factor", "normalized", "overall_gain"):
        assert key in metadata
    assert metadata["audio_dir"] == "stems" and metadata["midi_dir"] == "MIDI"
    assert metadata["piece_id"] == piece.piece_id and metadata["source"] == piece.source and metadata["seed"] == 1
    assert metadata["target_peak"] == -1.0 and metadata["normalization_factor"] > 0
    stems = metadata["stems"]
    assert list(stems) == ["S00", "S01", "S02", "S03"]
    assert stems["S00"]["inst_class"] == "Piano" and stems["S00"]["midi_program_name"] == "Acoustic Grand Piano"
    assert stems["S01"]["inst_class"] == "Bass" and stems["S01"]["program_num"] == 33
    assert stems["S01"]["family"] == "bass" and stems["S01"]["gain_db"] == -3.0
    assert stems["S02"]["is_drum"] is True and stems["S02"]["inst_class"] == "Drums"
    assert stems["S02"]["family"] == "drums"
    assert stems["S03"]["family"] == "string" and stems["S03"]["midi_program_name"] == "Violin"
    for entry in stems.values():
        assert entry["audio_rendered"] is True and entry["midi_saved"] is True
        for key in ("inst_class", "is_drum", "midi_program_name", "plugin_name", "program_num"):
            assert key in entry


def test_gm_tables() -> None:
    assert len(GM_PROGRAM_NAMES) == 128 and GM_PROGRAM_NAMES[33] == "Electric Bass (finger)"
    assert GM_PROGRAM_NAMES[127] == "Gunshot"
    assert gm_class_name(48) == "Strings (continued)" and gm_class_name(103) == "Sound Effects"
    assert gm_class_name(25, is_drum=True) == "Drums"
    with pytest.raises(ValueError):
        gm_class_name(128)


def test_mix_is_the_peak_normalised_sum_of_the_stems(track: tuple[Path, Piece]) -> None:
    track_dir, piece = track
    mix = read_pcm(track_dir / "mix.flac")
    stems = [read_pcm(track_dir / "stems" / f"S{index:02d}.flac") for index in range(4)]
    assert all(len(stem) == len(mix) for stem in stems)
    np.testing.assert_array_equal(mix, np.sum(stems, axis=0))  # exactly, in 16-bit integers
    peak_dbfs = 20 * np.log10(np.max(np.abs(mix)) / 32768)
    assert abs(peak_dbfs - -1.0) < 0.01

    # Each stem is the rendered part with its gain_db and the normalisation factor applied.
    metadata = yaml.safe_load((track_dir / "metadata.yaml").read_text())
    factor = metadata["normalization_factor"]
    for index, part in enumerate(piece.parts):
        expected = render_part(part, 3.0, seed=index) * 10 ** (part.gain_db / 20) * factor * 32768
        np.testing.assert_allclose(stems[index][: len(expected)], expected, atol=0.51)

    # Read at 16 kHz through the project's decoder, the mix equals the sum of the stems within quantisation.
    from polyamp.audio.decode import load_audio

    decoded_sum = sum(load_audio(track_dir / "stems" / f"S{index:02d}.flac") for index in range(4))
    np.testing.assert_allclose(load_audio(track_dir / "mix.flac"), decoded_sum, atol=1e-6)


def test_stem_midi_and_all_src_hold_each_part(track: tuple[Path, Piece]) -> None:
    track_dir, piece = track
    everything = read_midi(track_dir / "all_src.mid")
    assert len(everything.notes) == piece.num_notes
    for index, part in enumerate(piece.parts):
        sequence = read_midi(track_dir / "MIDI" / f"S{index:02d}.mid")
        assert len(sequence.notes) == len(part.notes)
        assert all(note.is_drum == part.is_drum for note in sequence.notes)
        if not part.is_drum:
            assert all(note.program == part.program for note in sequence.notes)


def test_notes_read_back_with_programs_families_and_times(track: tuple[Path, Piece]) -> None:
    track_dir, piece = track
    sequence = track_sequence(read_track_metadata(track_dir))
    assert sequence.id == "train/Track00001"
    assert len(sequence.notes) == piece.num_notes
    assert sequence.total_time == pytest.approx(piece.duration_s, abs=1e-3)
    for index, part in enumerate(piece.parts):
        notes = sorted((note for note in sequence.notes if note.instrument == index), key=lambda n: n.start_time)
        expected = sorted(part.notes, key=lambda note: note.start_s)
        assert len(notes) == len(expected)
        for note, event in zip(notes, expected, strict=True):
            assert note.pitch == event.pitch and note.velocity == event.velocity
            assert abs(note.start_time - event.start_s) < 1e-3 and abs(note.end_time - event.end_s) < 1e-3
            assert note.program == part.program and note.is_drum == part.is_drum
            assert family_of(note.program, note.is_drum) == family_of(part.program, part.is_drum)
    assert {family_of(note.program, note.is_drum) for note in sequence.notes} == {4, 0, 8, None}
    only = track_sequence(read_track_metadata(track_dir), ["S01"])
    assert {note.instrument for note in only.notes} == {1} and len(only.notes) == len(piece.parts[1].notes)
    with pytest.raises(ValueError, match="S07"):
        track_sequence(read_track_metadata(track_dir), ["S07"])


def test_stem_midi_is_parsed_once_until_the_file_changes(tmp_path: Path) -> None:
    from polyamp.data.slakh_layout import read_stem_midi

    track_dir = tmp_path / "Track00001"
    shutil.copytree(write_track(tmp_path / "source" / "Track00001", seed=3)[0], track_dir)
    stem = read_track_metadata(track_dir).rendered_stems[0]
    path = Path(stem.midi_path)
    first = read_stem_midi(path)
    assert read_stem_midi(path) is first  # the second submix of the track reuses the parse
    other = read_track_metadata(tmp_path / "source" / "Track00001").rendered_stems[1]
    replacement = Path(other.midi_path).read_bytes()
    path.write_bytes(replacement)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000_000))
    changed = read_stem_midi(path)
    assert changed is not first
    assert [note.pitch for note in changed.notes] == [note.pitch for note in read_midi(path).notes]
    path.write_bytes(b"not midi")
    with pytest.raises(MidiError, match=str(path.name)):
        read_stem_midi(path)
    path.unlink()
    with pytest.raises(MidiError, match="not found"):
        read_stem_midi(path)


def test_overlapping_notes_of_one_pitch_are_resolved_in_the_midi(tmp_path: Path) -> None:
    notes = (
        NoteEvent(60, 0.0, 1.0, 80),
        NoteEvent(60, 0.5, 1.5, 90),  # restrikes the sounding C: the first ends at 0.5 s
        NoteEvent(64, 0.2, 0.4, 70),
        NoteEvent(64, 0.2, 0.9, 70),  # same onset, same pitch: one note to the later end
    )
    piece = Piece("overlaps", "test", (Part("Piano", 0, False, notes),))
    track_dir = write_slakh_track(tmp_path / "Track00001", piece, [render_part(piece.parts[0], 2.0)])
    sequence = track_sequence(read_track_metadata(track_dir))
    got = sorted((note.pitch, round(note.start_time, 3), round(note.end_time, 3)) for note in sequence.notes)
    assert got == [(60, 0.0, 0.5), (60, 0.5, 1.5), (64, 0.2, 0.9)]


def test_silent_stems_are_not_rendered_and_their_notes_are_skipped(tmp_path: Path) -> None:
    track_dir, piece = write_track(tmp_path / "Track00002", seed=2, silent_parts=(3,))
    assert not (track_dir / "stems" / "S03.flac").exists()
    assert (track_dir / "MIDI" / "S03.mid").is_file()
    track = read_track_metadata(track_dir)
    assert track.split is None
    assert [stem.audio_rendered for stem in track.stems] == [True, True, True, False]
    assert [stem.stem_id for stem in track.rendered_stems] == ["S00", "S01", "S02"]
    sequence = track_sequence(track)
    assert {note.instrument for note in sequence.notes} == {0, 1, 2}
    assert len(sequence.notes) == piece.num_notes - len(piece.parts[3].notes)
    mix = read_pcm(track_dir / "mix.flac")
    np.testing.assert_array_equal(mix, sum(read_pcm(track_dir / "stems" / f"S0{i}.flac") for i in range(3)))


def test_rewrite_is_byte_identical(tmp_path: Path) -> None:
    first, _ = write_track(tmp_path / "a" / "Track00001", seed=3)
    second, _ = write_track(tmp_path / "b" / "Track00001", seed=3)
    assert tree_bytes(first) == tree_bytes(second)
    before = tree_bytes(first)
    write_track(first, seed=3, overwrite=True)
    assert tree_bytes(first) == before


def test_existing_track_is_refused_unless_overwrite(tmp_path: Path) -> None:
    track_dir, _ = write_track(tmp_path / "Track00001", seed=4)
    before = tree_bytes(track_dir)
    with pytest.raises(OutputExistsError, match="Track00001"):
        write_track(track_dir, seed=5)
    assert tree_bytes(track_dir) == before
    write_track(track_dir, seed=5, overwrite=True)
    assert yaml.safe_load((track_dir / "metadata.yaml").read_text())["seed"] == 5
    assert sorted(path.name for path in tmp_path.iterdir()) == ["Track00001"]


def test_a_failed_write_leaves_no_partial_track(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The disk fills up after two FLAC files (soundfile is a third-party library, not ours).
    real_write = soundfile.write
    calls = []

    def failing_write(*args, **kwargs):
        calls.append(args[0])
        if len(calls) > 2:
            raise OSError(28, "No space left on device")
        return real_write(*args, **kwargs)

    monkeypatch.setattr(soundfile, "write", failing_write)
    with pytest.raises(OSError, match="No space"):
        write_track(tmp_path / "Track00001", seed=6)
    assert len(calls) == 3
    assert list(tmp_path.iterdir()) == []

    # A failed overwrite keeps the old track intact.
    monkeypatch.setattr(soundfile, "write", real_write)
    track_dir, _ = write_track(tmp_path / "Track00001", seed=6)
    before = tree_bytes(track_dir)
    calls.clear()
    monkeypatch.setattr(soundfile, "write", failing_write)
    with pytest.raises(OSError):
        write_track(track_dir, seed=7, overwrite=True)
    assert tree_bytes(track_dir) == before
    assert [path.name for path in tmp_path.iterdir()] == ["Track00001"]


def test_writer_rejects_bad_arguments(tmp_path: Path) -> None:
    piece = make_piece(8)
    stems = [render_part(part, 3.0) for part in piece.parts]
    with pytest.raises(ValueError, match="4 parts but 3 stems"):
        write_slakh_track(tmp_path / "Track00001", piece, stems[:3])
    with pytest.raises(ValueError, match="stems"):
        write_slakh_track(tmp_path / "Track00001", piece, stems, metadata_extra={"stems": {}})
    with pytest.raises(ValueError, match="plain YAML"):
        write_slakh_track(tmp_path / "Track00001", piece, stems, metadata_extra={"thing": object()})
    from polyamp.errors import AudioError

    with pytest.raises(AudioError, match="silent"):
        write_slakh_track(tmp_path / "Track00001", piece, [np.zeros(SR, np.float32)] * 4)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------------------------
# Reading: bad input
# ------------------------------------------------------------------------------------------------------------


def one_line(error: pytest.ExceptionInfo) -> str:
    """The error's message, checked to be one line (gin's "In call to configurable" suffix aside, which
    the CLI drops)."""
    message = str(error.value).split("\n  In call to configurable")[0]
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    "text, reason",
    [
        (None, "has no metadata.yaml"),
        ("stems: [unclosed\n", "not valid YAML"),
        ("- just\n- a list\n", "expected a YAML mapping"),
        ("UUID: abc\n", "no 'stems' mapping"),
        ("stems:\n  S00:\n    is_drum: false\n    audio_rendered: true\n", "S00 has no program_num"),
        ("stems:\n  S00: {program_num: 300, is_drum: false, audio_rendered: true}\n", "must be 0-127"),
        ("stems:\n  S00: {program_num: 0, is_drum: maybe, audio_rendered: true}\n", "true or false"),
    ],
)
def test_broken_metadata_is_one_line_naming_the_file(
    track: tuple[Path, Piece], tmp_path: Path, text: str | None, reason: str
) -> None:
    track_dir = tmp_path / "Track00009"
    shutil.copytree(track[0], track_dir)
    metadata = track_dir / "metadata.yaml"
    if text is None:
        metadata.unlink()
    else:
        metadata.write_text(text)
    with pytest.raises(DatasetError) as error:
        read_track_metadata(track_dir)
    message = one_line(error)
    assert str(metadata if text is not None else track_dir) in message and reason in message


def test_missing_files_of_a_rendered_stem_are_one_line_naming_the_file(
    track: tuple[Path, Piece], tmp_path: Path
) -> None:
    track_dir = tmp_path / "Track00009"
    shutil.copytree(track[0], track_dir)
    (track_dir / "stems" / "S01.flac").unlink()
    with pytest.raises(DatasetError) as error:
        read_track_metadata(track_dir)
    assert str(track_dir / "stems" / "S01.flac") in one_line(error)

    shutil.copy(track[0] / "stems" / "S01.flac", track_dir / "stems" / "S01.flac")
    (track_dir / "MIDI" / "S02.mid").unlink()
    with pytest.raises(DatasetError) as error:
        read_track_metadata(track_dir)
    assert str(track_dir / "MIDI" / "S02.mid") in one_line(error)

    shutil.copy(track[0] / "MIDI" / "S02.mid", track_dir / "MIDI" / "S02.mid")
    (track_dir / "mix.flac").unlink()
    with pytest.raises(DatasetError) as error:
        read_track_metadata(track_dir)
    assert str(track_dir / "mix.flac") in one_line(error)


def test_unreadable_stem_midi_is_a_midi_error(track: tuple[Path, Piece], tmp_path: Path) -> None:
    track_dir = tmp_path / "Track00009"
    shutil.copytree(track[0], track_dir)
    (track_dir / "MIDI" / "S01.mid").write_bytes(b"this is not MIDI at all")
    metadata = read_track_metadata(track_dir)  # MIDI is parsed only when notes are asked for
    with pytest.raises(MidiError) as error:
        track_sequence(metadata)
    assert str(track_dir / "MIDI" / "S01.mid") in one_line(error)


def test_released_slakh_metadata_is_read(track: tuple[Path, Piece], tmp_path: Path) -> None:
    """Slakh's own keys: drums as program_num 128, stems not rendered without audio, a wav mix (BabySlakh)."""
    track_dir = tmp_path / "Track01500"
    shutil.copytree(track[0], track_dir)
    (track_dir / "stems" / "S03.flac").unlink()
    samples, rate = soundfile.read(track_dir / "mix.flac", dtype="int16")
    (track_dir / "mix.flac").unlink()
    soundfile.write(track_dir / "mix.wav", samples, rate, "PCM_16")
    entry = {"inst_class": "Guitar", "integrated_loudness": -12.8, "midi_saved": True, "plugin_name": "x.nkm"}
    metadata = {
        "UUID": "1a81ae092884234f3264e2f45927f00a",
        "audio_dir": "Volumes/data/elsewhere/Track00001/stems",
        "midi_dir": "MIDI",
        "normalization_factor": -13.0,
        "normalized": True,
        "overall_gain": 0.18,
        "stems": {
            "S00": entry | {"program_num": 30, "is_drum": False, "audio_rendered": True, "inst_class": "Guitar"},
            "S01": entry | {"program_num": 33, "is_drum": False, "audio_rendered": True, "inst_class": "Bass"},
            "S02": entry | {"program_num": 128, "is_drum": True, "audio_rendered": True, "inst_class": "Drums"},
            "S03": entry | {"program_num": 52, "is_drum": False, "audio_rendered": False},
        },
        "target_peak": -1.0,
    }
    (track_dir / "metadata.yaml").write_text(yaml.safe_dump(metadata))
    track = read_track_metadata(track_dir)
    assert track.mix_path.name == "mix.wav"
    assert [(stem.program, stem.is_drum) for stem in track.stems] == [(30, False), (33, False), (0, True), (52, False)]
    assert track.stems[3].audio_path is None and not track.stems[3].audio_rendered
    sequence = track_sequence(track)
    assert {(note.instrument, note.program, note.is_drum) for note in sequence.notes} == {
        (0, 30, False),
        (1, 33, False),
        (2, 0, True),
    }


# ------------------------------------------------------------------------------------------------------------
# Finding tracks: splits, bad tracks
# ------------------------------------------------------------------------------------------------------------


def ids(tracks: list) -> list[str]:
    return [track.example_id for track in tracks]


def test_split_handling(dataset_root: Path) -> None:
    assert ids(find_slakh_tracks(dataset_root)) == [
        "train/Track00001",
        "train/Track00002",
        "train/Track00003",
        "validation/Track00004",
        "test/Track00005",
    ]
    assert ids(find_slakh_tracks(dataset_root, "train")) == ["train/Track00001", "train/Track00002", "train/Track00003"]
    assert ids(find_slakh_tracks(dataset_root, "validation")) == ["validation/Track00004"]
    assert ids(find_slakh_tracks(dataset_root, "valid")) == ["validation/Track00004"]
    assert ids(find_slakh_tracks(dataset_root, "omitted")) == ["omitted/Track00006"]
    # A split folder or a track folder is read whole, whatever the split asked for.
    assert ids(find_slakh_tracks(dataset_root / "test", "train")) == ["test/Track00005"]
    assert ids(find_slakh_tracks(dataset_root / "omitted")) == ["omitted/Track00006"]
    assert ids(find_slakh_tracks(dataset_root / "train" / "Track00002", "test")) == ["train/Track00002"]
    with pytest.raises(DatasetError, match="unknown Slakh split 'dev-set'"):
        find_slakh_tracks(dataset_root, "dev-set")
    with pytest.raises(DatasetError, match="not found"):
        find_slakh_tracks(dataset_root / "nowhere")


def test_missing_split_and_empty_folders(dataset_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(dataset_root / "train", root / "train")
    with pytest.raises(DatasetError) as error:
        find_slakh_tracks(root, "test")
    assert "no 'test' split folder" in one_line(error) and str(root) in str(error.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no Slakh tracks"):
        find_slakh_tracks(tmp_path / "empty")
    # A flat folder of tracks (BabySlakh) has no split.
    flat = tmp_path / "flat"
    shutil.copytree(dataset_root / "train" / "Track00001", flat / "Track00001")
    assert ids(find_slakh_tracks(flat)) == ["Track00001"]


def test_a_bad_track_among_good_ones_is_skipped_and_counted(
    dataset_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = copy_root(dataset_root, tmp_path)
    (root / "train" / "Track00002" / "metadata.yaml").write_text("stems: [\n")
    (root / "train" / "Track00003" / "stems" / "S00.flac").unlink()
    skipped: list[str] = []
    with caplog.at_level("WARNING"):
        tracks = find_slakh_tracks(root, "train", skipped=skipped)
    assert ids(tracks) == ["train/Track00001"]
    assert len(skipped) == 2
    assert str(root / "train" / "Track00002" / "metadata.yaml") in skipped[0]
    assert str(root / "train" / "Track00003" / "stems" / "S00.flac") in skipped[1]
    warnings = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    assert len(warnings) == 2 and all("\n" not in message for message in warnings)

    dataset = SlakhDataset(str(root), split="train")
    assert len(dataset.tracks) == 1 and len(dataset.skipped) == 2

    (root / "train" / "Track00001" / "metadata.yaml").unlink()
    with pytest.raises(DatasetError) as error:
        find_slakh_tracks(root, "train")
    assert "all 3 were skipped" in one_line(error) and "Track00001 has no metadata.yaml" in str(error.value)
    with pytest.raises(DatasetError):
        SlakhDataset(str(root), split="train")
    # A single bad track folder: its own message.
    with pytest.raises(DatasetError) as error:
        SlakhDataset(str(root / "train" / "Track00002"))
    assert one_line(error).startswith(f"cannot read {root / 'train' / 'Track00002' / 'metadata.yaml'}")


def test_drums_only_track_without_drum_audio_is_unusable(tmp_path: Path) -> None:
    piece = make_piece(9)
    drums = piece.replace_parts((piece.parts[2],))
    track_dir = write_slakh_track(tmp_path / "Track00001", drums, [render_part(drums.parts[0], 3.0)])
    assert len(SlakhDataset(str(track_dir)).tracks) == 1
    with pytest.raises(DatasetError) as error:
        SlakhDataset(str(track_dir), include_drums_audio=False)
    assert "no non-drum stem was rendered" in one_line(error)


# ------------------------------------------------------------------------------------------------------------
# The dataset plugin
# ------------------------------------------------------------------------------------------------------------


def test_plugin_is_registered_and_checks_its_arguments(dataset_root: Path) -> None:
    from polyamp.registry import DATASETS

    assert DATASETS.get("slakh") is SlakhDataset
    with pytest.raises(ConfigError, match="submix_probability"):
        SlakhDataset(str(dataset_root), submix_probability=1.5)
    with pytest.raises(ConfigError, match="min_submix_stems"):
        SlakhDataset(str(dataset_root), min_submix_stems=0)
    with pytest.raises(ConfigError, match="max_submix_stems"):
        SlakhDataset(str(dataset_root), min_submix_stems=3, max_submix_stems=2)


def test_examples_are_full_mixes_with_all_notes(dataset_root: Path) -> None:
    from polyamp.audio.decode import load_audio

    dataset = SlakhDataset(str(dataset_root), split="train", submix_probability=1.0, seed=0)
    examples = list(dataset.examples())
    assert [example.example_id for example in examples] == [f"train/Track0000{n}" for n in (1, 2, 3)]
    for example, track in zip(examples, dataset.tracks, strict=True):
        assert example.samples.dtype == np.float32
        np.testing.assert_array_equal(example.samples, load_audio(track.mix_path))  # never a submix
        assert len(example.sequence.notes) == make_piece(int(track.track_id[-1])).num_notes
        assert {note.instrument for note in example.sequence.notes} == {0, 1, 2, 3}
        assert any(note.is_drum for note in example.sequence.notes)


def test_unreadable_midi_is_skipped_and_counted_when_reading(dataset_root: Path, tmp_path: Path) -> None:
    root = copy_root(dataset_root, tmp_path)
    (root / "train" / "Track00002" / "MIDI" / "S00.mid").write_bytes(b"MThd garbage")
    dataset = SlakhDataset(str(root), split="train")
    assert len(dataset.tracks) == 3 and dataset.skipped == []
    assert [example.example_id for example in dataset.examples()] == ["train/Track00001", "train/Track00003"]
    assert len(dataset.skipped) == 1 and "S00.mid" in dataset.skipped[0]
    assert len(list(dataset.examples())) == 2 and len(dataset.skipped) == 1  # counted once

    fresh = SlakhDataset(str(root), split="train")
    got = [element["id"].numpy().decode() for element in fresh.tf_dataset(shuffle_files=False)]
    assert got == ["train/Track00001", "train/Track00003"]
    assert len(fresh.skipped) == 1


def test_tf_dataset_yields_the_plugin_dicts(dataset_root: Path) -> None:
    import tensorflow as tf
    from note_seq.protobuf import music_pb2

    dataset = SlakhDataset(str(dataset_root), split="train")
    tf_dataset = dataset.tf_dataset(shuffle_files=True, seed=3)
    spec = tf_dataset.element_spec
    assert spec["id"] == tf.TensorSpec([], tf.string) and spec["sequence"] == tf.TensorSpec([], tf.string)
    assert spec["samples"] == tf.TensorSpec([None], tf.float32)
    elements = list(tf_dataset)
    assert sorted(element["id"].numpy().decode() for element in elements) == [f"train/Track0000{n}" for n in (1, 2, 3)]
    for element in elements:
        sequence = music_pb2.NoteSequence.FromString(element["sequence"].numpy())
        assert sequence.id == element["id"].numpy().decode() and sequence.notes
        assert element["samples"].shape[0] == 3 * SR


def test_submix_examples_hold_only_the_chosen_stems(dataset_root: Path) -> None:
    from note_seq.protobuf import music_pb2

    from polyamp.audio.decode import load_audio

    dataset = SlakhDataset(str(dataset_root), split="train", submix_probability=1.0, min_submix_stems=2, seed=7)
    tracks = {track.example_id: track for track in dataset.tracks}
    chosen_sets = set()
    tf_dataset = dataset.tf_dataset(shuffle_files=False).repeat(3)
    for element in tf_dataset:
        example_id = element["id"].numpy().decode()
        base, stem_part = example_id.rstrip("]").split("[")
        stem_ids = stem_part.split("+")
        assert 2 <= len(stem_ids) <= 4
        chosen_sets.add(tuple(stem_ids))
        track = tracks[base]
        sequence = music_pb2.NoteSequence.FromString(element["sequence"].numpy())
        assert {note.instrument for note in sequence.notes} == {int(stem_id[1:]) for stem_id in stem_ids}
        piece = make_piece(int(track.track_id[-1]))
        assert len(sequence.notes) == sum(len(piece.parts[int(stem_id[1:])].notes) for stem_id in stem_ids)
        for note in sequence.notes:
            assert note.is_drum == piece.parts[note.instrument].is_drum
        expected = sum(load_audio(track.track_dir / "stems" / f"{stem_id}.flac") for stem_id in stem_ids)
        np.testing.assert_allclose(element["samples"].numpy(), expected, atol=1e-6)
    assert len(chosen_sets) > 3  # different draws per track and per pass
    assert any(len(stems) < 4 for stems in chosen_sets)

    # The same seed gives the same draws.
    again = SlakhDataset(str(dataset_root), split="train", submix_probability=1.0, min_submix_stems=2, seed=7)
    first = [element["id"].numpy() for element in dataset.tf_dataset(shuffle_files=False)]
    assert first == [element["id"].numpy() for element in again.tf_dataset(shuffle_files=False)]

    # max_submix_stems caps the subset size.
    capped = SlakhDataset(
        str(dataset_root), split="train", submix_probability=1.0, min_submix_stems=2, max_submix_stems=2, seed=7
    )
    for element in capped.tf_dataset(shuffle_files=False).repeat(2):
        assert len(element["id"].numpy().decode().rstrip("]").split("[")[1].split("+")) == 2


def test_without_drum_audio_the_drum_stems_and_notes_are_left_out(dataset_root: Path) -> None:
    from polyamp.audio.decode import load_audio

    dataset = SlakhDataset(str(dataset_root / "validation"), include_drums_audio=False)
    (example,) = list(dataset.examples())
    track = dataset.tracks[0]
    expected = sum(load_audio(track.track_dir / "stems" / f"S0{index}.flac") for index in (0, 1, 3))
    np.testing.assert_allclose(example.samples, expected, atol=1e-6)
    assert {note.instrument for note in example.sequence.notes} == {0, 1, 3}
    assert not any(note.is_drum for note in example.sequence.notes)

    with_drums = SlakhDataset(str(dataset_root / "validation"), submix_probability=1.0, seed=1)
    drawn = {element["id"].numpy().decode() for element in with_drums.tf_dataset(False).repeat(8)}
    assert any("S02" in example_id for example_id in drawn)  # drum audio can be part of a submix


def test_gin_configures_the_plugin(dataset_root: Path) -> None:
    import gin

    with gin.unlock_config():
        gin.parse_config("SlakhDataset.submix_probability = 0.25\nSlakhDataset.include_drums_audio = False")
    try:
        dataset = SlakhDataset(str(dataset_root), split="test")
        assert dataset.submix_probability == 0.25 and not dataset.include_drums_audio
    finally:
        gin.clear_config()


def test_written_tree_is_readable_by_a_track_path_string(track: tuple[Path, Piece]) -> None:
    assert read_track_metadata(os.fspath(track[0])).track_id == "Track00001"


def test_audio_cache_gives_the_same_examples_and_decodes_each_stem_once(dataset_root: Path) -> None:
    plain = SlakhDataset(str(dataset_root), split="train", submix_probability=1.0, min_submix_stems=2, seed=3)
    cached = SlakhDataset(
        str(dataset_root), split="train", submix_probability=1.0, min_submix_stems=2, seed=3, audio_cache_mb=64
    )
    expected = [(e["id"].numpy(), e["samples"].numpy()) for e in plain.tf_dataset(shuffle_files=False).repeat(4)]
    got = [(e["id"].numpy(), e["samples"].numpy()) for e in cached.tf_dataset(shuffle_files=False).repeat(4)]
    assert [example_id for example_id, _ in got] == [example_id for example_id, _ in expected]
    for (_, samples), (_, reference) in zip(got, expected, strict=True):
        np.testing.assert_array_equal(samples, reference)
    stems = sum(len(track.rendered_stems) for track in cached.tracks)
    assert cached.audio_cache.misses <= stems < cached.audio_cache.misses + cached.audio_cache.hits
    assert plain.audio_cache.cached_bytes == 0
    with pytest.raises(ConfigError, match="audio_cache_mb"):
        SlakhDataset(str(dataset_root), audio_cache_mb=-1)


def test_audio_cache_drops_the_least_recently_used_and_hands_out_read_only_arrays() -> None:
    from polyamp.data.audio_cache import AudioCache

    loads: list[str] = []

    def loader(name: str, size: int):
        def load() -> np.ndarray:
            loads.append(name)
            return np.full(size, len(loads), np.float32)

        return load

    cache = AudioCache(max_bytes=3 * 400)  # room for three 100-sample float32 arrays
    for name in "abc":
        cache.get(name, loader(name, 100))
    first_a = cache.get("a", loader("a", 100))  # a hit: now b is the least recently used
    cache.get("d", loader("d", 100))  # drops b
    assert loads == ["a", "b", "c", "d"] and cache.cached_bytes == 1200
    cache.get("b", loader("b", 100))  # drops c (a was used after c)
    assert loads[-1] == "b" and cache.hits == 1 and cache.misses == 5
    assert cache.get("a", loader("a", 100)) is first_a and cache.hits == 2
    cache.get("c", loader("c", 100))
    assert loads == ["a", "b", "c", "d", "b", "c"]
    with pytest.raises(ValueError):
        first_a[0] = 5.0
    big = cache.get("big", loader("big", 1000))  # larger than the whole cache: returned, never kept
    assert big.shape == (1000,) and cache.cached_bytes <= 1200
    assert AudioCache(0).get("x", loader("x", 10)).shape == (10,)
