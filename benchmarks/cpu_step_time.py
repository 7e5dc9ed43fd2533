"""Training step time of the CPU presets, with TensorFlow's oneDNN kernels on and off.

For each preset, a fresh process builds the model from its gin file and times ``--steps`` Adam
steps (forward, backward, update; after two warm-up steps) on a random batch of the preset's own
shape: Melodic ``batch_size`` x ``truncated_length_secs`` of CQT frames; Timbre ``batch_size`` x
``truncated_length_secs`` of timbre frames with ``timbre_max_notes`` notes each. No input pipeline
is involved: this is the model's share of a training step.

    python benchmarks/cpu_step_time.py [--steps 5] [--output benchmarks/results/cpu_step_time.json]
    python benchmarks/cpu_step_time.py --preset melodic=melodic/fast.gin --preset melodic=melodic/small.gin \
        --gin-param "MelodicHParams.onset_lstm_units = 0" --onednn on --output /tmp/variants.json

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
parse_gin([gin_file], json.loads(sys.argv[4]))
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


def time_preset(
    model_type: str, gin_file: str, onednn: bool, steps: int, gin_params: list[str] | None = None
) -> dict[str, float]:
    """Runs one timing child process; returns ``{"seconds_per_step", "params"}``."""
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "1" if onednn else "0", "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, model_type, gin_file, str(steps), json.dumps(gin_params or [])],
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
    parser.add_argument(
        "--preset",
        action="append",
        default=[],
        metavar="TYPE=GIN",
        help="a model type and the gin file to time (repeatable); default: " + ", ".join(PRESETS.values()),
    )
    parser.add_argument("--gin-param", action="append", default=[], help="a gin binding for every preset")
    parser.add_argument("--onednn", choices=("both", "on", "off"), default="both")
    args = parser.parse_args()
    presets = [_parse_preset(text) for text in args.preset] or list(PRESETS.items())
    modes = {"both": (False, True), "on": (True,), "off": (False,)}[args.onednn]
    rows = []
    for model_type, gin_file in presets:
        row: dict[str, object] = {"model_type": model_type, "gin_file": gin_file, "gin_params": args.gin_param}
        for onednn in modes:
            timed = time_preset(model_type, gin_file, onednn=onednn, steps=args.steps, gin_params=args.gin_param)
            row["params"] = int(timed["params"])
            row[f"seconds_per_step_onednn_{'on' if onednn else 'off'}"] = round(timed["seconds_per_step"], 3)
        if len(modes) == 2:
            row["speedup"] = round(row["seconds_per_step_onednn_off"] / row["seconds_per_step_onednn_on"], 2)
        rows.append(row)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    summary = {"cpu_count": os.cpu_count(), "steps": args.steps, "rows": rows}
    args.output.write_text(json.dumps(summary, indent=1) + "\n")
    print("| preset | params | s/step oneDNN off | s/step oneDNN on | speed-up |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['gin_file']} | {row['params']:,} | {row.get('seconds_per_step_onednn_off', '-')} "
            f"| {row.get('seconds_per_step_onednn_on', '-')} | {row.get('speedup', '-')} |"
        )


def _parse_preset(text: str) -> tuple[str, str]:
    """``"melodic=melodic/fast.gin"`` -> ``("melodic", "melodic/fast.gin")``."""
    model_type, separator, gin_file = text.partition("=")
    if not separator or model_type not in PRESETS or not gin_file:
        raise SystemExit(f"--preset must look like melodic=melodic/small.gin, not {text!r}")
    return model_type, gin_file


if __name__ == "__main__":
    main()
