"""The ``slakh`` dataset plugin: Slakh2100 tracks (or ``polyamp synth`` output) as training examples.

An example is a track's mix (resampled to 16 kHz mono) with the notes of every rendered stem.
With ``submix_probability`` p, a training example (``tf_dataset``) is, with probability p, the sum of
a random subset of the rendered stems (``min_submix_stems`` to ``max_submix_stems``, 0 = all) with only
those stems' notes.
Drum notes stay ``is_drum`` (the label code skips them); ``include_drums_audio=False`` removes the
drum stems from the audio, and their notes with them. ``examples()`` (evaluation) never submixes.
``audio_cache_mb`` > 0 keeps decoded stems in memory (least recently used dropped first), so
training on random sub-mixes decodes each stem file once instead of once per draw.

Bad tracks (broken metadata, missing files, unreadable MIDI or audio) are skipped with a one-line
warning and their messages kept in ``SlakhDataset.skipped``; DatasetError only if none is usable.
"""

from __future__ import annotations

import copy
import functools
import logging
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import gin
import numpy as np

from polyamp.data.audio_cache import AudioCache
from polyamp.data.datasets import Example
from polyamp.data.slakh_layout import SlakhStem, SlakhTrack, find_slakh_tracks, track_sequence
from polyamp.errors import AudioError, ConfigError, DatasetError, PolyampError
from polyamp.registry import DATASETS

logger = logging.getLogger(__name__)

_UINT64_MASK = (1 << 64) - 1


@DATASETS.register("slakh")
@gin.configurable
class SlakhDataset:
    """Slakh2100 (``<root>/<split>/TrackNNNNN``), one split folder, or one track folder.

    ``split`` picks a split folder of a dataset root (``omitted`` only when named); ``None`` reads
    train, validation and test. ``seed`` fixes the submix draws (default: ``tf_dataset``'s seed).
    """

    def __init__(
        self,
        examples_path: str,
        split: str | None = None,
        submix_probability: float = 0.0,
        min_submix_stems: int = 1,
        max_submix_stems: int = 0,
        include_drums_audio: bool = True,
        seed: int | None = None,
        audio_cache_mb: float = 0.0,
    ) -> None:
        if not 0.0 <= float(submix_probability) <= 1.0:
            raise ConfigError(f"SlakhDataset.submix_probability must be in [0, 1], got {submix_probability}")
        if int(min_submix_stems) < 1:
            raise ConfigError(f"SlakhDataset.min_submix_stems must be at least 1, got {min_submix_stems}")
        if int(max_submix_stems) < 0 or 0 < int(max_submix_stems) < int(min_submix_stems):
            raise ConfigError(
                f"SlakhDataset.max_submix_stems must be 0 (all) or at least min_submix_stems, got {max_submix_stems}"
            )
        if float(audio_cache_mb) < 0:
            raise ConfigError(f"SlakhDataset.audio_cache_mb must be >= 0, got {audio_cache_mb}")
        if not examples_path:
            raise DatasetError("--examples-path is empty (expected a Slakh dataset, split or track folder)")
        self.examples_path = str(examples_path)
        self.split = split
        self.submix_probability = float(submix_probability)
        self.min_submix_stems = int(min_submix_stems)
        self.max_submix_stems = int(max_submix_stems)
        self.include_drums_audio = bool(include_drums_audio)
        self.seed = seed
        self.audio_cache = AudioCache(int(float(audio_cache_mb) * 2**20))
        self.skipped: list[str] = []
        self._bad: set[int] = set()
        self._lock = threading.Lock()

        tracks = find_slakh_tracks(self.examples_path, split, skipped=self.skipped)
        usable = []
        for track in tracks:
            if self._audio_stems(track):
                usable.append(track)
            else:
                what = "non-drum " if not self.include_drums_audio else ""
                self._skip(f"{track.metadata_path}: no {what}stem was rendered, so the track has no usable audio")
        if not usable:
            raise DatasetError(
                f"no usable Slakh track under {self.examples_path}: all were skipped (first: {self.skipped[0]})"
            )
        self.tracks: list[SlakhTrack] = usable

    def shard(self, num_shards: int, index: int) -> SlakhDataset | None:
        """The same dataset over tracks ``index``, ``index + num_shards``, ...; None with fewer tracks than shards."""
        if len(self.tracks) < num_shards:
            return None
        part = copy.copy(self)
        part.tracks = self.tracks[index::num_shards]
        part._bad = set()
        part._lock = threading.Lock()
        return part

    # ----------------------------------------------------------------------------------------------------
    # Building one example
    # ----------------------------------------------------------------------------------------------------

    def _audio_stems(self, track: SlakhTrack) -> list[SlakhStem]:
        """The rendered stems whose audio goes into this dataset's examples."""
        return [stem for stem in track.rendered_stems if self.include_drums_audio or not stem.is_drum]

    def _skip(self, message: str) -> None:
        logger.warning("skipping Slakh track: %s", message)
        with self._lock:
            self.skipped.append(message)

    def build_example(self, track: SlakhTrack, rng: np.random.Generator | None = None) -> Example:
        """The example of ``track``: its mix and notes, or (when ``rng`` draws one) a random submix.

        Samples are float32 mono 16 kHz ``[num_samples]``. Raises PolyampError for unreadable files.
        """
        from polyamp.audio.decode import SILENCE_PEAK, check_audible, load_audio

        candidates = self._audio_stems(track)
        if rng is not None and rng.random() < self.submix_probability:
            low = min(self.min_submix_stems, len(candidates))
            high = len(candidates) if self.max_submix_stems == 0 else min(self.max_submix_stems, len(candidates))
            count = int(rng.integers(low, high + 1))
            chosen = sorted(int(index) for index in rng.choice(len(candidates), size=count, replace=False))
            subset = [candidates[index] for index in chosen]
            samples = _sum_stems(subset, self.audio_cache)
            if samples.size and float(np.max(np.abs(samples))) >= SILENCE_PEAK:
                stem_ids = [stem.stem_id for stem in subset]
                return _example(f"{track.example_id}[{'+'.join(stem_ids)}]", track_sequence(track, stem_ids), samples)
            # A silent subset would teach notes without sound: use the whole example instead.
        if len(candidates) == len(track.rendered_stems):
            return _example(track.example_id, track_sequence(track), load_audio(track.mix_path))
        samples = _sum_stems(candidates, self.audio_cache)
        check_audible(float(np.max(np.abs(samples))) if samples.size else 0.0, str(track.track_dir / "stems"))
        return _example(track.example_id, track_sequence(track, [stem.stem_id for stem in candidates]), samples)

    def _read_for_tf(self, index: Any, draw: Any) -> tuple[bytes, bytes, np.ndarray]:
        """``(id, serialized NoteSequence, samples)`` of track ``index``; empty id for a bad track."""
        index = int(index)
        empty = (b"", b"", np.zeros(0, np.float32))
        if index in self._bad:
            return empty
        track = self.tracks[index]
        rng = np.random.default_rng(int(draw) & _UINT64_MASK) if self.submix_probability > 0 else None
        try:
            example = self.build_example(track, rng)
        except PolyampError as error:
            with self._lock:
                first_time = index not in self._bad
                self._bad.add(index)
            if first_time:
                self._skip(str(error))
            return empty
        return (
            example.example_id.encode("utf-8"),
            example.sequence.SerializeToString(),
            np.asarray(example.samples, np.float32),
        )

    # ----------------------------------------------------------------------------------------------------
    # The dataset plugin interface
    # ----------------------------------------------------------------------------------------------------

    def tf_dataset(self, shuffle_files: bool, seed: int | None = None) -> Any:
        """``tf.data.Dataset`` of ``{"id": string, "sequence": serialized NoteSequence, "samples": float32 [n]}``.

        Tracks are read in parallel with ``tf.numpy_function``; bad tracks are dropped (and counted
        in ``skipped``). Each pass over the dataset draws new submixes (deterministic for a seed).
        """
        import tensorflow as tf

        indices = tf.data.Dataset.range(len(self.tracks))
        if shuffle_files:
            indices = indices.shuffle(len(self.tracks), seed=seed, reshuffle_each_iteration=True)
        draw_seed = self.seed if self.seed is not None else seed
        draws = tf.data.Dataset.random(seed=draw_seed, rerandomize_each_iteration=True)
        dataset = tf.data.Dataset.zip((indices, draws))

        def read(index: Any, draw: Any) -> dict[str, Any]:
            example_id, sequence, samples = tf.numpy_function(
                self._read_for_tf, [index, draw], [tf.string, tf.string, tf.float32], stateful=True
            )
            example_id.set_shape([])
            sequence.set_shape([])
            samples.set_shape([None])
            return {"id": example_id, "sequence": sequence, "samples": samples}

        dataset = dataset.map(read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=not shuffle_files)
        return dataset.filter(lambda example: tf.strings.length(example["id"]) > 0)

    def examples(self) -> Iterator[Example]:
        """Every usable track's full mix and NoteSequence, in track order (never a submix)."""
        yielded = 0
        for index, track in enumerate(self.tracks):
            if index in self._bad:
                continue
            try:
                example = self.build_example(track)
            except PolyampError as error:
                self._bad.add(index)
                self._skip(str(error))
                continue
            yielded += 1
            yield example
        if not yielded:
            first = f" (first: {self.skipped[0]})" if self.skipped else ""
            raise DatasetError(f"no usable Slakh track under {self.examples_path}: all were skipped{first}")


def _example(example_id: str, sequence: Any, samples: np.ndarray) -> Example:
    sequence.id = example_id
    return Example(example_id, sequence, np.asarray(samples, np.float32))


def _sum_stems(stems: Sequence[SlakhStem], cache: AudioCache | None = None) -> np.ndarray:
    """Sum of the stems' audio, float32 mono 16 kHz ``[num_samples]`` (the longest stem's length).

    Silent stems are allowed (only the sum matters); AudioError names an unreadable stem file.
    ``cache`` keeps decoded stems for the next call.
    """
    parts = []
    for stem in stems:
        if stem.audio_path is None:  # read_track_metadata checks rendered stems; guard other callers
            raise AudioError(f"stem {stem.stem_id} has no audio file")
        read = functools.partial(_read_stem, stem.audio_path)
        parts.append(cache.get(str(stem.audio_path), read) if cache is not None else read())
    total = np.zeros(max((len(part) for part in parts), default=0), np.float32)
    for part in parts:
        total[: len(part)] += part
    return total


def _read_stem(path: Any) -> np.ndarray:
    """A stem file's samples, float32 mono 16 kHz ``[num_samples]``; AudioError if unreadable."""
    from polyamp.audio.decode import AudioReader

    with AudioReader(path) as reader:
        return reader.read(0, reader.num_samples)
