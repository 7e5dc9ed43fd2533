"""Training step time of the CPU presets, with TensorFlow's oneDNN kernels on and off.

For each preset, a fresh process builds the model from its gin file and times ``--steps`` Adam
steps (forward, backward, update; after two warm-up steps) on a random batch of the preset's own
shape: Melodic ``batch_size`` x ``truncated_length_secs`` of CQT frames; Timbre ``batch_size`` x
``truncated_length_secs`` of timbre frames with ``timbre_max_notes`` notes each. No input pipeline
is involved: this is the model's share of a training step.

    python benchmarks/cpu_step_time.py [--steps 5] [--output benchmarks/results/cpu_step_time.json]

``TF_ENABLE_ONEDNN_OPTS`` is set per child process (``0`` = off, ``1`` = on, TensorFlow's default on
x86). Prints a Markdown table; stop other CPU work first, the figures are wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

PRESETS = {"melodic": "melodic/small.gin", "timbre": "timbre/context.gin"}
"""Model type -> the gin preset timed."""

_CHILD = r"""
import json, sys, time
from polyamp.config import parse_gin
model_type, gin_file, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
parse_gin([gin_file], [])
from polyamp.components import build_components
import tensorflow as tf
components = build_components(model_type=model_type)
model, hparams = components.model, components.hparams
frontend = components.frontend
frames = int(round(hparams.truncated_length_secs * frontend.sample_rate / frontend.hop_length))
bins = frontend.num_bins
rng = tf.random.Generator.from_seed(0)
if model_type == "melodic":
    features = rng.uniform([hparams.batch_size, frames, bins])
else:
    count = hparams.timbre_max_notes
    pitch = rng.uniform([hparams.batch_size, count, 1], 40.0, 80.0)
    start = rng.uniform([hparams.batch_size, count, 1], 0.0, hparams.truncated_length_secs - 1.0)
    notes = tf.concat([pitch, start, start + 0.5], axis=-1)
    features = {"timbre_spec": rng.uniform([hparams.batch_size, frames, bins]), "notes": notes}
optimizer = tf.keras.optimizers.Adam(1e-3)

@tf.function
def step(features):
    with tf.GradientTape() as tape:
        outputs = model(features, training=True)
        loss = tf.add_n([tf.reduce_mean(value) for value in tf.nest.flatten(outputs)])
    gradients = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(gradients, model.trainable_variables))

step(features); step(features)
started = time.perf_counter()
for _ in range(steps):
    step(features)
print(json.dumps({"seconds_per_step": (time.perf_counter() - started) / steps, "params": model.count_params()}))
"""


def time_preset(model_type: str, gin_file: str, onednn: bool, steps: int) -> dict[str, float]:
    """Runs one timing child process; returns ``{"seconds_per_step", "params"}``."""
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "1" if onednn else "0", "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, model_type, gin_file, str(steps)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"timing {gin_file} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/cpu_step_time.json"))
    args = parser.parse_args()
    rows = []
    for model_type, gin_file in PRESETS.items():
        off = time_preset(model_type, gin_file, onednn=False, steps=args.steps)
        on = time_preset(model_type, gin_file, onednn=True, steps=args.steps)
        rows.append(
            {
                "model_type": model_type,
                "gin_file": gin_file,
                "params": int(on["params"]),
                "seconds_per_step_onednn_off": round(off["seconds_per_step"], 3),
                "seconds_per_step_onednn_on": round(on["seconds_per_step"], 3),
                "speedup": round(off["seconds_per_step"] / on["seconds_per_step"], 2),
            }
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    summary = {"cpu_count": os.cpu_count(), "steps": args.steps, "rows": rows}
    args.output.write_text(json.dumps(summary, indent=1) + "\n")
    print("| preset | params | s/step oneDNN off | s/step oneDNN on | speed-up |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['gin_file']} | {row['params']:,} | {row['seconds_per_step_onednn_off']} "
            f"| {row['seconds_per_step_onednn_on']} | {row['speedup']}x |"
        )


if __name__ == "__main__":
    main()
