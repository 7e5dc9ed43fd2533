"""Evaluating the Timbre model: label every reference note of held-out examples, score the families.

Each example is cut into consecutive crops (every note in exactly one crop), the model gives each
reference note 12 family probabilities, and :class:`~polyamp.multi_metrics.TimbreMetricsAccumulator`
pools accuracy, macro-F1, per-family P/R/F1 and the confusion matrix over all notes.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import gin
import numpy as np

from polyamp.constants import SAMPLE_RATE_HZ

LABEL_CROP_SECONDS = 20.0
"""Default inference crop: the notes of one crop see each other through the model's note context.
Measured on the session-4 Timbre checkpoint (trained on 8 s crops), FluidR3 evaluation accuracy
was 0.702 / 0.706 / 0.723 / 0.724 at 8 / 10 / 20 / 40 s crops."""


def note_crops(
    samples: np.ndarray, notes: np.ndarray, hop_length: int, crop_seconds: float
) -> Iterator[tuple[float, np.ndarray, np.ndarray]]:
    """Consecutive crops of ``samples`` with the indices of the notes that start in each.

    Yields ``(crop start s, audio float32 [crop samples], indices int64 [M])``; the crop length is rounded to
    whole hops and the last crop is zero-padded. Crops where no note starts are skipped.
    """
    crop_samples = max(8, int(round(crop_seconds * SAMPLE_RATE_HZ / hop_length))) * hop_length
    starts_s = notes[:, 1] if len(notes) else np.zeros(0)
    for start in range(0, max(len(samples), 1), crop_samples):
        start_s = start / SAMPLE_RATE_HZ
        indices = np.flatnonzero((starts_s >= start_s) & (starts_s < start_s + crop_samples / SAMPLE_RATE_HZ))
        if indices.size == 0:
            continue
        audio = np.zeros(crop_samples, np.float32)
        piece = samples[start : start + crop_samples]
        audio[: len(piece)] = piece
        yield start_s, audio, indices


@gin.configurable(denylist=["components", "samples", "notes"])
def label_notes(
    components: Any, samples: np.ndarray, notes: np.ndarray, crop_seconds: float = LABEL_CROP_SECONDS
) -> np.ndarray:
    """Family probabilities [N, 12] of ``notes`` ([N, >=3]: MIDI pitch, start s, end s) in ``samples`` (16 kHz).

    Each note is classified in the ``crop_seconds`` crop where it starts (gin: ``label_notes.crop_seconds``),
    its times made relative to that crop and its end clipped to it.
    """
    notes = np.asarray(notes, np.float32)
    samples = np.asarray(samples, np.float32)
    probabilities = np.zeros((len(notes), components.hparams.timbre_num_classes), np.float32)
    hop = components.hparams.timbre_hop_length
    predict = crop_family_probs_fn(components)
    for crop_start_s, audio, indices in note_crops(samples, notes, hop, crop_seconds):
        length_s = len(audio) / SAMPLE_RATE_HZ
        rows = notes[indices, :3].copy()
        rows[:, 1:3] -= crop_start_s
        rows[:, 2] = np.clip(rows[:, 2], rows[:, 1], length_s)
        probabilities[indices] = predict(audio[None, :], rows[None]).numpy()[0]
    return probabilities


_CROP_FUNCTIONS: weakref.WeakKeyDictionary[Any, Callable[..., Any]] = weakref.WeakKeyDictionary()


def crop_family_probs_fn(components: Any) -> Callable[..., Any]:
    """The Timbre part's ``(audio float32 [B, samples], notes float32 [B, N, 3]) -> family probs [B, N, 12]``
    as one ``tf.function`` (front end and model in one graph, traced once for any crop and note count),
    cached per model so every file after the first reuses the graph."""
    function = _CROP_FUNCTIONS.get(components.model)
    if function is None:
        import tensorflow as tf

        frontend, model = components.frontend, components.model

        @tf.function(
            input_signature=[tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([None, None, 3], tf.float32)],
            reduce_retracing=True,
        )
        def function(audio: Any, notes: Any) -> Any:
            spec = frontend(audio)
            return model({"timbre_spec": spec, "notes": notes}, training=False)["family_probs"]

        _CROP_FUNCTIONS[components.model] = function
    return function


def warm_up_timbre(components: Any, seconds: float = 1.0) -> None:
    """Builds the Timbre part's labelling graph (:func:`crop_family_probs_fn`) now, on ``seconds`` of
    silence and one note, so its tracing does not land on the first file."""
    audio = np.zeros((1, int(seconds * SAMPLE_RATE_HZ)), np.float32)
    crop_family_probs_fn(components)(audio, np.asarray([[[60.0, 0.0, seconds / 2]]], np.float32))


def evaluate_timbre(
    components: Any,
    examples: Iterable[Any],
    eval_num_steps: int | None = None,
    progress: Callable[[int, int | None, str], None] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(pooled timbre metrics, per-example accuracy rows) over up to ``eval_num_steps`` examples.

    With ``min_family_share`` > 0 (the decoder's, from TimbreHParams) each example's notes are scored
    among the families its recording keeps (:func:`~polyamp.decode.multi_instrument.recording_families`),
    as transcription assigns them.
    """
    from polyamp.data.timbre_pipeline import sequence_notes
    from polyamp.decode.multi_instrument import restrict_to_recording_families
    from polyamp.multi_metrics import TimbreMetricsAccumulator, timbre_metrics

    accumulator = TimbreMetricsAccumulator()
    per_example = []
    for index, example in enumerate(examples):
        if eval_num_steps is not None and index >= eval_num_steps:
            break
        reference = sequence_notes(example.sequence.SerializeToString())
        if len(reference) == 0:
            continue
        probs = label_notes(components, example.samples, reference[:, :3])
        probs = restrict_to_recording_families(probs, components.decoder.min_family_share)
        families = reference[:, 3].astype(np.int64)
        accumulator.add(families, probs)
        row = timbre_metrics(families, probs)
        per_example.append({"id": example.example_id, "accuracy": row["accuracy"], "num_notes": int(len(families))})
        if progress is not None:
            progress(index + 1, eval_num_steps, example.example_id)
    return accumulator.result(), per_example
