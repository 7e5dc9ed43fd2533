"""NSynth: both release formats round trip, bad records are named and skipped, mixes add up."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile

from polyamp.data.nsynth import NSynthMixDataset, note_end_samples_tf
from polyamp.data.nsynth_io import (
    NUM_NOTE_SAMPLES,
    QUALITY_NAMES,
    NSynthNote,
    SkippedRecords,
    iter_nsynth_folder,
    iter_nsynth_tfrecords,
    make_nsynth_note,
    note_from_example,
    note_to_example,
    nsynth_note_str,
    open_nsynth,
    parse_nsynth_tf,
    usable_nsynth_tf,
    write_nsynth_folder,
    write_nsynth_tfrecord,
)
from polyamp.errors import ConfigError, DatasetError, OutputExistsError
from polyamp.notes.families import DEFAULT_PROGRAMS, FAMILY_NAMES, family_of

tf = pytest.importorskip("tensorflow")

SR = 16000
# (pitch, family, source, decay seconds): distinct pitches, so a mix's notes name their source note.
NOTE_SPECS = [(48, 0, 0, 0.4), (55, 3, 1, 2.0), (60, 4, 2, 0.8), (64, 5, 0, 0.25), (69, 8, 1, 5.0), (76, 10, 2, 1.2)]


def _tone(pitch: int, decay_s: float, seed: int) -> np.ndarray:
    """A 4 s harmonic tone held 3 s then released, on the 16-bit grid (so WAV round trips are exact)."""
    rng = np.random.default_rng(seed)
    t = np.arange(NUM_NOTE_SAMPLES) / SR
    frequency = 440.0 * 2.0 ** ((pitch - 69) / 12)
    tone = sum(rng.uniform(0.3, 1.0) / k * np.sin(2 * np.pi * k * frequency * t + rng.uniform(0, 6)) for k in (1, 2, 3))
    envelope = np.exp(-t / decay_s) * np.clip((3.1 - t) / 0.1, 0.0, 1.0)
    tone = 0.8 * tone * envelope / np.max(np.abs(tone * envelope))
    return (np.round(tone * 32768) / 32768).astype(np.float32)


def _make_notes() -> list[NSynthNote]:
    notes = []
    for index, (pitch, family, source, decay) in enumerate(NOTE_SPECS):
        instrument = f"{FAMILY_NAMES[family]}_test_{index:03d}"
        qualities = [1 if (index + q) % 4 == 0 else 0 for q in range(len(QUALITY_NAMES))]
        notes.append(
            make_nsynth_note(
                nsynth_note_str(instrument, pitch, 100 - 10 * index),
                pitch,
                100 - 10 * index,
                family,
                source,
                _tone(pitch, decay, index),
                qualities=qualities,
            )
        )
    return notes


@pytest.fixture(scope="module")
def notes() -> list[NSynthNote]:
    return _make_notes()


@pytest.fixture(scope="module")
def record_dir(tmp_path_factory: pytest.TempPathFactory, notes: list[NSynthNote]) -> Path:
    folder = tmp_path_factory.mktemp("nsynth_tfrecord")
    write_nsynth_tfrecord(folder / "nsynth-test.tfrecord", notes)
    return folder


@pytest.fixture(scope="module")
def json_dir(tmp_path_factory: pytest.TempPathFactory, notes: list[NSynthNote]) -> Path:
    folder = tmp_path_factory.mktemp("nsynth_folder") / "nsynth-test"
    write_nsynth_folder(folder, notes)
    return folder


def _assert_same(read: list[NSynthNote], written: list[NSynthNote]) -> None:
    assert [note.note_str for note in read] == [note.note_str for note in written]
    for got, want in zip(read, written, strict=True):
        assert got.metadata() == want.metadata()
        assert got.samples.dtype == np.float32 and got.samples.shape == (NUM_NOTE_SAMPLES,)
        np.testing.assert_array_equal(got.samples, want.samples)


def _one_line_naming(error: BaseException, *names: str) -> None:
    message = str(error).split("\n  In call to configurable")[0]  # gin's suffix; the CLI drops it
    assert "\n" not in message
    for name in names:
        assert name in message, (name, message)


# ------------------------------------------------------------------------------------------------------
# Formats
# ------------------------------------------------------------------------------------------------------


def test_both_formats_round_trip(record_dir: Path, json_dir: Path, notes: list[NSynthNote]) -> None:
    _assert_same(list(iter_nsynth_tfrecords(str(record_dir / "nsynth-test.tfrecord"))), notes)
    _assert_same(list(iter_nsynth_folder(json_dir)), notes)
    assert os.listdir(record_dir) == ["nsynth-test.tfrecord"]  # no temporary file left behind
    assert sorted(os.listdir(json_dir)) == ["audio", "examples.json"]


def test_written_files_follow_the_official_layout(record_dir: Path, json_dir: Path, notes: list[NSynthNote]) -> None:
    from tensorflow.core.example import example_pb2

    record = next(iter(tf.data.TFRecordDataset(str(record_dir / "nsynth-test.tfrecord")))).numpy()
    features = example_pb2.Example.FromString(record).features.feature
    kinds = {name: feature.WhichOneof("kind") for name, feature in features.items()}
    int_names = ["note", "instrument", "pitch", "velocity", "sample_rate", "qualities"]
    int_names += ["instrument_family", "instrument_source"]
    bytes_names = ["note_str", "instrument_str", "qualities_str", "instrument_family_str", "instrument_source_str"]
    assert kinds == {
        **dict.fromkeys(int_names, "int64_list"),
        **dict.fromkeys(bytes_names, "bytes_list"),
        "audio": "float_list",
    }
    assert features["instrument_family_str"].bytes_list.value == [b"bass"]
    assert len(features["audio"].float_list.value) == NUM_NOTE_SAMPLES

    index = json.loads((json_dir / "examples.json").read_text())
    first = notes[0]
    assert list(index) == [note.note_str for note in notes]
    assert index[first.note_str] == {
        "note": first.note,
        "note_str": first.note_str,
        "instrument": first.instrument,
        "instrument_str": "bass_test_000",
        "pitch": 48,
        "velocity": 100,
        "sample_rate": 16000,
        "qualities": list(first.qualities),
        "qualities_str": [QUALITY_NAMES[q] for q in range(10) if first.qualities[q]],
        "instrument_family": 0,
        "instrument_family_str": "bass",
        "instrument_source": 0,
        "instrument_source_str": "acoustic",
    }
    info = soundfile.info(str(json_dir / "audio" / f"{first.note_str}.wav"))
    assert (info.samplerate, info.channels, info.frames, info.subtype) == (16000, 1, NUM_NOTE_SAMPLES, "PCM_16")


def test_graph_parser_agrees_with_python_reader(record_dir: Path, notes: list[NSynthNote]) -> None:
    records = tf.data.TFRecordDataset(str(record_dir / "nsynth-test.tfrecord"))
    parsed = list(records.map(parse_nsynth_tf).as_numpy_iterator())
    assert len(parsed) == len(notes)
    for features, note in zip(parsed, notes, strict=True):
        assert features["note_str"].decode() == note.note_str
        assert (features["pitch"], features["velocity"]) == (note.pitch, note.velocity)
        assert (features["instrument_family"], features["instrument_source"]) == (
            note.instrument_family,
            note.instrument_source,
        )
        assert tuple(features["qualities"]) == note.qualities
        np.testing.assert_array_equal(features["audio"], note.samples)
    good = parse_nsynth_tf(tf.constant(note_to_example(notes[0])))
    short = parse_nsynth_tf(tf.constant(note_to_example(dataclasses.replace(notes[0], samples=notes[0].samples[:100]))))
    alien = parse_nsynth_tf(tf.constant(note_to_example(dataclasses.replace(notes[0], instrument_family=11))))
    assert [bool(usable_nsynth_tf(features)) for features in (good, short, alien)] == [True, False, False]


def test_open_nsynth_picks_format_and_split(record_dir: Path, json_dir: Path, tmp_path: Path) -> None:
    assert open_nsynth(str(json_dir)).kind == "folder"
    by_split = open_nsynth(str(json_dir.parent), split="test")
    assert (by_split.kind, by_split.location) == ("folder", str(json_dir))
    tfrecords = open_nsynth(str(record_dir), split="test")
    assert tfrecords.kind == "tfrecord" and tfrecords.files == [str(record_dir / "nsynth-test.tfrecord")]
    glob_source = open_nsynth(f"{record_dir}/*.tfrecord")
    assert len(list(glob_source)) == len(NOTE_SPECS) and glob_source.skipped.count == 0
    with pytest.raises(DatasetError) as error:
        open_nsynth(str(tmp_path), split="train")
    _one_line_naming(error.value, str(tmp_path), "examples.json")
    with pytest.raises(DatasetError, match="not found"):
        open_nsynth(str(tmp_path / "missing.tfrecord"))


def test_writers_refuse_to_overwrite(record_dir: Path, json_dir: Path, notes: list[NSynthNote]) -> None:
    with pytest.raises(OutputExistsError):
        write_nsynth_tfrecord(record_dir / "nsynth-test.tfrecord", notes)
    with pytest.raises(OutputExistsError):
        write_nsynth_folder(json_dir, notes)


def test_make_nsynth_note_rejects_what_nsynth_cannot_hold(notes: list[NSynthNote]) -> None:
    samples = notes[0].samples
    with pytest.raises(ValueError, match="64000"):
        make_nsynth_note("x-060-100", 60, 100, 0, 0, samples[:-1])
    with pytest.raises(ValueError, match="instrument_family 11"):
        make_nsynth_note("x-060-100", 60, 100, 11, 0, samples)
    with pytest.raises(ValueError, match="file name"):
        make_nsynth_note("a/b-060-100", 60, 100, 0, 0, samples)
    note = make_nsynth_note("organ_x_001-060-100", 60, 100, 6, 1, samples)
    assert (note.instrument_str, note.instrument_family_str, note.instrument_source_str) == (
        "organ_x_001",
        "organ",
        "electronic",
    )


# ------------------------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------------------------


def _bad_tfrecord(path: Path, notes: list[NSynthNote]) -> Path:
    """Notes 0 and 3 are good; 1 has 63999 samples, 2 has family 11, then a record that is not an Example."""
    from polyamp.data.tfrecord import write_tfrecord

    records = [
        note_to_example(notes[0]),
        note_to_example(dataclasses.replace(notes[1], samples=notes[1].samples[:-1])),
        note_to_example(dataclasses.replace(notes[2], instrument_family=11)),
        b"\xff\xfe not a protobuf",
        note_to_example(notes[3]),
    ]
    return write_tfrecord(path, records)


def test_bad_tfrecord_records_are_named_skipped_and_counted(tmp_path: Path, notes: list[NSynthNote]) -> None:
    path = _bad_tfrecord(tmp_path / "mixed.tfrecord", notes)
    skipped = SkippedRecords()
    read = list(iter_nsynth_tfrecords([str(path)], skipped))
    assert [note.note_str for note in read] == [notes[0].note_str, notes[3].note_str]
    assert skipped.count == 3 and len(skipped.messages) == 3
    for message in skipped.messages:
        _one_line_naming(DatasetError(message), str(path))
    assert "record 1" in skipped.messages[0] and notes[1].note_str in skipped.messages[0]
    assert "63999 samples, expected 64000" in skipped.messages[0]
    assert notes[2].note_str in skipped.messages[1] and "instrument_family 11" in skipped.messages[1]
    assert "record 3" in skipped.messages[2] and "not a tf.train.Example" in skipped.messages[2]

    records = [bytes(record.numpy()) for record in tf.data.TFRecordDataset(str(path))]
    with pytest.raises(DatasetError) as error:
        note_from_example(records[1], f"{path} record 1")
    _one_line_naming(error.value, str(path), "record 1", notes[1].note_str, "63999")


def test_nothing_usable_is_an_error(tmp_path: Path, notes: list[NSynthNote]) -> None:
    path = write_nsynth_tfrecord(
        tmp_path / "alien.tfrecord", [dataclasses.replace(note, instrument_family=11) for note in notes[:2]]
    )
    with pytest.raises(DatasetError) as error:
        list(iter_nsynth_tfrecords([str(path)]))
    _one_line_naming(error.value, str(path), "no usable NSynth notes", "2 records skipped")
    with pytest.raises(DatasetError, match="no usable NSynth notes"):
        NSynthMixDataset(str(path))


@pytest.mark.parametrize("damage", ["truncated", "not_tfrecord"])
def test_broken_tfrecord_file_is_named(tmp_path: Path, record_dir: Path, damage: str) -> None:
    data = (record_dir / "nsynth-test.tfrecord").read_bytes()
    path = tmp_path / "broken.tfrecord"
    garbage = b"this is not a TFRecord file at all\n" * 40
    path.write_bytes(data[: len(data) // 2 + 1000] if damage == "truncated" else garbage)
    with pytest.raises(DatasetError) as error:
        list(iter_nsynth_tfrecords([str(path)]))
    _one_line_naming(error.value, str(path), "not a valid TFRecord file")
    if damage == "not_tfrecord":  # the mix dataset checks every file's first record when it opens
        with pytest.raises(DatasetError) as error:
            NSynthMixDataset(f"{record_dir}/nsynth-test.tfrecord,{path}")
        _one_line_naming(error.value, str(path))


def _copy_folder(source: Path, target: Path) -> Path:
    import shutil

    shutil.copytree(source, target)
    return target


def test_bad_folder_entries_are_named_skipped_and_counted(
    tmp_path: Path, json_dir: Path, notes: list[NSynthNote]
) -> None:
    folder = _copy_folder(json_dir, tmp_path / "nsynth")
    index = json.loads((folder / "examples.json").read_text())
    (folder / "audio" / f"{notes[1].note_str}.wav").unlink()  # missing WAV
    index[notes[2].note_str]["instrument_family"] = 11  # family out of range
    short = notes[3].samples[:48000]  # a 3 s WAV
    soundfile.write(str(folder / "audio" / f"{notes[3].note_str}.wav"), short, SR, subtype="PCM_16")
    del index[notes[4].note_str]["pitch"]  # not an NSynth entry
    (folder / "examples.json").write_text(json.dumps(index))

    skipped = SkippedRecords()
    read = list(iter_nsynth_folder(folder, skipped))
    assert [note.note_str for note in read] == [notes[0].note_str, notes[5].note_str]
    assert skipped.count == 4
    joined = " | ".join(skipped.messages)
    for message in skipped.messages:
        _one_line_naming(DatasetError(message), str(folder))
    assert f"{notes[1].note_str}.wav ({notes[1].note_str}): audio file is missing" in joined
    assert "instrument_family 11" in joined and notes[2].note_str in joined
    assert "48000 samples, expected 64000" in joined and notes[3].note_str in joined
    assert "field 'pitch' is missing" in joined and notes[4].note_str in joined

    mixes = NSynthMixDataset(str(folder), notes_per_mix=2, clip_length_s=2.0, shuffle_buffer_notes=4, seed=0)
    list(mixes.tf_dataset(shuffle_files=True, seed=0).take(3).as_numpy_iterator())
    assert mixes.skipped.count == 4  # each bad entry counted once, however often the stream meets it


def test_broken_json_is_named(tmp_path: Path, json_dir: Path) -> None:
    folder = _copy_folder(json_dir, tmp_path / "nsynth")
    text = (folder / "examples.json").read_text()
    (folder / "examples.json").write_text(text[: len(text) // 2])
    for action in (lambda: list(iter_nsynth_folder(folder)), lambda: NSynthMixDataset(str(folder))):
        with pytest.raises(DatasetError) as error:
            action()
        _one_line_naming(error.value, str(folder / "examples.json"), "not valid JSON")
    (folder / "examples.json").write_text("[1, 2]")
    with pytest.raises(DatasetError, match="expected a JSON object"):
        list(iter_nsynth_folder(folder))


# ------------------------------------------------------------------------------------------------------
# Mixes
# ------------------------------------------------------------------------------------------------------


def _by_pitch(notes: list[NSynthNote]) -> dict[int, NSynthNote]:
    return {note.pitch: note for note in notes}


def _placed_sum(sequence: object, notes: list[NSynthNote], clip_samples: int) -> np.ndarray:
    """Independent numpy reconstruction: every note's whole audio from its start, cut at the clip end."""
    total = np.zeros(clip_samples, np.float64)
    source = _by_pitch(notes)
    for note in sequence.notes:
        start = int(round(note.start_time * SR))
        length = min(NUM_NOTE_SAMPLES, clip_samples - start)
        total[start : start + length] += source[note.pitch].samples[:length]
    return total


@pytest.mark.parametrize("fmt", ["tfrecord", "folder"])
def test_mix_labels_and_audio_add_up(fmt: str, record_dir: Path, json_dir: Path, notes: list[NSynthNote]) -> None:
    path = record_dir if fmt == "tfrecord" else json_dir
    dataset = NSynthMixDataset(
        str(path), notes_per_mix=4, clip_length_s=5.0, note_end="note_off", shuffle_buffer_notes=8, num_eval_mixes=3
    )
    clip_samples = 5 * SR
    source = _by_pitch(notes)
    examples = list(dataset.examples())
    assert [example.example_id for example in examples] == [
        "nsynth_mix_000000",
        "nsynth_mix_000001",
        "nsynth_mix_000002",
    ]
    for example in examples:
        sequence = example.sequence
        assert len(sequence.notes) == 4 and sequence.total_time == 5.0
        for note in sequence.notes:
            nsynth = source[note.pitch]
            assert family_of(note.program, note.is_drum) == nsynth.instrument_family == note.instrument
            assert note.program == DEFAULT_PROGRAMS[nsynth.instrument_family] and not note.is_drum
            assert note.velocity == nsynth.velocity
            assert 0.0 <= note.start_time <= 4.0  # max_start_s defaults to clip_length_s - 1
            assert note.end_time == pytest.approx(min(note.start_time + 3.0, 5.0))  # note_off, cut at the clip end
        assert [note.start_time for note in sequence.notes] == sorted(note.start_time for note in sequence.notes)
        placed = _placed_sum(sequence, notes, clip_samples)
        assert example.samples.shape == (clip_samples,) and example.samples.dtype == np.float32
        np.testing.assert_allclose(example.samples, placed * (0.9 / np.max(np.abs(placed))), atol=2e-6)
        assert np.max(np.abs(example.samples)) == pytest.approx(0.9, abs=1e-6)


def test_divide_gain_and_envelope_ends(record_dir: Path, notes: list[NSynthNote]) -> None:
    dataset = NSynthMixDataset(
        str(record_dir), notes_per_mix=3, clip_length_s=4.0, mix_gain="divide", shuffle_buffer_notes=8, seed=5
    )
    source = _by_pitch(notes)
    ends = note_end_samples_tf(tf.constant(np.stack([note.samples for note in notes])), "envelope").numpy()
    length_of = {note.pitch: int(end) for note, end in zip(notes, ends, strict=True)}
    for example in dataset.examples():
        placed = _placed_sum(example.sequence, notes, 4 * SR)
        np.testing.assert_allclose(example.samples, placed / 3, atol=2e-6)
        for note in example.sequence.notes:
            start = int(round(note.start_time * SR))
            assert int(round(note.end_time * SR)) == min(start + length_of[note.pitch], 4 * SR)
            assert source[note.pitch].pitch == note.pitch
    # Fast decays end early, the 5 s decay runs to the 3 s note-off.
    assert length_of[64] < length_of[48] < length_of[69] == 3 * SR


def test_envelope_end_rule() -> None:
    t = np.arange(NUM_NOTE_SAMPLES) / SR
    step = np.where(t < 1.0, 1.0, 0.05)  # loud for 1 s, then -26 dB
    burst = np.where(t < 0.5, 1.0, np.where((t >= 2.0) & (t < 2.25), 0.2, 0.01))  # comes back above -20 dB
    held = np.full(NUM_NOTE_SAMPLES, 0.5)  # never decays: capped at the 3 s note-off
    click = np.zeros(NUM_NOTE_SAMPLES)
    click[10] = 1.0  # at least one frame
    audio = tf.constant(np.stack([step, burst, held, click]).astype(np.float32))
    # Ends fall on the end of a 16 ms (256-sample) envelope frame: 1 s -> 16128, 2.25 s -> 36096.
    assert note_end_samples_tf(audio, "envelope").numpy().tolist() == [16128, 36096, 48000, 256]
    assert note_end_samples_tf(audio, "note_off").numpy().tolist() == [48000] * 4


def test_mixes_are_deterministic_with_a_seed(record_dir: Path) -> None:
    def take(seed: int) -> list[dict]:
        dataset = NSynthMixDataset(str(record_dir), notes_per_mix=3, clip_length_s=3.0, shuffle_buffer_notes=8)
        return list(dataset.tf_dataset(shuffle_files=True, seed=seed).take(3).as_numpy_iterator())

    first, again, other = take(7), take(7), take(8)
    for a, b in zip(first, again, strict=True):
        assert a["id"] == b["id"] and a["sequence"] == b["sequence"]
        np.testing.assert_array_equal(a["samples"], b["samples"])
    assert [item["sequence"] for item in first] != [item["sequence"] for item in other]
    dataset = NSynthMixDataset(str(record_dir), notes_per_mix=3, clip_length_s=3.0, num_eval_mixes=2, seed=4)
    assert [e.sequence for e in dataset.examples()] == [e.sequence for e in dataset.examples()]


def test_tf_dataset_yields_the_plugin_dict(json_dir: Path) -> None:
    dataset = NSynthMixDataset(str(json_dir), notes_per_mix=2, clip_length_s=2.5, shuffle_buffer_notes=4)
    stream = dataset.tf_dataset(shuffle_files=True)
    spec = stream.element_spec
    assert set(spec) == {"id", "sequence", "samples"}
    assert (spec["id"].dtype, spec["id"].shape) == (tf.string, tf.TensorShape([]))
    assert (spec["sequence"].dtype, spec["sequence"].shape) == (tf.string, tf.TensorShape([]))
    assert (spec["samples"].dtype, spec["samples"].shape) == (tf.float32, tf.TensorShape([40000]))
    items = list(stream.take(5).as_numpy_iterator())  # endless: more mixes than there are notes
    assert len(items) == 5 and all(item["samples"].shape == (40000,) for item in items)


def test_unlabelable_and_silent_notes_are_never_mixed(tmp_path: Path, notes: list[NSynthNote]) -> None:
    high = make_nsynth_note("high_x_000-115-100", 115, 100, 9, 2, _tone(115, 1.0, 9))  # above MIDI 108
    silent = make_nsynth_note("quiet_x_000-070-100", 70, 100, 2, 0, np.zeros(NUM_NOTE_SAMPLES, np.float32))
    path = write_nsynth_tfrecord(tmp_path / "edge.tfrecord", [high, silent, notes[0], notes[1]])
    dataset = NSynthMixDataset(str(path), notes_per_mix=4, clip_length_s=3.0, shuffle_buffer_notes=8, num_eval_mixes=4)
    pitches = {note.pitch for example in dataset.examples() for note in example.sequence.notes}
    assert pitches == {notes[0].pitch, notes[1].pitch}
    assert dataset.skipped.count == 0  # out of range is not an error: NSynth has such notes
    only_high = write_nsynth_tfrecord(tmp_path / "high.tfrecord", [high, silent])
    with pytest.raises(DatasetError, match="can be mixed"):
        NSynthMixDataset(str(only_high))


def test_truncated_file_mid_stream_does_not_stop_training(tmp_path: Path, record_dir: Path) -> None:
    data = (record_dir / "nsynth-test.tfrecord").read_bytes()
    (tmp_path / "a.tfrecord").write_bytes(data)
    (tmp_path / "b.tfrecord").write_bytes(data[: len(data) // 2 + 1000])  # 3 records, then a cut one
    dataset = NSynthMixDataset(str(tmp_path), notes_per_mix=4, clip_length_s=3.0, shuffle_buffer_notes=8)
    assert len(list(dataset.tf_dataset(shuffle_files=True, seed=1).take(6).as_numpy_iterator())) == 6


def test_bad_settings_are_config_errors(record_dir: Path) -> None:
    for settings in (
        {"notes_per_mix": 0},
        {"clip_length_s": 4.0, "max_start_s": 4.0},
        {"note_end": "release"},
        {"mix_gain": "loud"},
        {"min_pitch": 90, "max_pitch": 80},
    ):
        with pytest.raises(ConfigError):
            NSynthMixDataset(str(record_dir), **settings)


def test_plugin_is_registered_and_gin_configurable(record_dir: Path) -> None:
    import gin

    from polyamp.data.datasets import open_dataset
    from polyamp.registry import DATASETS

    assert DATASETS.get("nsynth") is NSynthMixDataset
    with gin.unlock_config():
        gin.bind_parameter("NSynthMixDataset.notes_per_mix", 5)
    try:
        dataset = open_dataset(str(record_dir), dataset="nsynth", split="test")
    finally:
        gin.clear_config()
    assert isinstance(dataset, NSynthMixDataset) and dataset.notes_per_mix == 5
    assert dataset.source.files == [str(record_dir / "nsynth-test.tfrecord")]
