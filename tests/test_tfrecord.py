"""Magenta-style TFRecords: round trips, path expansion, validation of bad files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from note_seq.protobuf import music_pb2

from polyamp.data.synthetic import make_synthetic_examples, write_synthetic_tfrecord
from polyamp.data.tfrecord import (
    check_tfrecords,
    expand_examples_path,
    iter_examples,
    make_example,
    parse_example_tf,
    write_tfrecord,
)
from polyamp.errors import DatasetError, OutputExistsError

tf = pytest.importorskip("tensorflow")


def _wav_bytes(samples: np.ndarray) -> bytes:
    import io

    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, samples, 16000, subtype="PCM_16", format="WAV")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def examples() -> list[tuple[str, music_pb2.NoteSequence, bytes]]:
    return [(name, seq, _wav_bytes(audio)) for name, seq, audio in make_synthetic_examples(3, 2.0, seed=11)]


@pytest.fixture(scope="module")
def record_file(tmp_path_factory: pytest.TempPathFactory, examples: list) -> Path:
    path = tmp_path_factory.mktemp("records") / "train.tfrecord-00000-of-00001"
    write_tfrecord(path, (make_example(name, seq, wav) for name, seq, wav in examples))
    return path


def test_round_trip_python_side(record_file: Path, examples: list) -> None:
    records = list(iter_examples([str(record_file)]))
    assert [record["id"] for record in records] == [name for name, _, _ in examples]
    for record, (_, sequence, wav) in zip(records, examples, strict=True):
        assert record["sequence"] == sequence
        assert record["audio"] == wav
        velocities = [note.velocity for note in sequence.notes]
        assert (record["velocity_range"].min, record["velocity_range"].max) == (
            min(velocities),
            max(velocities),
        )
    assert sorted(os.listdir(record_file.parent)) == [record_file.name]  # no temporary file left


def test_round_trip_through_tf_data(record_file: Path, examples: list) -> None:
    dataset = tf.data.TFRecordDataset([str(record_file)]).map(parse_example_tf)
    parsed = list(dataset)
    assert len(parsed) == len(examples)
    for features, (name, sequence, wav) in zip(parsed, examples, strict=True):
        assert features["id"].numpy().decode() == name
        assert music_pb2.NoteSequence.FromString(features["sequence"].numpy()) == sequence
        assert features["audio"].numpy() == wav
        assert features["velocity_range"].shape == ()
    check_tfrecords([str(record_file)])


def test_explicit_velocity_range_and_empty_sequence(tmp_path: Path) -> None:
    wav = _wav_bytes(np.zeros(1600, np.float32))
    path = write_tfrecord(
        tmp_path / "x.tfrecord",
        [
            make_example("a", music_pb2.NoteSequence(), wav),
            make_example("b", music_pb2.NoteSequence(), wav, (10, 99)),
        ],
    )
    first, second = iter_examples([str(path)])
    assert (first["velocity_range"].min, first["velocity_range"].max) == (0, 0)
    assert (second["velocity_range"].min, second["velocity_range"].max) == (10, 99)


def test_write_tfrecord_is_atomic_when_the_source_fails(tmp_path: Path) -> None:
    def broken() -> object:
        yield make_example("a", music_pb2.NoteSequence(), _wav_bytes(np.zeros(10, np.float32)))
        raise RuntimeError("source failed")

    with pytest.raises(RuntimeError):
        write_tfrecord(tmp_path / "partial.tfrecord", broken())
    assert os.listdir(tmp_path) == []


def test_write_synthetic_tfrecord(tmp_path: Path) -> None:
    path = write_synthetic_tfrecord(tmp_path / "syn.tfrecord", num_examples=2, duration_s=1.5, seed=3)
    records = list(iter_examples(str(path)))
    expected = list(make_synthetic_examples(2, 1.5, seed=3))
    assert [r["id"] for r in records] == [name for name, _, _ in expected]
    assert records[1]["sequence"] == expected[1][1]
    with pytest.raises(OutputExistsError, match="syn.tfrecord"):
        write_synthetic_tfrecord(path, num_examples=1, duration_s=1.0, seed=3)


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_expand_examples_path(tmp_path: Path) -> None:
    a = _touch(tmp_path / "a" / "train.tfrecord-00000-of-00002")
    b = _touch(tmp_path / "a" / "train.tfrecord-00001-of-00002")
    c = _touch(tmp_path / "b" / "extra.tfrecord")
    _touch(tmp_path / "a" / "train.tfrecord-00002-of-00002.tmp-123")  # unfinished: ignored
    _touch(tmp_path / "b" / "notes.txt")
    got = expand_examples_path(f"{tmp_path}/b/*.tfrecord , {tmp_path}/a/train.tfrecord-*,{a}")
    assert got == sorted(str(p) for p in (a, b, c))
    assert expand_examples_path(str(tmp_path / "a")) == [str(a), str(b)]  # a directory
    assert expand_examples_path(str(c)) == [str(c)]  # a plain file


def test_expand_examples_path_errors(tmp_path: Path) -> None:
    _touch(tmp_path / "x.tfrecord")
    with pytest.raises(DatasetError, match="nomatch-\\*"):
        expand_examples_path(f"{tmp_path}/x.tfrecord,{tmp_path}/nomatch-*")
    with pytest.raises(DatasetError, match="missing.tfrecord"):
        expand_examples_path(str(tmp_path / "missing.tfrecord"))
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(DatasetError, match="empty_dir"):
        expand_examples_path(str(tmp_path / "empty_dir"))
    with pytest.raises(DatasetError):
        expand_examples_path(" , ")


def test_random_bytes_file_is_a_dataset_error(tmp_path: Path) -> None:
    bad = tmp_path / "random.tfrecord"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(DatasetError, match="random.tfrecord") as info:
        check_tfrecords([str(bad)])
    assert "\n" not in str(info.value)
    with pytest.raises(DatasetError, match="random.tfrecord"):
        list(iter_examples([str(bad)]))


def test_truncated_file_is_a_dataset_error(tmp_path: Path, record_file: Path) -> None:
    data = record_file.read_bytes()
    head = tmp_path / "head.tfrecord"
    head.write_bytes(data[:1000])  # the first record is cut
    with pytest.raises(DatasetError, match="head.tfrecord"):
        check_tfrecords([str(head)])
    tail = tmp_path / "tail.tfrecord"
    tail.write_bytes(data[:-500])  # the first records are fine, the last one is cut
    check_tfrecords([str(tail)])  # only the first record is checked
    with pytest.raises(DatasetError, match="tail.tfrecord"):
        list(iter_examples([str(tail)]))


def test_empty_and_missing_files_are_dataset_errors(tmp_path: Path, record_file: Path) -> None:
    empty = tmp_path / "empty.tfrecord"
    empty.write_bytes(b"")
    with pytest.raises(DatasetError, match="empty.tfrecord"):
        check_tfrecords([str(record_file), str(empty)])
    with pytest.raises(DatasetError, match="gone.tfrecord"):
        check_tfrecords([str(tmp_path / "gone.tfrecord")])


def test_records_that_are_not_magenta_examples(tmp_path: Path) -> None:
    not_example = write_tfrecord(tmp_path / "strings.tfrecord", [b"\xff\xfe hello"])
    with pytest.raises(DatasetError, match="strings.tfrecord"):
        check_tfrecords([str(not_example)])

    feature = tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"abc"]))
    missing = tf.train.Example(features=tf.train.Features(feature={"id": feature, "audio": feature}))
    no_sequence = write_tfrecord(tmp_path / "nosequence.tfrecord", [missing.SerializeToString()])
    with pytest.raises(DatasetError, match="nosequence.tfrecord.*'sequence'"):
        check_tfrecords([str(no_sequence)])

    record = make_example("x", music_pb2.NoteSequence(), b"not a wav file")
    not_wav = write_tfrecord(tmp_path / "notwav.tfrecord", [record])
    with pytest.raises(DatasetError, match="notwav.tfrecord.*WAV"):
        check_tfrecords([str(not_wav)])
