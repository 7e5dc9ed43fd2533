"""The transcription workflow and the library API: audio files in, NoteSequences and MIDI out.

>>> import polyamp
>>> model = polyamp.load_model("models", load_id="my-run")        # doctest: +SKIP
>>> sequence = model.transcribe("song.flac")                      # doctest: +SKIP
>>> polyamp.transcribe("song.flac", model_dir="models", midi_path="song.mid")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import glob
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from polyamp.errors import AudioError, InputFileError, OutputExistsError

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
    model_dir: str | os.PathLike[str],
    model_type: str = "melodic",
    load_id: str = "*",
    hparams: str | dict[str, Any] | None = None,
    gin_files: Iterable[str] = (),
    gin_params: Iterable[str] = (),
    load_full: bool | None = None,
) -> Any:
    """Restores the checkpoint ``load_id`` names (``*`` = newest of any id) for repeated use.

    ``hparams`` (a dict or JSON string) overrides decoding settings such as
    ``predict_frame_threshold``; ``load_full`` True takes the Melodic part of a Full run. Returns a
    :class:`TranscriptionModel`, or for ``model_type="full"`` a
    :class:`~polyamp.full_transcription.FullTranscriber` (its ``transcribe`` gives multi-track sequences).
    """
    import json

    from polyamp.loading import load_components

    if model_type == "full":
        from polyamp.full_transcription import load_full_transcriber

        return load_full_transcriber(model_dir, load_id, hparams, tuple(gin_files), tuple(gin_params), load_full)

    hparams_json = json.dumps(hparams) if isinstance(hparams, dict) else hparams
    components, checkpoint = load_components(
        model_dir, model_type, load_id, hparams_json, tuple(gin_files), tuple(gin_params), load_full
    )
    return TranscriptionModel(components, checkpoint)


def transcribe(
    audio_path: str | os.PathLike[str],
    model_dir: str | os.PathLike[str] | None = None,
    model_type: str = "melodic",
    load_id: str = "*",
    midi_path: str | os.PathLike[str] | None = None,
    qpm: float = 120.0,
    overwrite: bool = False,
    model: TranscriptionModel | None = None,
) -> Any:
    """Transcribes one audio file; returns its NoteSequence and writes MIDI if ``midi_path`` is given."""
    from polyamp.notes.midi import write_midi

    if model is None:
        if model_dir is None:
            raise InputFileError("polyamp.transcribe needs model_dir= (or model=) until a default model ships")
        model = load_model(model_dir, model_type, load_id)
    if midi_path is not None and Path(midi_path).exists() and not overwrite:
        raise OutputExistsError(f"{midi_path} exists; pass overwrite=True to replace it")
    sequence = model.transcribe(audio_path, qpm=qpm)
    if midi_path is not None:
        write_midi(sequence, midi_path, qpm=qpm, overwrite=overwrite)
    return sequence


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
