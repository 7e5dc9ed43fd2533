"""Fixed facts of the signal and label grids shared by every module.

Units are given in each name: samples, Hz, frames (one frame = ``HOP_LENGTH`` samples),
MIDI pitch numbers.
"""

from __future__ import annotations

SAMPLE_RATE_HZ = 16000
"""Every model sees mono audio at this rate."""

HOP_LENGTH_SAMPLES = 512
"""Spectrogram hop: 512 samples at 16 kHz."""

FRAMES_PER_SECOND = SAMPLE_RATE_HZ / HOP_LENGTH_SAMPLES
"""31.25 frames per second."""

MIN_MIDI_PITCH = 21
"""A0, the lowest piano key; row 0 of every pitch roll."""

MAX_MIDI_PITCH = 108
"""C8, the highest piano key; row 87 of every pitch roll."""

NUM_PITCHES = MAX_MIDI_PITCH - MIN_MIDI_PITCH + 1
"""88 pitch rows."""

NUM_SPEC_BINS = 229
"""Frequency bins of the CQT and mel front ends."""

CQT_BINS_PER_OCTAVE = 28
"""ceil(229 / ((C9 - A0) / 12)) = 28, as in the original."""

FMIN_HZ = 27.5
"""A0 = MIDI 21, the lowest CQT bin and the mel filterbank's lower edge."""
