"""A SoundFont's own instruments with the sample loops of a small SoundFont: "short-loop" copies.

Small General MIDI SoundFonts save space by keeping only a short attack of each recorded note and
looping a few waveform cycles after it. TimGM6mb (6 MB) is typical: the median sample is 56 ms long
and the median loop 3.9 ms (about one cycle), where FluidR3 GM's are 1.16 s and 228 ms. The sustain of
such an instrument is a static spectrum, shaped only by the SoundFont's envelopes and filters. A
Timbre model trained on FluidR3 alone learns the evolving sustain of FluidR3's recordings and does
not recognise the same instruments in a small SoundFont.

:func:`write_short_loop_soundfont` writes a copy of a SoundFont whose looped samples loop only a few
cycles right after a short attack: the same recordings, heard the way a small SoundFont plays them.
Only the loop points of the sample headers (``shdr``) change, in place; the sample data, presets and
instruments are byte-identical, so the copy is as large as the original. Unlooped samples (most drums
and other one-shot sounds) play as before. SF2 files only: an SF3 (compressed) SoundFont's loop points
count decoded samples and are not rewritten here.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import gin
import numpy as np

from polyamp.errors import SoundFontError

SAMPLE_HEADER_BYTES = 46
"""Size of one ``shdr`` record: name[20], start, end, loop start, loop end, rate (uint32 each),
original pitch (uint8), pitch correction (int8), sample link and sample type (uint16 each)."""

_HEADER_FORMAT = "<IIIIIBbHH"
_ROM_SAMPLE_FLAG = 0x8000
_MIN_LOOP_SAMPLES = 32
_GUARD_SAMPLES = 8


@gin.configurable
@dataclass(frozen=True)
class ShortLoopOptions:
    """How the loops are cut.

    ``attack_s``: seconds of the recording played before the loop starts (at most the original loop
    start). ``loop_cycles``: waveform cycles of the sample's original pitch in the new loop (at
    least 32 samples). ``min_loop_s``: a loop already shorter than this is left as it is.
    """

    attack_s: float = 0.05
    loop_cycles: int = 2
    min_loop_s: float = 0.02

    def __post_init__(self) -> None:
        if not self.attack_s >= 0.0:
            raise ValueError(f"attack_s must be >= 0 seconds, got {self.attack_s}")
        if self.loop_cycles < 1:
            raise ValueError(f"loop_cycles must be >= 1, got {self.loop_cycles}")
        if not self.min_loop_s >= 0.0:
            raise ValueError(f"min_loop_s must be >= 0 seconds, got {self.min_loop_s}")


@dataclass(frozen=True)
class SampleHeader:
    """One ``shdr`` record: positions in sample points from the start of the ``smpl`` chunk."""

    name: str
    start: int
    end: int
    loop_start: int
    loop_end: int
    rate_hz: int
    original_pitch: int
    pitch_correction_cents: int
    link: int
    sample_type: int


def _chunks(data: bytes, offset: int, end: int) -> list[tuple[bytes, int, int]]:
    """RIFF sub-chunks ``(id, data offset, size)`` between ``offset`` and ``end``."""
    found = []
    while offset + 8 <= end:
        chunk_id = data[offset : offset + 4]
        (size,) = struct.unpack("<I", data[offset + 4 : offset + 8])
        if offset + 8 + size > end:
            raise SoundFontError(f"truncated RIFF chunk {chunk_id!r} at byte {offset}")
        found.append((chunk_id, offset + 8, size))
        offset += 8 + size + (size & 1)
    return found


def find_sample_headers(data: bytes) -> tuple[int, int]:
    """Byte offset and size of the ``shdr`` chunk of SF2 file contents ``data``."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"sfbk":
        raise SoundFontError("not a SoundFont 2 file (no RIFF/sfbk header)")
    for chunk_id, offset, size in _chunks(data, 12, len(data)):
        if chunk_id == b"LIST" and data[offset : offset + 4] == b"pdta":
            for sub_id, sub_offset, sub_size in _chunks(data, offset + 4, offset + size):
                if sub_id == b"shdr":
                    if sub_size % SAMPLE_HEADER_BYTES:
                        raise SoundFontError(f"shdr chunk of {sub_size} bytes is not whole 46-byte records")
                    return sub_offset, sub_size
    raise SoundFontError("SoundFont has no sample headers (pdta/shdr chunk)")


def read_sample_headers(data: bytes) -> list[SampleHeader]:
    """Every sample header of SF2 file contents ``data``, without the terminal ``EOS`` record."""
    offset, size = find_sample_headers(data)
    headers = []
    for index in range(size // SAMPLE_HEADER_BYTES - 1):
        record = data[offset + index * SAMPLE_HEADER_BYTES : offset + (index + 1) * SAMPLE_HEADER_BYTES]
        name = record[:20].split(b"\0")[0].decode("latin-1")
        headers.append(SampleHeader(name, *struct.unpack(_HEADER_FORMAT, record[20:])))
    return headers


def short_loop(header: SampleHeader, options: ShortLoopOptions) -> tuple[int, int] | None:
    """New ``(loop start, loop end)`` in sample points for ``header``, or None to leave it alone.

    Left alone: ROM samples, samples without a valid loop, loops already shorter than
    ``options.min_loop_s``, and samples too short for the new loop.
    """
    if header.sample_type & _ROM_SAMPLE_FLAG or header.rate_hz <= 0:
        return None
    if not header.start <= header.loop_start < header.loop_end <= header.end:
        return None
    if header.loop_end - header.loop_start < options.min_loop_s * header.rate_hz:
        return None
    pitch = header.original_pitch if header.original_pitch <= 127 else 60
    frequency_hz = 440.0 * 2.0 ** ((pitch - 69 - header.pitch_correction_cents / 100.0) / 12.0)
    loop_samples = max(_MIN_LOOP_SAMPLES, round(options.loop_cycles * header.rate_hz / frequency_hz))
    loop_start = min(header.loop_start, header.start + round(options.attack_s * header.rate_hz))
    loop_end = loop_start + loop_samples
    if loop_end > header.end - _GUARD_SAMPLES:
        return None
    return loop_start, loop_end


def write_short_loop_soundfont(
    source: str | os.PathLike[str],
    destination: str | os.PathLike[str],
    options: ShortLoopOptions | None = None,
    overwrite: bool = False,
) -> int:
    """Write ``destination``: the SF2 ``source`` with short loops (see module docs). Returns how many
    sample headers changed. Refuses to overwrite ``destination`` unless ``overwrite``."""
    options = options or ShortLoopOptions()
    source, destination = Path(source), Path(destination)
    if not source.is_file():
        raise SoundFontError(f"SoundFont not found: {source}")
    if source.suffix.lower() != ".sf2":
        raise SoundFontError(f"short loops need an uncompressed .sf2 SoundFont, got {source.name}")
    if destination.exists() and not overwrite:
        raise SoundFontError(f"{destination} exists; pass overwrite=True to replace it")
    data = bytearray(source.read_bytes())
    offset, _ = find_sample_headers(bytes(data))
    changed = 0
    for index, header in enumerate(read_sample_headers(bytes(data))):
        loop = short_loop(header, options)
        if loop is None:
            continue
        record = offset + index * SAMPLE_HEADER_BYTES + 20
        struct.pack_into("<II", data, record + 8, *loop)
        changed += 1
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".partial")
    partial.write_bytes(bytes(data))
    os.replace(partial, destination)
    return changed


def loop_statistics(path: str | os.PathLike[str]) -> dict[str, float]:
    """Median sample length and median loop length in seconds of an SF2 file, over its samples."""
    headers = read_sample_headers(Path(path).read_bytes())
    usable = [h for h in headers if h.rate_hz > 0]
    if not usable:
        raise SoundFontError(f"{path} has no samples")
    return {
        "samples": float(len(usable)),
        "median_sample_s": float(np.median([(h.end - h.start) / h.rate_hz for h in usable])),
        "median_loop_s": float(np.median([(h.loop_end - h.loop_start) / h.rate_hz for h in usable])),
    }
