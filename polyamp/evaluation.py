"""The evaluation workflow: transcribe held-out examples and score them with mir_eval."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gin

from polyamp.errors import DatasetError
from polyamp.fileio import atomic_write_text


@dataclasses.dataclass
class EvalResult:
    """Per-example and averaged metrics, and where the JSON went."""

    checkpoint: str
    step: int
    per_example: list[dict[str, Any]]
    average: dict[str, float]
    output_json: Path | None
    timbre: dict[str, Any] | None = None
    full: dict[str, Any] | None = None
    """Full model only: pooled multi-instrument metrics (``MultiInstrumentMetricsAccumulator.result()``)."""


@gin.configurable(denylist=["examples_path", "model_dir", "model_type", "load_id", "load_full", "progress"])
def evaluate(
    examples_path: str,
    model_dir: str | os.PathLike[str],
    model_type: str = "melodic",
    load_id: str = "*",
    eval_num_steps: int | None = None,
    output_json: str | os.PathLike[str] | None = None,
    overwrite: bool = True,
    split: str | None = "test",
    progress: Callable[[int, int | None, str], None] | None = None,
    components: Any = None,
    checkpoint: Any = None,
    load_full: bool | None = None,
) -> EvalResult:
    """Scores the checkpoint ``load_id`` names on up to ``eval_num_steps`` examples (all if None).

    Metrics (mir_eval, 31.25 frames/s for frame metrics): frame P/R/F1; note (onset within
    50 ms) P/R/F1; note with offset; note with velocity; note with offset and velocity. They are
    reported per example and averaged over examples. The JSON goes to ``output_json`` (default:
    ``<run dir>/eval/metrics-<step>.json``). The Full model (``load_full``: its own checkpoint or its
    parts', see :mod:`polyamp.full_loading`) adds multi-instrument metrics
    (``<run dir>/eval/full-metrics-<step>.json``).
    """
    from polyamp.data.datasets import open_dataset
    from polyamp.inference import WindowedPredictor
    from polyamp.loading import load_components
    from polyamp.metrics import average_metrics, transcription_metrics

    if components is None or checkpoint is None:
        components, checkpoint = load_components(model_dir, model_type, load_id, load_full=load_full)
    source = open_dataset(examples_path, split=split)
    if components.model_type == "full":
        return _evaluate_full(
            components, checkpoint, source, examples_path, eval_num_steps, output_json, overwrite, progress
        )
    if components.model_type == "timbre":
        return _evaluate_timbre(
            components, checkpoint, source, examples_path, eval_num_steps, output_json, overwrite, progress
        )
    predictor = WindowedPredictor(components.model, components.frontend)
    per_example: list[dict[str, Any]] = []
    for index, example in enumerate(source.examples()):
        if eval_num_steps is not None and index >= eval_num_steps:
            break
        rolls = predictor.predict_samples(example.samples)
        estimate = components.decoder(rolls.frames, rolls.onsets, rolls.offsets, rolls.velocities)
        reference = reference_notes(example.sequence, components.hparams)
        metrics = transcription_metrics(reference, estimate)
        per_example.append({"id": example.example_id, **metrics})
        if progress is not None:
            progress(index + 1, eval_num_steps, example.example_id)
    if not per_example:
        raise DatasetError(f"no examples to evaluate in {examples_path}")
    average = average_metrics([{k: v for k, v in row.items() if k != "id"} for row in per_example])
    destination = Path(output_json) if output_json else checkpoint.run_dir / "eval" / f"metrics-{checkpoint.step}.json"
    report = {
        "checkpoint": checkpoint.prefix,
        "step": checkpoint.step,
        "examples_path": examples_path,
        "num_examples": len(per_example),
        "frames_per_second": 31.25,
        "reference": "sustain-extended" if components.hparams.apply_sustain else "raw MIDI note durations",
        "average": average,
        "per_example": per_example,
    }
    _write_report(destination, report, overwrite)
    return EvalResult(checkpoint.prefix, checkpoint.step, per_example, average, destination)


def _evaluate_timbre(
    components: Any,
    checkpoint: Any,
    source: Any,
    examples_path: str,
    eval_num_steps: int | None,
    output_json: str | os.PathLike[str] | None,
    overwrite: bool,
    progress: Callable[[int, int | None, str], None] | None,
) -> EvalResult:
    """Timbre evaluation: family accuracy, macro-F1, per-family P/R/F1 and confusion over every reference note."""
    from polyamp.timbre_evaluation import evaluate_timbre

    pooled, per_example = evaluate_timbre(components, source.examples(), eval_num_steps, progress)
    if not per_example:
        raise DatasetError(f"no examples with pitched notes to evaluate in {examples_path}")
    destination = Path(output_json) if output_json else checkpoint.run_dir / "eval" / f"metrics-{checkpoint.step}.json"
    report = {
        "checkpoint": checkpoint.prefix,
        "step": checkpoint.step,
        "examples_path": examples_path,
        "num_examples": len(per_example),
        "timbre": pooled,
        "per_example": per_example,
    }
    _write_report(destination, report, overwrite)
    average = {"accuracy": pooled["accuracy"], "macro_f1": pooled["macro_f1"]}
    result = EvalResult(checkpoint.prefix, checkpoint.step, per_example, average, destination)
    result.timbre = pooled
    return result


def _evaluate_full(
    components: Any,
    checkpoint: Any,
    source: Any,
    examples_path: str,
    eval_num_steps: int | None,
    output_json: str | os.PathLike[str] | None,
    overwrite: bool,
    progress: Callable[[int, int | None, str], None] | None,
) -> EvalResult:
    """Full evaluation: agnostic mir_eval metrics and multi-instrument metrics (polyamp.full_evaluation)."""
    from polyamp.full_evaluation import evaluate_full

    average, multi, per_example = evaluate_full(components, source.examples(), eval_num_steps, progress)
    if not per_example:
        raise DatasetError(f"no examples to evaluate in {examples_path}")
    destination = (
        Path(output_json) if output_json else checkpoint.run_dir / "eval" / f"full-metrics-{checkpoint.step}.json"
    )
    melodic_hparams = components.parts["melodic"].hparams
    report = {
        "checkpoint": checkpoint.prefix,
        "step": checkpoint.step,
        "examples_path": examples_path,
        "num_examples": len(per_example),
        "frames_per_second": 31.25,
        "reference": "sustain-extended" if melodic_hparams.apply_sustain else "raw MIDI note durations",
        "average": average,
        "multi_instrument": multi,
        "per_example": per_example,
    }
    _write_report(destination, report, overwrite)
    result = EvalResult(checkpoint.prefix, checkpoint.step, per_example, average, destination)
    result.full = multi
    return result


def _write_report(destination: Path, report: dict[str, Any], overwrite: bool) -> None:
    """Writes the metrics JSON atomically; OutputExistsError for an existing file unless ``overwrite``."""
    if destination.exists() and not overwrite:
        from polyamp.errors import OutputExistsError

        raise OutputExistsError(f"{destination} exists; pass --overwrite to replace it")
    atomic_write_text(destination, json.dumps(report, indent=2) + "\n")


def reference_notes(sequence: Any, hparams: Any) -> Any:
    """The reference NoteSequence of an evaluation, sustain-extended when the model was trained that way."""
    if not hparams.apply_sustain:
        return sequence
    from note_seq import sequences_lib

    return sequences_lib.apply_sustain_control_changes(sequence)
