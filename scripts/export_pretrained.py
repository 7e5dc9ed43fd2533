"""Export trained Melodic and Timbre runs as PolyAMP's shipped model (``polyamp/pretrained/``).

For each part, the newest checkpoint of ``<dir>/<part>/<id>/`` is restored into the model its own
operative config builds, and only the model's weights are written (no optimizer slots: Adam's two
slots per weight would triple the size) as ``<output>/<part>/default/ckpt-<step>.*``, beside its
operative config (plus any ``--melodic-hparams``/``--timbre-hparams`` overrides, appended as gin
bindings) and ``hparams.json``. The export is then loaded back from the new folder and every weight
compared with the source, so a shipped model that does not load never ships. ``manifest.json``
lists every file with its size and sha256 (``polyamp.pretrained`` checks them before loading);
``MODEL_CARD.md`` describes data, SoundFonts, steps and figures (``--figures-json``, built from eval
reports by ``scripts/pretrained_figures.py``; else "not yet measured"). The files are staged in a
temporary folder and moved into place at the end; an existing export is replaced only with
``--overwrite``. More than 25 MB in all is refused.

    python scripts/export_pretrained.py --melodic-dir runs/models --melodic-id context \\
        --timbre-dir runs/models --timbre-id context --figures-json benchmarks/results/pretrained_figures.json \\
        --melodic-hparams '{"predict_onset_threshold": 0.4}' --docs-card docs/model-card.md --overwrite

Exit status: 0 done; PolyAMP's exit codes otherwise (3 bad option, 4 checkpoint problem, 5 output exists).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPO / "polyamp" / "pretrained"
NOT_MEASURED = "Not yet measured."


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--melodic-dir", type=Path, required=True, help="Model dir holding melodic/<id>/.")
    parser.add_argument("--melodic-id", required=True, help="Run id of the Melodic part (its newest checkpoint).")
    parser.add_argument("--timbre-dir", type=Path, required=True, help="Model dir holding timbre/<id>/.")
    parser.add_argument("--timbre-id", required=True, help="Run id of the Timbre part (its newest checkpoint).")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="Export folder (default: %(default)s).")
    parser.add_argument("--overwrite", action="store_true", help="Replace an existing export in --output.")
    parser.add_argument("--figures-json", type=Path, help="Figures for the card: {source, note, tables: [...]}.")
    parser.add_argument("--melodic-hparams", help="JSON hparams baked into the Melodic part (decoding thresholds).")
    parser.add_argument("--timbre-hparams", help="JSON hparams baked into the Timbre part.")
    parser.add_argument(
        "--data",
        default="Not recorded.",
        help="Training data, one paragraph for the card (what was rendered, how many minutes, which recipe).",
    )
    parser.add_argument(
        "--soundfonts",
        default="Not recorded.",
        help="SoundFonts used for training and held out for validation, one paragraph for the card.",
    )
    parser.add_argument("--name", default="polyamp-default", help="Model name in the manifest and card.")
    parser.add_argument("--docs-card", type=Path, help="Also write the model card here (e.g. docs/model-card.md).")
    return parser.parse_args(argv)


def hparams_overrides(part: str, text: str | None) -> dict[str, Any]:
    """Validated ``{hparam: value}`` of ``part`` (ConfigError for unknown names or wrong types)."""
    from polyamp.config import parse_hparams_json

    return parse_hparams_json(part, text) if text else {}


def gin_override_block(part: str, overrides: dict[str, Any]) -> str:
    """Gin lines appended to the exported operative config (later bindings win in gin)."""
    if not overrides:
        return ""
    from polyamp.config import hparams_class

    name = hparams_class(part).__name__
    lines = [f"{name}.{key} = {value!r}" for key, value in sorted(overrides.items())]
    return "\n# Set by scripts/export_pretrained.py for the shipped model:\n" + "\n".join(lines) + "\n"


def export_part(source_dir: Path, part: str, model_id: str, staging: Path, overrides: dict[str, Any]) -> dict:
    """Writes ``staging/<part>/default/``: weights-only checkpoint, operative config, hparams.json;
    returns the part's manifest entry. The export is reloaded and compared with the source weights."""
    import numpy as np
    import tensorflow as tf

    from polyamp.checkpoints import operative_config_path
    from polyamp.errors import CheckpointError
    from polyamp.loading import load_components
    from polyamp.pretrained import MODEL_ID

    components, ref = load_components(source_dir, part, model_id)
    target = staging / part / MODEL_ID
    target.mkdir(parents=True)
    checkpoint = tf.train.Checkpoint(model=components.model)
    checkpoint.save_counter.assign(1)  # created on first use; the loaders' checkpoints expect it
    checkpoint.write(str(target / f"ckpt-{ref.step}"))
    config = operative_config_path(ref)
    config_text = config.read_text(encoding="utf-8") if config is not None else ""
    (target / f"operative_config-{ref.step}.gin").write_text(
        config_text + gin_override_block(part, overrides), encoding="utf-8"
    )
    source_hparams = ref.run_dir / "hparams.json"
    hparams = json.loads(source_hparams.read_text(encoding="utf-8")) if source_hparams.is_file() else {}
    hparams.update({key: list(value) if isinstance(value, tuple) else value for key, value in overrides.items()})
    (target / "hparams.json").write_text(json.dumps(hparams, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    source_weights = [variable.numpy() for variable in components.model.weights]
    reloaded, _ = load_components(staging, part, MODEL_ID)
    exported_weights = [variable.numpy() for variable in reloaded.model.weights]
    if len(source_weights) != len(exported_weights) or not all(
        np.array_equal(a, b) for a, b in zip(source_weights, exported_weights, strict=True)
    ):
        raise CheckpointError(f"the exported {part} part does not reload with the weights of {ref.prefix}")
    return {
        "step": ref.step,
        "source_checkpoint": str(ref.prefix),
        "source_model_id": ref.model_id,
        "operative_config": f"{part}/{MODEL_ID}/operative_config-{ref.step}.gin",
        "weights_only": True,
        "num_weights": int(sum(int(np.prod(weight.shape)) for weight in source_weights)),
        "hparams_overrides": {key: list(v) if isinstance(v, tuple) else v for key, v in overrides.items()},
    }


def figures_markdown(figures_path: Path | None) -> str:
    """The card's figures section from ``--figures-json`` (``{source, note, tables: [{title, columns, rows}]}``)."""
    if figures_path is None:
        return NOT_MEASURED + "\n"
    figures = json.loads(figures_path.read_text(encoding="utf-8"))
    out = []
    for table in figures.get("tables", []):
        out.append(f"**{table['title']}**\n")
        out.append("| " + " | ".join(str(column) for column in table["columns"]) + " |")
        out.append("|" + "---|" * len(table["columns"]))
        for row in table["rows"]:
            cells = [f"{cell:.3f}" if isinstance(cell, float) else str(cell) for cell in row]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    if figures.get("source"):
        out.append(f"Source: {figures['source']}.\n")
    if figures.get("note"):
        out.append(figures["note"] + "\n")
    return "\n".join(out) if out else NOT_MEASURED + "\n"


def model_card(args: argparse.Namespace, parts: dict[str, dict], files: list[dict], created: str) -> str:
    """MODEL_CARD.md text (Markdown, also valid as a page of the documentation site)."""
    total = sum(entry["bytes"] for entry in files)
    lines = [
        f"# Model card: {args.name}",
        "",
        "The model `polyamp transcribe` and `polyamp.transcribe()` use when no `--model-dir`/`--load-id` is",
        "given: a Full model (agnostic notes from the Melodic part, a family for each note from the Timbre",
        "part, one MIDI track per family) shipped inside the wheel as its two parts. `--model-type melodic`",
        "uses the Melodic part alone (one track). This card is written by `scripts/export_pretrained.py`.",
        "",
        "## Parts",
        "",
        "| part | training steps | parameters | source run | baked-in hparams |",
        "|---|---|---|---|---|",
    ]
    for part, info in parts.items():
        overrides = ", ".join(f"`{key}={value}`" for key, value in info["hparams_overrides"].items()) or "none"
        lines.append(
            f"| {part} | {info['step']:,} | {info['num_weights']:,} | `{info['source_model_id']}` | {overrides} |"
        )
    lines += [
        "",
        "Each part's architecture and training settings are in its `operative_config-<step>.gin`.",
        "",
        "## Training data",
        "",
        args.data,
        "",
        "## SoundFonts",
        "",
        args.soundfonts,
        "",
        "## Figures",
        "",
        figures_markdown(args.figures_json).rstrip(),
        "",
        "## Files",
        "",
        f"Exported {created}; {len(files)} files, {total / 1e6:.2f} MB in all (limit 25 MB). The checkpoints hold",
        "the model weights only (no optimizer state). `polyamp pretrained` checks every file against these",
        "sha256 sums, as every load of the shipped model does.",
        "",
        "| file | bytes | sha256 |",
        "|---|---|---|",
    ]
    lines += [f"| `{entry['path']}` | {entry['bytes']:,} | `{entry['sha256']}` |" for entry in files]
    return "\n".join(lines) + "\n"


def file_entries(root: Path) -> list[dict]:
    """``{path, bytes, sha256}`` of every file under ``root``, sorted by path (POSIX, relative)."""
    from polyamp.pretrained import file_sha256

    entries = []
    for path in sorted(root.rglob("*")):
        if path.is_file():
            relative = path.relative_to(root).as_posix()
            entries.append({"path": relative, "bytes": path.stat().st_size, "sha256": file_sha256(path)})
    return entries


def managed_paths(output: Path) -> list[Path]:
    """What an export owns in ``output`` (the package's ``__init__.py`` is never touched)."""
    from polyamp.pretrained import CARD_NAME, MANIFEST_NAME, PARTS

    return [output / MANIFEST_NAME, output / CARD_NAME] + [output / part for part in PARTS]


def install(staging: Path, output: Path, overwrite: bool) -> None:
    """Moves the staged export into ``output``, replacing an old export only with ``overwrite``."""
    from polyamp.errors import OutputExistsError

    existing = [path for path in managed_paths(output) if path.exists()]
    if existing and not overwrite:
        raise OutputExistsError(f"{output} already holds an export ({existing[0].name}); pass --overwrite")
    for path in existing:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    for path in managed_paths(staging):
        if path.exists():
            os.replace(path, output / path.name)


def export(args: argparse.Namespace) -> dict:
    """Runs the export; returns the manifest."""
    from polyamp import __version__
    from polyamp.errors import ConfigError, OutputExistsError
    from polyamp.fileio import atomic_write_text
    from polyamp.pretrained import CARD_NAME, MANIFEST_FORMAT, MANIFEST_NAME, MAX_TOTAL_BYTES, MODEL_ID

    output = args.output
    if any(path.exists() for path in managed_paths(output)) and not args.overwrite:
        raise OutputExistsError(f"{output} already holds an export; pass --overwrite to replace it")
    if args.figures_json is not None and not args.figures_json.is_file():
        raise ConfigError(f"--figures-json {args.figures_json} not found")
    if args.docs_card is not None and args.docs_card.exists() and not args.overwrite:
        raise OutputExistsError(f"{args.docs_card} exists; pass --overwrite to replace it")
    overrides = {
        "melodic": hparams_overrides("melodic", args.melodic_hparams),
        "timbre": hparams_overrides("timbre", args.timbre_hparams),
    }
    output.mkdir(parents=True, exist_ok=True)
    created = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    with tempfile.TemporaryDirectory(prefix=".export-", dir=output) as temp:
        staging = Path(temp)
        parts = {
            "melodic": export_part(args.melodic_dir, "melodic", args.melodic_id, staging, overrides["melodic"]),
            "timbre": export_part(args.timbre_dir, "timbre", args.timbre_id, staging, overrides["timbre"]),
        }
        weights = file_entries(staging)
        card = model_card(args, parts, weights, created)
        (staging / CARD_NAME).write_text(card, encoding="utf-8")
        files = file_entries(staging)
        manifest = {
            "format": MANIFEST_FORMAT,
            "name": args.name,
            "model_id": MODEL_ID,
            "created": created,
            "polyamp_version": __version__,
            "parts": parts,
            "files": files,
            "total_bytes": sum(entry["bytes"] for entry in files),
        }
        manifest_text = json.dumps(manifest, indent=1) + "\n"
        total = manifest["total_bytes"] + len(manifest_text.encode("utf-8"))
        if total > MAX_TOTAL_BYTES:
            sizes = ", ".join(f"{entry['path']} {entry['bytes'] / 1e6:.1f} MB" for entry in files)
            raise ConfigError(f"the export is {total / 1e6:.1f} MB, over the 25 MB limit: {sizes}")
        (staging / MANIFEST_NAME).write_text(manifest_text, encoding="utf-8")
        install(staging, output, args.overwrite)
    if args.docs_card is not None:
        atomic_write_text(args.docs_card, card)
    return manifest


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    args = parse_args(argv)
    from polyamp.errors import PolyampError

    try:
        manifest = export(args)
    except PolyampError as error:
        lines = str(error).strip().splitlines()
        print(f"error: {lines[0] if lines else type(error).__name__}", file=sys.stderr)
        return error.exit_code
    steps = ", ".join(f"{part} step {info['step']}" for part, info in manifest["parts"].items())
    print(f"exported {args.name} ({steps}): {len(manifest['files'])} files, {manifest['total_bytes'] / 1e6:.2f} MB")
    print(f"into {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
