"""Decode audio files to float32 mono at 16 kHz, whole or in bounded-memory blocks.

tensorflow-io (``tfio.audio.AudioIOTensor``) is the decoder for WAV, MP3 and OGG Vorbis; it reads
lazily, so :class:`AudioReader` decodes only the source range a caller asks for. ``soundfile`` (libsndfile,
which seeks too) decodes FLAC, because tfio 0.37's FLAC reader can loop forever on a corrupt file (found
by tests/test_fuzz_readers.py; libsndfile reports "lost sync" at once), and the WAV files that tfio's WAV
reader gets wrong or cannot open (32-bit integer PCM, which tfio returns as float garbage; 64-bit float;
mu-law/A-law; RF64; odd-sized chunks before the data). Channels are averaged to mono and the signal is
resampled with ``scipy.signal.resample_poly`` (exact rational ratio, e.g. up 160 / down 441 for 44.1 kHz),
block by block with a margin of source samples so that the blocks join exactly.

Every problem a user can cause (missing file, a directory, an unsupported extension, an empty, truncated,
corrupt or non-audio file, no samples, silence) raises :class:`polyamp.errors.AudioError` with one line that
names the file. TensorFlow is imported only when a file is opened.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import struct
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from polyamp.constants import SAMPLE_RATE_HZ
from polyamp.errors import AudioError

if TYPE_CHECKING:
    import tensorflow as tf

__all__ = [
    "SILENCE_PEAK",
    "SUPPORTED_EXTENSIONS",
    "AudioInfo",
    "AudioReader",
    "audio_info",
    "check_audible",
    "decode_wav_tf",
    "encode_wav",
    "load_audio",
]

logger = logging.getLogger(__name__)

SUPPORTED_EXTENSIONS: tuple[str, ...] = (".flac", ".mp3", ".oga", ".ogg", ".wav", ".wave")
"""File name extensions (lower case) that :func:`load_audio` and :class:`AudioReader` accept."""

SILENCE_PEAK = 1e-4
"""Peak absolute amplitude below which audio counts as silent (-80 dBFS)."""

_WAV_EXTENSIONS = (".wav", ".wave")
_WAVE_FORMAT_PCM = 0x0001
_WAVE_FORMAT_IEEE_FLOAT = 0x0003
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE
# (format tag, bits per sample) pairs that tfio's WAV reader decodes correctly.
_TFIO_WAV_ENCODINGS = {
    (_WAVE_FORMAT_PCM, 8),
    (_WAVE_FORMAT_PCM, 16),
    (_WAVE_FORMAT_PCM, 24),
    (_WAVE_FORMAT_IEEE_FLOAT, 32),
}
# Chunks scanned for 'data' before a RIFF file is declared corrupt (real files have a handful).
_MAX_WAV_CHUNKS = 10_000
# Header facts beyond these are corruption (see _stream_problem).
_MIN_RATE_HZ = 1_000
_MAX_RATE_HZ = 768_000
_MAX_CHANNELS = 256
_MAX_SAMPLES_PER_BYTE = 4096
# tfio.audio.resample delays its output by this many samples of the lower of the two rates.
_TFIO_RESAMPLE_DELAY = 32


# --------------------------------------------------------------------------------------------------------
# Public data types and small helpers
# --------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class AudioInfo:
    """What an audio file holds, at its own (source) sample rate.

    ``num_frames`` counts samples per channel that can actually be decoded (for a truncated WAV, the
    frames present, not the number its header announces).
    """

    path: str
    sample_rate_hz: int
    num_channels: int
    num_frames: int

    @property
    def duration_s(self) -> float:
        """Duration in seconds: ``num_frames / sample_rate_hz``."""
        return self.num_frames / self.sample_rate_hz


def check_audible(peak: float, path: str) -> None:
    """Raise :class:`AudioError` if ``peak`` (max absolute sample, full scale = 1.0) is below -80 dBFS."""
    if not peak >= SILENCE_PEAK:  # also catches NaN
        raise AudioError(f"Audio file '{path}' is silent (peak amplitude below -80 dBFS)")


def encode_wav(samples: np.ndarray, sample_rate_hz: int = SAMPLE_RATE_HZ) -> bytes:
    """Encode float samples ``[num_samples]`` (full scale = 1.0) as mono 16-bit PCM WAV bytes.

    Values are scaled by 32768, rounded and clipped to the int16 range, so samples on the 1/32768 grid
    survive a round trip through :func:`load_audio` or :func:`decode_wav_tf` exactly.
    """
    samples = np.asarray(samples)
    if samples.ndim == 2 and samples.shape[1] == 1:
        samples = samples[:, 0]
    if samples.ndim != 1:
        raise ValueError(f"encode_wav expects mono samples of shape [num_samples], got {samples.shape}")
    if int(sample_rate_hz) <= 0:
        raise ValueError(f"sample_rate_hz must be positive, got {sample_rate_hz}")
    pcm = np.clip(np.round(np.nan_to_num(samples.astype(np.float64)) * 32768.0), -32768, 32767)
    data = pcm.astype("<i2").tobytes()
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + len(data),
        b"WAVE",
        b"fmt ",
        16,
        _WAVE_FORMAT_PCM,
        1,
        int(sample_rate_hz),
        2 * int(sample_rate_hz),
        2,
        16,
        b"data",
        len(data),
    )
    return header + data


# --------------------------------------------------------------------------------------------------------
# TensorFlow import (deferred, quiet)
# --------------------------------------------------------------------------------------------------------


def _import_tf() -> tuple[Any, Any]:
    """Import tensorflow and tensorflow_io with their C++ start-up log noise turned down."""
    if "TF_CPP_MIN_LOG_LEVEL" not in os.environ:  # only effective before TensorFlow's first import
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import tensorflow as tf_module
    import tensorflow_io as tfio_module

    return tf_module, tfio_module


@contextlib.contextmanager
def _quiet_tf_logger() -> Iterator[None]:
    """Hide TF's Python-side warnings (e.g. 'Using a while_loop for converting IO>AudioResample')."""
    tf_logger = logging.getLogger("tensorflow")
    old_level = tf_logger.level
    tf_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        tf_logger.setLevel(old_level)


def _first_line(error: BaseException) -> str:
    """The useful part of a library error: first line, without TF's ``{{function_node ...}}`` prefix."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if "}}" in text:
        text = text.split("}}", 1)[1].strip()
    if " [Op:" in text:
        text = text.split(" [Op:", 1)[0].strip()
    return text


# --------------------------------------------------------------------------------------------------------
# Path checks and WAV header parsing
# --------------------------------------------------------------------------------------------------------


def _check_path(path: str | os.PathLike) -> str:
    """Return ``path`` as a string after checking it names a readable, non-empty file we support."""
    path_str = os.fspath(path)
    if not os.path.exists(path_str):
        raise AudioError(f"Audio file not found: '{path_str}'")
    if os.path.isdir(path_str):
        raise AudioError(f"Audio path '{path_str}' is a directory, not an audio file")
    extension = os.path.splitext(path_str)[1].lower()
    if extension not in SUPPORTED_EXTENSIONS:
        shown = f"'{extension}'" if extension else "no extension"
        raise AudioError(
            f"Audio file '{path_str}' has an unsupported format ({shown}); supported: {', '.join(SUPPORTED_EXTENSIONS)}"
        )
    try:
        size = os.path.getsize(path_str)
        with open(path_str, "rb") as handle:
            handle.read(1)
    except OSError as error:
        raise AudioError(f"Audio file '{path_str}' cannot be read: {error.strerror or error}") from error
    if size == 0:
        raise AudioError(f"Audio file '{path_str}' is empty (0 bytes)")
    return path_str


@dataclasses.dataclass(frozen=True)
class _WavHeader:
    """The facts of a RIFF/WAVE header that decide how (and whether) to decode it."""

    format_tag: int  # WAVE_FORMAT_EXTENSIBLE resolved to its sub-format
    num_channels: int
    sample_rate_hz: int
    bits_per_sample: int
    block_align: int
    declared_frames: int  # what the 'data' chunk size announces
    available_frames: int  # what the file really holds
    odd_chunk_before_data: bool  # tfio mis-parses odd-sized (padded) chunks


def _parse_wav_header(path: str) -> _WavHeader | None:
    """Parse a RIFF/WAVE header; None if the file is not RIFF/WAVE. Raises AudioError if malformed."""
    file_size = os.path.getsize(path)
    with open(path, "rb") as handle:
        riff = handle.read(12)
        if len(riff) < 12 or riff[:4] != b"RIFF" or riff[8:12] != b"WAVE":
            return None
        fmt: bytes | None = None
        odd_chunk = False
        position = 12
        for _ in range(_MAX_WAV_CHUNKS):
            if position + 8 > file_size:
                break
            handle.seek(position)
            chunk_id, chunk_size = struct.unpack("<4sI", handle.read(8))
            if chunk_id == b"data":
                if fmt is None:
                    raise AudioError(
                        f"Audio file '{path}' is not a valid WAV file (no 'fmt ' chunk before the audio data)"
                    )
                return _wav_header_from_fmt(path, fmt, position + 8, chunk_size, file_size, odd_chunk)
            if chunk_id == b"fmt ":
                fmt = handle.read(min(chunk_size, 40))
            odd_chunk = odd_chunk or bool(chunk_size % 2)
            position += 8 + chunk_size + chunk_size % 2
    raise AudioError(f"Audio file '{path}' is truncated or corrupt (its WAV header ends before the audio data)")


def _wav_header_from_fmt(
    path: str, fmt: bytes, data_offset: int, data_size: int, file_size: int, odd_chunk: bool
) -> _WavHeader:
    if len(fmt) < 16:
        raise AudioError(f"Audio file '{path}' is truncated or corrupt (its WAV 'fmt ' chunk is too short)")
    format_tag, channels, rate, _, block_align, bits = struct.unpack("<HHIIHH", fmt[:16])
    if format_tag == _WAVE_FORMAT_EXTENSIBLE and len(fmt) >= 26:
        format_tag = struct.unpack("<H", fmt[24:26])[0]
    if channels == 0 or rate == 0 or block_align == 0:
        raise AudioError(
            f"Audio file '{path}' is corrupt (its WAV header gives {channels} channels, {rate} Hz, "
            f"{block_align} bytes per frame)"
        )
    present = max(0, file_size - data_offset)
    declared = data_size // block_align
    if data_size == 0xFFFFFFFF:  # size unknown (written by a stream): use what is there
        declared = present // block_align
    return _WavHeader(
        format_tag=format_tag,
        num_channels=channels,
        sample_rate_hz=rate,
        bits_per_sample=bits,
        block_align=block_align,
        declared_frames=declared,
        available_frames=min(declared, present // block_align),
        odd_chunk_before_data=odd_chunk,
    )


# --------------------------------------------------------------------------------------------------------
# Sources: decode source frames [start, stop) to float32 [frames, channels]
# --------------------------------------------------------------------------------------------------------


class _Source:
    """A decoder for one file at its own rate; ``read`` returns float32 ``[stop - start, num_channels]``."""

    path: str
    sample_rate_hz: int
    num_channels: int
    num_frames: int

    def read(self, start: int, stop: int) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        """Release the decoder."""

    def _checked(self, frames: np.ndarray, start: int) -> np.ndarray:
        if not np.all(np.isfinite(frames)):
            raise AudioError(
                f"Audio file '{self.path}' is corrupt (non-finite samples near {start / self.sample_rate_hz:.2f} s)"
            )
        return frames


class _TfioGuard:
    """Who owns tfio's one audio resource.

    In eager mode tfio 0.37 backs every ``AudioIOTensor`` with the same resource: opening a file makes every
    earlier ``AudioIOTensor`` read the new file, and reading one whose sample type differs aborts the
    process ("Check failed: dtype() == expected_dtype"). So all tfio file access here holds ``lock``, and
    a source re-opens its file (< 1 ms) whenever another file was opened since its last read.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.owner: object | None = None


_TFIO = _TfioGuard()


@dataclasses.dataclass
class _TfioFile:
    tensor: Any
    num_frames: int
    num_channels: int
    sample_rate_hz: int
    token: object


def _open_tfio(path: str, kind: str) -> _TfioFile:
    """Open ``tfio.audio.AudioIOTensor`` (taking ownership), turning its errors into one-line AudioErrors."""
    tf, tfio = _import_tf()
    try:
        with _TFIO.lock:
            tensor = tfio.audio.AudioIOTensor(path)
            num_frames, num_channels = (int(v) for v in tensor.shape.numpy())
            opened = _TfioFile(tensor, num_frames, num_channels, int(tensor.rate.numpy()), object())
            _TFIO.owner = opened.token
    except UnicodeDecodeError as error:  # tfio's error text quotes undecodable bytes of the file
        raise AudioError(f"Audio file '{path}' is not a valid {kind} file or is corrupt (unreadable header)") from error
    except tf.errors.OpError as error:
        detail = _first_line(error)
        if "unknown file type" in detail:
            problem = f"is not a valid {kind} file (unrecognised content)"
        elif isinstance(error, tf.errors.OutOfRangeError) or "less bytes" in detail:
            problem = f"is truncated or corrupt (incomplete {kind} header)"
        else:
            problem = f"is not a valid {kind} file or is corrupt ({detail})"
        raise AudioError(f"Audio file '{path}' {problem}") from error
    if opened.sample_rate_hz <= 0 or opened.num_channels <= 0:
        raise AudioError(
            f"Audio file '{path}' is corrupt (its {kind} header gives {opened.num_channels} channels at "
            f"{opened.sample_rate_hz} Hz)"
        )
    return opened


class _TfioSource(_Source):
    """Lazy decoding with ``tfio.audio.AudioIOTensor``: each read decodes only the frames asked for."""

    def __init__(self, path: str, opened: _TfioFile, num_frames: int) -> None:
        self.path = path
        self._opened: _TfioFile | None = opened
        self.sample_rate_hz = opened.sample_rate_hz
        self.num_channels = opened.num_channels
        self.num_frames = num_frames

    def read(self, start: int, stop: int) -> np.ndarray:
        if stop <= start:
            return np.zeros((0, self.num_channels), np.float32)
        if self._opened is None:
            raise ValueError(f"the decoder of '{self.path}' is closed")
        tf, tfio = _import_tf()
        try:
            with _TFIO.lock:
                if _TFIO.owner is not self._opened.token:  # another file took tfio's resource: re-open
                    self._opened.tensor = tfio.audio.AudioIOTensor(self.path)
                    _TFIO.owner = self._opened.token
                raw = self._opened.tensor[start:stop].numpy()
        except (tf.errors.OpError, UnicodeDecodeError) as error:
            raise AudioError(
                f"Audio file '{self.path}' is truncated or corrupt (decoding failed between "
                f"{start / self.sample_rate_hz:.2f} s and {stop / self.sample_rate_hz:.2f} s: "
                f"{_first_line(error)})"
            ) from error
        if raw.shape != (stop - start, self.num_channels):
            raise AudioError(
                f"Audio file '{self.path}' is truncated or corrupt (asked for {stop - start} frames at "
                f"{start / self.sample_rate_hz:.2f} s, decoder returned shape {raw.shape})"
            )
        return self._checked(_to_float32(raw), start)

    def close(self) -> None:
        self._opened = None


def _to_float32(raw: np.ndarray) -> np.ndarray:
    """Scale integer PCM to [-1, 1): int16 by 1/32768, int32 by 1/2**31, uint8 by (x - 128) / 128."""
    if raw.dtype == np.int16:
        return raw.astype(np.float32) * np.float32(1.0 / 32768.0)
    if raw.dtype == np.int32:
        return (raw.astype(np.float64) * (1.0 / 2**31)).astype(np.float32)
    if raw.dtype == np.uint8:
        return (raw.astype(np.float32) - np.float32(128.0)) * np.float32(1.0 / 128.0)
    return raw.astype(np.float32, copy=False)


class _SoundfileSource(_Source):
    """libsndfile: FLAC, and WAV files tfio cannot decode correctly; seeks, so reads stay bounded too."""

    def __init__(self, path: str, handle: Any, strict: bool = False) -> None:
        self.path = path
        self._handle = handle
        self._strict = strict  # a short read is an error (FLAC) rather than a truncated tail to pad (WAV)
        self.sample_rate_hz = int(handle.samplerate)
        self.num_channels = int(handle.channels)
        self.num_frames = int(handle.frames)

    def read(self, start: int, stop: int) -> np.ndarray:
        if stop <= start:
            return np.zeros((0, self.num_channels), np.float32)
        try:
            self._handle.seek(start)
            frames = self._handle.read(stop - start, dtype="float32", always_2d=True)
        except Exception as error:  # soundfile raises its own types and RuntimeError
            raise AudioError(
                f"Audio file '{self.path}' is truncated or corrupt (decoding failed at "
                f"{start / self.sample_rate_hz:.2f} s: {_first_line(error)})"
            ) from error
        if frames.shape[0] < stop - start and self._strict:
            raise AudioError(
                f"Audio file '{self.path}' is truncated or corrupt (decoding stopped at "
                f"{(start + frames.shape[0]) / self.sample_rate_hz:.2f} s of "
                f"{self.num_frames / self.sample_rate_hz:.2f} s)"
            )
        if frames.shape[0] < stop - start:  # fewer frames than announced: pad the missing tail
            frames = np.concatenate([frames, np.zeros((stop - start - frames.shape[0], self.num_channels), np.float32)])
        return self._checked(frames, start)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def _open_soundfile(path: str, why: str) -> _Source:
    import soundfile

    try:
        handle = soundfile.SoundFile(path)
    except Exception as error:
        raise AudioError(f"Audio file '{path}' cannot be decoded ({why}; {_first_line(error)})") from error
    logger.debug("Decoding %s with soundfile: %s", path, why)
    return _SoundfileSource(path, handle)


def _open_flac(path: str) -> _Source:
    """A FLAC file through libsndfile; a file it cannot open or that decodes short is an AudioError."""
    import soundfile

    try:
        handle = soundfile.SoundFile(path)
    except Exception as error:  # soundfile raises LibsndfileError, RuntimeError, TypeError...
        raise AudioError(
            f"Audio file '{path}' is not a valid FLAC file or is corrupt ({_first_line(error)})"
        ) from error
    if handle.format != "FLAC" or handle.samplerate <= 0 or handle.channels <= 0:
        handle.close()
        raise AudioError(f"Audio file '{path}' is not a valid FLAC file (libsndfile reads it as {handle.format})")
    return _SoundfileSource(path, handle, strict=True)


def _open_source(path: str | os.PathLike) -> _Source:
    """Validate ``path`` and open the right decoder; every failure is an AudioError naming the file."""
    path_str = _check_path(path)
    source = _open_decoder(path_str)
    problem = _stream_problem(source, os.path.getsize(path_str))
    if problem:
        source.close()
        raise AudioError(f"Audio file '{path_str}' is corrupt ({problem})")
    return source


def _stream_problem(source: _Source, file_size: int) -> str | None:
    """Why a decoder's header facts cannot be true (a corrupt header), or None.

    A rate outside 1-768 kHz or more than 256 channels is refused (resampling from an absurd rate would
    design a filter of millions of taps); so is a length no file of this size can hold, even compressed
    (at most 4096 samples per byte; real FLAC, MP3 and Vorbis stay far below), which would otherwise be
    allocated whole.
    """
    if not _MIN_RATE_HZ <= source.sample_rate_hz <= _MAX_RATE_HZ:
        return f"its header gives a sample rate of {source.sample_rate_hz} Hz; supported: 1 kHz to 768 kHz"
    if not 1 <= source.num_channels <= _MAX_CHANNELS:
        return f"its header gives {source.num_channels} channels; supported: 1 to {_MAX_CHANNELS}"
    if source.num_frames * source.num_channels > max(file_size, 1) * _MAX_SAMPLES_PER_BYTE:
        return f"its header announces {source.num_frames} frames, more than a file of {file_size} bytes can hold"
    return None


def _open_decoder(path_str: str) -> _Source:
    extension = os.path.splitext(path_str)[1].lower()
    if extension in _WAV_EXTENSIONS:
        return _open_wav(path_str)
    if extension == ".flac":
        source = _open_flac(path_str)
        if source.num_frames <= 0:
            source.close()
            raise AudioError(
                f"Audio file '{path_str}' contains no decodable audio (0 samples; it may be truncated or corrupt)"
            )
        return source
    kind = {".mp3": "MP3"}.get(extension, "OGG Vorbis")
    opened = _open_tfio(path_str, kind)
    if opened.num_frames <= 0:
        raise AudioError(
            f"Audio file '{path_str}' contains no decodable audio (0 samples; it may be truncated or corrupt)"
        )
    return _TfioSource(path_str, opened, opened.num_frames)


def _open_wav(path: str) -> _Source:
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic == b"RF64":
        return _open_soundfile(path, "RF64 WAV, which tfio does not read")
    header = _parse_wav_header(path)
    if header is None:
        raise AudioError(f"Audio file '{path}' is not a valid WAV file (no RIFF/WAVE header)")
    if header.declared_frames == 0:
        raise AudioError(f"Audio file '{path}' contains no audio samples (0 frames)")
    if header.available_frames == 0:
        raise AudioError(
            f"Audio file '{path}' is truncated (its header announces {header.declared_frames} frames but "
            "no audio data follows)"
        )
    if header.available_frames < header.declared_frames:
        logger.warning(
            "Audio file '%s' is truncated: reading the %d frames present of %d announced",
            path,
            header.available_frames,
            header.declared_frames,
        )
    encoding = (header.format_tag, header.bits_per_sample)
    if encoding not in _TFIO_WAV_ENCODINGS:
        return _open_soundfile(
            path,
            f"WAV encoding with format tag {header.format_tag:#06x} and {header.bits_per_sample} bits is not supported",
        )
    if header.odd_chunk_before_data:
        return _open_soundfile(path, "WAV with an odd-sized chunk, which tfio mis-parses")
    try:
        opened = _open_tfio(path, "WAV")
    except AudioError as tfio_error:  # the header parsed, so try the other reader before giving up
        try:
            return _open_soundfile(path, f"tfio could not open it: {tfio_error}")
        except AudioError:
            raise tfio_error from tfio_error.__cause__
    if (
        opened.num_frames < header.available_frames
        or opened.num_channels != header.num_channels
        or opened.sample_rate_hz != header.sample_rate_hz
    ):
        return _open_soundfile(
            path,
            f"tfio read the WAV header as {opened.num_frames} frames x {opened.num_channels} channels at "
            f"{opened.sample_rate_hz} Hz",
        )
    return _TfioSource(path, opened, header.available_frames)


# --------------------------------------------------------------------------------------------------------
# Reading and resampling
# --------------------------------------------------------------------------------------------------------


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Rate, channel count and decodable frame count of an audio file (reads only its header)."""
    source = _open_source(path)
    try:
        return AudioInfo(
            path=source.path,
            sample_rate_hz=source.sample_rate_hz,
            num_channels=source.num_channels,
            num_frames=source.num_frames,
        )
    finally:
        source.close()


class AudioReader:
    """Random access to a file as float32 mono at ``sample_rate_hz``, decoding only what is read.

    ``num_samples`` is the length at the target rate: ``ceil(num_frames * target / source_rate)``.
    ``read(start, n)`` returns samples ``[start, start + n)`` of that signal, zeros outside it, and equals
    the same slice of :func:`load_audio` exactly. Memory is bounded by ``block_seconds`` of source audio
    plus the output asked for. ``peak`` is the running max absolute sample of everything read.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        sample_rate_hz: int = SAMPLE_RATE_HZ,
        block_seconds: float = 30.0,
    ) -> None:
        if int(sample_rate_hz) <= 0:
            raise ValueError(f"sample_rate_hz must be positive, got {sample_rate_hz}")
        if not block_seconds > 0:
            raise ValueError(f"block_seconds must be positive, got {block_seconds}")
        self._source: _Source | None = _open_source(path)
        source = self._source
        self.path: str = source.path
        self.sample_rate_hz: int = int(sample_rate_hz)
        self.info = AudioInfo(source.path, source.sample_rate_hz, source.num_channels, source.num_frames)
        divisor = math.gcd(source.sample_rate_hz, self.sample_rate_hz)
        self._up = self.sample_rate_hz // divisor
        self._down = source.sample_rate_hz // divisor
        # resample_poly's filter reaches 10 * max(up, down) upsampled samples to each side.
        self._margin = (10 * max(self._up, self._down)) // self._up + 2
        self.num_samples: int = -(-source.num_frames * self._up // self._down)
        self.duration_s: float = self.num_samples / self.sample_rate_hz
        self.peak: float = 0.0
        self._block_samples = max(1, int(round(block_seconds * self.sample_rate_hz)))

    def __enter__(self) -> AudioReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"AudioReader({self.path!r}, {self.info.sample_rate_hz} Hz x {self.info.num_channels} ch "
            f"-> {self.sample_rate_hz} Hz mono, {self.num_samples} samples)"
        )

    def close(self) -> None:
        """Release the decoder; further reads raise ValueError."""
        if self._source is not None:
            self._source.close()
            self._source = None

    def read(self, start_sample: int, num_samples: int) -> np.ndarray:
        """Samples ``[start_sample, start_sample + num_samples)`` at the target rate: float32 mono.

        ``start_sample`` may be negative and the range may run past the end; those samples are zero.
        """
        start, count = int(start_sample), int(num_samples)
        if count < 0:
            raise ValueError(f"num_samples must be >= 0, got {num_samples}")
        out = np.zeros(count, np.float32)
        low, high = max(start, 0), min(start + count, self.num_samples)
        for block_start in range(low, high, self._block_samples):
            block_stop = min(block_start + self._block_samples, high)
            out[block_start - start : block_stop - start] = self._render(block_start, block_stop)
        if high > low:
            self.peak = max(self.peak, float(np.max(np.abs(out[low - start : high - start]))))
        return out

    def _render(self, start: int, stop: int) -> np.ndarray:
        """Output samples ``[start, stop)`` (within the signal), from just the source frames they need."""
        if self._up == self._down:
            return _downmix(self._read_source(start, stop))
        from scipy.signal import resample_poly

        up, down = self._up, self._down
        # Output sample k sits at source position k * down / up. Start the source excerpt on a multiple
        # of `down` so its first output sample lands exactly on output index source_start * up / down.
        source_start = (start * down // up - self._margin) // down * down
        source_stop = -(-(stop - 1) * down // up) + self._margin + 1
        excerpt = _downmix(self._read_source(source_start, source_stop))
        resampled = resample_poly(excerpt, up, down)
        offset = source_start * up // down
        return resampled[start - offset : stop - offset].astype(np.float32, copy=False)

    def _read_source(self, start: int, stop: int) -> np.ndarray:
        """Source frames ``[start, stop)`` as float32 ``[frames, channels]``, zeros outside the file."""
        if self._source is None:
            raise ValueError(f"AudioReader for '{self.path}' is closed")
        source = self._source
        low, high = max(start, 0), min(stop, source.num_frames)
        if low == start and high == stop:
            return source.read(start, stop)
        frames = np.zeros((stop - start, source.num_channels), np.float32)
        if high > low:
            frames[low - start : high - start] = source.read(low, high)
        return frames


def _downmix(frames: np.ndarray) -> np.ndarray:
    """``[frames, channels]`` -> ``[frames]``: the mean over channels."""
    if frames.shape[1] == 1:
        return frames[:, 0]
    return frames.mean(axis=1, dtype=np.float32)


def load_audio(path: str | os.PathLike, sample_rate_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """Decode a whole file to float32 mono ``[num_samples]`` at ``sample_rate_hz`` (default 16 kHz).

    Raises AudioError for every unusable file, including silent audio (peak below -80 dBFS).
    """
    with AudioReader(path, sample_rate_hz) as reader:
        try:
            samples = reader.read(0, reader.num_samples)
        except MemoryError:
            raise AudioError(
                f"Audio file '{reader.path}' is too long to decode into memory at once "
                f"({reader.duration_s / 3600:.1f} hours); read it in blocks with AudioReader"
            ) from None
        check_audible(reader.peak, reader.path)
    return samples


# --------------------------------------------------------------------------------------------------------
# Graph-mode WAV decoding for tf.data
# --------------------------------------------------------------------------------------------------------


def decode_wav_tf(wav_bytes: tf.Tensor, sample_rate_hz: int = SAMPLE_RATE_HZ) -> tf.Tensor:
    """Decode WAV bytes (scalar string tensor) to float32 mono ``[num_samples]`` at ``sample_rate_hz``.

    Pure TensorFlow ops, usable in ``tf.data.Dataset.map``. Handles any rate and channel count; 8/16/24/
    32-bit integer PCM and 32/64-bit float (also in WAVE_FORMAT_EXTENSIBLE). Channels are averaged;
    other rates go through ``tfio.audio.resample``, with its fixed delay removed so the output lines up
    with the input and has ``ceil(frames * sample_rate_hz / rate)`` samples. A truncated data chunk is
    read as far as it goes. Bad bytes fail with ``tf.errors.InvalidArgumentError``.
    """
    tf, _ = _import_tf()
    # The graph below has no Python control flow on tensors: keep AutoGraph (tf.data.map) out of it.
    return tf.autograph.experimental.do_not_convert(_decode_wav_graph)(wav_bytes, int(sample_rate_hz))


def _decode_wav_graph(wav_bytes: tf.Tensor, target_rate: int) -> tf.Tensor:
    tf, tfio = _import_tf()
    contents = tf.convert_to_tensor(wav_bytes, tf.string)
    size = tf.cast(tf.strings.length(contents, unit="BYTE"), tf.int64)

    def read_uint(offset: tf.Tensor, num_bytes: int) -> tf.Tensor:
        raw = tf.io.decode_raw(tf.strings.substr(contents, tf.minimum(offset, size), num_bytes), tf.uint8)
        raw = tf.cast(tf.pad(raw, [[0, num_bytes - tf.shape(raw)[0]]]), tf.int64)
        return tf.reduce_sum(raw * tf.constant([256**i for i in range(num_bytes)], tf.int64))

    def find_chunk(chunk_id: str) -> tf.Tensor:
        def keep_looking(position: tf.Tensor) -> tf.Tensor:
            here = tf.strings.substr(contents, tf.minimum(position, size), 4)
            return tf.logical_and(position + 8 <= size, tf.not_equal(here, chunk_id))

        def next_chunk(position: tf.Tensor) -> list[tf.Tensor]:
            chunk_size = read_uint(position + 4, 4)
            return [position + 8 + chunk_size + chunk_size % 2]

        return tf.while_loop(keep_looking, next_chunk, [tf.constant(12, tf.int64)])[0]

    is_wave = tf.logical_and(
        tf.equal(tf.strings.substr(contents, 0, 4), "RIFF"),
        tf.equal(tf.strings.substr(contents, tf.minimum(tf.constant(8, tf.int64), size), 4), "WAVE"),
    )
    checks = [tf.debugging.Assert(is_wave, ["decode_wav_tf: not a RIFF/WAVE file"])]
    with tf.control_dependencies(checks):
        fmt_at = find_chunk("fmt ")
        data_at = find_chunk("data")
    checks = [
        tf.debugging.Assert(fmt_at + 24 <= size, ["decode_wav_tf: WAV has no complete 'fmt ' chunk"]),
        tf.debugging.Assert(data_at + 8 <= size, ["decode_wav_tf: WAV has no 'data' chunk"]),
    ]
    with tf.control_dependencies(checks):
        format_tag = read_uint(fmt_at + 8, 2)
        channels = read_uint(fmt_at + 10, 2)
        rate = read_uint(fmt_at + 12, 4)
        block_align = read_uint(fmt_at + 20, 2)
        bits = read_uint(fmt_at + 22, 2)
        fmt_size = read_uint(fmt_at + 4, 4)
    format_tag = tf.where(
        tf.logical_and(tf.equal(format_tag, _WAVE_FORMAT_EXTENSIBLE), fmt_size >= 26),
        read_uint(fmt_at + 32, 2),
        format_tag,
    )
    bytes_per_sample = bits // 8
    valid = tf.reduce_all(
        tf.stack([channels > 0, rate > 0, bits % 8 == 0, tf.equal(block_align, channels * bytes_per_sample)])
    )
    checks = [
        tf.debugging.Assert(
            valid,
            [
                "decode_wav_tf: inconsistent WAV 'fmt ' chunk: channels",
                channels,
                "rate",
                rate,
                "bits",
                bits,
                "block_align",
                block_align,
            ],
        )
    ]
    with tf.control_dependencies(checks):
        data_start = data_at + 8
        data_size = tf.minimum(read_uint(data_at + 4, 4), tf.maximum(size - data_start, 0))
        num_frames = data_size // tf.maximum(block_align, 1)
        data = tf.strings.substr(contents, data_start, num_frames * block_align)

    def pcm8() -> tf.Tensor:
        return (tf.cast(tf.io.decode_raw(data, tf.uint8), tf.float32) - 128.0) / 128.0

    def pcm16() -> tf.Tensor:
        return tf.cast(tf.io.decode_raw(data, tf.int16, little_endian=True), tf.float32) / 32768.0

    def pcm24() -> tf.Tensor:
        triples = tf.reshape(tf.cast(tf.io.decode_raw(data, tf.uint8), tf.int32), [-1, 3])
        unsigned = triples[:, 0] + triples[:, 1] * 256 + triples[:, 2] * 65536
        signed = unsigned - tf.cast(unsigned >= 2**23, tf.int32) * 2**24
        return tf.cast(signed, tf.float32) / float(2**23)

    def pcm32() -> tf.Tensor:
        values = tf.cast(tf.io.decode_raw(data, tf.int32, little_endian=True), tf.float64)
        return tf.cast(values / float(2**31), tf.float32)

    def float32() -> tf.Tensor:
        return tf.io.decode_raw(data, tf.float32, little_endian=True)

    def float64() -> tf.Tensor:
        return tf.cast(tf.io.decode_raw(data, tf.float64, little_endian=True), tf.float32)

    def unsupported() -> tf.Tensor:
        check = tf.debugging.Assert(
            False, ["decode_wav_tf: unsupported WAV encoding: format tag", format_tag, "bits", bits]
        )
        with tf.control_dependencies([check]):
            return tf.zeros([0], tf.float32)

    is_pcm = tf.equal(format_tag, _WAVE_FORMAT_PCM)
    is_float = tf.equal(format_tag, _WAVE_FORMAT_IEEE_FLOAT)
    encodings = [(is_pcm, 8), (is_pcm, 16), (is_pcm, 24), (is_pcm, 32), (is_float, 32), (is_float, 64)]
    matches = tf.stack([tf.logical_and(tag_ok, tf.equal(bits, width)) for tag_ok, width in encodings])
    branch = tf.where(
        tf.reduce_any(matches), tf.argmax(tf.cast(matches, tf.int32), output_type=tf.int32), len(encodings)
    )
    flat = tf.switch_case(branch, [pcm8, pcm16, pcm24, pcm32, float32, float64, unsupported])
    mono = tf.reduce_mean(tf.reshape(flat, tf.stack([-1, tf.cast(channels, tf.int32)])), axis=1)

    def resample() -> tf.Tensor:
        # tfio.audio.resample delays its output by 32 samples of the lower rate; pad the input's end so
        # nothing is lost, then drop the delay.
        frames = tf.shape(mono, out_type=tf.int64)[0]
        out_length = (frames * target_rate + rate - 1) // rate
        upsampling = float(target_rate) / tf.cast(rate, tf.float64)
        delay = tf.cast(tf.round(_TFIO_RESAMPLE_DELAY * tf.maximum(upsampling, 1.0)), tf.int64)
        pad = (delay * rate + target_rate - 1) // target_rate + 2
        padded = tf.concat([mono, tf.zeros(tf.reshape(pad, [1]), tf.float32)], axis=0)
        with _quiet_tf_logger():
            resampled = tfio.audio.resample(padded, rate_in=rate, rate_out=tf.constant(target_rate, tf.int64))
        resampled = tf.reshape(resampled, [-1])[delay : delay + out_length]
        shortfall = out_length - tf.shape(resampled, out_type=tf.int64)[0]
        return tf.pad(resampled, tf.reshape(tf.stack([tf.constant(0, tf.int64), shortfall]), [1, 2]))

    output = tf.cond(tf.equal(rate, target_rate), lambda: mono, resample)
    output.set_shape([None])
    return output
