"""Timbre learning check (issue 5, acceptance 1).

1. Training data: ``polyamp synth`` renders of the music21 corpus with FluidR3 (``--train-dir``
   to reuse renders: a folder of Slakh-layout track folders, repeatable to pool several renders;
   otherwise rendered here with ``--train-minutes``). Only pieces of the ``train`` split are used.
2. Evaluation data: the ``test``-split pieces (never trained on: splits are a hash of the piece id),
   arranged for 2-4 instruments (``polyamp synth --splits test --parts 2-4``), rendered once with
   FluidR3 (the training SoundFont) and once with TimGM6mb (never heard in training).
3. ``polyamp train --model-type timbre --gin-file timbre/context.gin`` on random 2-4-stem sub-mixes
   of the training tracks for at most ``--budget-minutes`` of wall time on this CPU (decoded stems
   kept in memory: ``SlakhDataset.audio_cache_mb``).
4. With ``--validation-dir`` (``polyamp synth --splits validation --parts 2-4``: pieces of neither
   training nor evaluation), the hparam ``min_family_share`` (families a recording is rarely heard
   as are not given to its notes) is chosen there by family accuracy among ``SHARE_GRID``; the
   evaluation pieces never choose anything.
5. ``polyamp eval --model-type timbre`` on both evaluation sets: family accuracy of every
   reference note, macro-F1, per-family figures; with ``--validation-dir`` both without the
   restriction and with the chosen share.

    python benchmarks/timbre_learning.py --work-dir /tmp/timbre-check

Everything goes through the installed ``polyamp`` command, exactly as a user would run it.
Writes ``<work-dir>/timbre_learning.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

FLUID = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
HELD_OUT = "/usr/share/sounds/sf2/TimGM6mb.sf2"
EVAL_SETS = {"FluidR3 (training SoundFont)": "eval-fluidr3", "TimGM6mb (held out)": "eval-timgm"}
"""Evaluation sets: report name -> folder under --work-dir (held-out pieces of 2-4 instruments)."""
EVAL_SOUNDFONTS = {"FluidR3 (training SoundFont)": FLUID, "TimGM6mb (held out)": HELD_OUT}
SHARE_GRID = (0.0, 0.04, 0.06, 0.08, 0.1, 0.12, 0.15)
"""``min_family_share`` values tried on --validation-dir."""


def polyamp_command() -> list[str]:
    script = Path(sys.executable).parent / "polyamp"
    return [str(script)] if script.exists() else [shutil.which("polyamp") or "polyamp"]


def run(arguments: list[str]) -> float:
    print("$ polyamp", " ".join(arguments), flush=True)
    started = time.perf_counter()
    subprocess.run([*polyamp_command(), *arguments], check=True)
    return time.perf_counter() - started


def render_eval_set(folder: Path, soundfont: str, minutes: float) -> None:
    if not (folder / "synth_manifest.json").exists():
        run(
            ["synth", str(folder), "--soundfont", soundfont, "--corpus", "--splits", "test", "--parts", "2-4"]
            + ["--minutes", str(minutes), "--seed", "2"]
        )


def train_arguments(model_type: str, train_dir: Path, models: Path, args: argparse.Namespace) -> list[str]:
    """``polyamp train`` arguments: random 2-4-stem sub-mixes of ``train_dir``, cached stems, a wall-time budget."""
    return (
        ["train", "--model-type", model_type, "--examples-path", str(train_dir), "--model-dir", str(models)]
        + ["--model-id", args.model_id, "--gin-file", args.gin_file, "--gin-file", "datasets/slakh.gin"]
        + ["--gin-param", "SlakhDataset.submix_probability = 1.0"]
        + ["--gin-param", "SlakhDataset.min_submix_stems = 2", "--gin-param", "SlakhDataset.max_submix_stems = 4"]
        + ["--gin-param", f"SlakhDataset.audio_cache_mb = {args.audio_cache_mb}"]
        + ["--gin-param", f"train.max_seconds = {args.budget_minutes * 60:.0f}", "--seed", "0"]
    )


def pooled_train_dir(folders: list[Path], pooled: Path) -> Path:
    """One folder of Slakh track folders: ``folders[0]`` itself, or symlinks to the tracks of all of them."""
    if len(folders) == 1:
        return folders[0]
    pooled.mkdir(parents=True, exist_ok=True)
    for index, folder in enumerate(folders):
        for track in sorted(path for path in folder.iterdir() if (path / "metadata.yaml").exists()):
            link = pooled / f"r{index}-{track.name}"
            if not link.exists():
                link.symlink_to(track.resolve(), target_is_directory=True)
    return pooled


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, default=Path("benchmarks/results/tmp/timbre-check"))
    parser.add_argument(
        "--train-dir", type=Path, action="append", help="Existing Slakh-layout train split (track folders); repeatable."
    )
    parser.add_argument("--train-minutes", type=float, default=240.0)
    parser.add_argument("--eval-minutes", type=float, default=20.0)
    parser.add_argument("--budget-minutes", type=float, default=60.0)
    parser.add_argument("--gin-file", default="timbre/context.gin")
    parser.add_argument("--model-id", default="context")
    parser.add_argument("--audio-cache-mb", type=float, default=6000.0, help="Decoded stems kept in memory.")
    parser.add_argument("--skip-train", action="store_true", help="Evaluate the existing checkpoint only.")
    parser.add_argument(
        "--validation-dir",
        type=Path,
        help="Slakh-layout validation split (pieces of neither training nor evaluation) on which "
        "min_family_share is chosen; without it no restriction is used.",
    )
    args = parser.parse_args()
    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)

    train_dir = pooled_train_dir(args.train_dir, work / "train-pooled") if args.train_dir else None
    if train_dir is None:
        render = work / "train-fluidr3"
        if not (render / "synth_manifest.json").exists():
            run(
                ["synth", str(render), "--soundfont", FLUID, "--corpus", "--minutes", str(args.train_minutes)]
                + ["--seed", "1"]
            )
        train_dir = render / "train"
    eval_sets = {name: work / folder for name, folder in EVAL_SETS.items()}
    for name, folder in eval_sets.items():
        render_eval_set(folder, EVAL_SOUNDFONTS[name], args.eval_minutes)

    models = work / "models"
    train_seconds = None
    if not args.skip_train:
        train_seconds = run(train_arguments("timbre", train_dir, models, args))
    results = {
        "train_dir": str(train_dir),
        "train_tracks": sum(1 for path in Path(train_dir).iterdir() if (path / "metadata.yaml").exists()),
        "gin_file": args.gin_file,
        "train_seconds": train_seconds,
        "sets": {},
    }
    share = 0.0
    if args.validation_dir is not None:
        scores = {value: evaluate(models, args.model_id, args.validation_dir, value, work) for value in SHARE_GRID}
        results["validation_accuracy_by_min_family_share"] = {str(value): score for value, score in scores.items()}
        share = max(SHARE_GRID, key=lambda value: (scores[value], -value))
        results["min_family_share"] = share
        print("validation family accuracy by min_family_share:", scores, "-> chosen", share)
    for name, folder in eval_sets.items():
        output = work / f"eval-{folder.name}.json"
        evaluate(models, args.model_id, folder / "test", 0.0, work, output)
        results["sets"][name] = json.loads(output.read_text())
        if share > 0:
            output = work / f"eval-{folder.name}-share.json"
            evaluate(models, args.model_id, folder / "test", share, work, output)
            results.setdefault("sets_with_min_family_share", {})[name] = json.loads(output.read_text())
    (work / "timbre_learning.json").write_text(json.dumps(results, indent=1) + "\n")
    wall = f"{train_seconds:.0f} s" if train_seconds else "n/a (--skip-train)"
    print(f"\nstep {next(iter(results['sets'].values()))['step']}; training wall time {wall}")
    print("\n| evaluation set | min_family_share | tracks | notes | family accuracy | macro-F1 |")
    print("|---|---|---|---|---|---|")
    for key, value in (("sets", 0.0), ("sets_with_min_family_share", share)):
        for name, report in results.get(key, {}).items():
            metrics = report["timbre"]
            print(
                f"| {name} | {value} | {report['num_examples']} | {metrics['num_notes']} | {metrics['accuracy']:.3f} "
                f"| {metrics['macro_f1']:.3f} |"
            )
    return 0


def evaluate(
    models: Path, model_id: str, examples: Path, share: float, work: Path, output: Path | None = None
) -> float:
    """``polyamp eval --model-type timbre`` of ``examples`` with ``min_family_share = share``; family accuracy."""
    output = output or work / f"timbre-validation-share-{share}.json"
    run(
        ["eval", "--model-type", "timbre", "--examples-path", str(examples), "--model-dir", str(models)]
        + ["--load-id", model_id, "--output-json", str(output), "--overwrite"]
        + ["--hparams", json.dumps({"min_family_share": share})]
    )
    return float(json.loads(output.read_text())["timbre"]["accuracy"])


if __name__ == "__main__":
    raise SystemExit(main())
