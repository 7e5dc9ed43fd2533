"""Dataset preparation: folder discovery, MAESTRO indexes, chunking, shards, overwrite, bad inputs."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
from note_seq.protobuf import music_pb2

from polyamp.data.folders import find_audio_midi_pairs, is_maestro_folder, read_maestro_index
from polyamp.data.prepare import PrepareReport, choose_chunk_bounds, extract_chunk, prepare_dataset
from polyamp.data.synthetic import write_synthetic_folder
from polyamp.data.tfrecord import check_tfrecords, iter_examples
from polyamp.errors import DatasetError, OutputExistsError
from polyamp.notes.midi import read_midi, write_midi

SR = 16000
PIECE_S = 12.0
# One in-process worker keeps these small pipelines fast; test_prepare_runs_on_worker_processes
# covers the default multi-process DirectRunner.
FAST_BEAM = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]


def prepare(*args, **kwargs) -> dict:
    """prepare_dataset on the fast in-process runner; returns the shards written per split."""
    report = prepare_report(*args, **kwargs)
    return report.written


def prepare_report(*args, **kwargs) -> PrepareReport:
    kwargs.setdefault("pipeline_args", FAST_BEAM)
    return prepare_dataset(*args, **kwargs)


@pytest.fixture(scope="module")
def piece_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pieces")
    write_synthetic_folder(folder, num_examples=3, duration_s=PIECE_S, seed=21)
    return folder


@pytest.fixture(scope="module")
def prepared(piece_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    output = tmp_path_factory.mktemp("prepared")
    written = prepare(piece_folder, output, min_chunk_s=2.0, max_chunk_s=5.0)
    return output, written


def _audio(wav: bytes) -> np.ndarray:
    samples, rate = soundfile.read(io.BytesIO(wav), dtype="float32")
    assert rate == SR and samples.ndim == 1
    return samples


def _chunk_start(example_id: str) -> float:
    return float(example_id.rsplit("_", 1)[1].split("-")[0])


def test_prepare_folder_writes_train_shards(prepared: tuple[Path, dict]) -> None:
    output, written = prepared
    assert list(written) == ["train"]
    assert written["train"] == [output / "train.tfrecord-00000-of-00001"]
    assert sorted(p.name for p in output.iterdir()) == ["train.tfrecord-00000-of-00001"]
    check_tfrecords([str(p) for p in written["train"]])


def test_chunks_match_their_audio_and_the_original_notes(prepared: tuple[Path, dict], piece_folder: Path) -> None:
    output, written = prepared
    records = list(iter_examples([str(p) for p in written["train"]]))
    by_piece: dict[str, list] = {}
    for record in records:
        by_piece.setdefault(record["id"].rsplit("_", 1)[0], []).append(record)
    assert len(by_piece) == 3

    for piece, chunks in by_piece.items():
        original = read_midi(piece_folder / f"{piece}.mid")
        original_audio, _ = soundfile.read(piece_folder / f"{piece}.wav", dtype="float32")
        chunks.sort(key=lambda record: _chunk_start(record["id"]))
        assert len(chunks) >= 3  # 12 s in chunks of at most 5 s
        total_samples = 0
        for record in chunks:
            audio = _audio(record["audio"])
            duration = audio.size / SR
            sequence = record["sequence"]
            assert 2.0 - 1e-6 <= duration <= 5.0 + 1e-6 or record is chunks[-1]
            assert sequence.total_time == pytest.approx(duration, abs=1 / SR)
            assert max(note.end_time for note in sequence.notes) <= duration + 1e-6
            assert min(note.start_time for note in sequence.notes) >= 0.0
            start = sequence.subsequence_info.start_time_offset
            assert start * SR == pytest.approx(total_samples, abs=1e-6)  # chunks tile the piece
            assert _chunk_start(record["id"]) == pytest.approx(start, abs=1e-3)
            np.testing.assert_allclose(audio, original_audio[total_samples : total_samples + audio.size], atol=2e-4)
            total_samples += audio.size

            # the chunk's notes are the original notes sounding in [start, start + duration), clipped
            expected = sorted(
                (
                    n.pitch,
                    n.velocity,
                    round(max(n.start_time - start, 0.0), 4),
                    round(min(n.end_time - start, duration), 4),
                )
                for n in original.notes
                if n.start_time < start + duration and n.end_time > start
            )
            got = sorted((n.pitch, n.velocity, round(n.start_time, 4), round(n.end_time, 4)) for n in sequence.notes)
            assert got == expected
            velocities = [n.velocity for n in original.notes]
            assert (record["velocity_range"].min, record["velocity_range"].max) == (
                min(velocities),
                max(velocities),
            )
        assert total_samples == original_audio.size == int(PIECE_S * SR)  # total duration preserved


def _make_maestro(root: Path, source: Path) -> list[dict]:
    """A MAESTRO-like tree: 2018/<name>.wav + .midi, one piece per split."""
    rows = []
    for number, (wav, split) in enumerate(
        zip(sorted(source.glob("*.wav")), ("train", "validation", "test"), strict=False)
    ):
        (root / "2018").mkdir(parents=True, exist_ok=True)
        shutil.copy(wav, root / "2018" / wav.name)
        shutil.copy(wav.with_suffix(".mid"), root / "2018" / f"{wav.stem}.midi")
        rows.append(
            {
                "canonical_composer": f"Composer {number}",
                "canonical_title": f"Piece {number}",
                "split": split,
                "year": 2018,
                "midi_filename": f"2018/{wav.stem}.midi",
                "audio_filename": f"2018/{wav.name}",
                "duration": PIECE_S,
            }
        )
    return rows


def _write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _write_column_json(path: Path, rows: list[dict]) -> None:
    columns = {key: {str(i): row[key] for i, row in enumerate(rows)} for key in rows[0]}
    path.write_text(json.dumps(columns))


@pytest.mark.parametrize("index_format", ["csv", "json", "rows-json"])
def test_read_maestro_index(tmp_path: Path, piece_folder: Path, index_format: str) -> None:
    rows = _make_maestro(tmp_path, piece_folder)
    if index_format == "csv":
        _write_csv(tmp_path / "maestro-v2.0.0.csv", rows)
    elif index_format == "json":
        _write_column_json(tmp_path / "maestro-v3.0.0.json", rows)
    else:
        (tmp_path / "maestro-v1.0.0.json").write_text(json.dumps(rows))
    assert is_maestro_folder(tmp_path)
    pairs = read_maestro_index(tmp_path)
    assert [pair.split for pair in pairs] == ["train", "validation", "test"]
    assert [pair.audio_path for pair in pairs] == [tmp_path / row["audio_filename"] for row in rows]
    assert [pair.midi_path for pair in pairs] == [tmp_path / row["midi_filename"] for row in rows]
    assert pairs[0].example_id == rows[0]["audio_filename"][: -len(".wav")]


def test_prepare_maestro_writes_each_split(tmp_path: Path, piece_folder: Path) -> None:
    root = tmp_path / "maestro"
    rows = _make_maestro(root, piece_folder)
    _write_csv(root / "maestro-v3.0.0.csv", rows)
    _write_column_json(root / "maestro-v3.0.0.json", rows)
    output = tmp_path / "out"
    written = prepare(root, output, min_chunk_s=2.0, max_chunk_s=5.0)
    assert {split: [p.name for p in paths] for split, paths in written.items()} == {
        "train": ["train.tfrecord-00000-of-00001"],
        "validation": ["validation.tfrecord-00000-of-00001"],
        "test": ["test.tfrecord-00000-of-00001"],
    }
    assert len(list(iter_examples([str(p) for p in written["train"]]))) >= 3
    for split, row in zip(("validation", "test"), rows[1:], strict=True):
        (record,) = iter_examples([str(p) for p in written[split]])  # whole pieces, not chunks
        assert record["id"] == row["audio_filename"][: -len(".wav")]
        assert _audio(record["audio"]).size == int(PIECE_S * SR)
        original = read_midi(root / row["midi_filename"])
        assert len(record["sequence"].notes) == len(original.notes)

    only_test = prepare(root, tmp_path / "only_test", splits=("test",), kind="maestro")
    assert list(only_test) == ["test"]
    assert [p.name for p in (tmp_path / "only_test").iterdir()] == ["test.tfrecord-00000-of-00001"]


def test_maestro_errors(tmp_path: Path, piece_folder: Path) -> None:
    with pytest.raises(DatasetError, match="no MAESTRO index"):
        read_maestro_index(tmp_path)
    assert not is_maestro_folder(tmp_path)
    rows = _make_maestro(tmp_path, piece_folder)
    rows[1]["audio_filename"] = "2018/missing.wav"
    _write_csv(tmp_path / "maestro-v2.0.0.csv", rows)
    with pytest.raises(DatasetError, match="missing.wav"):
        read_maestro_index(tmp_path)
    with pytest.raises(DatasetError, match="missing.wav"):
        prepare(tmp_path, tmp_path / "out")
    (tmp_path / "maestro-v3.0.0.json").write_text("{not json")
    with pytest.raises(DatasetError, match="maestro-v3.0.0.json"):
        read_maestro_index(tmp_path)


def test_overwrite_refusal_and_replacement(tmp_path: Path, piece_folder: Path) -> None:
    output = tmp_path / "out"
    first = prepare(piece_folder, output, min_chunk_s=2.0, max_chunk_s=5.0, num_shards=3)
    assert [p.name for p in first["train"]] == [f"train.tfrecord-0000{i}-of-00003" for i in range(3)]
    counts = [len(list(iter_examples([str(p)]))) for p in first["train"]]
    assert all(counts)  # records spread over the shards by a stable hash of their id
    before = {p.name: p.read_bytes() for p in output.iterdir()}
    with pytest.raises(OutputExistsError, match="train.tfrecord-00000-of-00003"):
        prepare(piece_folder, output, min_chunk_s=2.0, max_chunk_s=5.0)
    assert {p.name: p.read_bytes() for p in output.iterdir()} == before  # untouched
    second = prepare(piece_folder, output, min_chunk_s=2.0, max_chunk_s=5.0, num_shards=1, overwrite=True)
    assert sorted(p.name for p in output.iterdir()) == ["train.tfrecord-00000-of-00001"]
    assert len(list(iter_examples([str(p) for p in second["train"]]))) == sum(counts)


def test_corrupt_midi_is_skipped_named_and_the_rest_written(tmp_path: Path, piece_folder: Path) -> None:
    folder = tmp_path / "in"
    shutil.copytree(piece_folder, folder)
    bad = sorted(folder.glob("*.mid"))[1]
    bad.write_bytes(b"MThd garbage garbage")
    output = tmp_path / "out"
    report = prepare_report(folder, output, min_chunk_s=2.0, max_chunk_s=5.0)
    assert len(report.skipped) == 1 and bad.name in report.skipped[0]
    ids = {record["id"].rsplit("_", 1)[0] for record in iter_examples([str(p) for p in report.written["train"]])}
    assert bad.stem not in ids and len(ids) == 2
    assert sorted(p.name for p in output.iterdir()) == ["train.tfrecord-00000-of-00001"]  # no temporary files


def test_corrupt_audio_is_skipped_and_nothing_usable_is_an_error(tmp_path: Path, piece_folder: Path) -> None:
    folder = tmp_path / "in"
    shutil.copytree(piece_folder, folder)
    bad = sorted(folder.glob("*.wav"))[0]
    bad.write_bytes(b"RIFF....WAVEnot really")
    report = prepare_report(folder, tmp_path / "out")
    assert len(report.skipped) == 1 and bad.name in report.skipped[0]
    for wav in folder.glob("*.wav"):
        wav.write_bytes(b"")
    with pytest.raises(DatasetError, match=r"nothing could be prepared .*3 item\(s\) skipped"):
        prepare(folder, tmp_path / "out2")
    assert not (tmp_path / "out2").exists() or list((tmp_path / "out2").iterdir()) == []


def test_prepare_runs_on_worker_processes(tmp_path: Path, piece_folder: Path) -> None:
    """The default runner: DirectRunner, multi-processing, one worker per core; byte-identical reruns."""
    first = prepare_dataset(piece_folder, tmp_path / "a", min_chunk_s=2.0, max_chunk_s=5.0, num_shards=2)
    second = prepare_dataset(piece_folder, tmp_path / "b", min_chunk_s=2.0, max_chunk_s=5.0, num_shards=2)
    assert first.records == second.records and first.records["train"] >= 9
    for a, b in zip(first.written["train"], second.written["train"], strict=True):
        assert a.read_bytes() == b.read_bytes()


def test_unknown_pipeline_option_is_a_config_error(tmp_path: Path, piece_folder: Path) -> None:
    from polyamp.errors import ConfigError

    with pytest.raises(ConfigError, match="--no_such_option"):
        prepare(piece_folder, tmp_path / "out", pipeline_args=["--no_such_option=1"])


def test_sustain_pedal_is_applied(tmp_path: Path) -> None:
    sequence = music_pb2.NoteSequence()
    sequence.notes.add(pitch=60, velocity=80, start_time=0.5, end_time=1.0)
    sequence.control_changes.add(time=0.2, control_number=64, control_value=127)
    sequence.control_changes.add(time=3.0, control_number=64, control_value=0)
    folder = tmp_path / "in"
    write_midi(sequence, folder / "pedal.mid")
    noise = 0.01 * np.random.default_rng(0).standard_normal(4 * SR).astype(np.float32)
    soundfile.write(folder / "pedal.wav", noise, SR, subtype="PCM_16")
    for sustain, end in ((True, 3.0), (False, 1.0)):
        out = tmp_path / f"out-{sustain}"
        written = prepare(folder, out, sustain=sustain)
        (record,) = iter_examples([str(p) for p in written["train"]])
        assert record["sequence"].notes[0].end_time == pytest.approx(end, abs=2e-3)


def test_audio_is_padded_to_cover_late_notes(tmp_path: Path) -> None:
    sequence = music_pb2.NoteSequence()
    sequence.notes.add(pitch=60, velocity=80, start_time=0.5, end_time=2.5)
    folder = tmp_path / "in"
    write_midi(sequence, folder / "short.mid")
    soundfile.write(folder / "short.wav", np.full(2 * SR, 0.1, np.float32), SR, subtype="PCM_16")
    written = prepare(folder, tmp_path / "out")
    (record,) = iter_examples([str(p) for p in written["train"]])
    assert _audio(record["audio"]).size / SR >= 2.5


def test_find_audio_midi_pairs(tmp_path: Path, piece_folder: Path) -> None:
    wavs = sorted(piece_folder.glob("*.wav"))
    (tmp_path / "validation" / "deep").mkdir(parents=True)
    (tmp_path / "misc").mkdir()
    shutil.copy(wavs[0], tmp_path / "a.wav")
    shutil.copy(wavs[0].with_suffix(".mid"), tmp_path / "a.mid")
    shutil.copy(wavs[1], tmp_path / "validation" / "deep" / "b.wav")
    shutil.copy(wavs[1].with_suffix(".mid"), tmp_path / "validation" / "deep" / "b.midi")
    shutil.copy(wavs[2], tmp_path / "misc" / "lonely.wav")  # no MIDI: skipped
    skipped: list[Path] = []
    pairs = find_audio_midi_pairs(tmp_path, skipped=skipped)
    assert [(p.example_id, p.split) for p in pairs] == [("a", "train"), ("validation/deep/b", "validation")]
    assert pairs[1].midi_path == tmp_path / "validation" / "deep" / "b.midi"
    assert skipped == [tmp_path / "misc" / "lonely.wav"]

    empty = tmp_path / "misc"
    with pytest.raises(DatasetError, match="misc"):
        find_audio_midi_pairs(empty)
    with pytest.raises(DatasetError, match="nowhere"):
        find_audio_midi_pairs(tmp_path / "nowhere")


def test_extract_chunk_clips_crossing_notes_into_both_chunks() -> None:
    sequence = music_pb2.NoteSequence(total_time=10.0)
    sequence.notes.add(pitch=60, velocity=70, start_time=1.0, end_time=6.0)  # crosses the cut at 4 s
    sequence.notes.add(pitch=62, velocity=71, start_time=4.0, end_time=4.5)  # starts on the cut
    sequence.notes.add(pitch=64, velocity=72, start_time=3.0, end_time=4.0)  # ends on the cut
    sequence.tempos.add(time=0.0, qpm=100.0)
    sequence.control_changes.add(time=2.0, control_number=64, control_value=127)
    sequence.control_changes.add(time=5.0, control_number=64, control_value=0)
    first, second = extract_chunk(sequence, 0.0, 4.0), extract_chunk(sequence, 4.0, 10.0)
    assert sorted((n.pitch, n.start_time, n.end_time) for n in first.notes) == [
        (60, 1.0, 4.0),
        (64, 3.0, 4.0),
    ]
    assert sorted((n.pitch, n.start_time, n.end_time) for n in second.notes) == [
        (60, 0.0, 2.0),
        (62, 0.0, 0.5),
    ]
    assert (first.total_time, second.total_time) == (4.0, 6.0)
    assert [(cc.time, cc.control_value) for cc in second.control_changes] == [(0.0, 127), (1.0, 0)]
    assert [t.qpm for t in second.tempos] == [100.0]
    assert len(sequence.notes) == 3  # the input is not modified


def test_choose_chunk_bounds_prefers_silence() -> None:
    sequence = music_pb2.NoteSequence()
    sequence.notes.add(pitch=60, start_time=0.0, end_time=7.0, velocity=80)
    sequence.notes.add(pitch=62, start_time=8.0, end_time=30.0, velocity=80)
    bounds = choose_chunk_bounds(sequence, 30.0, min_chunk_s=2.0, max_chunk_s=9.0)
    assert bounds[0] == 0.0 and bounds[1] == pytest.approx(7.5) and bounds[-1] == 30.0
    lengths = np.diff(bounds)
    assert np.all(lengths <= 9.0 + 1e-9) and np.all(lengths >= 2.0 - 1e-9)
    assert choose_chunk_bounds(sequence, 8.5, 2.0, 9.0) == [0.0, 8.5]  # short pieces stay whole
    # without silences: fixed-length cuts, and the remainder is kept >= min_chunk_s
    assert choose_chunk_bounds(sequence, 30.0, 5.0, 20.0) == [0.0, 7.5, 25.0, 30.0]
    assert choose_chunk_bounds(sequence, 30.0, 10.0, 10.0) == [0.0, 10.0, 20.0, 30.0]


def test_automatic_shard_count_follows_the_number_of_chunks(
    tmp_path: Path, piece_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import polyamp.data.prepare as prepare_module

    monkeypatch.setattr(prepare_module, "RECORDS_PER_SHARD", 3)  # 3 pieces x 3 chunks of <= 5 s -> 3 shards
    written = prepare(piece_folder, tmp_path / "out", min_chunk_s=2.0, max_chunk_s=5.0)
    assert [p.name for p in written["train"]] == [f"train.tfrecord-0000{i}-of-00003" for i in range(3)]
    ids = [record["id"] for record in iter_examples([str(p) for p in written["train"]])]
    assert len(ids) == len(set(ids)) >= 9
