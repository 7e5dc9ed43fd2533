"""The transcription workflow and the library API: audio files in, NoteSequences and MIDI out.

>>> import polyamp
>>> polyamp.transcribe("song.flac")                               # doctest: +SKIP
PosixPath('song.polyamp.mid')
>>> model = polyamp.load_model("models", load_id="my-run")        # doctest: +SKIP
>>> sequence = model.transcribe("song.flac")                      # doctest: +SKIP
>>> polyamp.transcribe("song.flac", model=model, midi_path="song.mid")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import glob
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from polyamp.errors import AudioError, OutputExistsError

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg")


@dataclasses.dataclass
class MelodicTranscription:
    """One file's single-track result: decoded notes and the probability rolls they came from.

    ``rolls`` holds float16 [frames, 88] frames/onsets/offsets/velocities at 31.25 frames/s
    (column ``p`` = MIDI pitch 21 + p).
    """

    notes: list[Any]
    rolls: Any


class TranscriptionModel:
    """A restored model ready to transcribe many files (built once, reused)."""

    def __init__(self, components: Any, checkpoint: Any) -> None:
        from polyamp.inference import WindowedPredictor

        self.components = components
        self.checkpoint = checkpoint
        self.predictor = WindowedPredictor(components.model, components.frontend)

    def warm_up(self) -> None:
        """Builds the inference graph now (:meth:`~polyamp.inference.WindowedPredictor.warm_up`)."""
        self.predictor.warm_up()

    def predict_rolls(
        self, audio_path: str | os.PathLike[str], progress: Callable[[int, int], None] | None = None
    ) -> Any:
        """Probability rolls for one file, read window by window (memory does not grow with length)."""
        from polyamp.audio.decode import AudioReader, check_audible

        with AudioReader(audio_path) as reader:
            rolls = self.predictor.predict(reader.read, reader.num_samples, progress=progress)
            check_audible(reader.peak, str(audio_path))
        return rolls

    def transcribe_file(
        self, audio_path: str | os.PathLike[str], progress: Callable[[int, int], None] | None = None
    ) -> MelodicTranscription:
        """Decoded notes and the rolls of one audio file (the model runs once for both)."""
        rolls = self.predict_rolls(audio_path, progress=progress)
        notes = self.components.decoder.decode(rolls.frames, rolls.onsets, rolls.offsets, rolls.velocities)
        return MelodicTranscription(notes, rolls)

    def transcribe_notes(
        self, audio_path: str | os.PathLike[str], progress: Callable[[int, int], None] | None = None
    ) -> list[Any]:
        """Decoded notes (pitch, start_s, end_s, velocity) of one audio file, without building a NoteSequence."""
        return self.transcribe_file(audio_path, progress=progress).notes

    def transcribe(
        self,
        audio_path: str | os.PathLike[str],
        qpm: float = 120.0,
        progress: Callable[[int, int], None] | None = None,
    ) -> Any:
        """The NoteSequence of one audio file (times in seconds; ``qpm`` only sets the tempo event)."""
        sequence = self.components.decoder.to_note_sequence(self.transcribe_notes(audio_path, progress), qpm=qpm)
        sequence.filename = os.path.basename(str(audio_path))
        return sequence

    def transcribe_samples(self, samples: Any) -> Any:
        """The NoteSequence of float32 mono samples at 16 kHz."""
        rolls = self.predictor.predict_samples(samples)
        return self.components.decoder(rolls.frames, rolls.onsets, rolls.offsets, rolls.velocities)


def load_model(
    model_dir: str | os.PathLike[str] | None = None,
    model_type: str | None = None,
    load_id: str | None = None,
    hparams: str | dict[str, Any] | None = None,
    gin_files: Iterable[str] = (),
    gin_params: Iterable[str] = (),
    load_full: bool | None = None,
    warm_up: bool = True,
) -> Any:
    """Restores a model for repeated use: the shipped default model when neither ``model_dir`` nor
    ``load_id`` is given (model type ``full`` unless another is asked for, see :mod:`polyamp.pretrained`),
    else the checkpoint ``load_id`` names under ``model_dir`` (defaults ``models`` and ``*`` = newest
    of any id; model type ``melodic``).

    ``hparams`` (a dict or JSON string) overrides decoding settings such as
    ``predict_frame_threshold``; ``load_full`` True takes the Melodic part of a Full run; ``warm_up``
    builds the inference graphs before returning (a few seconds once, instead of on the first file). Returns a
    :class:`TranscriptionModel`, or for model type ``full`` a
    :class:`~polyamp.full_transcription.FullTranscriber` (its ``transcribe`` gives multi-track sequences).
    """
    import json

    from polyamp.loading import load_components
    from polyamp.pretrained import choose_model

    choice = choose_model(model_dir, load_id, model_type, load_full)
    if choice.model_type == "full":
        from polyamp.full_transcription import load_full_transcriber

        return load_full_transcriber(
            choice.model_dir,
            choice.load_id,
            hparams,
            tuple(gin_files),
            tuple(gin_params),
            choice.load_full,
            warm_up=warm_up,
        )

    hparams_json = json.dumps(hparams) if isinstance(hparams, dict) else hparams
    components, checkpoint = load_components(
        choice.model_dir,
        choice.model_type,
        choice.load_id,
        hparams_json,
        tuple(gin_files),
        tuple(gin_params),
        choice.load_full,
    )
    model = TranscriptionModel(components, checkpoint)
    if warm_up:
        model.warm_up()
    return model


def transcribe(
    audio_path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    model_dir: str | os.PathLike[str] | None = None,
    model_type: str | None = None,
    load_id: str | None = None,
    midi_path: str | os.PathLike[str] | None = None,
    qpm: float = 120.0,
    overwrite: bool = False,
    model: Any = None,
    *,
    output_dir: str | os.PathLike[str] | None = None,
    suffix: str = ".polyamp",
    families: str | None = None,
) -> Path | list[Path]:
    """Transcribes audio to MIDI files, as ``polyamp transcribe`` does; returns the MIDI path(s).

    ``audio_path``: one file (returns its MIDI path) or a list of files (returns a list). The model:
    ``model`` (from :func:`load_model`, reused), else the shipped default model when neither
    ``model_dir`` nor ``load_id`` is given (``model_type`` ``full``: one track per family), else
    that checkpoint (``model_type`` default ``melodic``: one track). Each MIDI goes to ``midi_path``
    (one input only) or ``<output_dir or the input's folder>/<stem><suffix>.mid``; an existing file
    is an OutputExistsError unless ``overwrite`` (checked for every input before the model loads).
    ``families`` (``"string,brass"``) keeps only those tracks (Full model only).

    >>> polyamp.transcribe("song.wav")                          # doctest: +SKIP
    PosixPath('song.polyamp.mid')
    """
    from polyamp.batch_transcription import full_engine, melodic_engine, write_midi_output
    from polyamp.errors import ConfigError

    single = isinstance(audio_path, (str, os.PathLike))
    inputs = [Path(audio_path)] if single else [Path(path) for path in audio_path]  # type: ignore[union-attr]
    if midi_path is not None and len(inputs) != 1:
        raise ConfigError("midi_path= names one output: pass one audio file, or use output_dir=")
    if midi_path is not None:
        outputs = [Path(midi_path)]
    else:
        outputs = [output_path_for(path, output_dir, suffix) for path in inputs]
    for path in inputs:
        if not path.is_file():
            raise AudioError(f"audio file not found: {path}")
    if len({path.resolve() for path in outputs}) != len(outputs):
        raise OutputExistsError("two inputs would write the same MIDI file; use output_dir= or transcribe them apart")
    if not overwrite:
        for path in outputs:
            if path.exists():
                raise OutputExistsError(f"{path} exists; pass overwrite=True to replace it")
    if model is None:
        model = load_model(model_dir, model_type, load_id)
    from polyamp.full_transcription import FullTranscriber

    if isinstance(model, FullTranscriber):
        engine = full_engine(model, families)
    elif families is not None:
        raise ConfigError("families= needs the full model (one track per family); this model is single-track")
    else:
        engine = melodic_engine(model)
    written = [write_midi_output(engine(path, None), output, qpm) for path, output in zip(inputs, outputs, strict=True)]
    return written[0] if single else written


def expand_audio_inputs(inputs: Iterable[str]) -> list[Path]:
    """Files named by ``inputs``: paths, folders (their audio files, recursively) and globs."""
    found: list[Path] = []
    for item in inputs:
        if os.path.isdir(item):
            matches = sorted(
                path for path in Path(item).rglob("*") if path.suffix.lower() in AUDIO_EXTENSIONS and path.is_file()
            )
            if not matches:
                raise AudioError(f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) in folder {item}")
            found.extend(matches)
        elif any(char in item for char in "*?["):
            matches = sorted(Path(match) for match in glob.glob(item, recursive=True) if os.path.isfile(match))
            if not matches:
                raise AudioError(f"no file matches {item}")
            found.extend(matches)
        else:
            if not os.path.exists(item):
                raise AudioError(f"audio file not found: {item}")
            found.append(Path(item))
    unique: list[Path] = []
    for path in found:
        if path not in unique:
            unique.append(path)
    return unique


def output_path_for(audio_path: Path, output_dir: str | os.PathLike[str] | None, suffix: str) -> Path:
    """``<output_dir or the audio's folder>/<audio stem><suffix>.mid``."""
    folder = Path(output_dir) if output_dir is not None else audio_path.parent
    return folder / f"{audio_path.stem}{suffix}.mid"
