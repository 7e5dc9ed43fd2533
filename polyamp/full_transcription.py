"""Multi-instrument transcription with the Full model: audio -> agnostic notes -> family per note.

1. The Melodic part gives frame/onset/offset/velocity rolls (``WindowedPredictor``, hop 512) and
   the Onsets-and-Frames decoder turns them into agnostic notes.
2. The Timbre part gives each of those notes 12 family probabilities (``label_notes``: the notes
   of each 20 s crop, ``label_notes.crop_seconds``; timbre spectrogram at hop 256). The Timbre model is onset-sensitive:
   the decoder's note starts at the onset frame's centre (``predict_onset_shift_frames`` 0.5) give
   it 0.846 family accuracy where the frame starts gave 0.803 (0.851 at the reference onsets).
3. :func:`~polyamp.decode.multi_instrument.family_mask` assigns families (``multiple_instruments_threshold``).

Restricting families (``FullHParams.present_instruments`` and ``--families``; both given = the
families in both): with ``use_all_instruments`` False (default) a note goes to its most probable
*allowed* family; with ``use_all_instruments`` True families are decided among all twelve and the
decision is then ANDed with the allowed families, as the 2020 code did to isolate chosen
instruments (a note whose families are not allowed is dropped).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from polyamp.notes.families import NUM_FAMILIES


@dataclasses.dataclass
class FullTranscription:
    """One file's result: agnostic notes, their [N, 12] family probabilities and ``{family: notes}``."""

    notes: list[Any]
    family_probs: np.ndarray
    families: list[list[int]]
    notes_by_family: dict[int, list[Any]]
    rolls: Any


def allowed_families(components: Any, families: str | Sequence[int] | None = None) -> list[int] | None:
    """Family indices the output may use: ``present_instruments`` and ``families`` intersected (None = all)."""
    from polyamp.decode.multi_instrument import parse_families
    from polyamp.errors import ConfigError

    allowed = components.decoder.allowed_families
    if families is not None:
        chosen = parse_families(families) if isinstance(families, str) else sorted(set(families))
        allowed = chosen if allowed is None else sorted(set(allowed) & set(chosen))
        if not allowed:
            raise ConfigError(
                f"--families {families!r} shares no family with present_instruments "
                f"{list(components.hparams.present_instruments)}; name at least one family in both"
            )
    return allowed


def assign_note_families(components: Any, family_probs: np.ndarray, allowed: list[int] | None) -> list[list[int]]:
    """Family indices of each note from [N, 12] probabilities (module docstring for the restriction)."""
    from polyamp.decode.multi_instrument import family_mask

    decoder = components.decoder
    use_all = bool(components.hparams.use_all_instruments)
    mask = family_mask(
        family_probs,
        decoder.multiple_instruments_threshold,
        decoder.best_threshold,
        None if use_all else allowed,
        decoder.keep_unassigned,
        decoder.min_family_share,
    )
    if use_all and allowed is not None:
        keep = np.zeros(mask.shape[1], bool)
        keep[allowed] = True
        mask &= keep
    return [np.flatnonzero(row).tolist() for row in mask]


class FullTranscriber:
    """A restored Full model (Components of model type ``full``) ready to transcribe many files."""

    def __init__(self, components: Any, checkpoint: Any = None) -> None:
        from polyamp.inference import WindowedPredictor

        self.components = components
        self.checkpoint = checkpoint
        melodic = components.parts["melodic"]
        self.predictor = WindowedPredictor(melodic.model, melodic.frontend)

    def warm_up(self) -> None:
        """Builds both parts' inference graphs now (a few seconds once per process, see
        :meth:`~polyamp.inference.WindowedPredictor.warm_up`); :func:`load_full_transcriber` calls it."""
        from polyamp.timbre_evaluation import warm_up_timbre

        self.predictor.warm_up()
        warm_up_timbre(self.components.parts["timbre"])

    def transcribe_samples(
        self,
        samples: np.ndarray,
        families: str | Sequence[int] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> FullTranscription:
        """Transcribes float32 mono samples at 16 kHz (module docstring); ``progress(done, total)``
        counts the Melodic part's frames."""
        from polyamp.notes.multitrack import split_sequence_by_family
        from polyamp.timbre_evaluation import label_notes

        allowed = allowed_families(self.components, families)
        samples = np.asarray(samples, np.float32)
        rolls = self.predictor.predict_samples(samples, progress=progress)
        notes = self.components.decoder.decode(rolls.frames, rolls.onsets, rolls.offsets, rolls.velocities)
        rows = np.asarray([(note.pitch, note.start_s, note.end_s) for note in notes], np.float32).reshape(-1, 3)
        probs = (
            label_notes(self.components.parts["timbre"], samples, rows) if len(rows) else np.zeros((0, NUM_FAMILIES))
        )
        note_families = assign_note_families(self.components, probs, allowed)
        by_family = split_sequence_by_family(notes, note_families)
        return FullTranscription(notes, np.asarray(probs, np.float32), note_families, by_family, rolls)

    def transcribe_file(
        self,
        audio_path: str | os.PathLike[str],
        families: str | Sequence[int] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> FullTranscription:
        """Transcribes one audio file (read whole: the Timbre part needs the samples of every note)."""
        from polyamp.audio.decode import check_audible, load_audio

        samples = load_audio(audio_path)
        check_audible(float(np.max(np.abs(samples))) if samples.size else 0.0, str(audio_path))
        return self.transcribe_samples(samples, families, progress=progress)

    def transcribe(
        self, audio_path: str | os.PathLike[str], qpm: float = 120.0, families: str | Sequence[int] | None = None
    ) -> Any:
        """The multi-track NoteSequence of one audio file (``instrument`` = family, its export program)."""
        sequence = self.components.decoder.to_multitrack_sequence(
            self.transcribe_file(audio_path, families).notes_by_family, qpm=qpm
        )
        sequence.filename = os.path.basename(str(audio_path))
        return sequence

    def family_rolls(self, samples: np.ndarray, families: str | Sequence[int] | None = None) -> np.ndarray:
        """float32 rolls [frames, 88, 13] of float32 samples at 16 kHz: channels 0-11 the families
        (1 on the cells of the notes given that family), 12 the agnostic frame probabilities."""
        from polyamp.decode.multi_instrument import family_rolls_from_notes

        result = self.transcribe_samples(samples, families)
        frames = np.asarray(result.rolls.frames, np.float32)
        return family_rolls_from_notes(result.notes, result.families, frames.shape[0], agnostic=frames)


def load_full_transcriber(
    model_dir: str | os.PathLike[str],
    load_id: str = "*",
    hparams: str | dict[str, Any] | None = None,
    gin_files: Sequence[str] = (),
    gin_params: Sequence[str] = (),
    load_full: bool | None = None,
    warm_up: bool = True,
) -> FullTranscriber:
    """Restores a Full model (``load_full``: a Full checkpoint, separately trained parts, or auto);
    ``warm_up`` builds its inference graphs before it returns (:meth:`FullTranscriber.warm_up`)."""
    import json

    from polyamp.loading import load_components

    hparams_json = json.dumps(hparams) if isinstance(hparams, dict) else hparams
    components, ref = load_components(
        model_dir, "full", load_id, hparams_json, tuple(gin_files), tuple(gin_params), load_full
    )
    transcriber = FullTranscriber(components, ref)
    if warm_up:
        transcriber.warm_up()
    return transcriber
