"""``polyamp-runner``: the 2020 PolyAMP command lines, accepted verbatim.

``--mode=train|eval|predict`` with the original absl-style flags (``--examples_path``,
``--model_dir``, ``--model_type=MELODIC``, ``--model_id``, ``--load_id``, ``--hparams``,
``--eval_num_steps``, ``--audio_filename``, ``--transcribed_file_suffix``, ``--qpm``, ...).
``--model_type=FULL`` with ``--load_full=True|False`` (a Full run, or separately trained parts),
``--dataset_type=nsynth|slakh|maestro`` (the dataset plugin, as the gin binding
``open_dataset.dataset``) and, for Full training, ``--nsynth_examples_path`` (an equal-weight
``mixture`` of ``--examples_path`` and the NSynth examples) are translated too. Flags that only
mattered to the 2020 code are accepted and ignored with a note on stderr.
"""

from __future__ import annotations

import argparse
import sys

IGNORED_FLAGS = (
    "note_based",
    "preprocess_examples",
    "log",
    "using_plaidml",
    "master",
    "config",
    "eval_name",
    "keep_checkpoint_max",
    "use_tpu",
    "dataset_source",
)


DATASET_PLUGINS = {"nsynth": "nsynth", "slakh": "slakh", "maestro": "auto"}
"""2020 ``--dataset_type`` -> PolyAMP dataset plugin (``auto`` tells MAESTRO TFRecords and folders apart)."""


def _dataset_bindings(options: argparse.Namespace) -> list[str]:
    """Gin bindings for ``--dataset_type`` and, when training, ``--nsynth_examples_path``."""
    plugin = DATASET_PLUGINS[options.dataset_type] if options.dataset_type else "auto"
    if options.nsynth_examples_path and options.mode == "train":
        if options.model_type.strip().upper() != "FULL":
            raise SystemExit("error: --nsynth_examples_path is for --model_type=FULL training")
        components = [(plugin, options.examples_path, 1.0), ("nsynth", options.nsynth_examples_path, 1.0)]
        return ["open_dataset.dataset = 'mixture'", f"MixtureDataset.components = {components!r}"]
    if options.dataset_type or options.mode == "eval":
        # eval: also stops a training run's saved dataset choice (e.g. a mixture) replacing --examples_path.
        return [f"open_dataset.dataset = {plugin!r}"]
    return []


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="polyamp-runner", description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("train", "eval", "predict"), default="train")
    parser.add_argument("--model_type", default="MELODIC")
    parser.add_argument("--examples_path", default="")
    parser.add_argument("--model_dir", default="models")
    parser.add_argument("--model_id", default=None)
    parser.add_argument("--load_id", default="*")
    parser.add_argument("--hparams", default="{}")
    parser.add_argument("--num_steps", type=int, default=None)
    parser.add_argument("--eval_num_steps", type=int, default=None)
    parser.add_argument("--audio_filename", default="")
    parser.add_argument("--transcribed_file_suffix", default=".polyamp")
    parser.add_argument("--qpm", type=float, default=120.0)
    parser.add_argument("--gin_file", action="append", default=[])
    parser.add_argument("--gin_param", action="append", default=[])
    parser.add_argument("--load_full", default=None)
    parser.add_argument("--dataset_type", default=None, type=str.lower, choices=tuple(DATASET_PLUGINS))
    parser.add_argument("--nsynth_examples_path", default=None)
    for flag in IGNORED_FLAGS:
        parser.add_argument(f"--{flag}", default=None)
    return parser


def to_polyamp_args(argv: list[str]) -> list[str]:
    """Translates an original runner command line into ``polyamp`` CLI arguments."""
    options = _parser().parse_args(argv)
    for flag in IGNORED_FLAGS:
        if getattr(options, flag) is not None:
            print(f"note: --{flag} is not used by this version and was ignored", file=sys.stderr)
    common = ["--model-type", options.model_type, "--model-dir", options.model_dir]
    if options.load_full is not None:
        common.append(_load_full_flag(options.load_full))
    gin = [item for path in options.gin_file for item in ("--gin-file", path)]
    bindings = _dataset_bindings(options) if options.mode != "predict" else []
    gin += [item for binding in [*bindings, *options.gin_param] for item in ("--gin-param", binding)]
    hparams = [] if options.hparams in ("", "{}") else ["--hparams", options.hparams]
    if options.mode == "train":
        args = ["train", "--examples-path", options.examples_path, *common]
        args += ["--model-id", options.model_id or "default"]
        if options.load_id not in (None, "*"):
            args += ["--load-id", options.load_id]
        if options.num_steps is not None:
            args += ["--num-steps", str(options.num_steps)]
        return args + hparams + gin
    if options.mode == "eval":
        args = ["eval", "--examples-path", options.examples_path, *common, "--load-id", options.load_id]
        if options.eval_num_steps is not None:
            args += ["--eval-num-steps", str(options.eval_num_steps)]
        return args + hparams + gin
    if not options.audio_filename:
        raise SystemExit("error: --mode=predict needs --audio_filename=PATH_OR_GLOB")
    args = ["transcribe", options.audio_filename, *common, "--load-id", options.load_id]
    args += ["--transcribed-file-suffix", options.transcribed_file_suffix, "--qpm", str(options.qpm)]
    return args + hparams + gin


def _load_full_flag(value: str) -> str:
    """``--load_full=True`` -> ``--load-full``; ``False`` -> ``--no-load-full``."""
    text = value.strip().lower()
    if text in ("true", "1", "yes", "t", "y"):
        return "--load-full"
    if text in ("false", "0", "no", "f", "n"):
        return "--no-load-full"
    raise SystemExit(f"error: --load_full must be True or False, got {value!r}")


def run() -> None:
    """Console-script entry point."""
    from .main import app, exit_with

    exit_with(app, to_polyamp_args(sys.argv[1:]))
