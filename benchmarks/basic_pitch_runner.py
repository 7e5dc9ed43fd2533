"""Basic Pitch side of ``benchmarks/compare_basic_pitch.py``: run with the Basic Pitch venv's python.

    /work/venv-basic-pitch/bin/python benchmarks/basic_pitch_runner.py --files files.json --output bp.json

``files.json`` is ``{"files": [audio paths]}``. The model is loaded once (timed from the start of
``main``, imports included), then each file is transcribed with ``basic_pitch.inference.predict``
at Basic Pitch's own defaults (onset threshold 0.5, frame threshold 0.3, minimum note length
127.70 ms, melodia trick on; read from ``predict``'s signature and recorded in the output), each
file timed on its own (audio decoding included). The venv has no TensorFlow, so ``basic_pitch``
picks the ONNX model its wheel ships (``saved_models/icassp_2022/nmp.onnx``) and runs it with
onnxruntime; this script does not touch the model or its pre- and post-processing.

The output JSON holds ``system``, ``versions``, ``settings``, ``load_s``, ``peak_rss_mb``
(``ru_maxrss`` of this process) and ``files``: ``[{"path", "seconds", "notes": [[start_s, end_s,
MIDI pitch, MIDI velocity 1-127], ...]}]`` (velocity = round(127 * amplitude), as Basic Pitch's
own note-event CSV writes it; pitch bends are dropped).

Only the standard library and Basic Pitch's own dependencies are imported: this file must run in
a venv without PolyAMP.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import logging
import os
import resource
import sys
import time
from importlib import metadata
from pathlib import Path

PREDICT_SETTINGS = (
    "onset_threshold",
    "frame_threshold",
    "minimum_note_length",
    "minimum_frequency",
    "maximum_frequency",
    "multiple_pitch_bends",
    "melodia_trick",
)
"""``basic_pitch.inference.predict`` keyword arguments recorded (at their defaults) in the output."""

PACKAGES = ("basic-pitch", "onnxruntime", "numpy", "librosa", "scipy", "resampy", "pretty_midi")


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (MB; Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """``{distribution: version}`` of the installed ``names`` (missing ones left out)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def write_json_atomic(path: Path, data: dict) -> None:
    """Writes ``data`` as JSON to ``path`` through a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        os.replace(temp, path)
    finally:
        if temp.exists():
            temp.unlink()


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=Path, required=True, help='JSON file {"files": [audio paths]}.')
    parser.add_argument("--output", type=Path, required=True, help="Where the result JSON goes (replaced).")
    args = parser.parse_args(argv)
    files = [str(path) for path in json.loads(args.files.read_text(encoding="utf-8"))["files"]]
    missing = [path for path in files if not os.path.isfile(path)]
    if missing:
        print(f"basic_pitch_runner: audio file not found: {missing[0]}", file=sys.stderr)
        return 2

    logging.disable(logging.WARNING)  # basic_pitch warns at import about every backend it does not find
    # Basic Pitch prints progress lines to stdout; they go to stderr so stdout stays this script's own.
    with contextlib.redirect_stdout(sys.stderr):
        import basic_pitch
        from basic_pitch.inference import Model, predict

        model_path = basic_pitch.ICASSP_2022_MODEL_PATH
        model = Model(model_path)
    load_s = time.perf_counter() - started
    defaults = inspect.signature(predict).parameters
    settings = {name: defaults[name].default for name in PREDICT_SETTINGS}
    settings["model_path"] = str(model_path)
    settings["model_type"] = model.model_type.name

    results = []
    for path in files:
        start = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr):
            _, _, events = predict(path, model)
        seconds = time.perf_counter() - start
        notes = [
            [float(onset), float(offset), int(pitch), int(min(max(round(127 * float(amplitude)), 1), 127))]
            for onset, offset, pitch, amplitude, _ in events
        ]
        results.append({"path": path, "seconds": seconds, "notes": notes})
        print(f"basic pitch: {Path(path).name}: {len(notes)} notes in {seconds:.2f} s", file=sys.stderr)

    write_run_report(args.output, "Basic Pitch", package_versions(), settings, load_s, results)
    return 0


def write_run_report(
    path: Path, system: str, versions: dict, settings: dict, load_s: float, results: list[dict]
) -> None:
    """Writes a runner's JSON report (system, Python, package versions, settings, load time in s, peak RSS in
    MB, per-file results) atomically and prints its one-line summary; shared by both runners."""
    output = {
        "system": system,
        "python": sys.version.split()[0],
        "versions": versions,
        "settings": settings,
        "load_s": load_s,
        "peak_rss_mb": peak_rss_mb(),
        "files": results,
    }
    write_json_atomic(path, output)
    total = sum(result["seconds"] for result in results)
    print(f"{system.lower()}: {len(results)} files, model loaded in {load_s:.2f} s, transcribed in {total:.1f} s")


if __name__ == "__main__":
    sys.exit(main())
