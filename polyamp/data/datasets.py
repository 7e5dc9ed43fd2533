"""Dataset plugins: where training and evaluation examples come from.

Every dataset plugin turns an ``--examples-path`` into (a) a ``tf.data.Dataset`` of dicts
``{"id": string, "sequence": serialized NoteSequence, "samples": float32 [num_samples] at 16 kHz}``
for streaming training, and (b) a Python iterator of :class:`Example` for evaluation.

- ``tfrecord``: Magenta-style TFRecords from comma-separated globs (``a/train.tfrecord-*,b/*.tfrecord``).
- ``folder``: a MAESTRO folder as distributed, or any folder of audio files with same-stem MIDI.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import pathlib
from collections.abc import Iterator
from typing import Any

import gin

from polyamp.errors import DatasetError
from polyamp.registry import DATASETS


@dataclasses.dataclass
class Example:
    """One evaluation example: its id, its reference NoteSequence and its samples (16 kHz mono)."""

    example_id: str
    sequence: Any
    samples: Any


@DATASETS.register("tfrecord")
class TFRecordDataset:
    """Magenta-style TFRecords: features ``id``, ``sequence``, ``audio`` (WAV bytes), ``velocity_range``."""

    def __init__(self, examples_path: str, split: str | None = None) -> None:
        from polyamp.data.tfrecord import check_tfrecords, expand_examples_path

        self.files = expand_examples_path(examples_path)
        check_tfrecords(self.files)

    def shard(self, num_shards: int, index: int) -> TFRecordDataset | None:
        """The same dataset over files ``index``, ``index + num_shards``, ...; None with fewer files than shards."""
        if len(self.files) < num_shards:
            return None
        part = copy.copy(self)
        part.files = self.files[index::num_shards]
        return part

    def tf_dataset(self, shuffle_files: bool, seed: int | None = None) -> Any:
        import tensorflow as tf

        from polyamp.audio.decode import decode_wav_tf
        from polyamp.data.tfrecord import parse_example_tf

        files = tf.data.Dataset.from_tensor_slices(self.files)
        if shuffle_files:
            files = files.shuffle(len(self.files), seed=seed, reshuffle_each_iteration=True)
        records = files.interleave(
            tf.data.TFRecordDataset,
            cycle_length=min(4, len(self.files)),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=not shuffle_files,
        )

        def decode(serialized: Any) -> dict[str, Any]:
            features = parse_example_tf(serialized)
            return {
                "id": features["id"],
                "sequence": features["sequence"],
                "samples": decode_wav_tf(features["audio"]),
            }

        return records.map(decode, num_parallel_calls=tf.data.AUTOTUNE)

    def examples(self) -> Iterator[Example]:
        import tensorflow as tf

        from polyamp.audio.decode import decode_wav_tf
        from polyamp.data.tfrecord import _one_line, iter_examples

        for record in iter_examples(self.files):
            try:
                samples = decode_wav_tf(tf.constant(record["audio"])).numpy()
            except tf.errors.OpError as error:
                raise DatasetError(
                    f"{record['path']} holds a record ({record['id']!r}) whose 'audio' WAV does not decode: "
                    f"{_one_line(error.message)}"
                ) from None
            yield Example(record["id"], record["sequence"], samples)


@DATASETS.register("folder")
class FolderDataset:
    """A MAESTRO folder (CSV/JSON index with splits) or any folder of audio + same-stem MIDI files."""

    def __init__(self, examples_path: str, split: str | None = None) -> None:
        from polyamp.data.folders import find_audio_midi_pairs, is_maestro_folder, read_maestro_index

        pairs = (
            read_maestro_index(examples_path)
            if is_maestro_folder(examples_path)
            else find_audio_midi_pairs(examples_path)
        )
        if split is not None and any(pair.split == split for pair in pairs):
            # MAESTRO's index and train/validation/test sub-folders name splits; a flat folder is used whole.
            pairs = [pair for pair in pairs if pair.split == split]
        if not pairs:
            raise DatasetError(f"no audio/MIDI pairs{f' in split {split!r}' if split else ''} under {examples_path}")
        self.pairs = pairs

    def shard(self, num_shards: int, index: int) -> FolderDataset | None:
        """The same dataset over pieces ``index``, ``index + num_shards``, ...; None with fewer pieces than shards."""
        if len(self.pairs) < num_shards:
            return None
        part = copy.copy(self)
        part.pairs = self.pairs[index::num_shards]
        return part

    def _sequence_bytes(self, pair: Any) -> bytes:
        from polyamp.notes.midi import read_midi

        return read_midi(pair.midi_path).SerializeToString()

    def tf_dataset(self, shuffle_files: bool, seed: int | None = None) -> Any:
        import numpy as np
        import tensorflow as tf

        from polyamp.audio.decode import load_audio

        ids = [pair.example_id for pair in self.pairs]
        audio_paths = [str(pair.audio_path) for pair in self.pairs]
        sequences = [self._sequence_bytes(pair) for pair in self.pairs]
        dataset = tf.data.Dataset.from_tensor_slices((ids, audio_paths, sequences))
        if shuffle_files:
            dataset = dataset.shuffle(len(ids), seed=seed, reshuffle_each_iteration=True)

        def read(example_id: Any, audio_path: Any, sequence: Any) -> dict[str, Any]:
            samples = tf.numpy_function(
                lambda path: load_audio(path.decode()).astype(np.float32), [audio_path], tf.float32
            )
            samples.set_shape([None])
            return {"id": example_id, "sequence": sequence, "samples": samples}

        return dataset.map(read, num_parallel_calls=tf.data.AUTOTUNE)

    def examples(self) -> Iterator[Example]:
        from note_seq.protobuf import music_pb2

        from polyamp.audio.decode import load_audio

        for pair in self.pairs:
            sequence = music_pb2.NoteSequence.FromString(self._sequence_bytes(pair))
            yield Example(pair.example_id, sequence, load_audio(pair.audio_path))


@gin.configurable
def open_dataset(examples_path: str, dataset: str = "auto", split: str | None = None) -> Any:
    """Opens ``examples_path`` with the dataset plugin called ``dataset``.

    ``auto`` picks by what the path holds: a Slakh2100-layout folder (``slakh``), an NSynth JSON +
    WAV folder (``nsynth``), another folder without TFRecords (``folder``), else ``tfrecord``.
    The ``mixture`` plugin takes its paths from gin, so ``examples_path`` may then be empty.
    """
    if not examples_path and dataset != "mixture":
        raise DatasetError("--examples-path is empty")
    if dataset == "auto":
        dataset = _detect_dataset(examples_path)
    return DATASETS.get(dataset)(examples_path, split=split)


def _detect_dataset(examples_path: str) -> str:
    if not os.path.isdir(examples_path):
        return "tfrecord"
    root = pathlib.Path(examples_path)
    if looks_like_slakh(root):
        return "slakh"
    if (root / "examples.json").is_file():
        return "nsynth"
    return "tfrecord" if _holds_tfrecords(examples_path) else "folder"


def looks_like_slakh(root: pathlib.Path) -> bool:
    """A Slakh track folder, a split folder of tracks, or a dataset root of split folders."""
    for pattern in ("metadata.yaml", "*/metadata.yaml", "*/*/metadata.yaml"):
        for metadata in root.glob(pattern):
            if (metadata.parent / "MIDI").is_dir() or (metadata.parent / "stems").is_dir():
                return True
    return False


def _holds_tfrecords(folder: str) -> bool:
    return any(".tfrecord" in name for name in os.listdir(folder))
