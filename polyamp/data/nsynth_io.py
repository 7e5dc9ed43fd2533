"""NSynth single notes: read and write the official TFRecords and the JSON + WAV folder release.

NSynth holds 4-second notes (64000 samples at 16 kHz; the key is held for 3 s, then released),
one per ``tf.train.Example`` in the TFRecord release, or one ``audio/<note_str>.wav`` (16-bit
mono) per entry of ``examples.json`` in the folder release. Both carry the same metadata:
``note``, ``note_str``, ``instrument(_str)``, ``pitch`` (MIDI), ``velocity``, ``sample_rate``,
``qualities(_str)``, ``instrument_family(_str)`` (0-10, NSynth order = ``FAMILY_NAMES[:11]``)
and ``instrument_source(_str)`` (0 acoustic, 1 electronic, 2 synthetic).

Reading a whole dataset skips unusable records (wrong sample count or rate, family out of range,
missing or unreadable WAV, a record that is not an NSynth Example) with a logged warning and
counts them in a :class:`SkippedRecords`; it raises :class:`DatasetError` only when nothing usable
remains, or when a whole file is broken (a truncated or non-TFRecord file, an ``examples.json``
that is not JSON). Writers are atomic and refuse to replace existing files unless asked.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pathlib
import threading
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from polyamp.constants import SAMPLE_RATE_HZ
from polyamp.errors import DatasetError, OutputExistsError
from polyamp.notes.families import FAMILY_NAMES, NUM_NSYNTH_FAMILIES

logger = logging.getLogger(__name__)

NSYNTH_SAMPLE_RATE_HZ = SAMPLE_RATE_HZ
NOTE_LENGTH_S = 4.0
HELD_S = 3.0
"""The key is held (note-off written) 3 s after the onset; the last second is the release."""
NUM_NOTE_SAMPLES = int(NOTE_LENGTH_S * NSYNTH_SAMPLE_RATE_HZ)
"""64000 samples per note."""
SOURCE_NAMES: tuple[str, ...] = ("acoustic", "electronic", "synthetic")
QUALITY_NAMES: tuple[str, ...] = (
    "bright",
    "dark",
    "distortion",
    "fast_decay",
    "long_release",
    "multiphonic",
    "nonlinear_env",
    "percussive",
    "reverb",
    "tempo-synced",
)
"""The 10 NSynth note qualities in the order of the ``qualities`` 0/1 vector."""
EXAMPLES_JSON = "examples.json"
AUDIO_DIR = "audio"
MAX_KEPT_MESSAGES = 100
MAX_LOGGED_WARNINGS = 20

_INT_FEATURES = ("note", "instrument", "pitch", "velocity", "sample_rate", "instrument_family", "instrument_source")
_REQUIRED = ("pitch", "velocity", "instrument_family")


# --------------------------------------------------------------------------------------------------------
# The note
# --------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(eq=False)
class NSynthNote:
    """One NSynth note; ``samples`` is float32 ``[64000]`` (4 s at 16 kHz, full scale = 1.0)."""

    note_str: str
    pitch: int
    velocity: int
    instrument_family: int
    instrument_source: int
    samples: np.ndarray
    qualities: tuple[int, ...] = (0,) * len(QUALITY_NAMES)
    note: int = 0
    instrument: int = 0
    instrument_str: str = ""
    sample_rate: int = NSYNTH_SAMPLE_RATE_HZ

    @property
    def instrument_family_str(self) -> str:
        return FAMILY_NAMES[self.instrument_family]

    @property
    def instrument_source_str(self) -> str:
        return SOURCE_NAMES[self.instrument_source]

    @property
    def qualities_str(self) -> tuple[str, ...]:
        """Names of the qualities set in ``qualities``."""
        return tuple(name for name, flag in zip(QUALITY_NAMES, self.qualities, strict=True) if flag)

    def metadata(self) -> dict[str, Any]:
        """The ``examples.json`` entry of this note (every official field, no audio)."""
        return {
            "note": int(self.note),
            "note_str": self.note_str,
            "instrument": int(self.instrument),
            "instrument_str": self.instrument_str,
            "pitch": int(self.pitch),
            "velocity": int(self.velocity),
            "sample_rate": int(self.sample_rate),
            "qualities": [int(flag) for flag in self.qualities],
            "qualities_str": list(self.qualities_str),
            "instrument_family": int(self.instrument_family),
            "instrument_family_str": self.instrument_family_str,
            "instrument_source": int(self.instrument_source),
            "instrument_source_str": self.instrument_source_str,
        }


def nsynth_note_str(instrument_str: str, pitch: int, velocity: int) -> str:
    """NSynth's note name: ``<instrument_str>-<pitch:03d>-<velocity:03d>``."""
    return f"{instrument_str}-{int(pitch):03d}-{int(velocity):03d}"


def _stable_id(text: str) -> int:
    """A reproducible non-negative 31-bit id for ``text`` (CRC-32)."""
    return zlib.crc32(text.encode("utf-8")) & 0x7FFFFFFF


def make_nsynth_note(
    note_str: str,
    pitch: int,
    velocity: int,
    family: int,
    source: int,
    samples: np.ndarray,
    instrument: int | None = None,
    instrument_str: str | None = None,
    qualities: Iterable[int] | None = None,
    note: int | None = None,
) -> NSynthNote:
    """A validated :class:`NSynthNote` from rendered ``samples`` (float ``[64000]``, 16 kHz).

    ``instrument_str`` defaults to ``note_str`` without its ``-ppp-vvv`` suffix; ``instrument`` and
    ``note`` default to stable ids derived from the names; ``qualities`` (10 flags) default to none.
    Raises ValueError for values NSynth cannot hold (wrong length, family outside 0-10, ...).
    """
    samples = np.asarray(samples, dtype=np.float32)
    if instrument_str is None:
        parts = note_str.rsplit("-", 2)
        instrument_str = parts[0] if len(parts) == 3 else note_str
    flags = tuple(int(flag) for flag in qualities) if qualities is not None else (0,) * len(QUALITY_NAMES)
    if len(flags) != len(QUALITY_NAMES) or any(flag not in (0, 1) for flag in flags):
        raise ValueError(f"qualities must be {len(QUALITY_NAMES)} flags of 0/1, got {flags}")
    problem = _name_problem(note_str) or note_problem(
        int(pitch), int(velocity), int(family), int(source), NSYNTH_SAMPLE_RATE_HZ, samples.shape, _finite(samples)
    )
    if problem:
        raise ValueError(f"NSynth note {note_str!r}: {problem}")
    return NSynthNote(
        note_str=note_str,
        pitch=int(pitch),
        velocity=int(velocity),
        instrument_family=int(family),
        instrument_source=int(source),
        samples=samples,
        qualities=flags,
        note=_stable_id(note_str) if note is None else int(note),
        instrument=_stable_id(instrument_str) if instrument is None else int(instrument),
        instrument_str=instrument_str,
    )


def note_problem(
    pitch: int,
    velocity: int,
    family: int,
    source: int,
    sample_rate: int,
    shape: tuple[int, ...],
    finite: bool,
) -> str | None:
    """Why a note cannot be used (one phrase), or None: the single rule every reader applies."""
    if not 0 <= pitch <= 127:
        return f"pitch {pitch} is outside MIDI 0-127"
    if not 1 <= velocity <= 127:
        return f"velocity {velocity} is outside 1-127"
    if not 0 <= family < NUM_NSYNTH_FAMILIES:
        return f"instrument_family {family} is outside 0-{NUM_NSYNTH_FAMILIES - 1}"
    if not 0 <= source < len(SOURCE_NAMES):
        return f"instrument_source {source} is outside 0-{len(SOURCE_NAMES) - 1}"
    if sample_rate != NSYNTH_SAMPLE_RATE_HZ:
        return f"sample_rate is {sample_rate} Hz, expected {NSYNTH_SAMPLE_RATE_HZ}"
    if tuple(shape) != (NUM_NOTE_SAMPLES,):
        count = shape[0] if len(shape) == 1 else "x".join(str(size) for size in shape)
        return f"audio has {count} samples, expected {NUM_NOTE_SAMPLES} (4 s at {NSYNTH_SAMPLE_RATE_HZ} Hz)"
    if not finite:
        return "audio holds NaN or infinite samples"
    return None


def _finite(samples: np.ndarray) -> bool:
    return bool(np.isfinite(samples).all())


def _name_problem(note_str: str) -> str | None:
    """note_str names a WAV file in the folder release: it must be a plain, non-empty file name."""
    if not note_str or "/" in note_str or "\\" in note_str or note_str in (".", "..") or "\0" in note_str:
        return f"note_str {note_str!r} is not a plain file name"
    return None


# --------------------------------------------------------------------------------------------------------
# Skipped records
# --------------------------------------------------------------------------------------------------------


class SkippedRecords:
    """Counts the records a reader skipped and keeps the first messages; thread-safe.

    Each skip is logged as a warning (the first ``MAX_LOGGED_WARNINGS``, then one notice).
    """

    def __init__(self) -> None:
        self.count = 0
        self.messages: list[str] = []
        self._lock = threading.Lock()

    def add(self, message: str) -> None:
        with self._lock:
            self.count += 1
            if len(self.messages) < MAX_KEPT_MESSAGES:
                self.messages.append(message)
            count = self.count
        if count <= MAX_LOGGED_WARNINGS:
            logger.warning("%s; skipped", message)
        elif count == MAX_LOGGED_WARNINGS + 1:
            logger.warning("more NSynth records skipped; further ones are counted but not logged")

    def summary(self) -> str:
        """``"N records skipped (first: ...)"``, or ``"no records skipped"``."""
        if not self.count:
            return "no records skipped"
        return f"{self.count} record{'s' if self.count != 1 else ''} skipped (first: {self.messages[0]})"


def _nothing_usable(where: str, skipped: SkippedRecords) -> DatasetError:
    if skipped.count:
        return DatasetError(
            f"no usable NSynth notes in {where}: {skipped.summary()}; check that it is an NSynth dataset"
        )
    return DatasetError(f"no NSynth notes in {where}: it holds no records")


# --------------------------------------------------------------------------------------------------------
# TFRecord release
# --------------------------------------------------------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _float_list_bytes(samples: np.ndarray) -> bytes:
    """A serialized ``FloatList`` holding ``samples``, built without a Python loop (packed field 1)."""
    data = np.ascontiguousarray(samples, dtype="<f4").tobytes()
    return b"\x0a" + _varint(len(data)) + data if data else b""


def _floats_from_list(float_list: Any) -> np.ndarray:
    """The values of a ``FloatList`` message as float32, fast: re-serialized (always packed), then read."""
    data = float_list.SerializeToString()
    if not data:
        return np.zeros(0, np.float32)
    position, length, shift = 1, 0, 0
    while True:  # varint length after the 0x0a tag
        byte = data[position]
        length |= (byte & 0x7F) << shift
        position += 1
        shift += 7
        if not byte & 0x80:
            break
    return np.frombuffer(data, dtype="<f4", count=length // 4, offset=position).astype(np.float32)


def note_to_example(note: NSynthNote) -> bytes:
    """Serialized ``tf.train.Example`` with the official NSynth feature names and types."""
    from tensorflow.core.example import example_pb2, feature_pb2

    example = example_pb2.Example()
    features = example.features.feature
    for name, value in note.metadata().items():
        if isinstance(value, str):
            features[name].bytes_list.value.append(value.encode("utf-8"))
        elif name == "qualities":
            features[name].int64_list.value.extend(value)
        elif name == "qualities_str":
            features[name].bytes_list.value.extend(text.encode("utf-8") for text in value)
        else:
            features[name].int64_list.value.append(int(value))
    features["audio"].float_list.CopyFrom(feature_pb2.FloatList.FromString(_float_list_bytes(note.samples)))
    return example.SerializeToString()


def note_from_example(record: bytes, where: str) -> NSynthNote:
    """Decodes one serialized NSynth Example; ``where`` names it in errors (``"<file> record 7"``).

    Required features: ``pitch``, ``velocity``, ``instrument_family`` and ``audio``; the others
    default (``note_str`` to ``where``, ``sample_rate`` to 16000, ``instrument_source`` to 0...).
    Raises DatasetError (one line naming ``where`` and the note) for an unusable record.
    """
    from google.protobuf.message import DecodeError
    from tensorflow.core.example import example_pb2

    try:
        example = example_pb2.Example.FromString(record)
    except DecodeError as error:
        raise DatasetError(f"{where}: not a tf.train.Example") from error
    features = example.features.feature

    def text(name: str, default: str) -> str:
        if name not in features or not features[name].bytes_list.value:
            return default
        try:
            return features[name].bytes_list.value[0].decode("utf-8")
        except UnicodeDecodeError:
            raise DatasetError(f"{where}: feature {name!r} is not UTF-8 text") from None

    note_str = text("note_str", "")
    label = f"{where} ({note_str})" if note_str else where
    for name in (*_REQUIRED, "audio"):
        if name not in features:
            raise DatasetError(f"{label}: feature {name!r} is missing; not an NSynth record")
    ints: dict[str, int] = {}
    for name in _INT_FEATURES:
        if name not in features:
            continue
        values = features[name].int64_list.value
        if len(values) != 1:
            raise DatasetError(f"{label}: feature {name!r} is not one int64")
        ints[name] = int(values[0])
    samples = _floats_from_list(features["audio"].float_list)
    if not len(samples) and features["audio"].WhichOneof("kind") not in (None, "float_list"):
        raise DatasetError(f"{label}: feature 'audio' is not a float list")
    qualities = _qualities(list(features["qualities"].int64_list.value) if "qualities" in features else None, label)
    note = NSynthNote(
        note_str=note_str or where,
        pitch=ints["pitch"],
        velocity=ints["velocity"],
        instrument_family=ints["instrument_family"],
        instrument_source=ints.get("instrument_source", 0),
        samples=samples,
        qualities=qualities,
        note=ints.get("note", 0),
        instrument=ints.get("instrument", 0),
        instrument_str=text("instrument_str", ""),
        sample_rate=ints.get("sample_rate", NSYNTH_SAMPLE_RATE_HZ),
    )
    _check_note(note, label)
    return note


def _qualities(values: Any, label: str) -> tuple[int, ...]:
    """The 10 quality flags (all 0 when absent); DatasetError unless exactly 10 flags of 0/1."""
    if values is None:
        return (0,) * len(QUALITY_NAMES)
    if (
        not isinstance(values, list)
        or len(values) != len(QUALITY_NAMES)
        or any(isinstance(flag, bool) or flag not in (0, 1) for flag in values)
    ):
        raise DatasetError(f"{label}: 'qualities' is not {len(QUALITY_NAMES)} flags of 0/1")
    return tuple(int(flag) for flag in values)


def _check_note(note: NSynthNote, label: str) -> None:
    problem = note_problem(
        note.pitch,
        note.velocity,
        note.instrument_family,
        note.instrument_source,
        note.sample_rate,
        note.samples.shape,
        _finite(note.samples),
    )
    if problem:
        raise DatasetError(f"{label}: {problem}")


def iter_tfrecord_file(path: str) -> Iterator[tuple[int, bytes]]:
    """Yields ``(record index, serialized record)`` of one TFRecord file.

    A missing, truncated or non-TFRecord file raises DatasetError naming it (after the records
    before the damage were yielded).
    """
    import tensorflow as tf

    from polyamp.data.tfrecord import _one_line

    if "://" not in path and not os.path.isfile(path):
        raise DatasetError(f"NSynth TFRecord file not found: {path}")
    iterator = iter(tf.data.TFRecordDataset([path]))
    index = 0
    while True:
        try:
            record = next(iterator)
        except StopIteration:
            return
        except tf.errors.OpError as error:
            raise DatasetError(
                f"{path} is not a valid TFRecord file (record {index}: {_one_line(error.message)}); "
                "re-download or re-write it"
            ) from error
        yield index, bytes(record.numpy())
        index += 1


def iter_nsynth_tfrecords(paths: str | Iterable[str], skipped: SkippedRecords | None = None) -> Iterator[NSynthNote]:
    """Yields the usable notes of NSynth TFRecord files, in file order.

    ``paths``: a list of files, or comma-separated globs (expanded by ``expand_examples_path``).
    Unusable records are skipped, logged and counted in ``skipped``; DatasetError if none is usable
    or a file is broken.
    """
    from polyamp.data.tfrecord import expand_examples_path

    files = expand_examples_path(paths) if isinstance(paths, str) else [str(path) for path in paths]
    skipped = SkippedRecords() if skipped is None else skipped
    yielded = 0
    for path in files:
        for index, record in iter_tfrecord_file(path):
            try:
                note = note_from_example(record, f"{path} record {index}")
            except DatasetError as error:
                skipped.add(str(error))
                continue
            yielded += 1
            yield note
    if not yielded:
        raise _nothing_usable(", ".join(files), skipped)


def parse_nsynth_tf(serialized: Any) -> dict[str, Any]:
    """Graph op (for ``tf.data``): a serialized NSynth Example -> dict of tensors.

    Keys: ``note_str``, ``instrument_str``, ``instrument_family_str``, ``instrument_source_str``
    (tf.string scalars); ``note``, ``instrument``, ``pitch``, ``velocity``, ``sample_rate``,
    ``instrument_family``, ``instrument_source`` (int64 scalars, -1 when missing; ``sample_rate``
    defaults to 16000); ``qualities`` (int64 ``[None]``); ``audio`` (float32 ``[None]``, 64000 in a
    good record: check with :func:`usable_nsynth_tf` before relying on the length).
    """
    import tensorflow as tf

    spec: dict[str, Any] = {
        name: tf.io.FixedLenFeature([], tf.string, default_value="")
        for name in ("note_str", "instrument_str", "instrument_family_str", "instrument_source_str")
    }
    for name in _INT_FEATURES:
        default = NSYNTH_SAMPLE_RATE_HZ if name == "sample_rate" else -1
        spec[name] = tf.io.FixedLenFeature([], tf.int64, default_value=default)
    spec["qualities"] = tf.io.RaggedFeature(tf.int64)
    spec["audio"] = tf.io.RaggedFeature(tf.float32)
    return tf.io.parse_single_example(serialized, spec)


def usable_nsynth_tf(features: dict[str, Any]) -> Any:
    """Graph op: bool scalar, whether :func:`parse_nsynth_tf` output passes :func:`note_problem`."""
    import tensorflow as tf

    def between(name: str, low: int, high: int) -> Any:
        return tf.logical_and(features[name] >= low, features[name] <= high)

    audio = features["audio"]
    return tf.reduce_all(
        tf.stack(
            [
                between("pitch", 0, 127),
                between("velocity", 1, 127),
                between("instrument_family", 0, NUM_NSYNTH_FAMILIES - 1),
                between("instrument_source", 0, len(SOURCE_NAMES) - 1),
                tf.equal(features["sample_rate"], NSYNTH_SAMPLE_RATE_HZ),
                tf.equal(tf.size(audio), NUM_NOTE_SAMPLES),
                tf.reduce_all(tf.math.is_finite(audio)),
            ]
        )
    )


def write_nsynth_tfrecord(
    path: str | os.PathLike[str], notes: Iterable[NSynthNote], overwrite: bool = False
) -> pathlib.Path:
    """Writes ``notes`` (streamed) to one NSynth TFRecord file, atomically; returns its path.

    Refuses an existing ``path`` (OutputExistsError) unless ``overwrite``.
    """
    from polyamp.data.tfrecord import write_tfrecord

    path = pathlib.Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"output file already exists: {path} (use --overwrite to replace it)")
    return write_tfrecord(path, (note_to_example(note) for note in notes))


# --------------------------------------------------------------------------------------------------------
# JSON + WAV folder release
# --------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FolderEntry:
    """One ``examples.json`` entry, checked, without its audio."""

    note_str: str
    pitch: int
    velocity: int
    instrument_family: int
    instrument_source: int
    qualities: tuple[int, ...]
    note: int
    instrument: int
    instrument_str: str
    sample_rate: int


def read_examples_json(folder: str | os.PathLike[str], skipped: SkippedRecords | None = None) -> list[FolderEntry]:
    """The checked entries of ``<folder>/examples.json``, in file order.

    A missing or broken file raises DatasetError naming it; an entry with missing or bad fields is
    skipped and counted in ``skipped``. Audio files are not opened here.
    """
    path = pathlib.Path(folder) / EXAMPLES_JSON
    skipped = SkippedRecords() if skipped is None else skipped
    try:
        with open(path, encoding="utf-8") as stream:
            index = json.load(stream)
    except FileNotFoundError:
        raise DatasetError(f"NSynth index not found: {path}") from None
    except json.JSONDecodeError as error:
        raise DatasetError(
            f"{path} is not valid JSON (line {error.lineno} column {error.colno}: {error.msg}); "
            "re-download or re-write it"
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(f"cannot read NSynth index {path}: {getattr(error, 'strerror', None) or error}") from None
    if not isinstance(index, dict):
        raise DatasetError(f"{path} is not an NSynth index: expected a JSON object of note_str -> note fields")
    entries = []
    for key, fields in index.items():
        try:
            entries.append(_folder_entry(path, key, fields))
        except DatasetError as error:
            skipped.add(str(error))
    return entries


def _folder_entry(path: pathlib.Path, key: str, fields: Any) -> FolderEntry:
    label = f"{path} entry {key!r}"
    if not isinstance(fields, dict):
        raise DatasetError(f"{label}: not a JSON object of note fields")
    problem = _name_problem(key)
    if problem:
        raise DatasetError(f"{label}: {problem}")
    if fields.get("note_str", key) != key:
        raise DatasetError(f"{label}: its note_str {fields['note_str']!r} differs from its key")
    ints: dict[str, int] = {}
    for name in _INT_FEATURES:
        if name not in fields:
            if name in _REQUIRED:
                raise DatasetError(f"{label}: field {name!r} is missing; not an NSynth entry")
            continue
        value = fields[name]
        if isinstance(value, bool) or not isinstance(value, int):
            raise DatasetError(f"{label}: field {name!r} is {value!r}, expected an integer")
        ints[name] = value
    qualities = _qualities(fields.get("qualities"), label)
    instrument_str = fields.get("instrument_str", "")
    entry = FolderEntry(
        note_str=key,
        pitch=ints["pitch"],
        velocity=ints["velocity"],
        instrument_family=ints["instrument_family"],
        instrument_source=ints.get("instrument_source", 0),
        qualities=qualities,
        note=ints.get("note", 0),
        instrument=ints.get("instrument", 0),
        instrument_str=instrument_str if isinstance(instrument_str, str) else str(instrument_str),
        sample_rate=ints.get("sample_rate", NSYNTH_SAMPLE_RATE_HZ),
    )
    problem = note_problem(
        entry.pitch,
        entry.velocity,
        entry.instrument_family,
        entry.instrument_source,
        entry.sample_rate,
        (NUM_NOTE_SAMPLES,),
        True,
    )
    if problem:
        raise DatasetError(f"{label}: {problem}")
    return entry


def wav_path_of(folder: str | os.PathLike[str], note_str: str) -> pathlib.Path:
    """``<folder>/audio/<note_str>.wav``."""
    return pathlib.Path(folder) / AUDIO_DIR / f"{note_str}.wav"


def read_folder_note(folder: str | os.PathLike[str], entry: FolderEntry) -> NSynthNote:
    """Loads the WAV of ``entry``; DatasetError (naming the WAV and note) if missing or unusable."""
    import soundfile

    path = wav_path_of(folder, entry.note_str)
    label = f"{path} ({entry.note_str})"
    try:
        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except FileNotFoundError:
        raise DatasetError(f"{label}: audio file is missing") from None
    except (OSError, RuntimeError, ValueError) as error:
        if not path.exists():
            raise DatasetError(f"{label}: audio file is missing") from None
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DatasetError(f"{label}: audio file cannot be decoded ({reason})") from None
    mono = samples[:, 0] if samples.shape[1] == 1 else samples.mean(axis=1, dtype=np.float32)
    note = NSynthNote(
        note_str=entry.note_str,
        pitch=entry.pitch,
        velocity=entry.velocity,
        instrument_family=entry.instrument_family,
        instrument_source=entry.instrument_source,
        samples=np.ascontiguousarray(mono, dtype=np.float32),
        qualities=entry.qualities,
        note=entry.note,
        instrument=entry.instrument,
        instrument_str=entry.instrument_str,
        sample_rate=int(rate),
    )
    _check_note(note, label)
    return note


def iter_nsynth_folder(folder: str | os.PathLike[str], skipped: SkippedRecords | None = None) -> Iterator[NSynthNote]:
    """Yields the usable notes of an NSynth folder (``examples.json`` + ``audio/*.wav``), in index order.

    Unusable entries and WAVs are skipped, logged and counted in ``skipped``; DatasetError if none
    is usable or ``examples.json`` is missing or broken.
    """
    skipped = SkippedRecords() if skipped is None else skipped
    yielded = 0
    for entry in read_examples_json(folder, skipped):
        try:
            note = read_folder_note(folder, entry)
        except DatasetError as error:
            skipped.add(str(error))
            continue
        yielded += 1
        yield note
    if not yielded:
        raise _nothing_usable(str(pathlib.Path(folder) / EXAMPLES_JSON), skipped)


def write_nsynth_folder(
    folder: str | os.PathLike[str], notes: Iterable[NSynthNote], overwrite: bool = False
) -> pathlib.Path:
    """Writes ``notes`` (streamed) as ``<folder>/audio/<note_str>.wav`` + ``<folder>/examples.json``.

    WAVs are 16 kHz 16-bit mono; every file is written atomically, ``examples.json`` last. Refuses
    existing files (OutputExistsError) unless ``overwrite``; a note louder than full scale or a
    repeated ``note_str`` raises ValueError. Returns the ``examples.json`` path.
    """
    from polyamp.audio.decode import encode_wav
    from polyamp.fileio import atomic_write_bytes, atomic_write_text

    folder = pathlib.Path(folder)
    index_path = folder / EXAMPLES_JSON
    if index_path.exists() and not overwrite:
        raise OutputExistsError(f"output file already exists: {index_path} (use --overwrite to replace it)")
    index: dict[str, dict[str, Any]] = {}
    for note in notes:
        if note.note_str in index:
            raise ValueError(f"NSynth note_str {note.note_str!r} occurs twice")
        problem = _name_problem(note.note_str)
        if problem:
            raise ValueError(f"NSynth note {note.note_str!r}: {problem}")
        _check_note(note, f"NSynth note {note.note_str!r}")
        peak = float(np.max(np.abs(note.samples)))
        if peak > 1.0:
            raise ValueError(
                f"NSynth note {note.note_str!r} peaks at {peak:.3f}, above full scale; normalise it before writing"
            )
        wav_path = wav_path_of(folder, note.note_str)
        if wav_path.exists() and not overwrite:
            raise OutputExistsError(f"output file already exists: {wav_path} (use --overwrite to replace it)")
        atomic_write_bytes(wav_path, encode_wav(note.samples, note.sample_rate))
        index[note.note_str] = note.metadata()
    atomic_write_text(index_path, json.dumps(index, indent=1) + "\n")
    return index_path


# --------------------------------------------------------------------------------------------------------
# Opening a dataset in either format
# --------------------------------------------------------------------------------------------------------

_SPLIT_NAMES = {
    "train": "train",
    "training": "train",
    "valid": "valid",
    "validation": "valid",
    "val": "valid",
    "eval": "valid",
    "dev": "valid",
    "test": "test",
}


@dataclasses.dataclass
class NSynthSource:
    """An opened NSynth dataset: ``kind`` is ``"folder"`` (``location`` = the folder) or ``"tfrecord"``.

    Iterating yields its usable notes; the skipped records of the last pass are in ``skipped``.
    """

    kind: str
    location: str
    files: list[str]
    skipped: SkippedRecords = dataclasses.field(default_factory=SkippedRecords)

    def __iter__(self) -> Iterator[NSynthNote]:
        self.skipped = SkippedRecords()
        if self.kind == "folder":
            return iter_nsynth_folder(self.location, self.skipped)
        return iter_nsynth_tfrecords(self.files, self.skipped)


def _is_folder_release(path: str) -> bool:
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, EXAMPLES_JSON))


def _split_location(folder: str, split: str) -> str | None:
    """``nsynth-<split>/`` (folder release) or ``nsynth-<split>.tfrecord*`` files inside ``folder``."""
    name = _SPLIT_NAMES.get(split.strip().lower())
    if name is None:
        return None
    sub = os.path.join(folder, f"nsynth-{name}")
    if _is_folder_release(sub):
        return sub
    files = sorted(
        os.path.join(folder, entry)
        for entry in os.listdir(folder)
        if entry.startswith(f"nsynth-{name}.tfrecord") and os.path.isfile(os.path.join(folder, entry))
    )
    return ",".join(files) if files else None


def open_nsynth(examples_path: str, split: str | None = None) -> NSynthSource:
    """Opens an NSynth dataset in either release format.

    ``examples_path``: a folder holding ``examples.json`` (folder release), or comma-separated
    TFRecord files/globs/folders. With ``split`` (train, valid/validation, test), a folder holding the
    official ``nsynth-<split>/`` folders or ``nsynth-<split>.tfrecord`` files is narrowed to that
    split; a path naming one dataset directly is used whole. Raises DatasetError if nothing matches.
    """
    from polyamp.data.tfrecord import expand_examples_path

    path = str(examples_path).strip()
    if not path:
        raise DatasetError("NSynth examples path is empty")
    local = os.path.expanduser(path)
    if _is_folder_release(local):
        return NSynthSource("folder", local, [])
    if split and "," not in path and os.path.isdir(local):
        narrowed = _split_location(local, split)
        if narrowed is not None:
            if _is_folder_release(narrowed):
                return NSynthSource("folder", narrowed, [])
            return NSynthSource("tfrecord", narrowed, narrowed.split(","))
    if os.path.isdir(local) and not any(".tfrecord" in entry for entry in os.listdir(local)):
        raise DatasetError(
            f"{path} is not an NSynth dataset: no {EXAMPLES_JSON}, no *.tfrecord* files"
            f"{f', no nsynth-{split} folder or TFRecord' if split else ''}"
        )
    files = expand_examples_path(path)
    return NSynthSource("tfrecord", path, files)
