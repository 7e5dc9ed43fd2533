"""What a batch writes: the output options, each input's output paths, and the plan of a batch."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from polyamp.errors import ConfigError, OutputExistsError


@dataclasses.dataclass(frozen=True)
class OutputOptions:
    """What to write for each input.

    ``output_dir``: folder of every output (None = beside each input); ``suffix``: added to the
    input's stem; ``qpm``: MIDI tempo (quarter notes per minute); ``note_events``, ``model_outputs``,
    ``plot``, ``sonify``: also write the ``.csv``, ``.npz``, ``.png``, ``.wav``; ``overwrite``: replace
    existing outputs (else keep them and skip inputs that are done).
    """

    output_dir: Path | None = None
    suffix: str = ".polyamp"
    qpm: float = 120.0
    note_events: bool = False
    model_outputs: bool = False
    plot: bool = False
    sonify: bool = False
    overwrite: bool = False


@dataclasses.dataclass(frozen=True)
class OutputPaths:
    """The output files of one input; None = not requested."""

    midi: Path
    note_events: Path | None = None
    model_outputs: Path | None = None
    plot: Path | None = None
    audio: Path | None = None

    def requested(self) -> list[Path]:
        """Every requested output, MIDI first (the order they are written in)."""
        paths = (self.midi, self.note_events, self.model_outputs, self.plot, self.audio)
        return [path for path in paths if path is not None]

    def missing(self) -> list[Path]:
        """The requested outputs that do not exist yet."""
        return [path for path in self.requested() if not path.exists()]


def _output_base(audio_path: Path, output_dir: Path | None, suffix: str) -> tuple[Path, str]:
    folder = Path(output_dir) if output_dir is not None else audio_path.parent
    return folder, f"{audio_path.stem}{suffix}"


def output_paths_for(audio_path: Path, options: OutputOptions) -> OutputPaths:
    """``<folder>/<stem><suffix>.mid`` and the requested ``.csv``/``.npz``/``.png``/``.wav`` beside it."""
    folder, name = _output_base(audio_path, options.output_dir, options.suffix)

    def path(extension: str, wanted: bool = True) -> Path | None:
        return folder / f"{name}{extension}" if wanted else None

    return OutputPaths(
        midi=folder / f"{name}.mid",
        note_events=path(".csv", options.note_events),
        model_outputs=path(".npz", options.model_outputs),
        plot=path(".png", options.plot),
        audio=path(".wav", options.sonify),
    )


@dataclasses.dataclass(frozen=True)
class PlannedFile:
    """One input of a batch and its output files."""

    audio: Path
    outputs: OutputPaths


def plan_batch(inputs: Sequence[Path], options: OutputOptions) -> tuple[list[PlannedFile], list[Path]]:
    """(the files to process with their outputs, the inputs left out as sonifications of other inputs).

    Raises OutputExistsError when two inputs would write the same file (or one input's output is
    another input), before anything is written.
    """
    sonified = {
        output_paths_for(path, dataclasses.replace(options, sonify=True)).audio.resolve(): path for path in inputs
    }
    kept = [path for path in inputs if sonified.get(path.resolve(), path) == path]
    left_out = [path for path in inputs if sonified.get(path.resolve(), path) != path]
    planned = [PlannedFile(path, output_paths_for(path, options)) for path in kept]
    inputs_by_key = {path.resolve(): path for path in kept}
    owners: dict[Path, Path] = {}
    for item in planned:
        for output in item.outputs.requested():
            key = output.resolve()
            if key in inputs_by_key:
                raise OutputExistsError(
                    f"{item.audio} would write {output}, which is an input; use --output-dir or another "
                    "--transcribed-file-suffix"
                )
            if key in owners:
                raise OutputExistsError(
                    f"{owners[key]} and {item.audio} would both write {output}; use --output-dir or another "
                    "--transcribed-file-suffix, or transcribe them in separate runs"
                )
            owners[key] = item.audio
    return planned, left_out


def check_output_options(options: OutputOptions) -> None:
    """ConfigError (or MissingDependencyError) now for options that would fail at the first file."""
    if not options.qpm or not 0 < options.qpm < float("inf"):
        raise ConfigError(f"qpm must be a positive number of quarter notes per minute, got {options.qpm}")
    if options.plot:
        from polyamp.plots import require_matplotlib

        require_matplotlib()
