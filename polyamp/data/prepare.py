"""Turning datasets into Magenta-style TFRecord shards, as an Apache Beam pipeline.

Inputs: a MAESTRO folder, any folder of audio + same-stem MIDI files, a Slakh2100 (or
``polyamp synth``) folder, or an NSynth JSON + WAV release. Training pieces are cut into chunks of
``min_chunk_s``-``max_chunk_s`` seconds, preferably in silences of the score; validation and test
pieces are kept whole. Output files are named like Magenta's:
``<output_dir>/<split>.tfrecord-00003-of-00012`` (NSynth: ``nsynth-<split>.tfrecord-...`` in
NSynth's own format, mixed into polyphony at training time).

The pipeline runs on the DirectRunner with one worker process per core by default; any Beam
runner via standard pipeline options. A piece that cannot be read (corrupt audio, unreadable
MIDI, a broken Slakh track) is skipped and reported; the rest is still written. Shards appear
under their final names only when the whole run has succeeded.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import pathlib
import tempfile
from collections.abc import Callable, Iterator, Sequence
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
NSYNTH_NOTES_PER_SHARD = 2000
NSYNTH_NOTES_PER_BATCH = 250
KINDS = ("auto", "maestro", "folder", "slakh", "synth", "nsynth")
_LENGTH_MISMATCH_WARN_S = 1.0


@dataclasses.dataclass(frozen=True)
class ChunkingOptions:
    """How pieces become records: ``chunked`` into ``min_chunk_s``-``max_chunk_s`` s pieces or
    whole; audio at ``sample_rate_hz``; the sustain pedal applied to the notes if ``sustain``."""

    chunked: bool
    min_chunk_s: float
    max_chunk_s: float
    sample_rate_hz: int
    sustain: bool


@dataclasses.dataclass(frozen=True)
class NSynthBatch:
    """A batch of notes of an NSynth JSON + WAV folder: one unit of work for the pipeline."""

    folder: str
    entries: tuple[Any, ...]

    def describe(self) -> str:
        return f"NSynth notes {self.entries[0].note_str}... in {self.folder}"


@dataclasses.dataclass
class PrepareReport:
    """What a ``prepare`` run wrote: shard paths and record counts per split, and skipped items."""

    written: dict[str, list[pathlib.Path]]
    records: dict[str, int]
    skipped: list[str]


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
    pipeline_args: Sequence[str] | None = None,
) -> PrepareReport:
    """Writes ``<output_dir>/<split>.tfrecord-NNNNN-of-MMMMM`` shards on Apache Beam.

    ``kind``: ``maestro`` (a MAESTRO index), ``folder`` (audio files with same-stem MIDI),
    ``slakh``/``synth`` (Slakh2100 layout: mixes with per-stem MIDI; notes keep their program,
    and so their family), ``nsynth`` (JSON + WAV release, rewritten as NSynth TFRecords) or
    ``auto``. ``num_shards`` per split (0: about one per 200 records). Audio is read as mono at
    ``sample_rate_hz``; the sustain pedal is applied if ``sustain``. Train pieces are cut into
    ``min_chunk_s``-``max_chunk_s`` s chunks (times restart at 0 in each); other splits are
    written whole. Refuses existing ``<split>.tfrecord*`` outputs (OutputExistsError) unless
    ``overwrite``. ``pipeline_args``: Beam pipeline options (default: DirectRunner, one worker
    per core). Unreadable pieces are skipped and listed in the report; DatasetError if nothing
    could be written.
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
    kind = _detect_kind(input_dir) if kind == "auto" else ("slakh" if kind == "synth" else kind)
    items_by_split, skipped = _list_items(input_dir, kind, splits)
    if not items_by_split:
        raise DatasetError(f"no pieces of split(s) {', '.join(splits)} in {input_dir}")

    prefix = "nsynth-" if kind == "nsynth" else ""
    if output_dir.exists() and not output_dir.is_dir():
        raise OutputExistsError(f"output path exists and is not a folder: {output_dir}")
    existing = {split: _existing_outputs(output_dir, prefix + split) for split in splits}
    clashes = sorted(path for paths in existing.values() for path in paths)
    if clashes and not overwrite:
        more = f" (and {len(clashes) - 1} more)" if len(clashes) > 1 else ""
        raise OutputExistsError(f"output file already exists: {clashes[0]}{more} (use --overwrite to replace)")
    output_dir.mkdir(parents=True, exist_ok=True)

    from polyamp.data import beam_runner

    specs = {}
    for split, items in items_by_split.items():
        shards = num_shards or _auto_num_shards(kind, items, max_chunk_s if split == "train" else math.inf)
        specs[split] = beam_runner.new_shard_spec(output_dir, f"{prefix}{split}.tfrecord", shards)
    options = {
        split: ChunkingOptions(split == "train", min_chunk_s, max_chunk_s, sample_rate_hz, sustain)
        for split in items_by_split
    }

    with tempfile.TemporaryDirectory(prefix="polyamp-prepare-") as report_dir:

        def build(pipeline: Any) -> None:
            import apache_beam as beam

            for split, items in items_by_split.items():
                to_records = _record_function(kind, options[split])
                outputs = (
                    pipeline
                    | f"{split}: list" >> beam.Create(items, reshuffle=False)
                    | f"{split}: spread" >> beam.Reshuffle()
                    | f"{split}: records"
                    >> beam.ParDo(beam_runner.make_skip_bad_items(to_records)).with_outputs(
                        beam_runner.SKIPPED_TAG, main="records"
                    )
                )
                counts = beam_runner.write_shards(outputs.records, specs[split], split)
                beam_runner.collect_to_file(counts, os.path.join(report_dir, f"{split}.counts.json"), f"{split} counts")
                beam_runner.collect_to_file(
                    outputs[beam_runner.SKIPPED_TAG],
                    os.path.join(report_dir, f"{split}.skipped.json"),
                    f"{split} skips",
                )

        try:
            beam_runner.run_pipeline(build, pipeline_args)
        except BaseException:
            for spec in specs.values():
                beam_runner.abort_shards(spec)
            raise
        records = {}
        for split in items_by_split:
            counts = beam_runner.read_collected(os.path.join(report_dir, f"{split}.counts.json"))
            records[split] = sum(count for _, count in counts)
            skipped += beam_runner.read_collected(os.path.join(report_dir, f"{split}.skipped.json"))

    if not sum(records.values()):
        for spec in specs.values():
            beam_runner.abort_shards(spec)
        first = f": {skipped[0]}" if skipped else ""
        raise DatasetError(f"nothing could be prepared from {input_dir} ({len(skipped)} item(s) skipped{first})")
    written = {split: beam_runner.finalize_shards(spec) for split, spec in specs.items() if records[split]}
    for split in items_by_split:
        if not records[split]:
            beam_runner.abort_shards(specs[split])
    for split in splits:  # with overwrite: drop old shards that the new ones did not replace
        keep = set(written.get(split, []))
        for path in existing[split]:
            if path not in keep and path.exists():
                path.unlink()
    return PrepareReport(written=written, records={s: n for s, n in records.items() if n}, skipped=skipped)


def _detect_kind(input_dir: pathlib.Path) -> str:
    if is_maestro_folder(input_dir):
        return "maestro"
    if (input_dir / "examples.json").is_file():
        return "nsynth"
    from polyamp.data.datasets import looks_like_slakh

    if looks_like_slakh(input_dir):
        return "slakh"
    return "folder"


def _list_items(input_dir: pathlib.Path, kind: str, splits: Sequence[str]) -> tuple[dict[str, list[Any]], list[str]]:
    """Work items per split (pieces, tracks or NSynth note batches) and the items skipped while listing."""
    skipped: list[str] = []
    if kind in ("maestro", "folder"):
        pairs = read_maestro_index(input_dir) if kind == "maestro" else find_audio_midi_pairs(input_dir)
        items: list[tuple[str, Any]] = [(pair.split, pair) for pair in pairs]
    elif kind == "slakh":
        from polyamp.data.slakh_layout import find_slakh_tracks

        tracks = find_slakh_tracks(input_dir, skipped=skipped)
        items = [(track.split if track.split in SPLITS else "train", track) for track in tracks]
    else:
        from polyamp.data.nsynth_io import SkippedRecords, read_examples_json

        split = _nsynth_split(input_dir)
        listing_skips = SkippedRecords()
        entries = read_examples_json(input_dir, skipped=listing_skips)
        skipped += list(listing_skips.messages)
        size = NSYNTH_NOTES_PER_BATCH
        items = [
            (split, NSynthBatch(str(input_dir), tuple(entries[i : i + size]))) for i in range(0, len(entries), size)
        ]
    by_split = {
        split: [item for item_split, item in items if item_split == split] for split in SPLITS if split in splits
    }
    return {split: split_items for split, split_items in by_split.items() if split_items}, skipped


def _nsynth_split(folder: pathlib.Path) -> str:
    """NSynth folders are named nsynth-train / nsynth-valid / nsynth-test."""
    name = folder.name.lower()
    if "valid" in name:
        return "validation"
    if "test" in name:
        return "test"
    return "train"


def _record_function(kind: str, options: ChunkingOptions) -> Any:
    """``item -> iterator of (key, serialized record)`` for one dataset kind (picklable)."""
    if kind in ("maestro", "folder"):
        return lambda pair: pair_records(pair, options)
    if kind == "slakh":
        return lambda track: slakh_track_records(track, options)
    return nsynth_batch_records


def _existing_outputs(output_dir: pathlib.Path, name: str) -> list[pathlib.Path]:
    if not output_dir.is_dir():
        return []
    return sorted(path for path in output_dir.glob(f"{name}.tfrecord*") if path.is_file())


def _auto_num_shards(kind: str, items: list[Any], chunk_s: float) -> int:
    """About one shard per RECORDS_PER_SHARD records, estimated from audio headers."""
    import soundfile

    if kind == "nsynth":
        notes = sum(len(batch.entries) for batch in items)
        return max(1, round(notes / NSYNTH_NOTES_PER_SHARD))
    records = 0
    for item in items:
        audio_path = item.audio_path if kind != "slakh" else item.mix_path
        try:
            duration = soundfile.info(str(audio_path)).duration
        except Exception:  # unknown length: count one record; the real read reports real errors
            duration = 0.0
        records += max(1, math.ceil(duration / chunk_s)) if math.isfinite(chunk_s) else 1
    return max(1, round(records / RECORDS_PER_SHARD))


def pair_records(pair: AudioMidiPair, options: ChunkingOptions) -> Iterator[tuple[str, bytes]]:
    """``(example id, serialized example)`` of one audio + MIDI piece: its chunks or the whole piece."""
    from polyamp.notes.midi import read_midi

    sequence = read_midi(pair.midi_path)
    samples = _load_audio(pair.audio_path, options.sample_rate_hz)
    yield from piece_records(pair.example_id, sequence, samples, pair.midi_path, options)


def slakh_track_records(track: Any, options: ChunkingOptions) -> Iterator[tuple[str, bytes]]:
    """Records of one Slakh-layout track: the mix with every rendered stem's notes (program kept)."""
    from polyamp.data.slakh_layout import track_sequence

    sequence = track_sequence(track)
    samples = _load_audio(track.mix_path, options.sample_rate_hz)
    yield from piece_records(track.example_id, sequence, samples, track.mix_path, options)


def nsynth_batch_records(batch: NSynthBatch) -> Iterator[Any]:
    """NSynth-format records of one batch of notes from a JSON + WAV release (bad notes skipped)."""
    from polyamp.data.beam_runner import Skipped
    from polyamp.data.nsynth_io import note_to_example, read_folder_note

    for entry in batch.entries:
        try:
            note = read_folder_note(batch.folder, entry)
        except PolyampError as error:
            yield Skipped(str(error))
            continue
        yield note.note_str, note_to_example(note)


def piece_records(
    example_id: str,
    sequence: NoteSequence,
    samples: np.ndarray,
    source_path: os.PathLike[str] | str,
    options: ChunkingOptions,
) -> Iterator[tuple[str, bytes]]:
    """Serialized examples of one piece (``samples``: mono at ``options.sample_rate_hz``)."""
    from polyamp.data.tfrecord import make_example, velocity_range_of

    source_path = pathlib.Path(source_path)
    sample_rate_hz = options.sample_rate_hz
    if options.sustain:
        from note_seq import sequences_lib

        try:
            sequence = sequences_lib.apply_sustain_control_changes(sequence)
        except Exception as error:
            raise PolyampError(f"cannot apply the sustain pedal of {source_path}: {error}") from error
    if samples.size == 0:
        raise AudioError(f"audio of {example_id} holds no samples ({source_path})")

    audio_s = samples.size / sample_rate_hz
    notes_end_s = max([note.end_time for note in sequence.notes], default=0.0)
    if notes_end_s > audio_s + _LENGTH_MISMATCH_WARN_S:
        logger.warning(
            "%s: notes end %.1f s after the audio; padding the audio with silence", source_path, notes_end_s - audio_s
        )
    piece_samples = max(samples.size, int(math.ceil(notes_end_s * sample_rate_hz)))
    if piece_samples > samples.size:
        samples = np.pad(samples, (0, piece_samples - samples.size))
    piece_s = piece_samples / sample_rate_hz
    sequence.total_time = piece_s

    velocity_range = velocity_range_of(sequence)
    if options.chunked:
        bounds = choose_chunk_bounds(sequence, piece_s, options.min_chunk_s, options.max_chunk_s, sample_rate_hz)
    else:
        bounds = [0.0, piece_s]
    for start_s, end_s in zip(bounds[:-1], bounds[1:], strict=True):
        if len(bounds) == 2:
            chunk_id, chunk = example_id, extract_chunk(sequence, 0.0, piece_s)
        else:
            chunk_id = f"{example_id}_{start_s:.3f}-{end_s:.3f}"
            chunk = extract_chunk(sequence, start_s, end_s)
        chunk.id = chunk_id
        chunk.filename = source_path.name
        first = int(round(start_s * sample_rate_hz))
        last = int(round(end_s * sample_rate_hz))
        wav = _encode_wav(samples[first:last], sample_rate_hz)
        yield chunk_id, make_example(chunk_id, chunk, wav, velocity_range=velocity_range)


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


def _load_audio(path: pathlib.Path, sample_rate_hz: int) -> np.ndarray:
    """Mono float32 samples of ``path`` at ``sample_rate_hz``; AudioError naming the file."""
    from polyamp.audio.decode import load_audio

    return load_audio(path, sample_rate_hz=sample_rate_hz)


def _encode_wav(samples: np.ndarray, sample_rate_hz: int) -> bytes:
    from polyamp.audio.decode import encode_wav

    return encode_wav(samples, sample_rate_hz)
