"""Evaluating the Full model: agnostic and multi-instrument metrics of held-out examples.

Per example the Full model transcribes the audio (:class:`~polyamp.full_transcription.FullTranscriber`);
the agnostic notes are scored exactly as the Melodic evaluation scores them
(:func:`polyamp.metrics.transcription_metrics`, mean over examples) and ``{family: notes}`` is
scored against the reference notes' families (``family_of(program)``) by
:class:`~polyamp.multi_metrics.MultiInstrumentMetricsAccumulator` (MT3-style multi-instrument
onset and onset+offset P/R/F1, per-family P/R/F1, leakage). No ground-truth family list is given
to the model (``present_instruments`` stays the user's setting).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any


def evaluate_full(
    components: Any,
    examples: Iterable[Any],
    eval_num_steps: int | None = None,
    progress: Callable[[int, int | None, str], None] | None = None,
) -> tuple[dict[str, float], dict[str, Any], list[dict[str, Any]]]:
    """(mean agnostic metrics, pooled multi-instrument metrics, per-example rows) over up to
    ``eval_num_steps`` examples (all empty when there was no example)."""
    from polyamp.evaluation import reference_notes
    from polyamp.full_transcription import FullTranscriber
    from polyamp.metrics import average_metrics, transcription_metrics
    from polyamp.multi_metrics import MultiInstrumentMetricsAccumulator

    transcriber = FullTranscriber(components)
    melodic_hparams = components.parts["melodic"].hparams
    accumulator = MultiInstrumentMetricsAccumulator()
    agnostic_rows: list[dict[str, float]] = []
    per_example: list[dict[str, Any]] = []
    for index, example in enumerate(examples):
        if eval_num_steps is not None and index >= eval_num_steps:
            break
        result = transcriber.transcribe_samples(example.samples)
        reference = reference_notes(example.sequence, melodic_hparams)
        estimate = components.decoder.to_note_sequence(result.notes)
        agnostic = transcription_metrics(reference, estimate)
        multi = accumulator.add(reference, result.notes_by_family)
        agnostic_rows.append(agnostic)
        multi_keys = {
            key: value for key, value in multi.items() if key.startswith(("multi_", "leakage_", "num_", "matched_"))
        }
        per_example.append({"id": example.example_id, **agnostic, **multi_keys})
        if progress is not None:
            progress(index + 1, eval_num_steps, example.example_id)
    if not per_example:
        return {}, {}, []
    return average_metrics(agnostic_rows), accumulator.result(), per_example
