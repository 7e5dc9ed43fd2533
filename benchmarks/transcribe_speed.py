"""Transcription speed and memory (issue 3, acceptance 3).

Times the whole ``polyamp transcribe`` command (start-up included) with the ``small`` Melodic
model on a 10-minute and a 60-minute file, and reads each run's peak resident memory
(``getrusage(RUSAGE_CHILDREN).ru_maxrss`` of a fresh child process per run).

    python benchmarks/transcribe_speed.py --model-dir /tmp/learning-check/models --load-id learning-check

Without ``--model-dir`` it trains the small model for a few steps first (speed does not depend on
the weights). Targets: 10-minute file under 10 s; 60-minute peak memory within 1.2x of the 10-minute one.
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

import numpy as np


def polyamp_command() -> list[str]:
    script = Path(sys.executable).parent / "polyamp"
    return [str(script)] if script.exists() else [shutil.which("polyamp") or "polyamp"]


def write_long_file(path: Path, minutes: float, sample_rate: int, channels: int) -> None:
    """Tiles one minute of synthesised polyphonic tones to ``minutes``, written block by block."""
    import soundfile

    from polyamp.data.synthetic import random_note_sequence, synthesize

    minute = synthesize(random_note_sequence(np.random.default_rng(5), 60.0), sample_rate_hz=sample_rate)
    minute = np.pad(minute, (0, max(0, 60 * sample_rate - minute.shape[0])))[: 60 * sample_rate]
    block = np.stack([minute] * channels, axis=1) if channels > 1 else minute
    with soundfile.SoundFile(path, "w", samplerate=sample_rate, channels=channels, subtype="PCM_16") as out:
        for _ in range(int(minutes)):
            out.write(block)


def timed_child(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Runs ``command`` in a fresh process: (wall seconds, peak RSS in MB) of that process alone."""
    code = (
        "import resource, subprocess, sys, json, time\n"
        "t = time.perf_counter()\n"
        "r = subprocess.run(sys.argv[1:])\n"
        "wall = time.perf_counter() - t\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
        "print(json.dumps({'rc': r.returncode, 'wall': wall, 'peak_mb': peak}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code, *command], capture_output=True, text=True, env=env)
    info = json.loads(result.stdout.strip().splitlines()[-1])
    if info["rc"] != 0:
        raise SystemExit(f"transcribe failed:\n{result.stderr}")
    return info["wall"], info["peak_mb"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, default=Path("benchmarks/results/tmp/speed"))
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--load-id", default="*")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--sample-rate", type=int, default=16000, help="Rate of the test files (44100 to include resampling)."
    )
    parser.add_argument("--channels", type=int, default=1)
    args = parser.parse_args()

    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    model_dir = args.model_dir
    if model_dir is None:
        model_dir = work / "models"
        if not (model_dir / "melodic" / "speed").exists():
            from polyamp.data.synthetic import write_synthetic_tfrecord

            data = work / "train.tfrecord"
            if not data.exists():
                write_synthetic_tfrecord(data, num_examples=8, duration_s=6.0, seed=3)
            subprocess.run(
                polyamp_command()
                + [
                    "train",
                    "--examples-path",
                    str(data),
                    "--model-dir",
                    str(model_dir),
                    "--model-id",
                    "speed",
                    "--gin-file",
                    "melodic/small.gin",
                    "--num-steps",
                    "2",
                ],
                check=True,
                env=env,
            )
        args.load_id = "speed"

    results = {}
    for minutes in (10, 60):
        audio = work / f"tones_{minutes}min_{args.sample_rate}hz_{args.channels}ch.wav"
        if not audio.exists():
            write_long_file(audio, minutes, args.sample_rate, args.channels)
        runs = []
        for _ in range(args.repeats if minutes == 10 else 1):
            command = polyamp_command() + [
                "transcribe",
                str(audio),
                "--model-dir",
                str(model_dir),
                "--load-id",
                args.load_id,
                "--output-dir",
                str(work / "out"),
                "--overwrite",
            ]
            runs.append(timed_child(command, env))
            time.sleep(1)
        walls = [wall for wall, _ in runs]
        results[f"{minutes}min"] = {
            "wall_s_best": round(min(walls), 2),
            "wall_s_median": round(float(np.median(walls)), 2),
            "peak_rss_mb": round(max(peak for _, peak in runs), 1),
        }
    ratio = results["60min"]["peak_rss_mb"] / results["10min"]["peak_rss_mb"]
    results["peak_memory_ratio_60_vs_10"] = round(ratio, 3)
    results["input"] = f"{args.sample_rate} Hz, {args.channels} channel(s), 16-bit WAV"
    print(json.dumps(results, indent=2))
    passed = results["10min"]["wall_s_median"] < 10.0 and ratio <= 1.2
    print("PASS" if passed else "FAIL: targets are < 10 s for 10 minutes and a memory ratio <= 1.2")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
