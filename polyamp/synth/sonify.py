"""Listening to a transcription: render a written MIDI file to a WAV with FluidSynth and a GM SoundFont.

``polyamp transcribe --sonify`` renders every track of the MIDI file it wrote (each with its
program, as :class:`~polyamp.synth.render.SoundFontRenderer` renders training stems), mixes them
and writes 16-bit mono PCM. Nothing is ever downloaded: the SoundFont is ``--sonify-soundfont`` or
the first of :data:`SOUNDFONT_LOCATIONS` that exists.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from polyamp.errors import MissingDependencyError, OutputExistsError

SOUNDFONT_LOCATIONS: tuple[str, ...] = (
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf3/default-GM.sf3",
    "/usr/share/sounds/sf3/MuseScore_General.sf3",
    "/usr/share/sounds/sf2/TimGM6mb.sf2",
    "/usr/share/soundfonts/default.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/local/share/soundfonts/default.sf2",
    "/opt/homebrew/share/soundfonts/default.sf2",
    "/usr/local/share/fluidsynth/default.sf2",
)
"""Where Debian/Ubuntu, Fedora, Arch and Homebrew packages put General MIDI SoundFonts, searched in order."""

DEFAULT_SONIFY_RATE_HZ = 44100
"""Sample rate of sonified WAV files unless asked otherwise."""

TAIL_S = 1.0
"""Seconds rendered after the last note ends (release and reverb), when that passes the audio's end."""

PEAK = 0.9
"""A mix louder than this (full scale = 1) is scaled down to it, so the WAV never clips."""


def find_soundfont(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The SoundFont to render with: ``explicit`` (SoundFontError if it is not a SoundFont file) or the
    first of :data:`SOUNDFONT_LOCATIONS` that exists (MissingDependencyError when none does)."""
    from polyamp.synth.fluidsynth import check_soundfont_path

    if explicit is not None:
        return check_soundfont_path(explicit)
    for candidate in SOUNDFONT_LOCATIONS:
        if os.path.isfile(candidate):
            return Path(candidate)
    raise MissingDependencyError(
        "--sonify needs a General MIDI SoundFont and none is installed in the usual places "
        f"({os.path.dirname(SOUNDFONT_LOCATIONS[0])}, ...): install one with `apt-get install fluid-soundfont-gm` "
        "or pass --sonify-soundfont PATH"
    )


class Sonifier:
    """FluidSynth with one SoundFont, loaded once to render many MIDI files; ``close()`` (or ``with``) frees it.

    ``sample_rate_hz``: rate of the WAV files (Hz). Raises MissingDependencyError when FluidSynth is
    not installed, SoundFontError when the SoundFont cannot be loaded.
    """

    def __init__(self, soundfont: str | os.PathLike[str], sample_rate_hz: int = DEFAULT_SONIFY_RATE_HZ) -> None:
        from polyamp.synth.render import SoundFontRenderer

        self.soundfont = Path(soundfont)
        self.sample_rate_hz = int(sample_rate_hz)
        self._renderer = SoundFontRenderer(self.soundfont, sample_rate_hz=self.sample_rate_hz, reverb=True)

    def render(self, midi_path: str | os.PathLike[str], duration_s: float = 0.0) -> np.ndarray:
        """float32 mono samples at ``sample_rate_hz`` of every track of ``midi_path``.

        Length: ``max(duration_s, last note end + TAIL_S)`` seconds; peak at most :data:`PEAK`.
        A MIDI file without notes gives ``duration_s`` of silence.
        """
        from polyamp.errors import DatasetError
        from polyamp.synth.sources import piece_from_midi_file

        try:
            parts = piece_from_midi_file(midi_path).parts
        except DatasetError:  # no notes: silence
            parts = ()
        end_s = max((part.end_s for part in parts), default=0.0)
        total_s = max(float(duration_s), end_s + TAIL_S if parts else 0.0)
        mix = np.zeros(round(total_s * self.sample_rate_hz), np.float32)
        for part in parts:
            mix += self._renderer.render_part(part, total_s)
        peak = float(np.max(np.abs(mix))) if mix.size else 0.0
        if peak > PEAK:
            mix *= np.float32(PEAK / peak)
        return mix

    def write(
        self,
        midi_path: str | os.PathLike[str],
        wav_path: str | os.PathLike[str],
        duration_s: float = 0.0,
        overwrite: bool = False,
    ) -> Path:
        """Renders ``midi_path`` (:meth:`render`) to a 16-bit mono WAV at ``wav_path``, atomically;
        OutputExistsError for an existing file unless ``overwrite``. Returns the path."""
        from polyamp.audio.decode import encode_wav
        from polyamp.fileio import atomic_write_bytes

        wav_path = Path(wav_path)
        if wav_path.exists() and not overwrite:
            raise OutputExistsError(f"output file already exists: {wav_path} (use --overwrite to replace it)")
        return atomic_write_bytes(wav_path, encode_wav(self.render(midi_path, duration_s), self.sample_rate_hz))

    def close(self) -> None:
        """Frees FluidSynth and the SoundFont; safe to call twice."""
        self._renderer.close()

    def __enter__(self) -> Sonifier:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
