"""Issue 4 acceptance: render an hour of Slakh-layout audio from the music21 corpus, twice, then prepare it.

1. ``polyamp synth A --corpus --minutes 60 --seed 0`` (wall time, x real time);
2. the same command into B: every file must be byte-identical to A's;
3. ``polyamp prepare A records`` on the DirectRunner (throughput in seconds of audio per second);
4. ``polyamp train`` on ``records/train.tfrecord-*`` for a few steps (the records are readable).

Usage: python benchmarks/synth_hour.py WORK_DIR [--minutes 60] [--soundfont PATH] [--skip-second]
Writes WORK_DIR/synth_hour.json and prints it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pathlib
import shutil
import subprocess
import sys
import time

POLYAMP = str(pathlib.Path(sys.executable).parent / "polyamp")


def run(command: list[str]) -> float:
    print("$", " ".join(command), flush=True)
    started = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - started


def digests(root: pathlib.Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("work_dir", type=pathlib.Path)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--soundfont", default="/usr/share/sounds/sf2/FluidR3_GM.sf2")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-second", action="store_true", help="do not re-render to check identical output")
    args = parser.parse_args()
    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    first, second, records = work / "synth-a", work / "synth-b", work / "records"
    for folder in (first, second, records):
        shutil.rmtree(folder, ignore_errors=True)

    synth = [
        "synth",
        "--soundfont",
        args.soundfont,
        "--corpus",
        "--minutes",
        str(args.minutes),
        "--seed",
        str(args.seed),
    ]
    result: dict[str, object] = {"minutes_asked": args.minutes, "soundfont": args.soundfont, "seed": args.seed}
    result["synth_wall_s"] = round(run([POLYAMP, synth[0], str(first), *synth[1:]]), 1)
    manifest = json.loads((first / "synth_manifest.json").read_text())
    audio_s = sum(track["duration_s"] for track in manifest["tracks"])
    result["tracks"] = len(manifest["tracks"])
    result["audio_minutes"] = round(audio_s / 60, 2)
    result["stems"] = sum(len(track["stems"]) for track in manifest["tracks"])
    result["synth_x_realtime"] = round(audio_s / result["synth_wall_s"], 2)
    families: dict[str, int] = {}
    for track in manifest["tracks"]:
        for stem in track["stems"]:
            families[stem["family"]] = families.get(stem["family"], 0) + 1
    result["stems_per_family"] = dict(sorted(families.items()))

    if not args.skip_second:
        result["synth_second_wall_s"] = round(run([POLYAMP, synth[0], str(second), *synth[1:]]), 1)
        a, b = digests(first), digests(second)
        result["files"] = len(a)
        result["identical"] = a == b
        result["differing_files"] = sorted(name for name in set(a) | set(b) if a.get(name) != b.get(name))[:10]

    result["prepare_wall_s"] = round(run([POLYAMP, "prepare", str(first), str(records)]), 1)
    result["prepare_audio_s_per_s"] = round(audio_s / result["prepare_wall_s"], 1)
    shards = sorted(str(path) for path in records.glob("*.tfrecord-*"))
    result["record_shards"] = len(shards)
    result["record_bytes"] = sum(pathlib.Path(path).stat().st_size for path in shards)

    train_dir = work / "models"
    shutil.rmtree(train_dir, ignore_errors=True)
    result["train_wall_s"] = round(
        run(
            [
                POLYAMP,
                "train",
                "--model-type",
                "melodic",
                "--examples-path",
                str(records / "train.tfrecord-*"),
                "--model-dir",
                str(train_dir),
                "--model-id",
                "reads-synth",
                "--gin-file",
                "melodic/tiny.gin",
                "--num-steps",
                "20",
            ]
        ),
        1,
    )
    (work / "synth_hour.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
