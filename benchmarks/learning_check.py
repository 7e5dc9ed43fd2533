"""Learning check (issue 3, acceptance 2).

Trains the ``small`` Melodic model (``recipes/synthetic_tones.gin``) on synthesised polyphonic
harmonic-tone clips (random chords and melodies, 3-4 voices) for at most ``--budget-minutes`` of
wall time on this CPU, then scores clips it never saw with ``polyamp eval``. Passes when note
(onset) F1 and frame F1 both reach ``--target`` (0.90).

    python benchmarks/learning_check.py --work-dir /tmp/learning-check

Everything goes through the installed ``polyamp`` command, exactly as a user would run it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path


def polyamp_command() -> list[str]:
    script = Path(sys.executable).parent / "polyamp"
    return [str(script)] if script.exists() else [shutil.which("polyamp") or "polyamp"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, default=Path("benchmarks/results/tmp/learning-check"))
    parser.add_argument("--budget-minutes", type=float, default=20.0)
    parser.add_argument("--train-clips", type=int, default=400)
    parser.add_argument("--test-clips", type=int, default=25)
    parser.add_argument("--clip-seconds", type=float, default=10.0)
    parser.add_argument("--target", type=float, default=0.90)
    parser.add_argument("--fresh", action="store_true", help="Delete earlier checkpoints of this check first.")
    args = parser.parse_args()

    from polyamp.data.synthetic import write_synthetic_tfrecord

    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    train_path = work / "train.tfrecord"
    test_path = work / "test.tfrecord"
    if not train_path.exists():
        write_synthetic_tfrecord(train_path, num_examples=args.train_clips, duration_s=args.clip_seconds, seed=1)
    if not test_path.exists():  # a different seed: clips the model never saw
        write_synthetic_tfrecord(test_path, num_examples=args.test_clips, duration_s=args.clip_seconds, seed=424242)
    models = work / "models"
    if args.fresh and models.exists():
        shutil.rmtree(models)

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    started = time.perf_counter()
    train = polyamp_command() + [
        "train",
        "--model-type",
        "melodic",
        "--examples-path",
        str(train_path),
        "--model-dir",
        str(models),
        "--model-id",
        "learning-check",
        "--gin-file",
        "recipes/synthetic_tones.gin",
        "--num-steps",
        "100000",
        "--gin-param",
        f"train.max_seconds = {args.budget_minutes * 60:.0f}",
        "--seed",
        "1",
    ]
    subprocess.run(train, check=True, env=env)
    train_minutes = (time.perf_counter() - started) / 60

    output = work / "eval.json"
    evaluate = polyamp_command() + [
        "eval",
        "--model-type",
        "melodic",
        "--examples-path",
        str(test_path),
        "--model-dir",
        str(models),
        "--load-id",
        "learning-check",
        "--output-json",
        str(output),
        "--overwrite",
    ]
    subprocess.run(evaluate, check=True, env=env)
    report = json.loads(output.read_text())
    average = report["average"]
    note_f1, frame_f1 = average["note_f1"], average["frame_f1"]
    print(
        json.dumps(
            {
                "train_wall_minutes_including_startup": round(train_minutes, 2),
                "steps": report["step"],
                "test_clips": report["num_examples"],
                "note_f1": round(note_f1, 4),
                "frame_f1": round(frame_f1, 4),
                "note_with_offsets_f1": round(average["note_with_offsets_f1"], 4),
                "note_with_offsets_and_velocity_f1": round(average["note_with_offsets_and_velocity_f1"], 4),
            },
            indent=2,
        )
    )
    passed = note_f1 >= args.target and frame_f1 >= args.target
    print("PASS" if passed else f"FAIL: target {args.target} for note F1 and frame F1")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
