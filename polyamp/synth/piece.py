"""The score model shared by every ``polyamp synth`` stage: a piece is parts, a part is notes.

Plain frozen dataclasses of Python numbers (no music21, no TensorFlow), so pieces pickle
cheaply between Beam workers. Times are seconds from the start of the piece; pitches and
programs are MIDI numbers (programs 0-based General MIDI); velocities 1-127.
"""

from __future__ import annotations

import dataclasses

from polyamp.notes.families import family_name_of


@dataclasses.dataclass(frozen=True)
class NoteEvent:
    """One note: MIDI ``pitch``, ``start_s`` < ``end_s`` in seconds, ``velocity`` 1-127."""

    pitch: int
    start_s: float
    end_s: float
    velocity: int


@dataclasses.dataclass(frozen=True)
class Part:
    """One instrument part (a Slakh stem): its notes sorted by start, its program and gain.

    ``gain_db`` is applied to the rendered stem before mixing; ``name`` is free text
    (e.g. the music21 part name).
    """

    name: str
    program: int
    is_drum: bool
    notes: tuple[NoteEvent, ...]
    gain_db: float = 0.0
    sound_offsets: tuple[tuple[int, float], ...] = ()
    """(SF2 generator number, offset) pairs that vary how the SoundFont's preset sounds for this part
    (filter, envelope, vibrato; see :data:`polyamp.synth.arrange.SOUND_VARIATION_RANGES`)."""

    @property
    def family_name(self) -> str:
        """NSynth family name of the part's program, or ``"drums"``."""
        return family_name_of(self.program, self.is_drum)

    @property
    def end_s(self) -> float:
        """End of the last note in seconds (0 for an empty part)."""
        return max((note.end_s for note in self.notes), default=0.0)


@dataclasses.dataclass(frozen=True)
class Piece:
    """A piece to render: a stable ``piece_id`` (used in file names and seeds), where it came
    from (``source``: corpus path or MIDI file path) and its parts."""

    piece_id: str
    source: str
    parts: tuple[Part, ...]

    @property
    def duration_s(self) -> float:
        """End of the last note of any part, in seconds."""
        return max((part.end_s for part in self.parts), default=0.0)

    @property
    def num_notes(self) -> int:
        return sum(len(part.notes) for part in self.parts)

    def replace_parts(self, parts: tuple[Part, ...]) -> Piece:
        """The same piece with other parts."""
        return dataclasses.replace(self, parts=parts)
