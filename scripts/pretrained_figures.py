"""Build the shipped model card's figures JSON (``--figures-json`` of scripts/export_pretrained.py) from eval JSONs.

    python scripts/pretrained_figures.py \\
        --full "FluidR3 (training SoundFont)=W/full-eval-eval-fluidr3.json" \\
        --full "TimGM6mb (held out)=W/full-eval-eval-timgm.json" \\
        --timbre "FluidR3 (training SoundFont)=W/eval-eval-fluidr3.json" \\
        --timbre "TimGM6mb (held out)=W/eval-eval-timgm.json" \\
        --source "..." --note "..." --output benchmarks/results/pretrained_figures.json

``--full`` files are ``polyamp eval --model-type full --output-json`` reports (agnostic and
multi-instrument metrics); ``--timbre`` files are ``polyamp eval --model-type timbre`` reports. Every
figure in the card comes from these files, so the card says exactly what the evaluated checkpoints did;
the checkpoints each report names are listed in the source line. An existing output is replaced only
with ``--overwrite``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _labelled(values: list[str], option: str) -> list[tuple[str, dict[str, Any]]]:
    """``LABEL=PATH`` pairs -> (label, parsed report); SystemExit with one line when malformed."""
    pairs = []
    for value in values:
        label, sep, path = value.partition("=")
        if not sep or not label or not path:
            raise SystemExit(f"error: {option} expects LABEL=PATH, got {value!r}")
        try:
            pairs.append((label, json.loads(Path(path).read_text(encoding="utf-8"))))
        except (OSError, json.JSONDecodeError) as error:
            raise SystemExit(f"error: {option} {path}: {error}") from None
    return pairs


def _round(value: float) -> float:
    return round(float(value), 3)


def figures(
    full: list[tuple[str, dict[str, Any]]], timbre: list[tuple[str, dict[str, Any]]], source: str, note: str
) -> dict[str, Any]:
    """``{source, note, tables}`` with the Melodic (agnostic), Full (multi-instrument) and Timbre tables."""
    agnostic_rows, multi_rows, timbre_rows, checkpoints = [], [], [], []
    for label, report in full:
        average, pooled = report["average"], report["multi_instrument"]["pooled"]
        pieces = report["num_examples"]
        agnostic_rows.append(
            [
                label,
                pieces,
                _round(average["note_f1"]),
                _round(average["note_with_offsets_f1"]),
                _round(average["frame_f1"]),
            ]
        )
        multi_rows.append(
            [
                label,
                pieces,
                _round(pooled["multi_note_f1"]),
                _round(pooled["multi_note_with_offsets_f1"]),
                _round(pooled["matched_note_family_accuracy"]),
                _round(pooled["leakage_tracks_per_instrument"]),
            ]
        )
        checkpoints.append(report["checkpoint"])
    for label, report in timbre:
        scores = report["timbre"]
        timbre_rows.append([label, report["num_examples"], _round(scores["accuracy"]), _round(scores["macro_f1"])])
        checkpoints.append(report["checkpoint"])
    tables = []
    if agnostic_rows:
        tables.append(
            {
                "title": "Melodic part: agnostic notes (mir_eval)",
                "columns": ["set", "pieces", "note onset F1", "onset+offset F1", "frame F1"],
                "rows": agnostic_rows,
            }
        )
        tables.append(
            {
                "title": "Full model: multi-instrument notes (family must match; counts pooled over families)",
                "columns": [
                    "set",
                    "pieces",
                    "multi onset F1",
                    "multi onset+offset F1",
                    "family accuracy of matched notes",
                    "tracks per instrument",
                ],
                "rows": multi_rows,
            }
        )
    if timbre_rows:
        tables.append(
            {
                "title": "Timbre part: family of each reference note",
                "columns": ["set", "pieces", "accuracy", "macro-F1"],
                "rows": timbre_rows,
            }
        )
    unique = ", ".join(dict.fromkeys(checkpoints))
    return {
        "source": f"{source} (checkpoints evaluated: {unique})" if source else unique,
        "note": note,
        "tables": tables,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="append", default=[], help="LABEL=polyamp eval --model-type full JSON.")
    parser.add_argument("--timbre", action="append", default=[], help="LABEL=polyamp eval --model-type timbre JSON.")
    parser.add_argument("--source", default="", help="Where the figures come from (commands, result files).")
    parser.add_argument("--note", default="", help="What was measured (sets, SoundFonts, thresholds).")
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    if not args.full and not args.timbre:
        raise SystemExit("error: give at least one --full or --timbre report")
    if args.output.exists() and not args.overwrite:
        print(f"error: {args.output} exists; pass --overwrite to replace it", file=sys.stderr)
        return 5
    built = figures(_labelled(args.full, "--full"), _labelled(args.timbre, "--timbre"), args.source, args.note)
    args.output.write_text(json.dumps(built, indent=4) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
