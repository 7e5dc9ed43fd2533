"""PolyAMP side of ``benchmarks/compare_basic_pitch.py``: the same protocol as ``basic_pitch_runner.py``.

    python benchmarks/polyamp_runner.py --files files.json --output polyamp.json \
        [--model-dir DIR --load-id ID] [--model-type full] [--hparams JSON]

``files.json`` is ``{"files": [audio paths]}``. The model is restored once through the library API
(``polyamp.load_model``, which also builds the inference graphs; timed from the start of ``main``,
imports of TensorFlow and PolyAMP included), then each file is transcribed with ``transcribe_file``
and timed on its own (audio decoding included). Without ``--model-dir`` the model PolyAMP
ships is used (``polyamp.load_model(model_type=...)`` with no model folder); a PolyAMP without one
exits with code 2 and a one-line message.

The output JSON holds ``system``, ``versions``, ``settings`` (checkpoint and decoding thresholds),
``load_s``, ``peak_rss_mb`` (``ru_maxrss`` of this process) and ``files``: ``[{"path", "seconds",
"notes": [[start_s, end_s, MIDI pitch, MIDI velocity], ...], "notes_by_family": {family index:
[[start_s, end_s, pitch, velocity], ...]}}]`` (``notes``: the agnostic notes; ``notes_by_family``:
the multi-track output, empty for a Melodic model).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from basic_pitch_runner import package_versions, write_run_report  # noqa: E402

DECODING_HPARAMS = ("predict_onset_threshold", "predict_frame_threshold", "predict_offset_threshold", "min_duration_ms")
PACKAGES = ("polyamp", "tensorflow", "tensorflow-cpu", "keras", "numpy")


def note_rows(notes: list) -> list[list[float]]:
    """``[[start_s, end_s, pitch, velocity], ...]`` of notes with ``start_s``, ``end_s``, ``pitch``, ``velocity``."""
    return [[float(note.start_s), float(note.end_s), int(note.pitch), int(note.velocity)] for note in notes]


def load(args: argparse.Namespace):
    """The restored model (a FullTranscriber or a TranscriptionModel)."""
    import polyamp

    if args.model_dir is None:
        model_dir = inspect.signature(polyamp.load_model).parameters.get("model_dir")
        if model_dir is None or model_dir.default is inspect.Parameter.empty:
            print(
                "polyamp_runner: this PolyAMP ships no default model (polyamp.load_model needs a model folder); "
                "pass --polyamp-model-dir and --polyamp-load-id",
                file=sys.stderr,
            )
            raise SystemExit(2)
        return polyamp.load_model(model_type=args.model_type, hparams=args.hparams)
    return polyamp.load_model(args.model_dir, model_type=args.model_type, load_id=args.load_id, hparams=args.hparams)


def settings_of(model, args: argparse.Namespace) -> dict:
    """What was loaded: model type, checkpoint, and the Melodic decoding thresholds in force."""
    components = model.components
    melodic = components.parts["melodic"] if components.parts else components
    settings = {
        "model_type": args.model_type,
        "model_dir": None if args.model_dir is None else str(args.model_dir),
        "load_id": args.load_id if args.model_dir is not None else None,
        "hparams": args.hparams,
        "checkpoint": str(getattr(model.checkpoint, "prefix", model.checkpoint)),
    }
    if args.model_dir is None:
        from polyamp.pretrained import verify_pretrained

        shipped = verify_pretrained()
        settings["model_dir"] = f"{shipped.model_dir} (shipped)"
        settings["checkpoints"] = [shipped.describe()]
    elif args.model_type == "full":
        from polyamp.full_loading import plan_full_start

        settings["checkpoints"] = plan_full_start(args.model_dir, args.load_id, None).describe()
    settings.update({name: getattr(melodic.hparams, name, None) for name in DECODING_HPARAMS})
    decoder = components.decoder
    for name in ("multiple_instruments_threshold", "best_threshold"):
        if hasattr(decoder, name):
            settings[name] = getattr(decoder, name)
    return settings


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=Path, required=True, help='JSON file {"files": [audio paths]}.')
    parser.add_argument("--output", type=Path, required=True, help="Where the result JSON goes (replaced).")
    parser.add_argument("--model-dir", type=Path, help="Folder of trained runs (default: the shipped model).")
    parser.add_argument("--load-id", default="*", help="Run id under --model-dir (* = newest).")
    parser.add_argument("--model-type", default="full", choices=("full", "melodic"))
    parser.add_argument("--hparams", help="JSON of decoding hparams, e.g. '{\"predict_onset_threshold\": 0.4}'.")
    args = parser.parse_args(argv)
    files = [str(path) for path in json.loads(args.files.read_text(encoding="utf-8"))["files"]]
    missing = [path for path in files if not os.path.isfile(path)]
    if missing:
        print(f"polyamp_runner: audio file not found: {missing[0]}", file=sys.stderr)
        return 2

    from polyamp.errors import PolyampError

    try:
        model = load(args)
    except PolyampError as error:
        print(f"polyamp_runner: {str(error).strip().splitlines()[0]}", file=sys.stderr)
        return getattr(error, "exit_code", 1)
    load_s = time.perf_counter() - started

    results = []
    for path in files:
        start = time.perf_counter()
        result = model.transcribe_file(path)
        seconds = time.perf_counter() - start
        by_family = getattr(result, "notes_by_family", None) or {}
        results.append(
            {
                "path": path,
                "seconds": seconds,
                "notes": note_rows(result.notes),
                "notes_by_family": {str(family): note_rows(notes) for family, notes in by_family.items()},
            }
        )
        print(f"polyamp: {Path(path).name}: {len(result.notes)} notes in {seconds:.2f} s", file=sys.stderr)

    write_run_report(args.output, "PolyAMP", package_versions(PACKAGES), settings_of(model, args), load_s, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
