"""Full-model learning check (issue 5, acceptance 2): multi-instrument note F1 on held-out pieces.

Uses the same data as ``timbre_learning.py`` (run that first with the same ``--work-dir``: it renders
the evaluation sets and trains the Timbre model ``timbre/<model-id>``):

1. ``polyamp train --model-type melodic`` (``--gin-file``, default ``melodic/small.gin``) on random
   2-4-stem sub-mixes of the FluidR3 training renders, for ``--budget-minutes`` of wall time per call.
   A second call resumes the run from its last checkpoint, so the Melodic part can be trained over
   several sessions.
2. With ``--validation-dir`` (``polyamp synth --splits validation --parts 2-4``: pieces of neither
   training nor evaluation), the Melodic onset threshold is chosen there by agnostic onset F1 and
   used for the evaluation below; the evaluation pieces never choose anything. Each validation piece
   is predicted once and decoded at every candidate threshold.
3. ``polyamp eval --model-type full --no-load-full`` joins ``melodic/<model-id>`` and ``timbre/<model-id>``
   and scores both evaluation sets (held-out pieces of 2-4 instruments, FluidR3 and TimGM6mb):
   agnostic note F1, MT3-style multi-instrument onset and onset+offset F1 (counts pooled over
   families), per-family F1 and leakage.

    python benchmarks/full_learning.py --work-dir /tmp/timbre-check --train-dir synth/train

Writes ``<work-dir>/full_learning.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timbre_learning import EVAL_SETS, pooled_train_dir, run, train_arguments  # noqa: E402


def validation_onset_f1(models: Path, args: argparse.Namespace, thresholds: list[float]) -> dict[float, float]:
    """Agnostic note onset F1 (mir_eval, averaged over pieces) of ``melodic/<model-id>`` on
    ``--validation-dir`` at each onset threshold. Each piece's rolls are predicted once and decoded
    at every threshold (the library API; the decoder is the model's own with only the threshold changed)."""

    from polyamp.components import melodic_decoder
    from polyamp.data.datasets import open_dataset
    from polyamp.evaluation import reference_notes
    from polyamp.inference import WindowedPredictor
    from polyamp.loading import load_components
    from polyamp.metrics import average_metrics, transcription_metrics

    components, checkpoint = load_components(str(models), "melodic", args.model_id)
    hparams = components.hparams
    predictor = WindowedPredictor(components.model, components.frontend)
    decoders = {value: melodic_decoder(hparams, onset_threshold=value) for value in thresholds}
    rows: dict[float, list[dict[str, float]]] = {value: [] for value in thresholds}
    for example in open_dataset(str(args.validation_dir), split="validation").examples():
        rolls = predictor.predict_samples(example.samples)
        for value, decoder in decoders.items():
            notes = decoder.decode(rolls.frames, rolls.onsets, rolls.offsets, rolls.velocities)
            rows[value].append(transcription_metrics(reference_notes(example.sequence, hparams), notes))
        print(f"validation {example.example_id} (melodic step {checkpoint.step})", flush=True)
    if not rows[thresholds[0]]:
        raise SystemExit(f"no validation pieces in {args.validation_dir}")
    return {value: float(average_metrics(scores)["note_f1"]) for value, scores in rows.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, default=Path("benchmarks/results/tmp/timbre-check"))
    parser.add_argument(
        "--train-dir", type=Path, action="append", help="Slakh-layout train split (track folders); repeatable."
    )
    parser.add_argument("--budget-minutes", type=float, default=60.0, help="Melodic training wall time for this call.")
    parser.add_argument("--gin-file", default="melodic/small.gin")
    parser.add_argument("--model-id", default="context", help="Id of both parts: melodic/<id> and timbre/<id>.")
    parser.add_argument("--audio-cache-mb", type=float, default=6000.0, help="Decoded stems kept in memory.")
    parser.add_argument("--skip-train", action="store_true", help="Evaluate the existing checkpoints only.")
    parser.add_argument(
        "--validation-dir",
        type=Path,
        help="Slakh-layout validation split (pieces of neither training nor evaluation) on which the Melodic "
        "onset threshold is chosen; without it the trained default (0.5) is used.",
    )
    parser.add_argument("--onset-thresholds", default="0.3,0.4,0.5,0.6,0.7", help="Candidates for --validation-dir.")
    parser.add_argument(
        "--min-family-share",
        type=float,
        default=0.0,
        help="Timbre hparam min_family_share for the Full evaluation, as timbre_learning.py chose it on the "
        "validation pieces (0 = off).",
    )
    args = parser.parse_args()
    work = args.work_dir
    models = work / "models"
    if not (models / "timbre" / args.model_id).is_dir():
        parser.error(f"no Timbre run {models / 'timbre' / args.model_id}: run benchmarks/timbre_learning.py first")

    train_seconds = None
    if not args.skip_train:
        if not args.train_dir:
            parser.error("--train-dir is needed to train (or pass --skip-train)")
        train_dir = pooled_train_dir(args.train_dir, work / "train-pooled")
        train_seconds = run(train_arguments("melodic", train_dir, models, args))
    results: dict = {"model_id": args.model_id, "melodic_gin_file": args.gin_file, "train_seconds": train_seconds}
    hparams: dict[str, float] = {"min_family_share": args.min_family_share} if args.min_family_share > 0 else {}
    if args.validation_dir is not None:
        thresholds = [float(value) for value in args.onset_thresholds.split(",")]
        scores = validation_onset_f1(models, args, thresholds)
        best = max(scores, key=lambda value: scores[value])
        results["onset_threshold_validation"] = {"f1_by_threshold": scores, "chosen": best}
        hparams["predict_onset_threshold"] = best
        print(f"onset threshold chosen on {args.validation_dir}: {best} (agnostic onset F1 {scores})")
    results["eval_hparams"] = hparams
    overrides = ["--hparams", json.dumps(hparams)] if hparams else []
    results["sets"] = {}
    for name, folder_name in EVAL_SETS.items():
        output = work / f"full-eval-{folder_name}.json"
        run(
            ["eval", "--model-type", "full", "--no-load-full", "--load-id", args.model_id, "--model-dir", str(models)]
            + ["--examples-path", str(work / folder_name / "test"), "--output-json", str(output), "--overwrite"]
            + overrides
        )
        report = json.loads(output.read_text())
        report.pop("per_example", None)
        results["sets"][name] = report
    (work / "full_learning.json").write_text(json.dumps(results, indent=1) + "\n")

    columns = ["evaluation set", "melodic step", "agnostic onset F1", "multi onset F1", "multi onset+offset F1"]
    print("\n| " + " | ".join([*columns, "leakage tracks/instrument"]) + " |")
    print("|---|---|---|---|---|---|")
    for name, report in results["sets"].items():
        pooled = report["multi_instrument"]["pooled"]
        print(
            f"| {name} | {report['step']} | {report['average']['note_f1']:.3f} | {pooled['multi_note_f1']:.3f} "
            f"| {pooled['multi_note_with_offsets_f1']:.3f} | {pooled.get('leakage_tracks_per_instrument', 0.0):.2f} |"
        )
    for name, report in results["sets"].items():
        families = report["multi_instrument"]["per_family"]
        row = ", ".join(f"{family} {scores.get('note_f1', 0.0):.2f}" for family, scores in families.items())
        print(f"\nper-family onset F1, {name}: {row}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
