"""Errors that users can cause, each with one clear message and an exit code.

Every failure a user can trigger with bad input (a missing or corrupt file, an unknown
hparam, a bad gin binding, a missing checkpoint...) raises a subclass of
:class:`PolyampError`. The CLI prints ``str(error)`` on one line and exits with
``error.exit_code``; it never shows a traceback for these.
"""

from __future__ import annotations


class PolyampError(Exception):
    """Base class for errors caused by user input; ``exit_code`` is the CLI exit status."""

    exit_code: int = 1


class InputFileError(PolyampError):
    """An input file is missing, unreadable, corrupt, empty or otherwise unusable."""

    exit_code = 2


class AudioError(InputFileError):
    """An audio file cannot be decoded, or holds no usable signal."""


class MidiError(InputFileError):
    """A MIDI file cannot be read."""


class DatasetError(InputFileError):
    """A dataset (TFRecords, a MAESTRO folder, an audio+MIDI folder) is missing or malformed."""


class SoundFontError(InputFileError):
    """A SoundFont (``.sf2``/``.sf3``) is missing or FluidSynth cannot load it."""


class ConfigError(PolyampError):
    """An unknown or ill-typed hparam, a bad gin file or binding, or an unknown plugin name."""

    exit_code = 3


class MissingDependencyError(ConfigError):
    """An optional system library or package (FluidSynth, music21, Apache Beam) is not installed."""


class CheckpointError(PolyampError):
    """No checkpoint matches ``--load-id``, or a checkpoint cannot be restored."""

    exit_code = 4


class OutputError(PolyampError, OSError):
    """An output cannot be written: a read-only or missing folder, a full disk, a path through a file.

    Also an :class:`OSError` (with the ``errno`` and ``strerror`` of the failure), so code that
    handles operating-system write failures keeps handling it; ``str()`` is the one-line message.
    """

    def __init__(self, message: str, cause: BaseException | None = None) -> None:
        code, strerror = getattr(cause, "errno", None), getattr(cause, "strerror", None)
        if isinstance(code, int):
            OSError.__init__(self, code, strerror or message)
        else:
            OSError.__init__(self, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class OutputExistsError(PolyampError):
    """An output file already exists and ``--overwrite`` was not given."""

    exit_code = 5
