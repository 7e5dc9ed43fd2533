"""Side-by-side benchmark (issue 6): PolyAMP vs Basic Pitch 0.4.0 on held-out pieces and a held-out SoundFont.

1. Builds (once, cached in ``--work-dir``) the validation set: ensemble clips (2-5 instruments) and
   piano clips, 20-30 s each, of music21 corpus works of the test split rendered with TimGM6mb
   (``compare_basic_pitch_set.py``).
2. Runs Basic Pitch (``basic_pitch_runner.py`` under the Basic Pitch venv's python, made by
   ``benchmarks/basic_pitch_env.sh``) and then PolyAMP (``polyamp_runner.py`` under this python), each
   in its own process on the same clips: model loading and every clip timed, peak RSS recorded.
3. Scores both with PolyAMP's metric code and checks issue 6's targets (``compare_basic_pitch_report.py``).

Writes ``benchmarks/results/compare_basic_pitch.json`` and ``docs/basic-pitch.md`` (both replaced: they
are this benchmark's outputs) and prints the tables.

    bash benchmarks/basic_pitch_env.sh                  # once: /work/venv-basic-pitch
    python benchmarks/compare_basic_pitch.py --clips-ensemble 20 --clips-piano 10 \
        --polyamp-model-dir /work/runs/t6/bench/models --polyamp-load-id context

Exit codes: 0 done (whatever the targets say), 2 the Basic Pitch venv or an input is missing,
1 a runner failed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
from compare_basic_pitch_report import build_results, render_page  # noqa: E402
from compare_basic_pitch_set import SetConfig, build_set  # noqa: E402

DEFAULT_BASIC_PITCH_VENV = Path(os.environ.get("BASIC_PITCH_VENV", "/work/venv-basic-pitch"))
ENV_SCRIPT = "benchmarks/basic_pitch_env.sh"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, default=REPO / "benchmarks/results/tmp/compare-basic-pitch")
    parser.add_argument("--clips-ensemble", type=int, default=20, help="Ensemble clips (2-5 instruments).")
    parser.add_argument("--clips-piano", type=int, default=10, help="Piano-only clips.")
    parser.add_argument(
        "--split",
        default="test",
        choices=("validation", "test"),
        help="Pieces' split (default test: the shipped model's onset threshold was chosen on validation pieces).",
    )
    parser.add_argument("--soundfont", default="/usr/share/sounds/sf2/TimGM6mb.sf2", help="Held-out SoundFont.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-clip-seconds", type=float, default=20.0)
    parser.add_argument("--max-clip-seconds", type=float, default=30.0)
    parser.add_argument(
        "--basic-pitch-venv", type=Path, default=DEFAULT_BASIC_PITCH_VENV, help=f"Made by {ENV_SCRIPT}."
    )
    parser.add_argument("--polyamp-model-dir", type=Path, help="Trained runs (default: the model PolyAMP ships).")
    parser.add_argument("--polyamp-load-id", default="*", help="Run id under --polyamp-model-dir.")
    parser.add_argument("--polyamp-model-type", default="full", choices=("full", "melodic"))
    parser.add_argument("--polyamp-hparams", help="Decoding hparams JSON for PolyAMP (default: the model's own).")
    parser.add_argument(
        "--reuse-outputs", action="store_true", help="Score the runners' outputs of an earlier run instead of running."
    )
    parser.add_argument("--json-out", type=Path, default=REPO / "benchmarks/results/compare_basic_pitch.json")
    parser.add_argument("--docs-out", type=Path, default=REPO / "docs/basic-pitch.md")
    args = parser.parse_args(argv)
    if args.clips_ensemble < 1 or args.clips_piano < 1:
        parser.error("--clips-ensemble and --clips-piano must be at least 1")
    if not 0 < args.min_clip_seconds <= args.max_clip_seconds:
        parser.error("--min-clip-seconds must be > 0 and <= --max-clip-seconds")
    return args


def basic_pitch_python(venv: Path) -> Path | None:
    """The venv's python when it can import basic_pitch, else None."""
    python = venv / "bin" / "python"
    if not python.is_file():
        return None
    check = subprocess.run(
        [str(python), "-c", "import logging; logging.disable(logging.WARNING); import basic_pitch"],
        capture_output=True,
    )
    return python if check.returncode == 0 else None


def run_runner(command: list[str], name: str) -> float:
    """Runs one system's runner; returns its wall time (s). Raises SystemExit(1) when it fails."""
    print(f"\n{name}: " + shlex.join(command), flush=True)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    started = time.perf_counter()
    completed = subprocess.run(command, env=env)
    wall_s = time.perf_counter() - started
    if completed.returncode != 0:
        print(f"compare_basic_pitch: the {name} runner failed with exit code {completed.returncode}", file=sys.stderr)
        raise SystemExit(1)
    return wall_s


def machine_description() -> dict[str, object]:
    """CPU model, cores, memory and OS of this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory_gb = int(line.split()[1]) / 2**20
    except OSError:
        pass
    cores = os.cpu_count() or 0
    memory = f", {memory_gb:.0f} GiB RAM" if memory_gb else ""
    return {
        "machine": f"{cpu}, {cores} logical CPUs{memory}, {platform.system()} {platform.release()}, no GPU used",
        "cpu_count": cores,
    }


def command_line(argv: list[str] | None) -> str:
    arguments = sys.argv[1:] if argv is None else argv
    return shlex.join(["python", "benchmarks/compare_basic_pitch.py", *arguments])


def one_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def write_text_atomic(path: Path, text: str) -> None:
    from polyamp.fileio import atomic_write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)


def display_path(path: Path) -> str:
    """``path`` relative to the repository when it lies inside it, else as given."""
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bp_python = basic_pitch_python(args.basic_pitch_venv)
    if bp_python is None:
        print(
            f"compare_basic_pitch: no Basic Pitch venv at {args.basic_pitch_venv}: "
            f"create it with `bash {ENV_SCRIPT} {args.basic_pitch_venv}`",
            file=sys.stderr,
        )
        return 2
    if not Path(args.soundfont).is_file():
        print(f"compare_basic_pitch: SoundFont not found: {args.soundfont}", file=sys.stderr)
        return 2

    config = SetConfig(
        split=args.split,
        soundfont=str(args.soundfont),
        seed=args.seed,
        ensemble_clips=args.clips_ensemble,
        piano_clips=args.clips_piano,
        min_clip_s=args.min_clip_seconds,
        max_clip_s=args.max_clip_seconds,
    )
    from polyamp.errors import PolyampError

    started = time.perf_counter()
    try:
        manifest = build_set(config, args.work_dir)
    except (PolyampError, RuntimeError, subprocess.CalledProcessError) as error:
        print(f"compare_basic_pitch: cannot build the validation set: {one_line(error)}", file=sys.stderr)
        return 1
    clips = manifest["clips"]
    print(f"validation set: {len(clips)} clips ready in {time.perf_counter() - started:.0f} s", flush=True)

    run_dir = args.work_dir / f"run-{config.key()}"
    run_dir.mkdir(parents=True, exist_ok=True)
    files_json = run_dir / "files.json"
    files_json.write_text(json.dumps({"files": [clip["audio"] for clip in clips]}, indent=1), encoding="utf-8")
    outputs = {"basic_pitch": run_dir / "basic_pitch.json", "polyamp": run_dir / "polyamp.json"}
    polyamp_command = [sys.executable, str(HERE / "polyamp_runner.py"), "--files", str(files_json)]
    polyamp_command += ["--output", str(outputs["polyamp"]), "--model-type", args.polyamp_model_type]
    if args.polyamp_model_dir is not None:
        polyamp_command += ["--model-dir", str(args.polyamp_model_dir), "--load-id", args.polyamp_load_id]
    if args.polyamp_hparams:
        polyamp_command += ["--hparams", args.polyamp_hparams]
    commands = {
        "basic_pitch": [str(bp_python), str(HERE / "basic_pitch_runner.py"), "--files", str(files_json)]
        + ["--output", str(outputs["basic_pitch"])],
        "polyamp": polyamp_command,
    }
    walls: dict[str, float | None] = {}
    load_average: dict[str, list[float]] = {}
    for name in ("basic_pitch", "polyamp"):  # one after the other: never two systems on the CPU at once
        if args.reuse_outputs and outputs[name].is_file():
            walls[name] = None
            continue
        before = os.getloadavg()[0]
        walls[name] = run_runner(commands[name], name)
        load_average[name] = [round(before, 2), round(os.getloadavg()[0], 2)]
    runs = {name: json.loads(path.read_text(encoding="utf-8")) for name, path in outputs.items()}

    meta = {"date_utc": utc_now(), "command": command_line(argv), **machine_description()}
    meta["load_average_1min_before_after"] = load_average  # other work on the machine skews the timings
    meta["json_out"] = display_path(args.json_out)
    results = build_results(meta, manifest, runs, walls, multi=args.polyamp_model_type == "full")
    write_text_atomic(args.json_out, json.dumps(results, indent=1) + "\n")
    page = render_page(results)
    write_text_atomic(args.docs_out, page)
    print("\n" + page.split("## What was measured")[0].strip())
    print(f"\nwrote {args.json_out} and {args.docs_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
