"""Turning a folder of audio + MIDI pairs (or MAESTRO) into Magenta-style TFRecord shards.

Training pieces are cut into chunks of ``min_chunk_s``-``max_chunk_s`` seconds, preferably in
silences of the score; validation and test pieces are kept whole. Output files are named like
Magenta's: ``<output_dir>/<split>.tfrecord-00003-of-00012``.

Streaming: one piece is in memory at a time; records go straight to the shard files, which are
written as ``<name>.tmp-<pid>`` and renamed only when every split has been written.
"""

from __future__ import annotations

import logging
import math
import os
import pathlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from polyamp.constants import SAMPLE_RATE_HZ
from polyamp.data.folders import (
    SPLITS,
    AudioMidiPair,
    find_audio_midi_pairs,
    is_maestro_folder,
    read_maestro_index,
)
from polyamp.errors import AudioError, ConfigError, DatasetError, OutputExistsError, PolyampError

if TYPE_CHECKING:
    from note_seq.protobuf.music_pb2 import NoteSequence

logger = logging.getLogger(__name__)

RECORDS_PER_SHARD = 200
"""With ``num_shards=0`` the number of shards is about one per this many records."""
KINDS = ("auto", "maestro", "folder")
_LENGTH_MISMATCH_WARN_S = 1.0


def prepare_dataset(
    input_dir: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    kind: str = "auto",
    num_shards: int = 0,
    min_chunk_s: float = 5.0,
    max_chunk_s: float = 20.0,
    sample_rate_hz: int = SAMPLE_RATE_HZ,
    splits: Sequence[str] = SPLITS,
    sustain: bool = True,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, list[pathlib.Path]]:
    """Writes ``<output_dir>/<split>.tfrecord-NNNNN-of-MMMMM`` shards; returns the paths per split.

    ``kind``: ``maestro`` (a MAESTRO index), ``folder`` (audio files with same-stem MIDI) or
    ``auto``. ``num_shards`` per split (0: about one per 200 records, at least 1). Audio is
    read as mono at ``sample_rate_hz``; the sustain pedal is applied to the notes if ``sustain``.
    Train pieces are cut into ``min_chunk_s``-``max_chunk_s`` s chunks (times restart at 0 in
    each); other splits are written whole. Splits without pieces get no files. Refuses existing
    ``<split>.tfrecord*`` outputs (OutputExistsError) unless ``overwrite``. ``progress(done, total)``
    is called after each piece. A bad audio or MIDI file raises an error naming it and leaves no
    new output behind.
    """
    if kind not in KINDS:
        raise ConfigError(f"unknown dataset kind {kind!r}; valid kinds: {', '.join(KINDS)}")
    if not min_chunk_s > 0 or not max_chunk_s >= min_chunk_s:
        raise ConfigError(
            f"chunk lengths must satisfy 0 < min_chunk_s <= max_chunk_s, got {min_chunk_s} and {max_chunk_s}"
        )
    if num_shards < 0:
        raise ConfigError(f"num_shards must be >= 0 (0 = automatic), got {num_shards}")
    unknown = [split for split in splits if split not in SPLITS]
    if unknown or not splits:
        raise ConfigError(f"unknown split(s) {', '.join(unknown) or '(none given)'}; valid splits: {', '.join(SPLITS)}")

    input_dir = pathlib.Path(input_dir)
    output_dir = pathlib.Path(output_dir)
    if not input_dir.is_dir():
        raise DatasetError(f"input folder not found: {input_dir}")
    use_maestro = kind == "maestro" or (kind == "auto" and is_maestro_folder(input_dir))
    pairs = read_maestro_index(input_dir) if use_maestro else find_audio_midi_pairs(input_dir)
    by_split = {split: [pair for pair in pairs if pair.split == split] for split in SPLITS if split in splits}
    by_split = {split: split_pairs for split, split_pairs in by_split.items() if split_pairs}
    if not by_split:
        raise DatasetError(f"no pieces of split(s) {', '.join(splits)} in {input_dir}")

    if output_dir.exists() and not output_dir.is_dir():
        raise OutputExistsError(f"output path exists and is not a folder: {output_dir}")
    existing = {split: _existing_outputs(output_dir, split) for split in splits}
    clashes = sorted(path for paths in existing.values() for path in paths)
    if clashes and not overwrite:
        more = f" (and {len(clashes) - 1} more)" if len(clashes) > 1 else ""
        raise OutputExistsError(f"output file already exists: {clashes[0]}{more} (use --overwrite to replace)")
    output_dir.mkdir(parents=True, exist_ok=True)

    total = sum(len(split_pairs) for split_pairs in by_split.values())
    done = 0
    writers: dict[str, _ShardWriter] = {}
    try:
        for split, split_pairs in by_split.items():
            chunked = split == "train"
            shards = num_shards or _auto_num_shards(split_pairs, max_chunk_s if chunked else math.inf)
            writer = writers[split] = _ShardWriter(output_dir, split, shards)
            for pair in split_pairs:
                for record in _piece_records(pair, chunked, min_chunk_s, max_chunk_s, sample_rate_hz, sustain):
                    writer.write(record)
                done += 1
                if progress is not None:
                    progress(done, total)
            writer.close()
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise

    written = {split: writer.finalize() for split, writer in writers.items()}
    for split in splits:  # with overwrite: drop old shards that the new ones did not replace
        keep = set(written.get(split, []))
        for path in existing[split]:
            if path not in keep and path.exists():
                path.unlink()
    return written


def _existing_outputs(output_dir: pathlib.Path, split: str) -> list[pathlib.Path]:
    if not output_dir.is_dir():
        return []
    return sorted(path for path in output_dir.glob(f"{split}.tfrecord*") if ".tmp-" not in path.name and path.is_file())


def _auto_num_shards(pairs: list[AudioMidiPair], chunk_s: float) -> int:
    """About one shard per RECORDS_PER_SHARD records, estimated from audio headers."""
    import soundfile

    records = 0
    for pair in pairs:
        try:
            duration = soundfile.info(str(pair.audio_path)).duration
        except Exception:  # unknown length: count one record; the real read reports real errors
            duration = 0.0
        records += max(1, math.ceil(duration / chunk_s)) if math.isfinite(chunk_s) else 1
    return max(1, round(records / RECORDS_PER_SHARD))


def _piece_records(
    pair: AudioMidiPair,
    chunked: bool,
    min_chunk_s: float,
    max_chunk_s: float,
    sample_rate_hz: int,
    sustain: bool,
) -> Any:
    """Serialized examples of one piece: its chunks (``chunked``) or the whole piece."""
    from polyamp.data.tfrecord import make_example, velocity_range_of
    from polyamp.notes.midi import read_midi

    sequence = read_midi(pair.midi_path)
    if sustain:
        from note_seq import sequences_lib

        try:
            sequence = sequences_lib.apply_sustain_control_changes(sequence)
        except Exception as error:
            raise PolyampError(f"cannot apply the sustain pedal of {pair.midi_path}: {error}") from error
    samples = _load_audio(pair.audio_path, sample_rate_hz)
    if samples.size == 0:
        raise AudioError(f"audio file holds no samples: {pair.audio_path}")

    audio_s = samples.size / sample_rate_hz
    notes_end_s = max([note.end_time for note in sequence.notes], default=0.0)
    if notes_end_s > audio_s + _LENGTH_MISMATCH_WARN_S:
        logger.warning(
            "%s ends %.1f s after its audio %s; padding the audio with silence",
            pair.midi_path,
            notes_end_s - audio_s,
            pair.audio_path,
        )
    piece_samples = max(samples.size, int(math.ceil(notes_end_s * sample_rate_hz)))
    if piece_samples > samples.size:
        samples = np.pad(samples, (0, piece_samples - samples.size))
    piece_s = piece_samples / sample_rate_hz
    sequence.total_time = piece_s

    velocity_range = velocity_range_of(sequence)
    if chunked:
        bounds = choose_chunk_bounds(sequence, piece_s, min_chunk_s, max_chunk_s, sample_rate_hz)
    else:
        bounds = [0.0, piece_s]
    for start_s, end_s in zip(bounds[:-1], bounds[1:], strict=True):
        if len(bounds) == 2:
            example_id, chunk = pair.example_id, extract_chunk(sequence, 0.0, piece_s)
        else:
            example_id = f"{pair.example_id}_{start_s:.3f}-{end_s:.3f}"
            chunk = extract_chunk(sequence, start_s, end_s)
        chunk.id = example_id
        chunk.filename = pair.midi_path.name
        first = int(round(start_s * sample_rate_hz))
        last = int(round(end_s * sample_rate_hz))
        wav = _encode_wav(samples[first:last], sample_rate_hz)
        yield make_example(example_id, chunk, wav, velocity_range=velocity_range)


def choose_chunk_bounds(
    sequence: NoteSequence,
    duration_s: float,
    min_chunk_s: float,
    max_chunk_s: float,
    sample_rate_hz: int = SAMPLE_RATE_HZ,
) -> list[float]:
    """Chunk boundaries ``[0, t1, ..., duration_s]`` in seconds, each on a sample boundary.

    Each chunk lasts ``min_chunk_s``-``max_chunk_s`` (the last one may be shorter when the piece
    is). A cut goes in the middle of the latest silence (no note sounding) that allows it;
    without one, at ``max_chunk_s``.
    """
    silences = _silences(sequence, duration_s)
    bounds = [0.0]
    start = 0.0
    while duration_s - start > max_chunk_s:
        low, high = start + min_chunk_s, start + max_chunk_s
        if high > duration_s - min_chunk_s >= low:
            high = duration_s - min_chunk_s  # keep the remainder at least min_chunk_s long
        cut = high
        for gap_start, gap_end in reversed(silences):
            if gap_start <= high and gap_end >= low:
                cut = (max(gap_start, low) + min(gap_end, high)) / 2
                break
        cut = round(cut * sample_rate_hz) / sample_rate_hz
        if cut <= start:  # only possible for chunk lengths below one sample
            cut = start + max_chunk_s
        bounds.append(cut)
        start = cut
    bounds.append(duration_s)
    return bounds


def _silences(sequence: NoteSequence, duration_s: float) -> list[tuple[float, float]]:
    """Sorted ``(start_s, end_s)`` intervals of ``[0, duration_s]`` where no note sounds."""
    intervals = sorted((note.start_time, note.end_time) for note in sequence.notes)
    silences = []
    covered_until = 0.0
    for start, end in intervals:
        if start > covered_until:
            silences.append((covered_until, start))
        covered_until = max(covered_until, end)
    if covered_until < duration_s:
        silences.append((covered_until, duration_s))
    return silences


def extract_chunk(sequence: NoteSequence, start_s: float, end_s: float) -> NoteSequence:
    """The part of ``sequence`` in ``[start_s, end_s)``, shifted so that ``start_s`` becomes 0.

    Notes crossing a boundary are clipped to the chunk (a note sounding across ``start_s``
    starts at 0). Tempo, time/key signature, control-change (per instrument and controller) and
    pitch-bend (per instrument) states in force at ``start_s`` are repeated at 0.
    ``total_time`` is ``end_s - start_s``.
    """
    from note_seq.protobuf import music_pb2

    length = end_s - start_s
    chunk = music_pb2.NoteSequence()
    chunk.CopyFrom(sequence)
    for field in (
        "notes",
        "tempos",
        "time_signatures",
        "key_signatures",
        "control_changes",
        "pitch_bends",
        "text_annotations",
        "section_annotations",
    ):
        del getattr(chunk, field)[:]

    for note in sequence.notes:
        if note.start_time < end_s and (note.end_time > start_s or note.start_time >= start_s):
            clipped = chunk.notes.add()
            clipped.CopyFrom(note)
            clipped.start_time = min(max(note.start_time - start_s, 0.0), length)
            clipped.end_time = min(max(note.end_time - start_s, clipped.start_time), length)

    def copy_states(events: Any, target: Any, key: Callable[[Any], Any]) -> None:
        state: dict[Any, Any] = {}
        inside = []
        for event in sorted(events, key=lambda event: event.time):
            if event.time <= start_s:
                state[key(event)] = event
            elif event.time < end_s:
                inside.append(event)
        for event in list(state.values()) + inside:
            copied = target.add()
            copied.CopyFrom(event)
            copied.time = max(event.time - start_s, 0.0)

    copy_states(sequence.tempos, chunk.tempos, lambda event: 0)
    copy_states(sequence.time_signatures, chunk.time_signatures, lambda event: 0)
    copy_states(sequence.key_signatures, chunk.key_signatures, lambda event: 0)
    copy_states(
        sequence.control_changes,
        chunk.control_changes,
        lambda event: (event.instrument, event.control_number),
    )
    copy_states(sequence.pitch_bends, chunk.pitch_bends, lambda event: event.instrument)
    for annotation in sequence.text_annotations:
        if start_s <= annotation.time < end_s:
            copied = chunk.text_annotations.add()
            copied.CopyFrom(annotation)
            copied.time -= start_s

    chunk.total_time = length
    chunk.subsequence_info.start_time_offset = start_s
    chunk.subsequence_info.end_time_offset = max(sequence.total_time - end_s, 0.0)
    return chunk


class _ShardWriter:
    """Round-robin writer of one split's shards, as ``.tmp-<pid>`` files until ``finalize``."""

    def __init__(self, output_dir: pathlib.Path, split: str, num_shards: int) -> None:
        self.output_dir = output_dir
        self.split = split
        self.num_shards = num_shards
        self.writers: list[Any] = [None] * num_shards
        self.counts = [0] * num_shards
        self.next_shard = 0
        self.tmp_paths = [output_dir / f"{split}.tfrecord-{index:05d}.tmp-{os.getpid()}" for index in range(num_shards)]

    def write(self, record: bytes) -> None:
        import tensorflow as tf

        index = self.next_shard
        self.next_shard = (self.next_shard + 1) % self.num_shards
        if self.writers[index] is None:
            self.writers[index] = tf.io.TFRecordWriter(str(self.tmp_paths[index]))
        self.writers[index].write(record)
        self.counts[index] += 1

    def close(self) -> None:
        for writer in self.writers:
            if writer is not None:
                writer.close()
        self.writers = [None] * self.num_shards

    def abort(self) -> None:
        self.close()
        for path in self.tmp_paths:
            if path.exists():
                path.unlink()

    def finalize(self) -> list[pathlib.Path]:
        """Renames the non-empty shards to ``<split>.tfrecord-IIIII-of-NNNNN``; returns them."""
        self.close()
        filled = [path for path, count in zip(self.tmp_paths, self.counts, strict=True) if count]
        final = [
            self.output_dir / f"{self.split}.tfrecord-{index:05d}-of-{len(filled):05d}" for index in range(len(filled))
        ]
        for tmp, path in zip(filled, final, strict=True):
            os.replace(tmp, path)
        return final


def _load_audio(path: pathlib.Path, sample_rate_hz: int) -> np.ndarray:
    """Mono float32 samples of ``path`` at ``sample_rate_hz``; AudioError naming the file."""
    from polyamp.audio.decode import load_audio

    return load_audio(path, sample_rate_hz=sample_rate_hz)


def _encode_wav(samples: np.ndarray, sample_rate_hz: int) -> bytes:
    from polyamp.audio.decode import encode_wav

    return encode_wav(samples, sample_rate_hz)
