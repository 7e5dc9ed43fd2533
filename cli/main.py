"""``polyamp``: train, evaluate and run transcription models.

Examples::

    polyamp train --model-type melodic --examples-path data/train.tfrecord-* \\
        --model-dir models --model-id my-run --gin-file melodic/small.gin --num-steps 2000
    polyamp eval --model-type melodic --examples-path data/test.tfrecord-* --model-dir models --load-id my-run
    polyamp transcribe song.flac --model-dir models --load-id my-run --qpm 96
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .errors import handle_errors, quiet_libraries

app = typer.Typer(
    name="polyamp",
    help="PolyAMP: polyphonic audio to MIDI transcription (train, eval, transcribe).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

MODEL_TYPES = ("melodic", "timbre", "full")


def _model_type(value: str) -> str:
    normalized = value.strip().lower()
    if normalized not in MODEL_TYPES:
        raise typer.BadParameter(f"{value!r} is not one of: {', '.join(MODEL_TYPES)}")
    return normalized


def _optional_model_type(value: Optional[str]) -> Optional[str]:
    return None if value is None else _model_type(value)


ModelType = Annotated[
    str,
    typer.Option(
        "--model-type",
        "--model_type",
        callback=_model_type,
        help="Model type: melodic, timbre or full (MELODIC/TIMBRE/FULL accepted).",
    ),
]
LoadFull = Annotated[
    Optional[bool],
    typer.Option(
        "--load-full/--no-load-full",
        "--load_full/--no_load_full",
        help="Full model: load a full run (--load-full) or separately trained melodic and timbre parts "
        "(--no-load-full); melodic/timbre: take that part of a full run. Default: a full run if one exists. "
        "Also --load-full true|false, --load_full=True.",
        show_default=False,
    ),
]
ModelDir = Annotated[
    Path, typer.Option("--model-dir", "--model_dir", help="Folder holding <model-type>/<model-id>/ checkpoints.")
]
ExamplesPath = Annotated[
    str,
    typer.Option(
        "--examples-path",
        "--examples_path",
        help="Comma-separated TFRecord globs (a/train.tfrecord-*,b/*.tfrecord), or a MAESTRO / audio+MIDI folder.",
    ),
]
LoadId = Annotated[
    str, typer.Option("--load-id", "--load_id", help="Checkpoint id to load; '*' = the most recent of any id.")
]
HParams = Annotated[
    Optional[str],
    typer.Option("--hparams", help="JSON hparam overrides, e.g. '{\"frames_true_weighing\":3}'."),
]
GinFiles = Annotated[
    Optional[list[str]],
    typer.Option("--gin-file", "--gin_file", help="Gin file by path or built-in name (melodic/small.gin); repeatable."),
]
GinParams = Annotated[
    Optional[list[str]],
    typer.Option("--gin-param", "--gin_param", help="Gin binding such as 'train.num_steps = 500'; repeatable."),
]


@app.callback()
def main() -> None:
    """PolyAMP command line."""
    quiet_libraries()


@app.command()
@handle_errors
def train(
    examples_path: ExamplesPath,
    model_dir: ModelDir = Path("models"),
    model_type: ModelType = "melodic",
    model_id: Annotated[
        str, typer.Option("--model-id", "--model_id", help="Run id: checkpoints go to <model-dir>/<type>/<id>/.")
    ] = "default",
    load_id: Annotated[
        Optional[str],
        typer.Option("--load-id", "--load_id", help="Start from this id's latest weights when <model-id> is new."),
    ] = None,
    hparams: HParams = None,
    gin_file: GinFiles = None,
    gin_param: GinParams = None,
    num_steps: Annotated[
        Optional[int], typer.Option("--num-steps", "--num_steps", help="Total training steps of the run.")
    ] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed for reproducible runs.")] = None,
    load_full: LoadFull = None,
) -> None:
    """Train a model; resumes from the run's latest checkpoint."""
    from polyamp.training import configure_training
    from polyamp.training import train as run_training

    from .render import training_progress

    configure_training(model_dir, model_type, model_id, gin_file or [], gin_param or [], hparams, load_id, load_full)
    options = {"num_steps": num_steps} if num_steps is not None else {}
    if seed is not None:
        options["seed"] = seed
    with training_progress() as progress:
        result = run_training(
            examples_path=examples_path,
            model_dir=model_dir,
            model_type=model_type,
            model_id=model_id,
            load_id=load_id,
            load_full=load_full,
            progress=progress,
            **options,
        )
    from .render import print_training_result

    print_training_result(result)


@app.command("eval")
@handle_errors
def evaluate(
    examples_path: ExamplesPath,
    model_dir: ModelDir = Path("models"),
    model_type: ModelType = "melodic",
    load_id: LoadId = "*",
    eval_num_steps: Annotated[
        Optional[int],
        typer.Option("--eval-num-steps", "--eval_num_steps", help="Evaluate at most this many examples."),
    ] = None,
    output_json: Annotated[
        Optional[Path],
        typer.Option("--output-json", help="Metrics JSON path (default: <run>/eval/metrics-<step>.json)."),
    ] = None,
    split: Annotated[str, typer.Option(help="Split of a MAESTRO folder to evaluate.")] = "test",
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --output-json.")] = False,
    hparams: HParams = None,
    gin_file: GinFiles = None,
    gin_param: GinParams = None,
    load_full: LoadFull = None,
    plot_confusion: Annotated[
        Optional[Path],
        typer.Option(
            "--plot-confusion",
            help="Timbre/full: also write the family confusion matrix as a PNG heat map to this path.",
        ),
    ] = None,
) -> None:
    """Evaluate a checkpoint: mir_eval frame and note metrics; timbre and multi-instrument metrics."""
    from polyamp.errors import ConfigError, OutputExistsError
    from polyamp.evaluation import evaluate as run_evaluation
    from polyamp.loading import load_components

    from .render import evaluation_progress, print_evaluation

    if plot_confusion is not None:
        if model_type == "melodic":
            raise ConfigError("--plot-confusion needs --model-type timbre or full (melodic notes have no family)")
        if plot_confusion.suffix.lower() != ".png":
            raise ConfigError(f"--plot-confusion {plot_confusion} must end in .png")
        if plot_confusion.exists() and not overwrite:
            raise OutputExistsError(f"{plot_confusion} exists; pass --overwrite to replace it")
    components, checkpoint = load_components(
        model_dir, model_type, load_id, hparams, gin_file or [], gin_param or [], load_full
    )
    with evaluation_progress(eval_num_steps) as progress:
        result = run_evaluation(
            examples_path=examples_path,
            model_dir=model_dir,
            model_type=model_type,
            load_id=load_id,
            eval_num_steps=eval_num_steps,
            output_json=output_json,
            overwrite=overwrite or output_json is None,
            split=split,
            progress=progress,
            components=components,
            checkpoint=checkpoint,
        )
    print_evaluation(result)
    if plot_confusion is not None:
        from polyamp.plots import plot_family_confusion

        written = plot_family_confusion(result, plot_confusion, overwrite=overwrite)
        typer.echo(f"confusion plot: {written}")


@app.command()
@handle_errors
def transcribe(
    audio: Annotated[list[str], typer.Argument(help="Audio files, folders or globs (WAV, FLAC, MP3, OGG).")],
    model_dir: Annotated[
        Optional[Path],
        typer.Option(
            "--model-dir",
            "--model_dir",
            help="Folder holding <model-type>/<model-id>/ checkpoints (default: models when --load-id is given; "
            "with neither option the shipped model is used).",
            show_default=False,
        ),
    ] = None,
    model_type: Annotated[
        Optional[str],
        typer.Option(
            "--model-type",
            "--model_type",
            callback=_optional_model_type,
            help="melodic (one track), full (one track per family) or timbre (with --notes). Default: full with "
            "the shipped model, melodic with --model-dir/--load-id.",
            show_default=False,
        ),
    ] = None,
    load_id: Annotated[
        Optional[str],
        typer.Option(
            "--load-id",
            "--load_id",
            help="Checkpoint id to load; '*' = the most recent of any id (the default when --model-dir is given).",
            show_default=False,
        ),
    ] = None,
    output_dir: Annotated[
        Optional[Path], typer.Option("--output-dir", help="Where outputs go (default: beside each input).")
    ] = None,
    transcribed_file_suffix: Annotated[
        str,
        typer.Option(
            "--transcribed-file-suffix",
            "--transcribed_file_suffix",
            help="Added to the input's stem before .mid (and .csv, .npz, .png, .wav).",
        ),
    ] = ".polyamp",
    qpm: Annotated[float, typer.Option("--qpm", help="Tempo written to the MIDI file (beats per minute).")] = 120.0,
    overwrite: Annotated[
        bool,
        typer.Option(help="Redo inputs whose outputs exist (default: keep existing files, skip finished inputs)."),
    ] = False,
    save_note_events: Annotated[
        bool,
        typer.Option(
            "--save-note-events", help="Also write <stem><suffix>.csv: start_s,end_s,pitch,velocity,family,program."
        ),
    ] = False,
    save_model_outputs: Annotated[
        bool,
        typer.Option(
            "--save-model-outputs",
            help="Also write <stem><suffix>.npz: frame/onset/offset/velocity rolls (frames x 88) (+ family "
            "probabilities with --model-type full).",
        ),
    ] = False,
    plot: Annotated[
        bool,
        typer.Option("--plot", help="Also write <stem><suffix>.png, a piano roll coloured by family (matplotlib)."),
    ] = False,
    sonify: Annotated[
        bool,
        typer.Option("--sonify", help="Also write <stem><suffix>.wav, the MIDI file rendered with FluidSynth."),
    ] = False,
    sonify_soundfont: Annotated[
        Optional[Path],
        typer.Option("--sonify-soundfont", help="SoundFont for --sonify (default: a GM SoundFont in /usr/share)."),
    ] = None,
    sonify_sample_rate: Annotated[
        Optional[int], typer.Option("--sonify-sample-rate", help="Sample rate of --sonify WAV files (default 44100).")
    ] = None,
    onset_threshold: Annotated[
        Optional[float],
        typer.Option("--onset-threshold", help="Onset probability that starts a note, 0-1 (predict_onset_threshold)."),
    ] = None,
    frame_threshold: Annotated[
        Optional[float],
        typer.Option(
            "--frame-threshold", help="Frame probability that sustains a note, 0-1 (predict_frame_threshold)."
        ),
    ] = None,
    offset_threshold: Annotated[
        Optional[float],
        typer.Option(
            "--offset-threshold", help="Offset probability that ends a note, 0-1; 0 = off (predict_offset_threshold)."
        ),
    ] = None,
    minimum_note_length: Annotated[
        Optional[float],
        typer.Option("--minimum-note-length", help="Drop notes shorter than this many ms (min_duration_ms)."),
    ] = None,
    notes: Annotated[
        Optional[Path],
        typer.Option("--notes", help="With --model-type timbre: a MIDI file of the notes to label (one audio input)."),
    ] = None,
    families: Annotated[
        Optional[str], typer.Option("--families", help="Only these families, e.g. string,brass (multi-track output).")
    ] = None,
    hparams: HParams = None,
    gin_file: GinFiles = None,
    gin_param: GinParams = None,
    load_full: LoadFull = None,
) -> None:
    """Transcribe audio files to MIDI (one .mid per input): with no --model-dir/--load-id the shipped
    model writes one track per family (--model-type melodic: one track); --model-dir/--load-id select your
    own checkpoints; --model-type timbre --notes labels given notes. Optional note-event CSV, model-output
    NPZ, piano-roll PNG and sonified WAV. A file that fails is reported and skipped (exit 2 at the end);
    inputs whose outputs exist are skipped, so re-running resumes a batch (--overwrite redoes them)."""
    from polyamp.batch_transcription import (
        OutputOptions,
        check_output_options,
        load_engine,
        merge_hparams_json,
        needs_transcription,
        open_sonifier,
        plan_batch,
        threshold_overrides,
        transcribe_batch,
    )
    from polyamp.config import parse_hparams_json
    from polyamp.errors import ConfigError, InputFileError
    from polyamp.pretrained import choose_model
    from polyamp.transcription import expand_audio_inputs

    from .render import batch_progress, print_batch_summary

    inputs = expand_audio_inputs(audio)
    choice = choose_model(model_dir, load_id, model_type, load_full)
    model_dir, load_id, model_type, load_full = choice.model_dir, choice.load_id, choice.model_type, choice.load_full
    thresholds = threshold_overrides(onset_threshold, frame_threshold, offset_threshold, minimum_note_length)
    if model_type == "timbre":
        if notes is None or len(inputs) != 1:
            raise ConfigError("--model-type timbre labels given notes: pass one audio file and --notes NOTES.mid")
        if thresholds:
            raise ConfigError("the decoding thresholds are for --model-type melodic or full, not timbre")
    elif notes is not None:
        raise ConfigError("--notes is for --model-type timbre (labelling another transcriber's notes)")
    if families is not None and model_type == "melodic":
        raise ConfigError("--families is for multi-track output: --model-type full (or timbre with --notes)")
    options = OutputOptions(
        output_dir=output_dir,
        suffix=transcribed_file_suffix,
        qpm=qpm,
        note_events=save_note_events,
        model_outputs=save_model_outputs,
        plot=plot,
        sonify=sonify,
        overwrite=overwrite,
    )
    check_output_options(options)
    planned, left_out = plan_batch(inputs, options)
    hparams_json = merge_hparams_json(hparams, thresholds)
    parse_hparams_json(model_type, hparams_json)  # unknown names fail even when every output exists
    sonifier = open_sonifier(options, sonify_soundfont, sonify_sample_rate)  # configuration fails before any file
    if choice.pretrained is not None:
        typer.echo(f"using the {choice.pretrained.describe()}, model type {model_type}", err=True)
    try:
        engine = None  # a batch whose outputs all exist is skipped without loading the model
        if any(needs_transcription(item, options) for item in planned):
            gin_options = (gin_file or [], gin_param or [])
            engine = load_engine(model_type, model_dir, load_id, hparams_json, *gin_options, load_full, families, notes)
        with batch_progress(len(planned)) as observer:
            report = transcribe_batch(engine, planned, options, sonifier, observer, left_out)
    except KeyboardInterrupt:
        from .errors import fail

        fail("interrupted; run the same command again to resume (finished files are skipped)", 130)
    finally:
        if sonifier is not None:
            sonifier.close()
    print_batch_summary(report)
    if report.failed:
        if len(report.failed) == 1:
            failed = report.failed[0]
            named = failed.audio.name in failed.error
            raise InputFileError(failed.error if named else f"{failed.audio}: {failed.error}")
        raise InputFileError(f"{len(report.failed)} of {len(report.results)} files failed (listed above)")


PipelineOptions = Annotated[
    Optional[str],
    typer.Option(
        "--pipeline-options",
        "--pipeline_options",
        help="Apache Beam pipeline options, comma-separated (default: --runner=DirectRunner with one worker "
        "process per core; e.g. '--runner=FlinkRunner,--flink_master=host:8081').",
    ),
]


@app.command()
@handle_errors
def prepare(
    input_dir: Annotated[
        Path, typer.Argument(help="A MAESTRO, Slakh2100 (or polyamp synth), NSynth JSON+WAV, or audio+MIDI folder.")
    ],
    output_dir: Annotated[Path, typer.Argument(help="Where <split>.tfrecord-NNNNN-of-NNNNN shards go.")],
    kind: Annotated[str, typer.Option(help="auto, maestro, folder, slakh, synth or nsynth.")] = "auto",
    num_shards: Annotated[int, typer.Option(help="Shards per split (0 = automatic).")] = 0,
    min_chunk_seconds: Annotated[float, typer.Option(help="Shortest training chunk (s).")] = 5.0,
    max_chunk_seconds: Annotated[float, typer.Option(help="Longest training chunk (s).")] = 20.0,
    sustain: Annotated[bool, typer.Option(help="Extend notes by the sustain pedal.")] = True,
    overwrite: Annotated[bool, typer.Option(help="Replace existing shards.")] = False,
    pipeline_options: PipelineOptions = None,
) -> None:
    """Convert a dataset folder into sharded Magenta-style TFRecords, on Apache Beam."""
    import time

    from polyamp.data.beam_runner import split_pipeline_args
    from polyamp.data.prepare import prepare_dataset

    from .render import print_skipped, spinner

    started = time.perf_counter()
    with spinner(f"preparing {input_dir} on Apache Beam"):
        report = prepare_dataset(
            input_dir,
            output_dir,
            kind=kind,
            num_shards=num_shards,
            min_chunk_s=min_chunk_seconds,
            max_chunk_s=max_chunk_seconds,
            sustain=sustain,
            overwrite=overwrite,
            pipeline_args=split_pipeline_args(pipeline_options),
        )
    elapsed = time.perf_counter() - started
    for split, paths in report.written.items():
        typer.echo(f"{split}: {report.records[split]} record(s) in {len(paths)} shard(s) in {output_dir}")
    typer.echo(f"done in {elapsed:.1f} s")
    print_skipped(report.skipped)


@app.command()
@handle_errors
def synth(
    output_dir: Annotated[Path, typer.Argument(help="Where <split>/TrackNNNNN folders (Slakh2100 layout) go.")],
    soundfont: Annotated[
        Path,
        typer.Option(
            "--soundfont", help="A General MIDI .sf2/.sf3 SoundFont (e.g. /usr/share/sounds/sf2/FluidR3_GM.sf2)."
        ),
    ],
    midi_dir: Annotated[Optional[Path], typer.Option("--midi-dir", help="A folder of MIDI files to render.")] = None,
    corpus: Annotated[bool, typer.Option("--corpus", help="Render works of music21's built-in corpus.")] = False,
    corpus_include: Annotated[
        Optional[str], typer.Option("--corpus-include", help="Only corpus paths starting with these (comma-separated).")
    ] = None,
    minutes: Annotated[Optional[float], typer.Option(help="Stop after this many minutes of audio.")] = None,
    max_pieces: Annotated[Optional[int], typer.Option(help="Render at most this many pieces.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same inputs -> identical files.")] = 0,
    program_strategy: Annotated[
        Optional[str],
        typer.Option(help="keep, family, balanced or piano (every part on one piano); default from gin: balanced."),
    ] = None,
    nsynth_notes: Annotated[
        int, typer.Option(help="Also write this many NSynth-style single notes (4 s, family labels).")
    ] = 0,
    validation_fraction: Annotated[float, typer.Option(help="Share of pieces in validation/.")] = 0.1,
    test_fraction: Annotated[float, typer.Option(help="Share of pieces in test/.")] = 0.1,
    splits: Annotated[
        Optional[str],
        typer.Option(help="Render only pieces of these splits, e.g. 'test' (held-out pieces with another SoundFont)."),
    ] = None,
    parts: Annotated[
        Optional[str],
        typer.Option(help="LOW-HIGH: keep a random LOW..HIGH of a piece's pitched parts when it has more than HIGH."),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Write into a non-empty folder, replacing tracks.")] = False,
    pipeline_options: PipelineOptions = None,
    gin_file: GinFiles = None,
    gin_param: GinParams = None,
) -> None:
    """Render MIDI files and/or music21 scores with a SoundFont into Slakh2100-layout training data."""
    import dataclasses
    import time

    from polyamp.config import parse_gin
    from polyamp.data.beam_runner import split_pipeline_args
    from polyamp.synth.arrange import ArrangeOptions, parse_parts_range
    from polyamp.synth.pipeline import synthesize_dataset

    from .render import print_skipped, spinner

    parse_gin(gin_file or [], gin_param or [])
    overrides: dict[str, object] = {}
    if program_strategy is not None:
        overrides["program_strategy"] = program_strategy
    if parts is not None:
        overrides["parts_range"] = parse_parts_range(parts)
    arrange_options = dataclasses.replace(ArrangeOptions(), **overrides)
    include = [part.strip() for part in corpus_include.split(",") if part.strip()] if corpus_include else None
    started = time.perf_counter()
    with spinner(f"rendering with {soundfont.name} on Apache Beam"):
        report = synthesize_dataset(
            output_dir,
            soundfont,
            midi_dir=midi_dir,
            corpus=corpus,
            corpus_include=include,
            minutes=minutes,
            max_pieces=max_pieces,
            seed=seed,
            validation_fraction=validation_fraction,
            test_fraction=test_fraction,
            nsynth_notes=nsynth_notes,
            arrange_options=arrange_options,
            overwrite=overwrite,
            pipeline_args=split_pipeline_args(pipeline_options),
            splits=[name.strip() for name in splits.split(",") if name.strip()] if splits else None,
        )
    elapsed = time.perf_counter() - started
    splits = {}
    for track in report.tracks:
        splits[track["split"]] = splits.get(track["split"], 0) + 1
    per_split = ", ".join(f"{split} {count}" for split, count in sorted(splits.items()))
    typer.echo(
        f"rendered {len(report.tracks)} track(s), {report.seconds / 60:.1f} min of audio ({per_split}) "
        f"into {output_dir} in {elapsed:.1f} s ({report.seconds / max(elapsed, 1e-9):.1f}x real time)"
    )
    if report.nsynth_notes:
        typer.echo(f"wrote {report.nsynth_notes} NSynth-style notes to {output_dir / 'nsynth'}")
    print_skipped(report.skipped)


@app.command("synthetic-tones")
@handle_errors
def synthetic_tones(
    output_dir: Annotated[Path, typer.Argument(help="Folder for NAME.wav + NAME.mid pairs.")],
    num_examples: Annotated[int, typer.Option(help="Number of clips.")] = 20,
    duration: Annotated[float, typer.Option(help="Clip length (s).")] = 10.0,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Write synthesised harmonic-tone clips with their MIDI (polyphonic, 3+ voices): data with no download."""
    from polyamp.data.synthetic import write_synthetic_folder

    paths = write_synthetic_folder(output_dir, num_examples=num_examples, duration_s=duration, seed=seed)
    typer.echo(f"wrote {len(paths)} audio/MIDI pairs to {output_dir}")


@app.command()
def plugins() -> None:
    """List the registered models, datasets, front ends and postprocessors, and the built-in gin files."""
    from rich.console import Console
    from rich.table import Table

    from polyamp.config import list_builtin_gin_files
    from polyamp.registry import ALL_REGISTRIES

    table = Table(title="PolyAMP plugins")
    table.add_column("kind")
    table.add_column("names")
    for kind, registry in ALL_REGISTRIES.items():
        table.add_row(kind, ", ".join(registry.names()))
    table.add_row("gin files", ", ".join(list_builtin_gin_files()))
    Console().print(table)


@app.command()
@handle_errors
def pretrained(
    path: Annotated[bool, typer.Option("--path", help="Print only the model folder (for --model-dir).")] = False,
    card: Annotated[bool, typer.Option("--card", help="Print the model card (Markdown).")] = False,
) -> None:
    """Show the shipped default model and check its files against the manifest's sha256 (exit 4 if not)."""
    from polyamp.pretrained import CARD_NAME, verify_pretrained

    model = verify_pretrained()
    if path:
        typer.echo(str(model.root))
        return
    if card:
        typer.echo((model.root / CARD_NAME).read_text(encoding="utf-8"))
        return
    typer.echo(model.describe())
    typer.echo(f"folder: {model.root}  (--model-dir {model.root} --load-id {model.load_id})")
    for entry in model.manifest["files"]:
        typer.echo(f"  {entry['path']}  {entry['bytes']:>10,d} bytes  sha256 {entry['sha256'][:16]}")
    typer.echo(f"{len(model.manifest['files'])} files, {model.total_bytes / 1e6:.1f} MB, all match their sha256")


def run() -> None:
    """Console-script entry point.

    Once TensorFlow is loaded, the process ends with ``os._exit`` after flushing: every file the
    command wrote is already closed (outputs are written atomically), and TensorFlow's interpreter
    teardown would add about a second to every command.
    """
    exit_with(app)


_LOAD_FULL_SPELLINGS = ("--load-full", "--load_full")
_TRUE_WORDS = ("true", "yes", "1", "t", "y")
_FALSE_WORDS = ("false", "no", "0", "f", "n")


def normalize_load_full(args: list[str]) -> list[str]:
    """Rewrites the value forms of the tri-state ``--load-full`` flag (``--load_full=True``,
    ``--load-full false``) into ``--load-full`` / ``--no-load-full``; other arguments are unchanged."""
    result: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        name, equals, value = arg.partition("=")
        if name in _LOAD_FULL_SPELLINGS:
            if not equals and index + 1 < len(args) and args[index + 1].lower() in _TRUE_WORDS + _FALSE_WORDS:
                value, equals = args[index + 1], "="
                index += 1
            if equals and value.lower() in _FALSE_WORDS:
                arg = "--no-load-full"
            elif equals and value.lower() in _TRUE_WORDS:
                arg = "--load-full"
        result.append(arg)
        index += 1
    return result


def exit_with(application: typer.Typer, args: list[str] | None = None) -> None:
    """Runs ``application`` and exits with its status, skipping TensorFlow's slow teardown."""
    import os
    import sys

    args = normalize_load_full(list(sys.argv[1:] if args is None else args))
    try:
        application(args=args, prog_name="polyamp")
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        if stop.code is not None and not isinstance(stop.code, int):
            print(stop.code, file=sys.stderr)
    if "tensorflow" in sys.modules:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    raise SystemExit(code)
