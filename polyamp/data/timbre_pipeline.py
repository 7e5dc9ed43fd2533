"""tf.data pipeline of the Timbre model: dataset examples -> random crops -> (spectrogram, notes, family labels).

Works with any dataset plugin (``{"id", "sequence", "samples"}`` examples: NSynth mixes, Slakh or
``polyamp synth`` tracks, MAESTRO...). Per decoded example, ``crops_per_example`` random crops of
``truncated_length_secs`` are cut (so a long track is decoded once for several crops). In a crop:

* notes are the example's non-drum notes with a pitch in 21..108 and a family
  (:func:`~polyamp.notes.families.family_of`), shifted to the crop start and clipped to the crop
  (a note sounding across the crop start or end keeps its part inside; a zero-length note is
  kept when it starts inside the crop); with ``timbre_onset_notes_only`` only the notes that start
  inside the crop, as evaluation crops have them;
* at most ``timbre_max_notes`` of them (a random subset), padded to exactly ``timbre_max_notes``
  rows: padding rows are ``(-1, -1, -1)`` with all-zero labels and mask 0;
* crops without notes are dropped.

Batches are ``(inputs, targets)``: ``inputs = {"timbre_spec": [B, T, bins], "notes": [B, N, 3]}``
(T = crop frames at ``timbre_hop_length``, N = ``timbre_max_notes``, notes as MIDI pitch, start s,
end s) and ``targets = {"family": [B, N, 12] one-hot, "mask": [B, N]}``, plus ``"program": [B, N, 128]``
one-hot General MIDI programs when the model has a program head (``timbre_program_loss_weight > 0``).
With ``timbre_pitch_shift_bins`` > 0 each crop's CQT and notes are moved together by a random number
of bins, with ``timbre_eq_augment_db`` > 0 each crop's CQT gets a random smooth gain curve over
frequency, and with ``timbre_onset_jitter_seconds`` > 0 each note's start moves by a random offset
(:mod:`polyamp.data.timbre_augment`). All shapes are static, so a training step is traced once.
:func:`evaluation_crops` cuts a whole example into consecutive crops with every note in exactly one of
them, for evaluation.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from polyamp.constants import MAX_MIDI_PITCH, MIN_MIDI_PITCH, SAMPLE_RATE_HZ
from polyamp.errors import ConfigError
from polyamp.models.timbre_hparams import TimbreHParams
from polyamp.notes.families import NUM_FAMILIES, NUM_PROGRAMS, family_of

NOTE_FIELDS = 5
"""Columns of :func:`sequence_notes`: MIDI pitch, start s, end s, family index, General MIDI program."""


def sequence_notes(sequence: Any) -> np.ndarray:
    """float32 ``[M, 5]`` rows (pitch, start s, end s, family, program) of a NoteSequence (or its bytes).

    Drum notes, pitches outside 21..108 and programs outside 0..127 are dropped; an end before the
    start is set to the start. Rows are sorted by start time, then pitch.
    """
    from polyamp.notes.rolls import parse_note_sequence

    sequence = parse_note_sequence(sequence)
    rows = []
    for note in sequence.notes:
        if note.is_drum or not MIN_MIDI_PITCH <= note.pitch <= MAX_MIDI_PITCH or not 0 <= note.program <= 127:
            continue
        family = family_of(note.program, note.is_drum)
        if family is None:
            continue
        start = float(note.start_time)
        rows.append((note.pitch, start, max(float(note.end_time), start), family, note.program))
    if not rows:
        return np.zeros((0, NOTE_FIELDS), np.float32)
    array = np.asarray(rows, np.float64)
    order = np.lexsort((array[:, 0], array[:, 1]))
    return array[order].astype(np.float32)


def sequence_notes_tf(sequence: Any) -> Any:
    """Graph op: :func:`sequence_notes` of a serialized NoteSequence, float32 ``[M, 5]``."""
    import tensorflow as tf

    notes = tf.numpy_function(sequence_notes, [sequence], tf.float32, stateful=False)
    notes.set_shape([None, NOTE_FIELDS])
    return notes


def crop_samples_for(hparams: TimbreHParams) -> tuple[int, int]:
    """(crop samples, crop frames): ``truncated_length_secs`` rounded to whole hops, at least 8 frames."""
    hop = hparams.timbre_hop_length
    frames = max(8, int(round(hparams.truncated_length_secs * SAMPLE_RATE_HZ / hop)))
    return frames * hop, frames


def check_pipeline_hparams(hparams: TimbreHParams) -> None:
    """ConfigError (one line) for data hparams the pipeline cannot use."""
    if hparams.timbre_num_classes != NUM_FAMILIES:
        raise ConfigError(
            f"TimbreHParams.timbre_num_classes must be {NUM_FAMILIES} (the families of polyamp.notes.families) "
            f"to train from note programs, got {hparams.timbre_num_classes}"
        )
    for name in ("batch_size", "timbre_max_notes", "crops_per_example", "shuffle_buffer_size"):
        if int(getattr(hparams, name)) < 1:
            raise ConfigError(f"TimbreHParams.{name} must be at least 1, got {getattr(hparams, name)}")
    if not hparams.truncated_length_secs > 0:
        raise ConfigError(f"TimbreHParams.truncated_length_secs must be positive, got {hparams.truncated_length_secs}")
    if hparams.timbre_gain_augment_db < 0:
        raise ConfigError(f"TimbreHParams.timbre_gain_augment_db must be >= 0, got {hparams.timbre_gain_augment_db}")
    if int(hparams.timbre_pitch_shift_bins) < 0:
        raise ConfigError(f"TimbreHParams.timbre_pitch_shift_bins must be >= 0, got {hparams.timbre_pitch_shift_bins}")
    if hparams.timbre_eq_augment_db < 0:
        raise ConfigError(f"TimbreHParams.timbre_eq_augment_db must be >= 0, got {hparams.timbre_eq_augment_db}")
    if not 0 <= hparams.timbre_onset_jitter_seconds < hparams.truncated_length_secs:
        raise ConfigError(
            "TimbreHParams.timbre_onset_jitter_seconds must be >= 0 and shorter than the crop, "
            f"got {hparams.timbre_onset_jitter_seconds}"
        )


def crop_notes_tf(
    notes: Any,
    crop_start_s: Any,
    crop_seconds: float,
    max_notes: int,
    onsets_only: bool = False,
    with_programs: bool = False,
) -> tuple[Any, ...]:
    """Graph op: the notes of one crop, padded to ``max_notes`` rows.

    ``notes``: float32 ``[M, 5]`` (pitch, start s, end s, family, program) of the whole example.
    Returns ``(notes [max_notes, 3], family one-hot [max_notes, 12], mask [max_notes])``, and with
    ``with_programs`` also the program one-hot ``[max_notes, 128]`` last; a random subset when more
    than ``max_notes`` notes sound in the crop. ``onsets_only``: only notes that start inside the
    crop (a note sounding across the crop start is left out, as in evaluation crops).
    """
    import tensorflow as tf

    start = notes[:, 1] - crop_start_s
    end = notes[:, 2] - crop_start_s
    starts_inside = (start >= 0.0) & (start < crop_seconds)
    if onsets_only:
        selected = starts_inside
    else:
        selected = ((start < crop_seconds) & (end > 0.0)) | ((end <= start) & starts_inside)
    chosen = tf.random.shuffle(tf.where(selected)[:, 0])[:max_notes]
    start = tf.clip_by_value(tf.gather(start, chosen), 0.0, crop_seconds)
    end = tf.clip_by_value(tf.gather(end, chosen), start, crop_seconds)
    pitch = tf.gather(notes[:, 0], chosen)
    count = tf.shape(chosen)[0]
    padding = max_notes - count

    def padded_one_hot(column: int, depth: int) -> Any:
        indices = tf.cast(tf.gather(notes[:, column], chosen), tf.int32)
        one_hot = tf.pad(tf.one_hot(indices, depth, dtype=tf.float32), [[0, padding], [0, 0]])
        one_hot.set_shape([max_notes, depth])
        return one_hot

    rows = tf.pad(tf.stack([pitch, start, end], axis=1), [[0, padding], [0, 0]], constant_values=-1.0)
    mask = tf.pad(tf.ones([count], tf.float32), [[0, padding]])
    rows.set_shape([max_notes, 3])
    mask.set_shape([max_notes])
    if with_programs:
        return rows, padded_one_hot(3, NUM_FAMILIES), mask, padded_one_hot(4, NUM_PROGRAMS)
    return rows, padded_one_hot(3, NUM_FAMILIES), mask


def timbre_training_batches(source: Any, hparams: TimbreHParams, frontend: Any = None, seed: int | None = None) -> Any:
    """Endless shuffled batches ``(inputs, targets)`` from a dataset plugin (see the module docstring).

    ``frontend`` defaults to :func:`~polyamp.models.timbre.make_timbre_frontend` (CQT at hop
    ``timbre_hop_length``); it runs on whole batches of crops.
    """
    import tensorflow as tf

    from polyamp.data.timbre_augment import (
        equalise_spectrogram,
        jitter_note_onsets,
        random_bin_shifts,
        random_eq_curves,
        shift_spectrogram_and_notes,
    )
    from polyamp.models.timbre import make_timbre_frontend

    check_pipeline_hparams(hparams)
    if frontend is None:
        frontend = make_timbre_frontend(hparams)
    crop_samples, crop_frames = crop_samples_for(hparams)
    crop_seconds = crop_samples / SAMPLE_RATE_HZ
    max_notes = int(hparams.timbre_max_notes)
    crops_per_example = int(hparams.crops_per_example)
    gain_db = float(hparams.timbre_gain_augment_db)
    onsets_only = bool(hparams.timbre_onset_notes_only)
    with_programs = hparams.timbre_program_loss_weight > 0
    shift_bins = int(hparams.timbre_pitch_shift_bins)
    eq_db = float(hparams.timbre_eq_augment_db)
    jitter_seconds = float(hparams.timbre_onset_jitter_seconds)

    def parse(example: dict[str, Any]) -> dict[str, Any]:
        return {"samples": example["samples"], "notes": sequence_notes_tf(example["sequence"])}

    def crops(example: dict[str, Any]) -> dict[str, Any]:
        samples, notes = example["samples"], example["notes"]
        num_samples = tf.shape(samples)[0]
        max_start = tf.maximum(num_samples - crop_samples, 0)
        starts = tf.random.uniform([crops_per_example], 0, max_start + 1, dtype=tf.int32)
        audio, rows, labels, masks, programs = [], [], [], [], []
        for index in range(crops_per_example):
            start = starts[index]
            crop = samples[start : start + crop_samples]
            crop = tf.pad(crop, [[0, crop_samples - tf.shape(crop)[0]]])
            if gain_db > 0:
                crop = crop * tf.pow(10.0, tf.random.uniform([], -gain_db, gain_db) / 20.0)
            cropped = crop_notes_tf(
                notes, tf.cast(start, tf.float32) / SAMPLE_RATE_HZ, crop_seconds, max_notes, onsets_only, with_programs
            )
            audio.append(crop)
            rows.append(cropped[0])
            labels.append(cropped[1])
            masks.append(cropped[2])
            if with_programs:
                programs.append(cropped[3])
        result = {
            "audio": tf.stack(audio),
            "notes": tf.stack(rows),
            "family": tf.stack(labels),
            "mask": tf.stack(masks),
        }
        if with_programs:
            result["program"] = tf.stack(programs)
        return result

    def spectrogram(batch: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        spec = frontend(batch["audio"])[:, :crop_frames]
        spec.set_shape([hparams.batch_size, crop_frames, frontend.num_bins])
        notes = batch["notes"]
        targets = {"family": batch["family"], "mask": batch["mask"]}
        if with_programs:
            targets["program"] = batch["program"]
        if shift_bins > 0:
            shifts = random_bin_shifts(hparams.batch_size, shift_bins)
            spec, notes, targets = shift_spectrogram_and_notes(spec, notes, targets, shifts, frontend.bins_per_octave)
        if eq_db > 0:
            curves = random_eq_curves(hparams.batch_size, frontend.num_bins, frontend.bins_per_octave, eq_db)
            spec = equalise_spectrogram(spec, curves)
        if jitter_seconds > 0:
            notes = jitter_note_onsets(notes, jitter_seconds, crop_seconds)
        return {"timbre_spec": spec, "notes": notes}, targets

    dataset = source.tf_dataset(shuffle_files=True, seed=seed).repeat()
    dataset = dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.map(crops, num_parallel_calls=tf.data.AUTOTUNE).unbatch()
    dataset = dataset.filter(lambda crop: tf.reduce_sum(crop["mask"]) > 0)
    dataset = dataset.shuffle(hparams.shuffle_buffer_size, seed=seed)
    dataset = dataset.batch(hparams.batch_size, drop_remainder=True)
    dataset = dataset.map(spectrogram, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def evaluation_crops(
    samples: np.ndarray, sequence: Any, hparams: TimbreHParams, crop_seconds: float = 10.0
) -> Iterator[tuple[float, np.ndarray, np.ndarray]]:
    """Consecutive crops of a whole example for evaluation; every note lands in exactly one crop.

    Yields ``(crop_start_s, audio float32 [crop_samples], notes float32 [M, 5])`` with notes (pitch,
    start s, end s, family, program) relative to the crop start: the notes that start in the crop, their
    ends clipped to it. ``crop_seconds`` is rounded to whole hops; the last crop is zero-padded.
    Crops without notes are skipped.
    """
    hop = hparams.timbre_hop_length
    crop_samples = max(8, int(round(crop_seconds * SAMPLE_RATE_HZ / hop))) * hop
    length_s = crop_samples / SAMPLE_RATE_HZ
    notes = sequence_notes(sequence)
    samples = np.asarray(samples, np.float32)
    for start in range(0, max(len(samples), 1), crop_samples):
        start_s = start / SAMPLE_RATE_HZ
        inside = (notes[:, 1] >= start_s) & (notes[:, 1] < start_s + length_s)
        if not inside.any():
            continue
        chosen = notes[inside].copy()
        chosen[:, 1:3] -= start_s
        chosen[:, 2] = np.minimum(chosen[:, 2], length_s)
        audio = np.zeros(crop_samples, np.float32)
        piece = samples[start : start + crop_samples]
        audio[: len(piece)] = piece
        yield start_s, audio, chosen
