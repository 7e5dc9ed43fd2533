"""The ``nsynth`` dataset plugin: random polyphonic mixes of NSynth single notes, labelled by family.

Each mix is ``notes_per_mix`` NSynth notes drawn from a shuffled stream, each delayed by a random
whole number of samples in ``[0, max_start_s]`` and summed into a clip of ``clip_length_s``. A note
that runs past the clip is cut: its audio and its label both end at the clip end. The label of a
note is one NoteSequence note with the NSynth pitch and velocity, ``instrument`` = family index and
``program`` = ``DEFAULT_PROGRAMS[family]`` (so ``family_of(program)`` gives the family back), from
its start to its end:

- ``note_end="envelope"``: the end of the last 16 ms frame whose peak amplitude reaches 10 % of the
  note's peak (-20 dB), capped at the 3 s note-off: after it, the note stays below -20 dB;
- ``note_end="note_off"``: the written note-off, 3 s after the onset.

Only notes with a pitch in ``[min_pitch, max_pitch]`` (default the 88 piano keys the label rolls
cover) and some sound (peak above -80 dBFS) are mixed, so the audio never holds a note the labels
cannot describe. Nothing loads the whole NSynth set: notes stream from the TFRecords (or the WAVs
of the folder release) through a shuffle buffer of ``shuffle_buffer_notes`` notes (256 KB each).

``notes_per_mix`` defaults to 16, not the 2020 code's 64: with 8 s clips, starts spread over 7 s and
labels up to 3 s long, 16 notes give about 5 sounding notes at a time (16 x ~2.5 s / 8 s), close to
the polyphony of real ensemble music, while 64 notes in 15 s gave a dense cluster of 10+ notes that
no piece resembles. The mix is peak-normalised to ``peak_level`` (0.9, the level of PolyAMP's other
synthetic data) by default; ``mix_gain="divide"`` instead divides the sum by ``notes_per_mix`` (as in
2020: never clips, but quiet).
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from typing import Any

import gin
import numpy as np

from polyamp.audio.decode import SILENCE_PEAK
from polyamp.constants import MAX_MIDI_PITCH, MIN_MIDI_PITCH
from polyamp.data.datasets import Example
from polyamp.data.nsynth_io import (
    HELD_S,
    NSYNTH_SAMPLE_RATE_HZ,
    NUM_NOTE_SAMPLES,
    FolderEntry,
    NSynthNote,
    SkippedRecords,
    iter_tfrecord_file,
    note_from_example,
    open_nsynth,
    read_examples_json,
    read_folder_note,
)
from polyamp.errors import ConfigError, DatasetError
from polyamp.notes.families import DEFAULT_PROGRAMS
from polyamp.registry import DATASETS

ENVELOPE_FRAME_SAMPLES = 256
"""Frame of the amplitude envelope used to find a note's end: 16 ms at 16 kHz (64000 = 250 frames)."""
ENVELOPE_THRESHOLD = 0.1
"""A note ends once its envelope stays below this fraction of its peak (-20 dB)."""
HELD_SAMPLES = int(HELD_S * NSYNTH_SAMPLE_RATE_HZ)
NOTE_END_MODES = ("envelope", "note_off")
MIX_GAIN_MODES = ("peak", "divide")


def note_end_samples_tf(audio: Any, note_end: str = "envelope") -> Any:
    """Graph op: label length in samples (int64 ``[N]``) of notes ``audio`` float32 ``[N, 64000]``.

    ``envelope``: end of the last 16 ms frame whose peak reaches 10 % of the note's peak, at most
    3 s (48000 samples), at least one frame. ``note_off``: always 48000.
    """
    import tensorflow as tf

    if note_end not in NOTE_END_MODES:
        raise ConfigError(f"note_end must be one of {', '.join(NOTE_END_MODES)}, got {note_end!r}")
    count = tf.shape(audio)[0]
    if note_end == "note_off":
        return tf.fill([count], tf.constant(HELD_SAMPLES, tf.int64))
    num_frames = NUM_NOTE_SAMPLES // ENVELOPE_FRAME_SAMPLES
    frames = tf.reshape(tf.abs(audio), [count, num_frames, ENVELOPE_FRAME_SAMPLES])
    envelope = tf.reduce_max(frames, axis=2)
    peak = tf.reduce_max(envelope, axis=1, keepdims=True)
    loud = tf.cast(envelope >= ENVELOPE_THRESHOLD * peak, tf.int32)
    last_loud = num_frames - 1 - tf.argmax(tf.reverse(loud, axis=[1]), axis=1, output_type=tf.int64)
    return tf.minimum((last_loud + 1) * ENVELOPE_FRAME_SAMPLES, HELD_SAMPLES)


def place_notes_tf(audio: Any, starts: Any, clip_samples: int) -> Any:
    """Graph op: the sum (float32 ``[clip_samples]``) of notes ``audio`` ``[N, S]`` placed at ``starts``.

    ``starts`` (int64 ``[N]``) are sample offsets; note samples past the clip end are dropped.
    """
    import tensorflow as tf

    positions = tf.expand_dims(starts, 1) + tf.range(tf.shape(audio, out_type=tf.int64)[1])[tf.newaxis, :]
    # Samples past the clip all go to one extra segment, which is then dropped.
    positions = tf.where(positions < clip_samples, positions, clip_samples)
    summed = tf.math.unsorted_segment_sum(tf.reshape(audio, [-1]), tf.reshape(positions, [-1]), clip_samples + 1)
    return summed[:clip_samples]


def mix_sequence_bytes(
    mix_id: str,
    pitches: np.ndarray,
    velocities: np.ndarray,
    families: np.ndarray,
    start_samples: np.ndarray,
    end_samples: np.ndarray,
    total_time_s: float,
) -> bytes:
    """Serialized NoteSequence of a mix: one note per NSynth note, times in seconds from the clip start.

    ``program`` = ``DEFAULT_PROGRAMS[family]``, ``instrument`` = family, ``is_drum`` False; notes sorted
    by start time, then pitch.
    """
    from polyamp.notes.rolls import _music_pb2

    sequence = _music_pb2().NoteSequence()
    sequence.id = mix_id
    sequence.ticks_per_quarter = 220
    sequence.tempos.add(time=0.0, qpm=120.0)
    sequence.total_time = float(total_time_s)
    for index in np.lexsort((np.asarray(pitches), np.asarray(start_samples))):
        family = int(families[index])
        sequence.notes.add(
            pitch=int(pitches[index]),
            velocity=int(velocities[index]),
            start_time=int(start_samples[index]) / NSYNTH_SAMPLE_RATE_HZ,
            end_time=int(end_samples[index]) / NSYNTH_SAMPLE_RATE_HZ,
            program=DEFAULT_PROGRAMS[family],
            instrument=family,
            is_drum=False,
        )
    return sequence.SerializeToString()


def _music_pb2() -> Any:
    """note_seq's protobuf module, imported without pydub's unrelated 'no ffmpeg' warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        from note_seq.protobuf import music_pb2
    return music_pb2


@DATASETS.register("nsynth")
@gin.configurable
class NSynthMixDataset:
    """Mixes of random NSynth notes (TFRecord or JSON + WAV release) with family-labelled NoteSequences.

    ``tf_dataset`` streams endless mixes; ``examples`` gives ``num_eval_mixes`` fixed ones (seed
    ``seed``, default 0). Records that cannot be used are skipped with a warning and counted in
    ``skipped`` (a :class:`SkippedRecords`).
    """

    def __init__(
        self,
        examples_path: str,
        split: str | None = None,
        notes_per_mix: int = 16,
        clip_length_s: float = 8.0,
        max_start_s: float | None = None,
        note_end: str = "envelope",
        mix_gain: str = "peak",
        peak_level: float = 0.9,
        min_pitch: int = MIN_MIDI_PITCH,
        max_pitch: int = MAX_MIDI_PITCH,
        shuffle_buffer_notes: int = 512,
        num_eval_mixes: int = 32,
        seed: int | None = None,
    ) -> None:
        if int(notes_per_mix) < 1:
            raise ConfigError(f"NSynthMixDataset.notes_per_mix must be at least 1, got {notes_per_mix}")
        if not float(clip_length_s) > 0:
            raise ConfigError(f"NSynthMixDataset.clip_length_s must be positive, got {clip_length_s}")
        max_start_s = max(0.0, float(clip_length_s) - 1.0) if max_start_s is None else float(max_start_s)
        if not 0.0 <= max_start_s < float(clip_length_s):
            raise ConfigError(
                f"NSynthMixDataset.max_start_s must be in [0, clip_length_s={clip_length_s}), got {max_start_s}"
            )
        if note_end not in NOTE_END_MODES:
            raise ConfigError(f"NSynthMixDataset.note_end must be one of {', '.join(NOTE_END_MODES)}, got {note_end!r}")
        if mix_gain not in MIX_GAIN_MODES:
            raise ConfigError(f"NSynthMixDataset.mix_gain must be one of {', '.join(MIX_GAIN_MODES)}, got {mix_gain!r}")
        if not 0.0 < float(peak_level) <= 1.0:
            raise ConfigError(f"NSynthMixDataset.peak_level must be in (0, 1], got {peak_level}")
        if not 0 <= int(min_pitch) <= int(max_pitch) <= 127:
            raise ConfigError(f"NSynthMixDataset needs 0 <= min_pitch <= max_pitch <= 127, got {min_pitch}-{max_pitch}")
        if int(shuffle_buffer_notes) < 1 or int(num_eval_mixes) < 1:
            raise ConfigError("NSynthMixDataset.shuffle_buffer_notes and num_eval_mixes must be at least 1")
        self.notes_per_mix = int(notes_per_mix)
        self.clip_length_s = float(clip_length_s)
        self.clip_samples = int(round(self.clip_length_s * NSYNTH_SAMPLE_RATE_HZ))
        self.max_start_samples = min(int(round(max_start_s * NSYNTH_SAMPLE_RATE_HZ)), self.clip_samples - 1)
        self.note_end = note_end
        self.mix_gain = mix_gain
        self.peak_level = float(peak_level)
        self.min_pitch = int(min_pitch)
        self.max_pitch = int(max_pitch)
        self.shuffle_buffer_notes = int(shuffle_buffer_notes)
        self.num_eval_mixes = int(num_eval_mixes)
        self.seed = seed
        self.skipped = SkippedRecords()
        self._reported: set[Any] = set()
        self._lock = threading.Lock()

        self.source = open_nsynth(examples_path, split)
        self.entries: list[FolderEntry] = []
        if self.source.kind == "folder":
            self.entries = read_examples_json(self.source.location, self.skipped)
        self._check_something_mixable()

    # ----------------------------------------------------------------------------------------------
    # Checks and per-note decoding (Python; called from tf.data through numpy_function)
    # ----------------------------------------------------------------------------------------------

    def _report(self, key: Any, message: str) -> None:
        """Counts a skipped record once, however many epochs meet it."""
        with self._lock:
            if key in self._reported:
                return
            self._reported.add(key)
        self.skipped.add(message)

    def _mixable(self, note: NSynthNote) -> bool:
        return self.min_pitch <= note.pitch <= self.max_pitch and float(np.max(np.abs(note.samples))) >= SILENCE_PEAK

    def _decoded(self, path: str, index: int, record: bytes) -> list[NSynthNote]:
        """The note of one record ([] and counted as skipped if unusable)."""
        try:
            return [note_from_example(record, f"{path} record {index}")]
        except DatasetError as error:
            self._report((path, index), str(error))
            return []

    def _remaining_notes(self) -> Iterator[NSynthNote]:
        """Usable notes after each TFRecord file's first record (every note of the folder release)."""
        if self.source.kind == "folder":
            for entry in self.entries:
                try:
                    yield read_folder_note(self.source.location, entry)
                except DatasetError as error:
                    self._report(entry.note_str, str(error))
            return
        for path in self.source.files:
            for index, record in iter_tfrecord_file(path):
                if index:
                    yield from self._decoded(path, index, record)

    def _check_something_mixable(self) -> None:
        """DatasetError if a TFRecord file is broken (each file's first record is read) or no note can be
        mixed; past the first records, reads only until the first mixable note."""
        usable = found = 0
        for path in self.source.files:
            records = iter_tfrecord_file(path)
            first = next(records, None)
            records.close()
            notes = self._decoded(path, *first) if first is not None else []
            usable += len(notes)
            found += sum(self._mixable(note) for note in notes)
        if found:
            return
        for note in self._remaining_notes():
            usable += 1
            if self._mixable(note):
                return
        where = self.source.location
        if not usable:
            if self.skipped.count:
                raise DatasetError(f"no usable NSynth notes in {where}: {self.skipped.summary()}")
            raise DatasetError(f"no NSynth notes in {where}: it holds no records")
        raise DatasetError(
            f"no NSynth note in {where} can be mixed: none of its {usable} usable notes has a pitch in "
            f"{self.min_pitch}-{self.max_pitch} and sound above -80 dBFS; widen NSynthMixDataset.min_pitch/max_pitch"
        )

    def _outputs(self, note: NSynthNote | None) -> tuple[Any, ...]:
        if note is None:
            return np.bool_(False), np.int64(0), np.int64(0), np.int64(0), np.zeros(NUM_NOTE_SAMPLES, np.float32)
        return (
            np.bool_(self._mixable(note)),
            np.int64(note.pitch),
            np.int64(note.velocity),
            np.int64(note.instrument_family),
            note.samples.astype(np.float32, copy=False),
        )

    def _decode_record(self, path: bytes, index: np.int64, record: bytes) -> tuple[Any, ...]:
        where = path.decode("utf-8", "replace")
        try:
            note = note_from_example(bytes(record), f"{where} record {int(index)}")
        except DatasetError as error:
            self._report((where, int(index)), str(error))
            note = None
        return self._outputs(note)

    def _load_entry(self, position: np.int64) -> tuple[Any, ...]:
        entry = self.entries[int(position)]
        try:
            note = read_folder_note(self.source.location, entry)
        except DatasetError as error:
            self._report(entry.note_str, str(error))
            note = None
        return self._outputs(note)

    # ----------------------------------------------------------------------------------------------
    # tf.data
    # ----------------------------------------------------------------------------------------------

    def _note_stream(self, shuffle: bool, seed: int | None) -> Any:
        """Endless, shuffled stream of mixable notes: dicts of pitch, velocity, family, audio [64000]."""
        import tensorflow as tf

        kinds = [tf.bool, tf.int64, tf.int64, tf.int64, tf.float32]
        if self.source.kind == "folder":
            positions = tf.data.Dataset.range(len(self.entries))
            if shuffle:  # the index is small: shuffle all of it, the audio is read afterwards
                positions = positions.shuffle(len(self.entries), seed=seed, reshuffle_each_iteration=True)
            decoded = positions.map(
                lambda position: tuple(tf.numpy_function(self._load_entry, [position], kinds, stateful=False)),
                num_parallel_calls=tf.data.AUTOTUNE,
            )
        else:
            files = tf.data.Dataset.from_tensor_slices(self.source.files)
            if shuffle:
                files = files.shuffle(len(self.source.files), seed=seed, reshuffle_each_iteration=True)

            def records_of(path: Any) -> Any:
                return tf.data.TFRecordDataset(path).enumerate().map(lambda index, record: (path, index, record))

            # A file damaged after its first record loses its tail (with a logged warning), not the run.
            records = files.interleave(
                records_of, cycle_length=min(4, len(self.source.files)), num_parallel_calls=tf.data.AUTOTUNE
            ).ignore_errors(log_warning=True)
            decoded = records.map(
                lambda path, index, record: tuple(
                    tf.numpy_function(self._decode_record, [path, index, record], kinds, stateful=False)
                ),
                num_parallel_calls=tf.data.AUTOTUNE,
            )

        def as_note(keep: Any, pitch: Any, velocity: Any, family: Any, audio: Any) -> dict[str, Any]:
            for scalar in (keep, pitch, velocity, family):
                scalar.set_shape([])
            audio.set_shape([NUM_NOTE_SAMPLES])
            return {"keep": keep, "pitch": pitch, "velocity": velocity, "family": family, "audio": audio}

        notes = decoded.map(as_note).filter(lambda note: note["keep"])
        return notes.repeat().shuffle(self.shuffle_buffer_notes, seed=seed, reshuffle_each_iteration=True)

    def _mixes(self, shuffle: bool, seed: int | None, base_seed: int) -> Any:
        import tensorflow as tf

        clip_samples = self.clip_samples
        total_time_s = clip_samples / NSYNTH_SAMPLE_RATE_HZ

        def build_sequence(mix_id: bytes, *arrays: np.ndarray) -> bytes:
            return mix_sequence_bytes(mix_id.decode("utf-8"), *arrays, total_time_s=total_time_s)

        def mix(index: Any, notes: dict[str, Any]) -> dict[str, Any]:
            audio = notes["audio"]
            count = tf.shape(audio, out_type=tf.int64)[0]
            starts = tf.random.stateless_uniform(
                [count],
                seed=tf.stack([tf.constant(base_seed, tf.int64), index]),
                minval=0,
                maxval=self.max_start_samples + 1,
                dtype=tf.int64,
            )
            ends = tf.minimum(starts + note_end_samples_tf(audio, self.note_end), clip_samples)
            samples = place_notes_tf(audio, starts, clip_samples)
            if self.mix_gain == "peak":
                peak = tf.reduce_max(tf.abs(samples))
                samples = samples * (self.peak_level / tf.maximum(peak, 1e-9))
            else:
                samples = samples / float(self.notes_per_mix)
            mix_id = tf.strings.join(["nsynth_mix_", tf.strings.as_string(index, width=6, fill="0")])
            sequence = tf.numpy_function(
                build_sequence,
                [mix_id, notes["pitch"], notes["velocity"], notes["family"], starts, ends],
                tf.string,
                stateful=False,
            )
            sequence.set_shape([])
            samples.set_shape([clip_samples])
            return {"id": mix_id, "sequence": sequence, "samples": samples}

        notes = self._note_stream(shuffle, seed)
        batches = notes.batch(self.notes_per_mix, drop_remainder=True)
        return batches.enumerate().map(mix, num_parallel_calls=tf.data.AUTOTUNE)

    def tf_dataset(self, shuffle_files: bool, seed: int | None = None) -> Any:
        """Endless ``tf.data.Dataset`` of mixes ``{"id": string, "sequence": string (serialized
        NoteSequence), "samples": float32 [clip_samples]}`` at 16 kHz.

        ``seed`` (default: the constructor's ``seed``, else fresh randomness) fixes the note order
        and the start offsets. ``shuffle_files`` shuffles the TFRecord files (or the whole index of
        the folder release) before the note shuffle buffer.
        """
        seed = self.seed if seed is None else seed
        base_seed = int(np.random.SeedSequence().generate_state(1)[0]) if seed is None else int(seed)
        return self._mixes(bool(shuffle_files), seed, base_seed)

    def examples(self) -> Iterator[Example]:
        """``num_eval_mixes`` mixes, the same on every call (seed ``seed``, default 0)."""
        seed = 0 if self.seed is None else int(self.seed)
        music_pb2 = _music_pb2()
        for item in self._mixes(True, seed, seed).take(self.num_eval_mixes).as_numpy_iterator():
            sequence = music_pb2.NoteSequence.FromString(item["sequence"])
            yield Example(item["id"].decode("utf-8"), sequence, item["samples"])
