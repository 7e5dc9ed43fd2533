"""A minimal ctypes binding to libfluidsynth 2.x: just what the SoundFont renderer needs.

One :class:`FluidSynth` object owns one ``fluid_settings_t`` and one ``fluid_synth_t``.
Audio is rendered into caller-owned float32 numpy buffers (stereo, planar). FluidSynth's own
log output is silenced, so users only see PolyAMP's one-line errors.

FluidSynth renders in blocks of :data:`BLOCK_SAMPLES` samples: MIDI events sent between two
``write``/``process`` calls take effect at the start of the next block the synth renders, never
in the middle of one. :mod:`polyamp.synth.render` builds sample-exact onsets on top of that.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from polyamp.errors import MissingDependencyError, SoundFontError

BLOCK_SAMPLES = 64
"""FluidSynth's internal block size (``FLUID_BUFSIZE``): events are applied at block starts."""

DRUM_CHANNEL = 9
"""General MIDI percussion channel (MIDI channel 10, 0-based index 9)."""

DRUM_BANK = 128
"""The SoundFont bank that holds General MIDI drum kits."""

_FLUID_FAILED = -1
_NUM_LOG_LEVELS = 5  # FLUID_PANIC, FLUID_ERR, FLUID_WARN, FLUID_INFO, FLUID_DBG
_CHANNEL_TYPE_MELODIC = 0
_CHANNEL_TYPE_DRUM = 1

_INSTALL_HINT = (
    "FluidSynth is not installed (libfluidsynth not found): install it with `apt-get install fluidsynth` "
    "(Debian/Ubuntu) or `brew install fluid-synth`"
)

_P = ctypes.c_void_p
_INT = ctypes.c_int
_STR = ctypes.c_char_p

# name: (restype, argtypes), from the FluidSynth 2.3 public headers (settings.h, synth.h, sfont.h, log.h).
_SIGNATURES: dict[str, tuple[object, list[object]]] = {
    "new_fluid_settings": (_P, []),
    "delete_fluid_settings": (None, [_P]),
    "fluid_settings_setnum": (_INT, [_P, _STR, ctypes.c_double]),
    "fluid_settings_setint": (_INT, [_P, _STR, _INT]),
    "fluid_settings_setstr": (_INT, [_P, _STR, _STR]),
    "new_fluid_synth": (_P, [_P]),
    "delete_fluid_synth": (None, [_P]),
    "fluid_synth_sfload": (_INT, [_P, _STR, _INT]),
    "fluid_synth_get_sfont_by_id": (_P, [_P, _INT]),
    "fluid_synth_add_sfont": (_INT, [_P, _P]),
    "fluid_synth_remove_sfont": (_INT, [_P, _P]),
    "fluid_sfont_get_preset": (_P, [_P, _INT, _INT]),
    "fluid_sfont_iteration_start": (None, [_P]),
    "fluid_sfont_iteration_next": (_P, [_P]),
    "fluid_preset_get_banknum": (_INT, [_P]),
    "fluid_preset_get_num": (_INT, [_P]),
    "fluid_synth_program_select": (_INT, [_P, _INT, _INT, _INT, _INT]),
    "fluid_synth_bank_select": (_INT, [_P, _INT, _INT]),
    "fluid_synth_program_change": (_INT, [_P, _INT, _INT]),
    "fluid_synth_set_channel_type": (_INT, [_P, _INT, _INT]),
    "fluid_synth_noteon": (_INT, [_P, _INT, _INT, _INT]),
    "fluid_synth_noteoff": (_INT, [_P, _INT, _INT]),
    "fluid_synth_cc": (_INT, [_P, _INT, _INT, _INT]),
    "fluid_synth_set_gen": (_INT, [_P, _INT, _INT, ctypes.c_float]),
    "fluid_synth_system_reset": (_INT, [_P]),
    "fluid_synth_all_sounds_off": (_INT, [_P, _INT]),
    "fluid_synth_get_active_voice_count": (_INT, [_P]),
    "fluid_synth_set_interp_method": (_INT, [_P, _INT, _INT]),
    "fluid_synth_set_gain": (None, [_P, ctypes.c_float]),
    # int fluid_synth_write_float(synth, len, void *lout, int loff, int lincr, void *rout, int roff, int rincr)
    "fluid_synth_write_float": (_INT, [_P, _INT, _P, _INT, _INT, _P, _INT, _INT]),
    # int fluid_synth_process(synth, len, int nfx, float *fx[], int nout, float *out[])
    "fluid_synth_process": (_INT, [_P, _INT, _INT, _P, _INT, _P]),
    # fluid_log_function_t fluid_set_log_function(int level, fluid_log_function_t fun, void *data)
    "fluid_set_log_function": (_P, [_INT, _P, _P]),
}


LIBRARY_ENV_VAR = "POLYAMP_FLUIDSYNTH_LIBRARY"
"""Path of libfluidsynth to load instead of the one the system's linker finds."""


@functools.lru_cache(maxsize=1)
def load_library() -> ctypes.CDLL:
    """Load libfluidsynth once, declare the signatures we use and silence its logging.

    Raises :class:`MissingDependencyError` when the library is not installed.
    """
    override = os.environ.get(LIBRARY_ENV_VAR)
    if override:  # a FluidSynth in a non-standard place (or, in tests, a missing one)
        candidates = [override]
    else:
        candidates = [name for name in (ctypes.util.find_library("fluidsynth"), "libfluidsynth.so.3") if name]
    lib = None
    for name in candidates:
        try:
            lib = ctypes.CDLL(name)
            break
        except OSError:
            continue
    if lib is None:
        raise MissingDependencyError(_INSTALL_HINT)
    try:
        for name, (restype, argtypes) in _SIGNATURES.items():
            function = getattr(lib, name)
            function.restype = restype
            function.argtypes = argtypes
    except AttributeError as error:
        raise MissingDependencyError(
            f"the installed libfluidsynth is too old ({error}): install FluidSynth 2.x "
            "with `apt-get install fluidsynth` (Debian/Ubuntu) or `brew install fluid-synth`"
        ) from None
    for level in range(_NUM_LOG_LEVELS):
        lib.fluid_set_log_function(level, None, None)
    return lib


def check_soundfont_path(path: str | Path) -> Path:
    """Return ``path`` if it is an existing file that starts like a SoundFont (RIFF ``sfbk``).

    Raises :class:`SoundFontError` naming the file otherwise. SF2 and SF3 share the header.
    """
    path = Path(path)
    if not path.exists():
        raise SoundFontError(f"SoundFont {path} does not exist: pass the path of a .sf2 or .sf3 file")
    if not path.is_file():
        raise SoundFontError(f"SoundFont {path} is not a file: pass the path of a .sf2 or .sf3 file")
    try:
        with path.open("rb") as stream:
            header = stream.read(12)
    except OSError as error:
        raise SoundFontError(f"cannot read SoundFont {path} ({error.strerror}): check its permissions") from None
    if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"sfbk":
        raise SoundFontError(f"{path} is not a valid .sf2/.sf3 SoundFont (no RIFF sfbk header): pass a SoundFont file")
    return path


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null for the duration (FluidSynth's DLS loader, libinstpatch,
    prints GLib warnings straight to stderr when it rejects a file)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
        finally:
            os.close(devnull)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _address(buffer: np.ndarray, offset: int) -> int:
    return buffer.ctypes.data + offset * buffer.itemsize


def _check_buffer(buffer: np.ndarray, start: int, stop: int) -> None:
    if buffer.dtype != np.float32 or buffer.ndim != 1 or not buffer.flags.c_contiguous:
        raise ValueError("FluidSynth output buffers must be 1-D C-contiguous float32 arrays")
    if not 0 <= start <= stop <= buffer.shape[0]:
        raise ValueError(f"sample range [{start}, {stop}) is outside a buffer of {buffer.shape[0]} samples")


class FluidSynth:
    """One FluidSynth synthesizer with its settings; ``close()`` (or ``with``) frees both.

    ``sample_rate_hz``: output rate; ``gain``: FluidSynth master gain (``synth.gain``, 0-10);
    ``reverb``/``chorus``: whether the effect units run; ``polyphony``: voice limit.
    Not thread-safe (FluidSynth's API locking is off): use one object per thread.
    """

    def __init__(
        self,
        sample_rate_hz: float,
        gain: float = 0.2,
        reverb: bool = False,
        chorus: bool = False,
        polyphony: int = 256,
    ) -> None:
        self._lib = load_library()
        self._settings = None
        self._synth = None
        self._borrowed: list[int] = []
        settings = self._lib.new_fluid_settings()
        if not settings:
            raise MemoryError("FluidSynth could not allocate its settings")
        self._settings = settings
        self._set_num("synth.sample-rate", float(sample_rate_hz))
        self._set_num("synth.gain", float(gain))
        self._set_int("synth.reverb.active", int(bool(reverb)))
        self._set_int("synth.chorus.active", int(bool(chorus)))
        self._set_int("synth.polyphony", int(polyphony))
        self._set_int("synth.cpu-cores", 1)
        self._set_int("synth.audio-channels", 1)
        self._set_int("synth.audio-groups", 1)
        self._set_int("synth.effects-groups", 1)
        # One thread drives each synth: skip FluidSynth's API mutex and event queue.
        self._set_int("synth.threadsafe-api", 0)
        # Do not mlock() sample data: large SoundFonts would exceed container memlock limits.
        self._set_int("synth.lock-memory", 0)
        synth = self._lib.new_fluid_synth(settings)
        if not synth:
            self.close()
            raise RuntimeError("FluidSynth could not create a synthesizer with these settings")
        self._synth = synth
        self.sample_rate_hz = float(sample_rate_hz)

    # -- settings ---------------------------------------------------------------------------------

    def _set_num(self, name: str, value: float) -> None:
        if self._lib.fluid_settings_setnum(self._settings, name.encode(), value) == _FLUID_FAILED:
            raise ValueError(f"FluidSynth rejected setting {name}={value}")

    def _set_int(self, name: str, value: int) -> None:
        if self._lib.fluid_settings_setint(self._settings, name.encode(), value) == _FLUID_FAILED:
            raise ValueError(f"FluidSynth rejected setting {name}={value}")

    def _set_str(self, name: str, value: str) -> None:
        if self._lib.fluid_settings_setstr(self._settings, name.encode(), value.encode()) == _FLUID_FAILED:
            raise ValueError(f"FluidSynth rejected setting {name}={value}")

    # -- SoundFonts -------------------------------------------------------------------------------

    @property
    def handle(self) -> int:
        if self._synth is None:
            raise RuntimeError("this FluidSynth synthesizer is closed")
        return self._synth

    def load_soundfont(self, path: str | Path) -> int:
        """Load a ``.sf2``/``.sf3`` file; return its SoundFont id. :class:`SoundFontError` if unusable."""
        path = check_soundfont_path(path)
        with _quiet_stderr():
            sfont_id = self._lib.fluid_synth_sfload(self.handle, str(path).encode(), 1)
        if sfont_id == _FLUID_FAILED:
            raise SoundFontError(
                f"FluidSynth cannot load {path}: it is not a valid .sf2/.sf3 SoundFont; pass another SoundFont file"
            )
        return sfont_id

    def soundfont_pointer(self, sfont_id: int) -> int:
        """The ``fluid_sfont_t*`` of a loaded SoundFont (to share it with :meth:`borrow_soundfont`)."""
        sfont = self._lib.fluid_synth_get_sfont_by_id(self.handle, sfont_id)
        if not sfont:
            raise ValueError(f"no SoundFont with id {sfont_id} is loaded")
        return sfont

    def borrow_soundfont(self, sfont: int) -> int:
        """Use a SoundFont loaded by another synthesizer (no re-parsing); return its id here.

        The owner must outlive this synthesizer; :meth:`close` hands the SoundFont back (it is never
        freed by the borrower).
        """
        sfont_id = self._lib.fluid_synth_add_sfont(self.handle, sfont)
        if sfont_id == _FLUID_FAILED:
            raise RuntimeError("FluidSynth could not share a loaded SoundFont")
        self._borrowed.append(sfont)
        return sfont_id

    def has_preset(self, sfont_id: int, bank: int, program: int) -> bool:
        """Whether SoundFont ``sfont_id`` holds preset ``program`` in ``bank``."""
        return bool(self._lib.fluid_sfont_get_preset(self.soundfont_pointer(sfont_id), bank, program))

    def presets(self, sfont_id: int) -> list[tuple[int, int]]:
        """All ``(bank, program)`` pairs of SoundFont ``sfont_id``, in the SoundFont's order."""
        sfont = self.soundfont_pointer(sfont_id)
        found = []
        self._lib.fluid_sfont_iteration_start(sfont)
        while True:
            preset = self._lib.fluid_sfont_iteration_next(sfont)
            if not preset:
                return found
            found.append((self._lib.fluid_preset_get_banknum(preset), self._lib.fluid_preset_get_num(preset)))

    # -- MIDI -------------------------------------------------------------------------------------

    def program_select(self, channel: int, sfont_id: int, bank: int, program: int) -> None:
        """Select ``program`` of ``bank`` on ``channel``; ValueError if the preset does not exist."""
        if self._lib.fluid_synth_program_select(self.handle, channel, sfont_id, bank, program) == _FLUID_FAILED:
            raise ValueError(f"SoundFont {sfont_id} has no preset bank {bank} program {program}")

    def bank_select(self, channel: int, bank: int) -> None:
        """MIDI bank select (applied at the next program change)."""
        self._lib.fluid_synth_bank_select(self.handle, channel, bank)

    def program_change(self, channel: int, program: int) -> None:
        """MIDI program change on ``channel``."""
        self._lib.fluid_synth_program_change(self.handle, channel, program)

    def set_drum_channel(self, channel: int, is_drum: bool) -> None:
        """Make ``channel`` a percussion (bank 128) or melodic channel."""
        kind = _CHANNEL_TYPE_DRUM if is_drum else _CHANNEL_TYPE_MELODIC
        self._lib.fluid_synth_set_channel_type(self.handle, channel, kind)

    def noteon(self, channel: int, pitch: int, velocity: int) -> None:
        """Start MIDI ``pitch`` (0-127) with ``velocity`` (1-127) at the next block."""
        self._lib.fluid_synth_noteon(self.handle, channel, pitch, velocity)

    def noteoff(self, channel: int, pitch: int) -> None:
        """Release MIDI ``pitch`` on ``channel`` at the next block (no-op if it is not sounding)."""
        self._lib.fluid_synth_noteoff(self.handle, channel, pitch)

    def cc(self, channel: int, controller: int, value: int) -> None:
        """MIDI control change."""
        self._lib.fluid_synth_cc(self.handle, channel, controller, value)

    def set_generator_offset(self, channel: int, generator: int, offset: float) -> None:
        """Offset SoundFont generator ``generator`` (SF2 number, e.g. 8 = filter cutoff) by ``offset``
        (its own units: cents, timecents or centibels) for every voice on ``channel``."""
        self._lib.fluid_synth_set_gen(self.handle, channel, int(generator), float(offset))

    def all_sounds_off(self) -> None:
        """Stop every voice on every channel at the next block."""
        self._lib.fluid_synth_all_sounds_off(self.handle, -1)

    def system_reset(self) -> None:
        """MIDI system reset: voices off, controllers and programs reset, reverb/chorus cleared."""
        self._lib.fluid_synth_system_reset(self.handle)

    def set_gain(self, gain: float) -> None:
        """Master gain (``synth.gain``, 0-10); applies to sounding voices too."""
        self._lib.fluid_synth_set_gain(self.handle, float(gain))

    def set_interpolation(self, points: int) -> None:
        """Sample interpolation of every channel: 0 (none), 1 (linear), 4 (default) or 7 points."""
        if points not in (0, 1, 4, 7):
            raise ValueError(f"FluidSynth interpolation must be 0, 1, 4 or 7 points, got {points}")
        self._lib.fluid_synth_set_interp_method(self.handle, -1, points)

    def active_voices(self) -> int:
        """Number of voices still sounding."""
        return self._lib.fluid_synth_get_active_voice_count(self.handle)

    # -- audio ------------------------------------------------------------------------------------

    def write(self, left: np.ndarray, right: np.ndarray, start: int, stop: int) -> None:
        """Render samples ``[start, stop)`` (dry + effects) into float32 ``left``/``right``, overwriting them
        (``fluid_synth_write_float``)."""
        _check_buffer(left, start, stop)
        _check_buffer(right, start, stop)
        if stop == start:
            return
        status = self._lib.fluid_synth_write_float(
            self.handle, stop - start, _address(left, start), 0, 1, _address(right, start), 0, 1
        )
        if status == _FLUID_FAILED:
            raise RuntimeError("fluid_synth_write_float failed")

    def mix_dry(self, left: np.ndarray, right: np.ndarray, start: int, stop: int) -> None:
        """Render samples ``[start, stop)`` of the dry signal (no reverb/chorus) and ADD them into
        float32 ``left``/``right`` (``fluid_synth_process`` with no effects buffers). ``left`` and
        ``right`` may be the same array, which then receives left + right."""
        self._process(left, right, start, stop, effects=False)

    def mix_effects(self, left: np.ndarray, right: np.ndarray, start: int, stop: int) -> None:
        """Render samples ``[start, stop)`` of the effects output only (reverb + chorus) and ADD them
        into float32 ``left``/``right`` (may be one array); the dry signal is synthesized but discarded."""
        self._process(left, right, start, stop, effects=True)

    def _process(self, left: np.ndarray, right: np.ndarray, start: int, stop: int, effects: bool) -> None:
        _check_buffer(left, start, stop)
        _check_buffer(right, start, stop)
        if stop == start:
            return
        buffers = (ctypes.c_void_p * 2)(_address(left, start), _address(right, start))
        if effects:
            # nfx=2 < 2 effects x 1 group: reverb and chorus both wrap into the same stereo pair.
            status = self._lib.fluid_synth_process(self.handle, stop - start, 2, ctypes.addressof(buffers), 0, None)
        else:
            status = self._lib.fluid_synth_process(self.handle, stop - start, 0, None, 2, ctypes.addressof(buffers))
        if status == _FLUID_FAILED:
            raise RuntimeError("fluid_synth_process failed")

    # -- lifetime ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Free the synthesizer (and the SoundFonts it loaded) and the settings; safe to call twice."""
        if self._synth is not None:
            if self._borrowed:
                # Voices must not hold samples of a SoundFont that leaves the synth.
                self._lib.fluid_synth_all_sounds_off(self._synth, -1)
                for sfont in self._borrowed:
                    self._lib.fluid_synth_remove_sfont(self._synth, sfont)
                self._borrowed.clear()
            self._lib.delete_fluid_synth(self._synth)
            self._synth = None
        if self._settings is not None:
            self._lib.delete_fluid_settings(self._settings)
            self._settings = None

    def __enter__(self) -> FluidSynth:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - never raise from a finalizer
            pass
