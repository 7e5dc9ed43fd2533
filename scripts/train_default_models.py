"""Reproduce PolyAMP's shipped default model from scratch: render, train Melodic then Timbre, export.

The recipe is ``gin/recipes/default*.gin`` (its header lists the rules: music21 corpus, training
split only, FluidR3 GM only, balanced programs, humanised, ensembles and piano-only pieces, the
reserved works never rendered). Every step goes through the ``polyamp`` command line, and every
step resumes: a finished render is kept, training continues from its last checkpoint.

    python scripts/train_default_models.py --work-dir runs/default            # the real recipe (days of CPU)
    python scripts/train_default_models.py --work-dir /tmp/tiny --tiny         # the same in a few minutes

Layout of ``--work-dir`` W::

    W/data/ensembles/train/TrackNNNNN   polyamp synth, recipes/default.gin
    W/data/piano/train/TrackNNNNN       polyamp synth, recipes/default_piano.gin
    W/data/train-pooled/                symlinks to both renders' tracks (the training data)
    W/models/{melodic,timbre}/default/  the training runs
    W/pretrained/                       the export (scripts/export_pretrained.py)

``polyamp/pretrained`` (the shipped model) is replaced only with ``--install``. ``--tiny`` renders
about two minutes of audio with shorter pieces and trains the tiny presets (``melodic/tiny.gin``,
``timbre/tiny.gin`` after the recipe's files) for a few dozen steps; the data rules are the same
(FluidR3 only).

Exit status: 0 done; otherwise the failing step's exit status (PolyAMP's codes: 2 input, 3 config, ...).
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

REPO = Path(__file__).resolve().parent.parent
FLUIDR3 = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
MODEL_ID = "default"
SYNTH_MANIFEST = "synth_manifest.json"

FULL = {
    "ensemble_minutes": 240.0,
    "piano_minutes": 60.0,
    "melodic_steps": None,  # the recipe's train.num_steps
    "timbre_steps": None,
    "melodic_gin": ["recipes/default_melodic.gin"],
    "timbre_gin": ["recipes/default_timbre.gin"],
    "synth_params": [],
    "train_params": [],
    "corpus_include": None,
    "pipeline_options": None,  # Beam's default: one worker process per core
}
TINY = {
    "ensemble_minutes": 1.5,
    "piano_minutes": 0.5,
    "melodic_steps": 20,
    "timbre_steps": 20,
    "melodic_gin": ["recipes/default_melodic.gin", "melodic/tiny.gin"],
    "timbre_gin": ["recipes/default_timbre.gin", "timbre/tiny.gin"],
    # Short pieces: two minutes of audio from several pieces rather than one movement; Bach chorales
    # only, which music21 parses in a fraction of a second (a quartet movement takes seconds).
    "synth_params": ["ArrangeOptions.max_piece_s = 20.0"],
    "corpus_include": "bach",
    # One process: two worker processes each loading the 148 MB SoundFont cost more than they save here.
    "pipeline_options": "--direct_running_mode=in_memory",
    "train_params": ["train.checkpoint_every = 1000", "SlakhDataset.audio_cache_mb = 200"],
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, required=True, help="Where data, runs and the export go.")
    parser.add_argument("--tiny", action="store_true", help="A few minutes end to end (CI): tiny data and models.")
    parser.add_argument(
        "--fluidr3", type=Path, default=FLUIDR3, help="The FluidR3 GM SoundFont (the only one the recipe trains on)."
    )
    parser.add_argument("--ensemble-minutes", type=float, help="Minutes of ensemble audio to render.")
    parser.add_argument("--piano-minutes", type=float, help="Minutes of piano-only audio to render.")
    parser.add_argument("--melodic-steps", type=int, help="Melodic training steps (default: the recipe's).")
    parser.add_argument("--timbre-steps", type=int, help="Timbre training steps (default: the recipe's).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the renders and the training runs.")
    parser.add_argument("--figures-json", type=Path, help="Figures for the model card (export_pretrained.py).")
    parser.add_argument("--melodic-hparams", help="JSON hparams baked into the exported Melodic part.")
    parser.add_argument("--pipeline-options", help="Beam pipeline options for polyamp synth.")
    parser.add_argument(
        "--install", action="store_true", help="Export into polyamp/pretrained (and docs/model-card.md), replacing it."
    )
    return parser.parse_args(argv)


def polyamp_command() -> list[str]:
    """The ``polyamp`` console script of this interpreter's environment."""
    script = Path(sys.executable).parent / "polyamp"
    if script.exists():
        return [str(script)]
    found = shutil.which("polyamp")
    if found is None:
        raise SystemExit("the polyamp command is not installed: pip install '.[synth]'")
    return [found]


class StepFailed(Exception):
    def __init__(self, name: str, code: int) -> None:
        super().__init__(f"step {name!r} failed with exit status {code}")
        self.code = code


def run_step(name: str, command: list[str], timings: dict[str, float]) -> None:
    """Runs one step (output streamed), records its wall time; StepFailed on a non-zero exit."""
    print(f"== {name}: {' '.join(command)}", flush=True)
    started = time.perf_counter()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3"))
    result = subprocess.run(command, cwd=REPO, env=env)
    timings[name] = round(time.perf_counter() - started, 1)
    if result.returncode != 0:
        raise StepFailed(name, result.returncode)


def check_soundfont(path: Path) -> None:
    """The recipe trains on FluidR3 GM only (never TimGM6mb or MuseScore General: held out for validation)."""
    if not path.name.lower().startswith("fluidr3"):
        raise SystemExit(f"--fluidr3 {path}: the default recipe trains on the FluidR3 GM SoundFont only")
    if not path.is_file():
        raise SystemExit(f"{path} not found: apt-get install fluid-soundfont-gm (or pass --fluidr3 PATH)")


def render(
    name: str, output: Path, gin_file: str, minutes: float, seed: int, args: argparse.Namespace, settings: dict
) -> list[str]:
    """``polyamp synth`` of the corpus's training split into ``output`` (skipped when already rendered)."""
    if (output / SYNTH_MANIFEST).is_file():
        print(f"== {name}: kept {output} (already rendered)")
        return []
    command = polyamp_command() + ["synth", str(output), "--soundfont", str(args.fluidr3), "--corpus"]
    command += ["--splits", "train", "--gin-file", gin_file, "--minutes", str(minutes), "--seed", str(seed)]
    command += ["--overwrite"]  # a folder left by an interrupted render
    for binding in settings["synth_params"]:
        command += ["--gin-param", binding]
    if settings["corpus_include"]:
        command += ["--corpus-include", settings["corpus_include"]]
    pipeline_options = args.pipeline_options or settings["pipeline_options"]
    if pipeline_options:
        command += ["--pipeline-options", pipeline_options]
    return command


def pool_tracks(renders: list[Path], pooled: Path) -> int:
    """``pooled``: symlinks to every training track of ``renders`` (one Slakh folder); returns the count."""
    pooled.mkdir(parents=True, exist_ok=True)
    count = 0
    for render_dir in renders:
        for track in sorted((render_dir / "train").iterdir()):
            if not (track / "metadata.yaml").is_file():
                continue
            link = pooled / f"{render_dir.name}-{track.name}"
            if not link.exists():
                link.symlink_to(track.resolve(), target_is_directory=True)
            count += 1
    return count


def data_summary(renders: dict[str, Path]) -> str:
    """The model card's data paragraph, from the renders' synth manifests."""
    pieces = []
    for label, folder in renders.items():
        manifest = json.loads((folder / SYNTH_MANIFEST).read_text(encoding="utf-8"))
        tracks = manifest["tracks"]
        minutes = sum(track["duration_s"] for track in tracks) / 60
        pieces.append(f"{minutes:.1f} min of {label} ({len(tracks)} pieces)")
    return (
        "Pieces of music21's corpus of public-domain scores (training split only; the reserved evaluation works "
        "are never rendered), rendered by `polyamp synth` with the recipe `gin/recipes/default.gin`: "
        + " and ".join(pieces)
        + ". Ensembles keep 2-5 parts of a piece, each on a program drawn so that the 11 NSynth families get "
        "similar shares; piano pieces put every part on one acoustic piano; velocities and timing are "
        "humanised. Both parts train on random 2-4-stem sub-mixes of these renders."
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = dict(TINY if args.tiny else FULL)
    for key in ("ensemble_minutes", "piano_minutes", "melodic_steps", "timbre_steps"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    check_soundfont(args.fluidr3)
    work = args.work_dir.resolve()
    data = work / "data"
    models = work / "models"
    renders = {"ensembles": data / "ensembles", "piano-only music": data / "piano"}
    timings: dict[str, float] = {}
    started = time.perf_counter()
    try:
        for name, (folder, gin_file, minutes, seed) in {
            "render ensembles": (data / "ensembles", "recipes/default.gin", settings["ensemble_minutes"], args.seed),
            "render piano": (data / "piano", "recipes/default_piano.gin", settings["piano_minutes"], args.seed + 1),
        }.items():
            command = render(name, folder, gin_file, minutes, seed, args, settings)
            if command:
                run_step(name, command, timings)
        pooled = data / "train-pooled"
        print(f"== pool: {pool_tracks(list(renders.values()), pooled)} training tracks in {pooled}")
        for part in ("melodic", "timbre"):
            command = polyamp_command() + ["train", "--model-type", part, "--examples-path", str(pooled)]
            command += ["--model-dir", str(models), "--model-id", MODEL_ID, "--seed", str(args.seed)]
            for gin_file in settings[f"{part}_gin"]:
                command += ["--gin-file", gin_file]
            for binding in settings["train_params"]:
                command += ["--gin-param", binding]
            if settings[f"{part}_steps"] is not None:
                command += ["--num-steps", str(settings[f"{part}_steps"])]
            run_step(f"train {part}", command, timings)
        output = REPO / "polyamp" / "pretrained" if args.install else work / "pretrained"
        command = [sys.executable, str(REPO / "scripts" / "export_pretrained.py")]
        command += ["--melodic-dir", str(models), "--melodic-id", MODEL_ID]
        command += ["--timbre-dir", str(models), "--timbre-id", MODEL_ID, "--output", str(output), "--overwrite"]
        command += ["--data", data_summary(renders)]
        command += [
            "--soundfonts",
            f"Trained on `{args.fluidr3.name}` (FluidR3 GM, Debian `fluid-soundfont-gm`) only. TimGM6mb "
            "(`timgm6mb-soundfont`) and MuseScore General are never used for training: figures on them "
            "measure instruments the model never heard.",
        ]
        if args.figures_json is not None:
            command += ["--figures-json", str(args.figures_json.resolve())]
        if args.melodic_hparams:
            command += ["--melodic-hparams", args.melodic_hparams]
        if args.install:
            command += ["--docs-card", str(REPO / "docs" / "model-card.md")]
        if args.tiny:
            command += ["--name", "polyamp-default-tiny"]
        run_step("export", command, timings)
    except StepFailed as error:
        print(f"error: {error}", file=sys.stderr)
        return error.code
    timings["total"] = round(time.perf_counter() - started, 1)
    (work / "timings.json").write_text(json.dumps(timings, indent=1) + "\n", encoding="utf-8")
    print(f"done in {timings['total']:.0f} s: {json.dumps(timings)}")
    print(f"exported model: {output}  (polyamp transcribe --model-dir {output} --load-id {MODEL_ID} ...)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
