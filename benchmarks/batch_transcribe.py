"""Batch transcription that holds up (issue 7, acceptance 3): many short clips, some of them broken.

1. Writes ``--clips`` short WAV clips (``--clip-seconds`` of random chords of decaying harmonic
   tones, 16 kHz mono) into ``<work-dir>/clips``; ``--broken`` of them are replaced by broken files
   of five kinds in turn: zero-length, random bytes, a WAV header with no samples, a MIDI file named
   ``.wav``, and silence.
2. Runs ``polyamp transcribe <work-dir>/clips --output-dir <work-dir>/midi`` once with the given
   checkpoint (model loading included in the wall time), then checks: one MIDI per good clip, no
   output for a broken clip, every broken clip named in the failure table, exit code 2.
3. Runs the same command again: every good clip is skipped (the resume path), exit code 2 again.

    python benchmarks/batch_transcribe.py --model-dir models --load-id my-run [--clips 1000 --broken 20]

Writes ``<work-dir>/batch_transcribe.json`` and prints files per second.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile

SAMPLE_RATE_HZ = 16000
BROKEN_KINDS = ("zero-length", "random-bytes", "header-only", "midi-named-wav", "silent")


def tone_clip(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """``[seconds * 16000]`` float32 samples: two or three chords of decaying harmonic tones."""
    length = int(seconds * SAMPLE_RATE_HZ)
    samples = np.zeros(length, np.float32)
    times = np.arange(length) / SAMPLE_RATE_HZ
    for start in np.sort(rng.uniform(0.0, seconds * 0.6, size=int(rng.integers(2, 4)))):
        for pitch in rng.choice(np.arange(48, 84), size=int(rng.integers(1, 4)), replace=False):
            frequency = 440.0 * 2.0 ** ((pitch - 69) / 12.0)
            local = np.clip(times - start, 0.0, None)
            envelope = (times >= start) * np.exp(-3.0 * local)
            for harmonic in (1, 2, 3):
                samples += (0.15 / harmonic * envelope * np.sin(2 * np.pi * frequency * harmonic * local)).astype(
                    np.float32
                )
    return samples / max(1.0, float(np.max(np.abs(samples))) / 0.9)


def write_broken(path: Path, kind: str, rng: np.random.Generator) -> None:
    """One broken ``.wav`` of ``kind`` (see BROKEN_KINDS)."""
    if kind == "zero-length":
        path.write_bytes(b"")
    elif kind == "random-bytes":
        path.write_bytes(rng.integers(0, 256, size=2000, dtype=np.uint8).tobytes())
    elif kind == "header-only":
        soundfile.write(path, np.zeros(SAMPLE_RATE_HZ, np.float32), SAMPLE_RATE_HZ, subtype="PCM_16")
        path.write_bytes(path.read_bytes()[:44])
    elif kind == "midi-named-wav":
        path.write_bytes(b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x01\xe0MTrk\x00\x00\x00\x04\x00\xff\x2f\x00")
    elif kind == "silent":
        soundfile.write(path, np.zeros(2 * SAMPLE_RATE_HZ, np.float32), SAMPLE_RATE_HZ, subtype="PCM_16")
    else:
        raise ValueError(kind)


def make_clips(folder: Path, count: int, broken: int, seconds: float, seed: int) -> list[Path]:
    """Writes the clips; returns the broken ones (spread evenly through the batch)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    broken_indices = set(np.linspace(0, count - 1, broken, dtype=int).tolist()) if broken else set()
    broken_paths = []
    for index in range(count):
        path = folder / f"clip{index:05d}.wav"
        if index in broken_indices:
            write_broken(path, BROKEN_KINDS[len(broken_paths) % len(BROKEN_KINDS)], rng)
            broken_paths.append(path)
        else:
            soundfile.write(path, tone_clip(rng, seconds), SAMPLE_RATE_HZ, subtype="PCM_16")
    return broken_paths


def polyamp_command() -> list[str]:
    script = Path(sys.executable).parent / "polyamp"
    return [str(script)] if script.exists() else [shutil.which("polyamp") or "polyamp"]


def run_batch(command: list[str]) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.perf_counter()
    env = {**os.environ, "COLUMNS": "400"}  # the failure table unfolded: one line per file
    result = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    return result, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, default=Path("benchmarks/results/tmp/batch-transcribe"))
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--load-id", required=True)
    parser.add_argument("--model-type", default="melodic")
    parser.add_argument("--clips", type=int, default=1000)
    parser.add_argument("--broken", type=int, default=20)
    parser.add_argument("--clip-seconds", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.work_dir.exists():
        shutil.rmtree(args.work_dir)
    clips, outputs = args.work_dir / "clips", args.work_dir / "midi"
    broken = make_clips(clips, args.clips, args.broken, args.clip_seconds, args.seed)
    command = polyamp_command() + ["transcribe", str(clips), "--output-dir", str(outputs)]
    command += ["--model-dir", str(args.model_dir), "--load-id", args.load_id, "--model-type", args.model_type]

    first, first_seconds = run_batch(command)
    written = sorted(path.name for path in outputs.glob("*.mid"))
    good = args.clips - len(broken)
    reported = [path.name for path in broken if path.name in first.stdout]
    broken_outputs = [path.name for path in broken if (outputs / f"{path.stem}.polyamp.mid").exists()]
    second, second_seconds = run_batch(command)
    skipped = re.search(r"skipped (\d+)", second.stdout)
    summary = {
        "clips": args.clips,
        "broken": len(broken),
        "clip_seconds": args.clip_seconds,
        "exit_code": first.returncode,
        "outputs": len(written),
        "broken_named_in_failure_table": len(reported),
        "outputs_of_broken_clips": len(broken_outputs),
        "wall_seconds": round(first_seconds, 1),
        "files_per_second": round(args.clips / first_seconds, 2),
        "audio_seconds_per_wall_second": round(good * args.clip_seconds / first_seconds, 2),
        "rerun_exit_code": second.returncode,
        "rerun_skipped": int(skipped.group(1)) if skipped else None,
        "rerun_wall_seconds": round(second_seconds, 1),
        "summary_line": next((line for line in first.stdout.splitlines() if line.startswith("transcribed")), ""),
    }
    (args.work_dir / "batch_transcribe.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
    ok = (
        first.returncode == 2
        and len(written) == good
        and len(reported) == len(broken)
        and not broken_outputs
        and second.returncode == 2
        and summary["rerun_skipped"] == good
    )
    if not ok:
        print(first.stdout[-3000:], first.stderr[-3000:], sep="\n")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
