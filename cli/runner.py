"""``polyamp-runner``: the 2020 PolyAMP command lines, accepted verbatim.

``--mode=train|eval|predict`` with the original absl-style flags (``--examples_path``,
``--model_dir``, ``--model_type=MELODIC``, ``--model_id``, ``--load_id``, ``--hparams``,
``--eval_num_steps``, ``--audio_filename``, ``--transcribed_file_suffix``, ``--qpm``, ...).
Flags that only mattered to the 2020 code are accepted and ignored with a note on stderr.
"""

from __future__ import annotations

import argparse
import sys

IGNORED_FLAGS = (
    "load_full",
    "dataset_type",
    "nsynth_examples_path",
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
    gin = [item for path in options.gin_file for item in ("--gin-file", path)]
    gin += [item for binding in options.gin_param for item in ("--gin-param", binding)]
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


def run() -> None:
    """Console-script entry point."""
    from .main import app, exit_with

    exit_with(app, to_polyamp_args(sys.argv[1:]))
