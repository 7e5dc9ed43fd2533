"""Magenta-style TFRecords of transcription examples.

Each record is a serialized ``tf.train.Example`` with four bytes features, exactly as in
Magenta's MAESTRO TFRecords:

- ``id``: the example name (UTF-8),
- ``sequence``: a serialized ``NoteSequence`` (times in seconds from the start of the audio),
- ``audio``: a complete WAV file (16 kHz mono 16-bit PCM when written by PolyAMP),
- ``velocity_range``: a serialized ``VelocityRange`` with the min/max note velocity.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pathlib
import re
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from polyamp.errors import DatasetError

if TYPE_CHECKING:
    from note_seq.protobuf.music_pb2 import NoteSequence

FEATURE_NAMES = ("id", "sequence", "audio", "velocity_range")
TMP_MARKER = ".tmp-"
"""Files being written are called ``<final name>.tmp-<pid>``; globs and folder listings skip them."""

_GLOB_CHARS = set("*?[")


def velocity_range_of(sequence: NoteSequence) -> tuple[int, int]:
    """(min, max) note velocity of ``sequence``; (0, 0) when it has no notes (as Magenta does)."""
    velocities = [note.velocity for note in sequence.notes]
    if not velocities:
        return 0, 0
    return min(velocities), max(velocities)


def make_example(
    example_id: str,
    sequence: NoteSequence,
    wav_bytes: bytes,
    velocity_range: tuple[int, int] | None = None,
) -> bytes:
    """Serialized ``tf.train.Example`` for one example.

    ``wav_bytes`` is a whole WAV file; ``velocity_range`` (min, max) defaults to the range of
    ``sequence``'s notes (pass the whole piece's range when writing chunks of it).
    """
    import tensorflow as tf
    from note_seq.protobuf import music_pb2

    low, high = velocity_range if velocity_range is not None else velocity_range_of(sequence)
    velocity_proto = music_pb2.VelocityRange(min=int(low), max=int(high))

    def feature(value: bytes) -> Any:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    example = tf.train.Example(
        features=tf.train.Features(
            feature={
                "id": feature(example_id.encode("utf-8")),
                "sequence": feature(sequence.SerializeToString()),
                "audio": feature(bytes(wav_bytes)),
                "velocity_range": feature(velocity_proto.SerializeToString()),
            }
        )
    )
    return example.SerializeToString()


def write_tfrecord(path: str | os.PathLike[str], serialized_examples: Iterable[bytes]) -> pathlib.Path:
    """Writes serialized examples to one TFRecord file, atomically (``<path>.tmp-<pid>`` then rename).

    Streams: ``serialized_examples`` may be a generator. Overwrites ``path`` if it exists (callers
    check for existing outputs). Returns ``path``.
    """
    import tensorflow as tf

    from polyamp.fileio import output_error

    path = pathlib.Path(path)
    tmp = path.with_name(f"{path.name}{TMP_MARKER}{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tf.io.TFRecordWriter(str(tmp)) as writer:
            for record in serialized_examples:
                writer.write(record)
        os.replace(tmp, path)
    except (tf.errors.OpError, OSError) as error:
        raise output_error(path, error, "TFRecord file") from error
    finally:
        with contextlib.suppress(OSError):
            if tmp.exists():
                tmp.unlink()
    return path


def expand_examples_path(examples_path: str) -> list[str]:
    """Sorted unique files named by ``examples_path``: comma-separated globs, files or directories.

    A directory stands for its ``*.tfrecord*`` files. A glob matching nothing, a missing file or
    a directory without TFRecords raises DatasetError naming it. Unfinished ``*.tmp-<pid>``
    files are ignored. Remote paths (``scheme://...``) are globbed with ``tf.io.gfile``.
    """
    parts = [part.strip() for part in str(examples_path).split(",") if part.strip()]
    if not parts:
        raise DatasetError(f"examples path {examples_path!r} names no files")
    files: set[str] = set()
    for part in parts:
        if "://" in part:
            matches = _remote_glob(part)
        elif _GLOB_CHARS & set(part):
            matches = [match for match in glob.glob(os.path.expanduser(part)) if os.path.isfile(match)]
        else:
            local = os.path.expanduser(part)
            if os.path.isdir(local):
                matches = [os.path.join(local, name) for name in os.listdir(local) if ".tfrecord" in name]
                matches = [match for match in matches if os.path.isfile(match)]
                matches = [match for match in matches if TMP_MARKER not in os.path.basename(match)]
                if not matches:
                    raise DatasetError(f"no *.tfrecord* files in directory {part}")
            elif os.path.isfile(local):
                matches = [local]
            else:
                raise DatasetError(f"examples file not found: {part}")
        matches = [match for match in matches if TMP_MARKER not in os.path.basename(match)]
        if not matches:
            raise DatasetError(f"no files match {part!r}")
        files.update(matches)
    return sorted(files)


def _remote_glob(pattern: str) -> list[str]:
    import tensorflow as tf

    try:
        if _GLOB_CHARS & set(pattern):
            return sorted(tf.io.gfile.glob(pattern))
        if tf.io.gfile.isdir(pattern):
            return sorted(
                f"{pattern.rstrip('/')}/{name}" for name in tf.io.gfile.listdir(pattern) if ".tfrecord" in name
            )
        return [pattern] if tf.io.gfile.exists(pattern) else []
    except tf.errors.OpError as error:
        raise DatasetError(f"cannot list {pattern}: {error.message}") from error


def parse_example_tf(serialized: Any) -> dict[str, Any]:
    """Graph op (for ``tf.data``): a serialized Example -> ``{id, sequence, audio, velocity_range}``.

    Each value is a scalar ``tf.string`` tensor.
    """
    import tensorflow as tf

    spec = {name: tf.io.FixedLenFeature([], tf.string) for name in FEATURE_NAMES}
    return tf.io.parse_single_example(serialized, spec)


def check_tfrecords(paths: list[str]) -> None:
    """Quick validation of each file's first record (only the first: fast on large datasets).

    A missing, empty, corrupt or non-TFRecord file, a record without the four features, or
    features that do not decode (NoteSequence, VelocityRange, WAV header) raise DatasetError
    naming the file.
    """
    import tensorflow as tf

    if not paths:
        raise DatasetError("no TFRecord files given")
    for path in paths:
        if "://" not in str(path) and not os.path.isfile(path):
            raise DatasetError(f"TFRecord file not found: {path}")
        try:
            first = next(iter(tf.data.TFRecordDataset([str(path)]).take(1)), None)
        except tf.errors.OpError as error:
            raise DatasetError(f"{path} is not a valid TFRecord file: {_one_line(error.message)}") from error
        if first is None:
            raise DatasetError(f"TFRecord file {path} holds no examples")
        _decode_record(bytes(first.numpy()), path)
        try:
            parse_example_tf(first)
        except tf.errors.OpError as error:
            raise DatasetError(f"{path} holds a record that does not parse: {_one_line(error.message)}") from error


def iter_examples(paths: str | Iterable[str]) -> Iterator[dict[str, Any]]:
    """Yields every example of ``paths`` (a list of files, or an examples path string to expand).

    Each item: ``{"id": str, "sequence": NoteSequence, "audio": bytes (a WAV file),
    "velocity_range": VelocityRange, "path": str}``. A corrupt record raises DatasetError naming
    its file.
    """
    import tensorflow as tf

    files = expand_examples_path(paths) if isinstance(paths, str) else [str(path) for path in paths]
    for path in files:
        if "://" not in path and not os.path.isfile(path):
            raise DatasetError(f"TFRecord file not found: {path}")
        iterator = iter(tf.data.TFRecordDataset([path]))
        while True:
            try:
                record = next(iterator)
            except StopIteration:
                break
            except tf.errors.OpError as error:
                raise DatasetError(f"{path} is not a valid TFRecord file: {_one_line(error.message)}") from error
            yield _decode_record(bytes(record.numpy()), path)


def _decode_record(record: bytes, path: str) -> dict[str, Any]:
    """Python-side decode of one serialized Example from file ``path``."""
    from google.protobuf.message import DecodeError
    from note_seq.protobuf import music_pb2
    from tensorflow.core.example import example_pb2

    try:
        example = example_pb2.Example.FromString(record)
    except DecodeError as error:
        raise DatasetError(f"{path} holds a record that is not a tf.train.Example") from error
    features = example.features.feature
    values = {}
    for name in FEATURE_NAMES:
        if name not in features or len(features[name].bytes_list.value) != 1:
            raise DatasetError(
                f"{path} is not a Magenta-style TFRecord: feature {name!r} is missing "
                f"(expected bytes features {', '.join(FEATURE_NAMES)})"
            )
        values[name] = features[name].bytes_list.value[0]
    try:
        sequence = music_pb2.NoteSequence.FromString(values["sequence"])
        velocity_range = music_pb2.VelocityRange.FromString(values["velocity_range"])
    except DecodeError as error:
        raise DatasetError(f"{path} holds a record whose sequence or velocity_range does not decode") from error
    audio = values["audio"]
    if audio[:4] != b"RIFF" or audio[8:12] != b"WAVE":
        raise DatasetError(f"{path} holds a record whose 'audio' feature is not a WAV file")
    try:
        example_id = values["id"].decode("utf-8")
    except UnicodeDecodeError as error:
        raise DatasetError(f"{path} holds a record whose 'id' is not UTF-8 text") from error
    return {
        "id": example_id,
        "sequence": sequence,
        "audio": audio,
        "velocity_range": velocity_range,
        "path": path,
    }


def _one_line(message: str) -> str:
    """TensorFlow's error text without its ``{{function_node ...}}`` and ``[Op:...]`` decorations."""
    text = re.sub(r"\{\{[^}]*\}\}", "", str(message))
    text = re.sub(r"\[Op:[^\]]*\].*$", "", text, flags=re.DOTALL)
    text = " ".join(text.split())
    return text[:200] or "unreadable record"
