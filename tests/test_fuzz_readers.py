"""Property-based tests (hypothesis): every reader, fed random bytes, truncated files or wrong headers,
either succeeds or raises PolyAMP's own exception (a PolyampError subclass, one line), never another
exception, never a hang.

Readers: audio decoding (WAV, FLAC, OGG, MP3, any extension on any content), MIDI files, TFRecord files and
records, NSynth (examples.json, its WAVs, TFRecord examples), Slakh metadata.yaml, MAESTRO indexes, gin
files and ``--gin-param`` bindings, ``--hparams`` JSON. Inputs are mutations of a valid file of each kind
(truncated, bytes changed in the header or anywhere, the right magic followed by garbage) and random bytes.

Runs derandomized (the same examples every run, so CI is stable) with ``POLYAMP_FUZZ_EXAMPLES`` (default 25)
examples per test; ``POLYAMP_FUZZ_RANDOM=1 POLYAMP_FUZZ_EXAMPLES=500`` explores new ones. Each example
has a deadline: past PER_EXAMPLE_S an alarm fails the test, and past HARD_LIMIT_S (a hang inside C code,
which the alarm cannot interrupt) faulthandler ends the process with a traceback. The number of examples
each test tried is written to the terminal at the end of the module.
"""

from __future__ import annotations

import collections
import contextlib
import faulthandler
import functools
import io
import json
import os
import signal
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reporting import report

from polyamp.errors import PolyampError

EXAMPLES = int(os.environ.get("POLYAMP_FUZZ_EXAMPLES", "30"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,  # the alarm below is the deadline; hypothesis' own one only reports after the fact
    database=None,
    derandomize=not os.environ.get("POLYAMP_FUZZ_RANDOM"),
    suppress_health_check=list(HealthCheck),
)
PER_EXAMPLE_S = 30.0
HARD_LIMIT_S = 120
EXAMPLES_RUN: collections.Counter[str] = collections.Counter()
READER_CALLS: collections.Counter[str] = collections.Counter()


class Hang(BaseException):
    """A reader ran past its deadline (BaseException, so no reader's ``except Exception`` swallows it)."""


@pytest.fixture(scope="module", autouse=True)
def _examples_report(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    counts = ", ".join(
        f"{name} {count} ({READER_CALLS[name]} reader calls)" for name, count in sorted(EXAMPLES_RUN.items())
    )
    report(request.config, f"property tests, examples tried: {counts}")


@contextlib.contextmanager
def deadline(name: str) -> Iterator[None]:
    """Counts one reader call of ``name`` and bounds its time."""
    READER_CALLS[name] += 1

    def expire(_signum: int, _frame: Any) -> None:
        raise Hang(f"{name}: a reader took more than {PER_EXAMPLE_S} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, PER_EXAMPLE_S)
    faulthandler.dump_traceback_later(HARD_LIMIT_S, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def succeeds_or_polyamp_error(name: str, call: Callable[[], Any]) -> None:
    """Runs ``call``: returning, or raising a one-line PolyampError, passes; anything else fails the test."""
    with deadline(name):
        try:
            call()
        except PolyampError as error:
            message = str(error)
            assert message.strip(), f"{name}: {type(error).__name__} without a message"
            assert "\n" not in message, f"{name}: {type(error).__name__} message spans lines: {message!r}"


# --------------------------------------------------------------------------------------------------------
# Mutations of valid inputs
# --------------------------------------------------------------------------------------------------------


def _patched(valid: bytes, edits: list[tuple[int, int]]) -> bytes:
    data = bytearray(valid)
    for position, value in edits:
        data[position % len(data)] = value
    return bytes(data)


def corrupted(valid: bytes) -> st.SearchStrategy[bytes]:
    """Random bytes, ``valid`` truncated, its header bytes changed, bytes changed anywhere, or its first
    8 bytes (the magic) followed by garbage."""
    header = min(len(valid), 96)
    return st.one_of(
        st.binary(max_size=512),
        st.integers(0, len(valid) - 1).map(lambda size: valid[:size]),
        st.lists(st.tuples(st.integers(0, header - 1), st.integers(0, 255)), min_size=1, max_size=6).map(
            lambda edits: _patched(valid, edits)
        ),
        st.lists(st.tuples(st.integers(0, len(valid) - 1), st.integers(0, 255)), min_size=1, max_size=6).map(
            lambda edits: _patched(valid, edits)
        ),
        st.binary(max_size=400).map(lambda tail: valid[:8] + tail),
    )


def json_values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Any JSON value: nested lists and objects of null, booleans, numbers and strings."""
    leaves = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
    return st.recursive(
        leaves,
        lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
        max_leaves=max_leaves,
    )


# --------------------------------------------------------------------------------------------------------
# Valid inputs to start from (made once)
# --------------------------------------------------------------------------------------------------------


def _tone(seconds: float, rate: int, channels: int = 1) -> np.ndarray:
    times = np.arange(int(seconds * rate)) / rate
    mono = 0.3 * np.sin(2 * np.pi * 440 * times) * np.exp(-3 * times)
    return np.stack([mono] * channels, axis=1) if channels > 1 else mono


@functools.cache
def audio_seeds() -> dict[str, bytes]:
    """A short valid file per format: 16-bit WAV at 22.05 kHz stereo, FLAC, OGG Vorbis and MP3 (if libsndfile
    can write them)."""
    import soundfile

    seeds = {}
    for extension, kind in ((".wav", "WAV"), (".flac", "FLAC"), (".ogg", "OGG"), (".mp3", "MP3")):
        if kind not in soundfile.available_formats():
            continue
        buffer = io.BytesIO()
        soundfile.write(buffer, _tone(0.3, 22050, 2), 22050, format=kind)
        seeds[extension] = buffer.getvalue()
    return seeds


def _sequence() -> Any:
    from note_seq.protobuf import music_pb2

    sequence = music_pb2.NoteSequence(ticks_per_quarter=220)
    sequence.tempos.add(qpm=120)
    for index, pitch in enumerate((60, 64, 67)):
        sequence.notes.add(pitch=pitch, velocity=80, start_time=0.1 * index, end_time=0.1 * index + 0.2)
    sequence.total_time = 0.4
    return sequence


@functools.cache
def midi_seed() -> bytes:
    from note_seq import midi_io

    buffer = io.BytesIO()
    midi_io.note_sequence_to_pretty_midi(_sequence()).write(buffer)
    return buffer.getvalue()


@functools.cache
def example_seed() -> bytes:
    """A serialized Magenta-style tf.train.Example (id, sequence, 0.2 s WAV, velocity_range)."""
    from polyamp.audio.decode import encode_wav
    from polyamp.data.tfrecord import make_example

    return make_example("seed", _sequence(), encode_wav(_tone(0.2, 16000)))


def examples_with_bad_audio() -> st.SearchStrategy[bytes]:
    """Magenta-style Examples that are right in every feature but the WAV in ``audio``."""
    from polyamp.data.tfrecord import make_example

    return corrupted(_wav16()).map(lambda wav: make_example("fuzzed", _sequence(), wav))


def write_records(path: Path, records: list[bytes]) -> None:
    """A TFRecord file with valid framing (lengths, CRCs) around ``records``."""
    import tensorflow as tf

    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)


@functools.cache
def tfrecord_seed() -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder, "seed.tfrecord")
        write_records(path, [example_seed()])
        return path.read_bytes()


def examples_with_features() -> st.SearchStrategy[bytes]:
    """Serialized tf.train.Examples with some of the right feature names (and others), of any type and value."""
    names = st.sampled_from(["id", "sequence", "audio", "velocity_range", "pitch", "velocity", "extra"])
    values = st.one_of(
        st.lists(st.binary(max_size=48), max_size=3).map(lambda items: ("bytes", items)),
        st.lists(st.integers(-(2**63), 2**63 - 1), max_size=3).map(lambda items: ("int64", items)),
        st.lists(st.floats(width=32), max_size=3).map(lambda items: ("float", items)),
        corrupted(_wav16()).map(lambda item: ("bytes", [item])),
    )

    def build(features: dict[str, tuple[str, list[Any]]]) -> bytes:
        from tensorflow.core.example import example_pb2

        example = example_pb2.Example()
        for name, (kind, items) in features.items():
            feature = example.features.feature[name]
            {"bytes": feature.bytes_list, "int64": feature.int64_list, "float": feature.float_list}[kind].value.extend(
                items
            )
        return example.SerializeToString()

    return st.dictionaries(names, values, max_size=5).map(build)


@functools.cache
def _wav16() -> bytes:
    from polyamp.audio.decode import encode_wav

    return encode_wav(_tone(0.2, 16000))


# --------------------------------------------------------------------------------------------------------
# Audio
# --------------------------------------------------------------------------------------------------------


@FUZZ
@given(data=st.data())
def test_audio_decoding_succeeds_or_raises_audio_error(data: st.DataObject) -> None:
    EXAMPLES_RUN["audio"] += 1
    from polyamp.audio.decode import load_audio

    seeds = audio_seeds()
    content = data.draw(corrupted(seeds[data.draw(st.sampled_from(sorted(seeds)), label="format")]), label="bytes")
    # Mostly the format's own extension; sometimes another (a file whose content is not what its name says).
    extension = data.draw(st.sampled_from([*sorted(seeds), ".oga", ".wave"]), label="extension")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder, "clip" + extension)
        path.write_bytes(content)
        succeeds_or_polyamp_error("audio", lambda: load_audio(path))


# --------------------------------------------------------------------------------------------------------
# MIDI
# --------------------------------------------------------------------------------------------------------


@FUZZ
@given(content=st.deferred(lambda: corrupted(midi_seed())))
def test_midi_reading_succeeds_or_raises_midi_error(content: bytes) -> None:
    EXAMPLES_RUN["midi"] += 1
    from polyamp.notes.midi import read_midi

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder, "notes.mid")
        path.write_bytes(content)
        succeeds_or_polyamp_error("midi", lambda: read_midi(path))


# --------------------------------------------------------------------------------------------------------
# TFRecords
# --------------------------------------------------------------------------------------------------------


@FUZZ
@given(
    file_bytes=st.deferred(lambda: corrupted(tfrecord_seed())),
    records=st.deferred(
        lambda: st.lists(corrupted(example_seed()) | examples_with_features() | examples_with_bad_audio(), max_size=3)
    ),
    framed=st.booleans(),
)
def test_tfrecord_reading_succeeds_or_raises_dataset_error(
    file_bytes: bytes, records: list[bytes], framed: bool
) -> None:
    """A damaged file, or valid framing around damaged or odd records; checked, iterated and decoded for
    evaluation (which decodes the WAV in each record)."""
    EXAMPLES_RUN["tfrecord"] += 1
    from polyamp.data.datasets import TFRecordDataset
    from polyamp.data.tfrecord import check_tfrecords, iter_examples

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder, "train.tfrecord")
        if framed:
            write_records(path, records)
        else:
            path.write_bytes(file_bytes)
        succeeds_or_polyamp_error("tfrecord", lambda: check_tfrecords([str(path)]))
        succeeds_or_polyamp_error("tfrecord", lambda: list(iter_examples([str(path)])))
        succeeds_or_polyamp_error("tfrecord", lambda: list(TFRecordDataset(str(path)).examples()))


# --------------------------------------------------------------------------------------------------------
# NSynth
# --------------------------------------------------------------------------------------------------------


@functools.cache
def nsynth_seeds() -> tuple[bytes, bytes, bytes]:
    """(examples.json, the WAV of its one note, that note as an NSynth tf.train.Example)."""
    from polyamp.audio.decode import encode_wav
    from polyamp.data.nsynth_io import NUM_NOTE_SAMPLES, make_nsynth_note, note_to_example

    samples = _tone(NUM_NOTE_SAMPLES / 16000, 16000).astype(np.float32)
    note = make_nsynth_note("keyboard_acoustic_001-060-100", 60, 100, 4, 0, samples)
    index = json.dumps({note.note_str: note.metadata()}).encode()
    return index, encode_wav(samples), note_to_example(note)


def nsynth_indexes() -> st.SearchStrategy[bytes]:
    """examples.json contents: the valid one damaged, any JSON, or entries with random field values."""
    index, _, _ = nsynth_seeds()
    valid = json.loads(index)
    (key,) = valid
    fields = st.dictionaries(st.sampled_from(sorted(valid[key]) + ["other"]), json_values(4), max_size=6)
    entries = st.builds(lambda update: {key: {**valid[key], **update}}, fields)
    return st.one_of(
        corrupted(index),
        json_values().map(lambda value: json.dumps(value).encode()),
        entries.map(lambda value: json.dumps(value).encode()),
    )


@FUZZ
@given(
    index=st.deferred(nsynth_indexes),
    wav=st.deferred(lambda: corrupted(nsynth_seeds()[1])),
    record=st.deferred(lambda: corrupted(nsynth_seeds()[2]) | examples_with_features()),
)
def test_nsynth_reading_succeeds_or_raises_dataset_error(index: bytes, wav: bytes, record: bytes) -> None:
    EXAMPLES_RUN["nsynth"] += 1
    from polyamp.data.nsynth_io import iter_nsynth_folder, iter_nsynth_tfrecords, note_from_example

    key = next(iter(json.loads(nsynth_seeds()[0])))
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "audio").mkdir()
        Path(folder, "examples.json").write_bytes(index)
        Path(folder, "audio", f"{key}.wav").write_bytes(wav)
        succeeds_or_polyamp_error("nsynth", lambda: list(iter_nsynth_folder(folder)))
        succeeds_or_polyamp_error("nsynth", lambda: note_from_example(record, "record 0"))
        path = Path(folder, "nsynth.tfrecord")
        write_records(path, [record])
        succeeds_or_polyamp_error("nsynth", lambda: list(iter_nsynth_tfrecords([str(path)])))


# --------------------------------------------------------------------------------------------------------
# Slakh metadata.yaml and MAESTRO indexes
# --------------------------------------------------------------------------------------------------------

SLAKH_METADATA = b"""UUID: 0123abcd
audio_dir: stems
midi_dir: MIDI
normalization_factor: 1.0
stems:
  S00:
    audio_rendered: true
    inst_class: Piano
    is_drum: false
    midi_program_name: Acoustic Grand Piano
    program_num: 0
  S01:
    audio_rendered: false
    inst_class: Drums
    is_drum: true
    program_num: 128
"""

ALIAS_BOMB = b"""a: &a [x, x, x, x, x, x, x, x, x, x]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]
stems:
  S00: {audio_rendered: *h, is_drum: *h, program_num: *h, inst_class: *h}
"""


def slakh_metadata() -> st.SearchStrategy[bytes]:
    """metadata.yaml contents: the valid one damaged, YAML of random stem fields, or an alias bomb."""
    import yaml

    stem_fields = st.dictionaries(
        st.sampled_from(["audio_rendered", "inst_class", "is_drum", "program_num", "midi_program_name", "x"]),
        json_values(4),
        max_size=6,
    )
    stems = st.dictionaries(st.one_of(st.sampled_from(["S00", "S01"]), st.text(max_size=6), st.integers()), stem_fields)
    documents = st.one_of(stems.map(lambda value: {"stems": value}), json_values())
    return st.one_of(
        corrupted(SLAKH_METADATA),
        documents.map(lambda value: yaml.safe_dump(value).encode()),
        st.just(ALIAS_BOMB),
    )


@FUZZ
@given(content=st.deferred(slakh_metadata))
def test_slakh_metadata_reading_succeeds_or_raises_dataset_error(content: bytes) -> None:
    EXAMPLES_RUN["slakh"] += 1
    from polyamp.data.slakh_layout import find_slakh_tracks, read_track_metadata

    with tempfile.TemporaryDirectory() as folder:
        track = Path(folder, "train", "Track00001")
        (track / "stems").mkdir(parents=True)
        (track / "MIDI").mkdir()
        for name in ("mix.wav", "stems/S00.wav", "stems/S01.wav"):
            (track / name).write_bytes(_wav16())
        (track / "MIDI" / "S00.mid").write_bytes(midi_seed())
        (track / "metadata.yaml").write_bytes(content)
        succeeds_or_polyamp_error("slakh", lambda: read_track_metadata(track))
        succeeds_or_polyamp_error("slakh", lambda: find_slakh_tracks(folder))


MAESTRO_CSV = b"""canonical_composer,canonical_title,split,year,midi_filename,audio_filename,duration
Bach,Prelude,train,2018,2018/piece.midi,2018/piece.wav,1.0
"""


def maestro_indexes() -> st.SearchStrategy[tuple[str, bytes]]:
    columns = st.dictionaries(
        st.sampled_from(["split", "midi_filename", "audio_filename", "year"]),
        st.dictionaries(st.text(max_size=4), json_values(3), max_size=3) | json_values(3),
        max_size=4,
    )
    return st.one_of(
        corrupted(MAESTRO_CSV).map(lambda content: ("csv", content)),
        columns.map(lambda value: ("json", json.dumps(value).encode())),
        json_values().map(lambda value: ("json", json.dumps(value).encode())),
        st.lists(columns, max_size=3).map(lambda value: ("json", json.dumps(value).encode())),
    )


@FUZZ
@given(index=st.deferred(maestro_indexes))
def test_maestro_index_reading_succeeds_or_raises_dataset_error(index: tuple[str, bytes]) -> None:
    EXAMPLES_RUN["maestro"] += 1
    from polyamp.data.folders import read_maestro_index

    kind, content = index
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "2018").mkdir()
        Path(folder, "2018", "piece.wav").write_bytes(_wav16())
        Path(folder, "2018", "piece.midi").write_bytes(midi_seed())
        Path(folder, f"maestro-v3.0.0.{kind}").write_bytes(content)
        succeeds_or_polyamp_error("maestro", lambda: read_maestro_index(folder))


# --------------------------------------------------------------------------------------------------------
# gin files, --gin-param and --hparams
# --------------------------------------------------------------------------------------------------------

GIN_SEED = b"""include 'melodic/tiny.gin'
MelodicHParams.fc_size = 16
MelodicHParams.num_filters = (4, 4, 8)
train.num_steps = 20
train.strategy = 'default'
open_dataset.dataset = 'auto'
"""
GIN_ALPHABET = st.sampled_from(list("abcdefghijklmnopqrstuvwxyz_.=()[]{}'\",:%@#\\ \n0123456789-+*/"))
GIN_TOKENS = st.sampled_from(
    ["MelodicHParams.", "train.", "include ", "import ", "@", "%", "fc_size", "num_steps", " = ", "'", "(", ")"]
)


@FUZZ
@given(
    text=st.one_of(
        st.deferred(lambda: corrupted(GIN_SEED)).map(lambda data: data.decode("utf-8", "replace")),
        st.lists(GIN_ALPHABET | GIN_TOKENS, max_size=40).map("".join),
    ),
    as_file=st.booleans(),
)
def test_gin_parsing_succeeds_or_raises_config_error(text: str, as_file: bool) -> None:
    EXAMPLES_RUN["gin"] += 1
    import gin

    from polyamp.config import parse_gin

    try:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder, "fuzzed.gin")
            path.write_text(text, encoding="utf-8")
            if as_file:
                succeeds_or_polyamp_error("gin", lambda: parse_gin([str(path)]))
            else:
                succeeds_or_polyamp_error("gin", lambda: parse_gin([], [text]))
    finally:
        with gin.unlock_config():
            gin.clear_config()


def hparams_texts() -> st.SearchStrategy[str]:
    from polyamp.config import HPARAMS_CLASSES

    names = sorted({field for cls in HPARAMS_CLASSES.values() for field in cls.__dataclass_fields__})
    objects = st.dictionaries(st.sampled_from(names) | st.text(max_size=8), json_values(6), max_size=4)
    return st.one_of(
        st.text(max_size=60),
        json_values().map(json.dumps),
        objects.map(json.dumps),
        st.integers(1, 2000).map(lambda depth: "[" * depth + "]" * depth),
        st.integers(1, 2000).map(lambda depth: '{"a":' * depth + "1" + "}" * depth),
    )


@FUZZ
@given(text=st.deferred(hparams_texts), model_type=st.sampled_from(["melodic", "timbre", "full"]))
def test_hparams_json_parsing_succeeds_or_raises_config_error(text: str, model_type: str) -> None:
    EXAMPLES_RUN["hparams"] += 1
    from polyamp.config import parse_hparams_json

    succeeds_or_polyamp_error("hparams", lambda: parse_hparams_json(model_type, text))
