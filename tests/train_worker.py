"""A training process for tests/test_distributed.py and tests/test_faults.py: ``polyamp.training.train`` with
a line per step on stdout (``step N``, flushed) and, at the end, one JSON line of what happened.

``python train_worker.py EXAMPLES MODEL_DIR --model-id ID --num-steps N [--seed S] [--gin-file F ...]
[--gin-param P ...] [--weights OUT.npz]``. ``--weights`` writes the model's final weights (every variable,
trainable or not) so that two workers can be compared. ``TF_CONFIG`` comes from the environment.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("examples")
    parser.add_argument("model_dir")
    parser.add_argument("--model-id", default="worker")
    parser.add_argument("--num-steps", type=int, required=True)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--gin-file", action="append", default=[])
    parser.add_argument("--gin-param", action="append", default=[])
    parser.add_argument("--weights", default=None)
    args = parser.parse_args()

    import polyamp.training as training

    built = []
    build = training.build_components

    def keep(**kwargs: object) -> object:  # keeps the model object, to write its weights after training
        built.append(build(**kwargs))
        return built[-1]

    training.build_components = keep
    training.configure_training(args.model_dir, "melodic", args.model_id, args.gin_file, args.gin_param)
    times: list[float] = []

    def progress(step: int, total: int, losses: dict[str, float], rate: float) -> None:
        times.append(time.perf_counter())
        print(f"step {step}", flush=True)

    started = time.perf_counter()
    result = training.train(
        args.examples,
        args.model_dir,
        model_id=args.model_id,
        num_steps=args.num_steps,
        seed=args.seed,
        progress=progress,
    )
    if args.weights:
        import numpy as np

        np.savez(args.weights, *[np.asarray(variable) for variable in built[0].model.weights])
    summary = {
        "first_step": result.first_step,
        "last_step": result.last_step,
        # Steps per second after the first step (which includes tracing the step function).
        "steps_per_s": (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0,
        "seconds_to_first_step": times[0] - started if times else None,
        "loss": result.last_losses.get("total"),
    }
    print(json.dumps(summary), flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
