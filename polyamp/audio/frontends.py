"""Spectrogram front ends computed in pure TensorFlow: a multi-rate CQT and a mel spectrogram.

Both front ends map mono audio at ``sample_rate`` to a log-magnitude spectrogram with one frame
every ``hop_length`` samples. Frame ``t`` is centred on sample ``t * hop_length`` (the signal is
taken as zero outside its samples), so ``num_frames = num_samples // hop_length + 1``.

Both scale their output the same way (the models rely on it)::

    y = max(20 * log10(magnitude), -100) / 100 + 1

so a unit-amplitude sine at a bin's centre frequency gives ``y ≈ 1.0`` (0 dB) in that bin and
silence gives ``y = 0.0`` (-100 dB or less).

Everything runs inside ``tf.function``, ``tf.data.Dataset.map`` and on GPU; the filter kernels
are built once with numpy in ``__init__`` (importing this module does not import TensorFlow).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import gin
import numpy as np

from polyamp.constants import (
    CQT_BINS_PER_OCTAVE,
    FMIN_HZ,
    HOP_LENGTH_SAMPLES,
    NUM_SPEC_BINS,
    SAMPLE_RATE_HZ,
)
from polyamp.errors import AudioError, ConfigError
from polyamp.registry import FRONTENDS

if TYPE_CHECKING:
    import tensorflow as tf

MIN_DB = -100.0
"""Floor of the log-magnitude scale: magnitudes at or below this many dB map to 0.0."""

_MIN_MAGNITUDE = 10.0 ** (MIN_DB / 20.0)

# Anti-alias filter used before each decimation by 2, as fractions of the sample rate *before*
# decimation: flat (±1e-4) up to _PASS_EDGE, attenuated by _STOP_DB from _STOP_EDGE (the new
# Nyquist frequency, so nothing folds back) upwards.
_PASS_EDGE = 0.135
_STOP_EDGE = 0.25
_STOP_DB = 80.0


def to_log_scale(magnitude: tf.Tensor) -> tf.Tensor:
    """Maps linear magnitude (1.0 = unit-amplitude sine) to ``max(dB, -100) / 100 + 1`` in [0, ∞)."""
    import tensorflow as tf

    # log(magnitude / floor) scaled so the floor maps to exactly 0.0 and 0 dB to 1.0.
    above_floor = tf.maximum(tf.math.log(magnitude + 1e-30) - math.log(_MIN_MAGNITUDE), 0.0)
    return above_floor * (20.0 / math.log(10.0) / -MIN_DB)


def _prepare_samples(samples: Any, name: str) -> tuple[tf.Tensor, bool]:
    """Returns float32 samples as [batch, num_samples] and whether a batch axis was added."""
    import tensorflow as tf

    try:
        samples = tf.convert_to_tensor(samples)
    except (TypeError, ValueError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise AudioError(f"{name} front end: samples are not a numeric array: {first_line}") from error
    if not samples.dtype.is_floating:
        raise AudioError(
            f"{name} front end: samples must be floating-point audio in [-1, 1], got dtype {samples.dtype.name}"
        )
    samples = tf.cast(samples, tf.float32)
    rank = samples.shape.rank
    if rank == 1:
        return samples[tf.newaxis, :], True
    if rank == 2:
        return samples, False
    raise AudioError(
        f"{name} front end: samples must have shape [num_samples] or [batch, num_samples], got shape {samples.shape}"
    )


def _check_positive(owner: str, **values: Any) -> None:
    for key, value in values.items():
        numeric = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
        if not numeric or not value > 0:
            raise ConfigError(f"{owner}.{key} must be positive, got {value!r}")


def _check_integer(owner: str, **values: Any) -> None:
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ConfigError(f"{owner}.{key} must be an integer, got {value!r}")


def _lowpass_taps() -> np.ndarray:
    """Odd-length, zero-phase Kaiser-window FIR used before each decimation by 2 (DC gain 1)."""
    transition = _STOP_EDGE - _PASS_EDGE
    # Kaiser's formulas for the window length and shape giving _STOP_DB of attenuation.
    num_taps = int(math.ceil((_STOP_DB - 7.95) / (2.285 * 2.0 * math.pi * transition))) + 1
    num_taps += 1 - num_taps % 2
    beta = 0.1102 * (_STOP_DB - 8.7)
    cutoff = (_PASS_EDGE + _STOP_EDGE) / 2.0
    offsets = np.arange(num_taps) - (num_taps - 1) / 2.0
    taps = 2.0 * cutoff * np.sinc(2.0 * cutoff * offsets) * np.kaiser(num_taps, beta)
    return taps / taps.sum()


def _decimate_by_two(signal: tf.Tensor, taps: np.ndarray) -> tf.Tensor:
    """Anti-alias low-pass and keep every other sample: [batch, n] -> [batch, ceil(n / 2)].

    Output sample ``m`` is the zero-phase low-passed input at sample ``2 * m`` (zero outside the
    input). Computed as a two-phase convolution, which is about twice as fast as a strided one.
    """
    import tensorflow as tf

    half = (len(taps) - 1) // 2
    padded_taps = np.concatenate([taps, [0.0]]).astype(np.float32)
    num_phase_taps = len(padded_taps) // 2
    filters = padded_taps.reshape(num_phase_taps, 2)[:, :, np.newaxis]
    length = tf.shape(signal)[1]
    num_out = (length + 1) // 2
    right = 2 * (num_out + num_phase_taps - 1) - half - length
    padded = tf.pad(signal, [[0, 0], [half, right]])
    pairs = tf.reshape(padded, [tf.shape(signal)[0], -1, 2])
    return tf.nn.conv1d(pairs, tf.constant(filters), stride=1, padding="VALID")[:, :, 0]


class _CQTGroup:
    """The CQT bins computed at one decimation level: kernel matrix and framing."""

    def __init__(self, level: int, first_bin: int, freqs_hz: np.ndarray, sample_rate: float, q: float) -> None:
        self.level = level
        self.first_bin = first_bin
        self.num_bins = len(freqs_hz)
        level_rate = sample_rate / 2**level
        lengths = q * level_rate / freqs_hz  # kernel lengths in samples at this level's rate
        self.half_length = int(math.floor(lengths.max() / 2.0))
        self.frame_length = 2 * self.half_length + 1
        offsets = np.arange(-self.half_length, self.half_length + 1, dtype=np.float64)[:, np.newaxis]
        window = np.where(np.abs(offsets) < lengths / 2.0, 0.5 + 0.5 * np.cos(2.0 * np.pi * offsets / lengths), 0.0)
        # 2 / sum(window): a unit-amplitude sine at the bin's frequency has magnitude 1.
        window = window * (2.0 / window.sum(axis=0))
        phase = 2.0 * np.pi * offsets * freqs_hz / level_rate
        # [frame_length, 2 * num_bins]: real parts then imaginary parts of conj(kernel).
        self.kernels = np.concatenate([window * np.cos(phase), -window * np.sin(phase)], axis=1).astype(np.float32)
        # The longest kernel's non-zero support, in original samples either side of its centre.
        self.support_samples = int(math.ceil(lengths.max() / 2.0)) * 2**level


@FRONTENDS.register("cqt")
@gin.configurable
class CQTFrontend:
    """Log-magnitude constant-Q transform (as in Onsets and Frames), computed octave by octave.

    Bin ``k`` is centred on ``fmin_hz * 2 ** (k / bins_per_octave)`` Hz and uses a Hann-windowed
    complex exponential of ``Q * rate / f`` samples, with ``Q = 1 / (2 ** (1 / bins_per_octave) - 1)``.
    The defaults give 229 bins from 27.5 Hz (A0) to 7.77 kHz at 16 kHz, hop 512 (31.25 frames/s).

    To keep the long low-frequency kernels (about 23,000 samples at 27.5 Hz) cheap, bins are
    processed one octave at a time from the top: the signal is low-passed and decimated by 2 as
    often as each octave allows (the hop halves with it: 512, 256, ... samples, always an integer),
    so every octave's kernels are at most a few hundred samples long (321 with the defaults). Each
    octave's kernel matrix is applied as one matrix product on frames of its decimated signal:
    the same numbers as multiplying the frames' FFT by the kernels' FFT (Parseval), without
    truncating the spectral kernels, and faster than an FFT at these lengths. Each octave's frames
    are centred on the same original samples, so all octaves give exactly the same frames. A unit
    sine at a bin's centre frequency gives magnitude 1 (0 dB, output 1.0) in that bin within a
    fraction of a dB, at every octave.

    Context for chunked processing: frame ``t`` depends on the samples within
    ``context_frames * hop_length`` of sample ``t * hop_length`` (the half-length of the longest
    kernel plus the anti-alias filters' reach; 29 frames ≈ 0.93 s with the defaults). A caller
    that computes windows of a longer signal gets exactly the same frames as the whole-signal
    transform at every frame with at least ``context_frames`` frames of real signal (or the true
    signal edge) on each side, provided each window starts on a multiple of ``hop_length``.
    """

    def __init__(
        self,
        sample_rate: int = SAMPLE_RATE_HZ,
        hop_length: int = HOP_LENGTH_SAMPLES,
        num_bins: int = NUM_SPEC_BINS,
        bins_per_octave: int = CQT_BINS_PER_OCTAVE,
        fmin_hz: float = FMIN_HZ,
    ) -> None:
        owner = "CQTFrontend"
        _check_integer(
            owner,
            sample_rate=sample_rate,
            hop_length=hop_length,
            num_bins=num_bins,
            bins_per_octave=bins_per_octave,
        )
        _check_positive(
            owner,
            sample_rate=sample_rate,
            hop_length=hop_length,
            num_bins=num_bins,
            bins_per_octave=bins_per_octave,
            fmin_hz=fmin_hz,
        )
        self.sample_rate = int(sample_rate)
        self.hop_length = int(hop_length)
        self.bins_per_octave = int(bins_per_octave)
        self.fmin_hz = float(fmin_hz)
        self._num_bins = int(num_bins)
        self.q = 1.0 / (2.0 ** (1.0 / self.bins_per_octave) - 1.0)
        freqs = self.fmin_hz * 2.0 ** (np.arange(self._num_bins) / self.bins_per_octave)
        if freqs[-1] >= self.sample_rate / 2.0:
            raise ConfigError(
                f"CQTFrontend: the top bin ({freqs[-1]:.0f} Hz = fmin_hz * 2 ** ((num_bins - 1) / "
                f"bins_per_octave)) must be below the Nyquist frequency {self.sample_rate / 2:.0f} Hz"
            )
        self._freqs = freqs
        # Deepest decimation level the hop allows (each level halves the hop).
        max_level = 0
        while self.hop_length % 2 ** (max_level + 1) == 0:
            max_level += 1
        self._taps = _lowpass_taps()
        self._groups: list[_CQTGroup] = []
        top = self._num_bins
        level = 0
        while top > 0:
            first = max(0, top - self.bins_per_octave)
            edge = freqs[top - 1] * (1.0 + 2.0 / self.q)  # top bin plus its kernel's main lobe
            # Decimate once more only if the octave stays inside the anti-alias filter's flat passband.
            while level < max_level and edge <= 2.0 * _PASS_EDGE * self.sample_rate / 2 ** (level + 1):
                level += 1
            group_freqs = freqs[first:top]
            self._groups.append(_CQTGroup(level, first, group_freqs, self.sample_rate, self.q))
            top = first
        self._groups.reverse()  # ascending frequency
        self._num_levels = max(group.level for group in self._groups)
        half_taps = (len(self._taps) - 1) // 2
        self._filter_reach = [half_taps * (2**level - 1) for level in range(self._num_levels + 1)]
        reach = max(group.support_samples + self._filter_reach[group.level] for group in self._groups)
        self._context_samples = reach
        # Zeros added at both ends before decimating so every level holds the low-passed signal's
        # tails and every frame lies inside the decimated signal; a multiple of the coarsest step.
        step = 2**self._num_levels
        padding = max(reach, *(g.half_length * 2**g.level for g in self._groups)) + step
        self._padding = int(math.ceil(padding / step)) * step

    @property
    def num_bins(self) -> int:
        """Number of frequency bins per frame."""
        return self._num_bins

    @property
    def context_frames(self) -> int:
        """Frames of context needed each side of a frame for the exact (whole-signal) value."""
        return int(math.ceil(self._context_samples / self.hop_length))

    @property
    def center_frequencies_hz(self) -> np.ndarray:
        """Centre frequency of each bin in Hz, shape [num_bins]."""
        return self._freqs.copy()

    @property
    def octave_levels(self) -> list[tuple[int, int, int]]:
        """(first bin, number of bins, decimation level) per octave group, lowest bins first."""
        return [(g.first_bin, g.num_bins, g.level) for g in self._groups]

    def __call__(self, samples: tf.Tensor) -> tf.Tensor:
        """samples: float32 [num_samples] or [batch, num_samples] at ``sample_rate``.

        Returns float32 [num_frames, num_bins] or [batch, num_frames, num_bins] in the log scale
        ``max(dB, -100) / 100 + 1``, with ``num_frames = num_samples // hop_length + 1`` and frame
        ``t`` centred on sample ``t * hop_length``.
        """
        import tensorflow as tf

        signal, unbatched = _prepare_samples(samples, "CQT")
        num_frames = tf.shape(signal)[1] // self.hop_length + 1
        signal = tf.pad(signal, [[0, 0], [self._padding, self._padding]])
        levels = [signal]
        for _ in range(self._num_levels):
            levels.append(_decimate_by_two(levels[-1], self._taps))
        outputs = []
        for group in self._groups:
            step = 2**group.level
            start = self._padding // step - group.half_length
            frames = tf.signal.frame(levels[group.level][:, start:], group.frame_length, self.hop_length // step)
            frames = frames[:, :num_frames, :]
            parts = tf.matmul(frames, tf.constant(group.kernels))
            real, imag = parts[..., : group.num_bins], parts[..., group.num_bins :]
            outputs.append(tf.sqrt(real * real + imag * imag))
        spectrogram = to_log_scale(tf.concat(outputs, axis=-1))
        return spectrogram[0] if unbatched else spectrogram


def _hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale."""
    return 1127.0 * np.log1p(np.asarray(hz, dtype=np.float64) / 700.0)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return 700.0 * np.expm1(np.asarray(mel, dtype=np.float64) / 1127.0)


@FRONTENDS.register("mel")
@gin.configurable
class MelFrontend:
    """Log-magnitude mel spectrogram (HTK mel scale, triangular bands, Hann-windowed STFT).

    ``num_bins`` triangular bands are spaced evenly in mel between ``fmin_hz`` and ``fmax_hz``.
    Each band's weights are scaled so that a unit-amplitude sine at the band's centre frequency
    gives mel power 1; the magnitude is ``sqrt(mel power)``, so such a sine reads 0 dB (output 1.0)
    as in the CQT front end.

    Context for chunked processing: frame ``t`` depends only on the ``fft_length`` samples centred
    on sample ``t * hop_length``, so ``context_frames = ceil(fft_length / 2 / hop_length)`` frames
    each side suffice for exact results.
    """

    def __init__(
        self,
        sample_rate: int = SAMPLE_RATE_HZ,
        hop_length: int = HOP_LENGTH_SAMPLES,
        num_bins: int = NUM_SPEC_BINS,
        fft_length: int = 2048,
        fmin_hz: float = FMIN_HZ,
        fmax_hz: float = 8000.0,
    ) -> None:
        owner = "MelFrontend"
        _check_integer(owner, sample_rate=sample_rate, hop_length=hop_length, num_bins=num_bins, fft_length=fft_length)
        _check_positive(
            owner,
            sample_rate=sample_rate,
            hop_length=hop_length,
            num_bins=num_bins,
            fft_length=fft_length,
            fmin_hz=fmin_hz,
            fmax_hz=fmax_hz,
        )
        if fft_length % 2:
            raise ConfigError(f"MelFrontend.fft_length must be even, got {fft_length}")
        if not fmin_hz < fmax_hz <= sample_rate / 2:
            raise ConfigError(
                f"MelFrontend needs fmin_hz < fmax_hz <= sample_rate / 2, got fmin_hz={fmin_hz}, "
                f"fmax_hz={fmax_hz}, sample_rate={sample_rate}"
            )
        self.sample_rate = int(sample_rate)
        self.hop_length = int(hop_length)
        self.fft_length = int(fft_length)
        self.fmin_hz = float(fmin_hz)
        self.fmax_hz = float(fmax_hz)
        self._num_bins = int(num_bins)
        edges = _mel_to_hz(np.linspace(_hz_to_mel(fmin_hz), _hz_to_mel(fmax_hz), self._num_bins + 2))
        lower, centers, upper = edges[:-2], edges[1:-1], edges[2:]
        self._freqs = centers
        fft_freqs = np.arange(self.fft_length // 2 + 1)[:, np.newaxis] * self.sample_rate / self.fft_length
        rising = (fft_freqs - lower) / (centers - lower)
        falling = (upper - fft_freqs) / (upper - centers)
        weights = np.maximum(0.0, np.minimum(rising, falling))  # [fft_bins, num_bins]
        # Periodic Hann window; calibrate every band on a unit sine at its centre frequency.
        self._window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(self.fft_length) / self.fft_length)
        times = np.arange(self.fft_length)[:, np.newaxis] / self.sample_rate
        # The positive-frequency half of cos = exp(i 2 pi f t) / 2 (what a sine looks like away from DC).
        tones = np.fft.fft(self._window[:, np.newaxis] * np.exp(2j * np.pi * centers * times) / 2.0, axis=0)
        tones = tones[: self.fft_length // 2 + 1]
        gains = np.sum(np.abs(tones) ** 2 * weights, axis=0)
        if np.any(gains <= 0.0):
            raise ConfigError(
                f"MelFrontend: num_bins={num_bins} bands between {fmin_hz} and {fmax_hz} Hz are too "
                f"narrow for fft_length={fft_length}; use fewer bands or a longer FFT"
            )
        weights = weights / gains
        # Only FFT bins that some band uses are kept, which makes the mel matrix a little smaller.
        used = np.nonzero(weights.any(axis=1))[0]
        self._first_fft_bin = int(used[0])
        self._weights = weights[used[0] : used[-1] + 1].astype(np.float32)

    @property
    def num_bins(self) -> int:
        """Number of mel bands per frame."""
        return self._num_bins

    @property
    def context_frames(self) -> int:
        """Frames of context needed each side of a frame for the exact (whole-signal) value."""
        return int(math.ceil(self.fft_length / 2 / self.hop_length))

    @property
    def center_frequencies_hz(self) -> np.ndarray:
        """Centre frequency of each mel band in Hz, shape [num_bins]."""
        return self._freqs.copy()

    def __call__(self, samples: tf.Tensor) -> tf.Tensor:
        """samples: float32 [num_samples] or [batch, num_samples] at ``sample_rate``.

        Returns float32 [num_frames, num_bins] or [batch, num_frames, num_bins] in the log scale
        ``max(dB, -100) / 100 + 1``, with ``num_frames = num_samples // hop_length + 1`` and frame
        ``t`` centred on sample ``t * hop_length``.
        """
        import tensorflow as tf

        signal, unbatched = _prepare_samples(samples, "mel")
        num_frames = tf.shape(signal)[1] // self.hop_length + 1
        half = self.fft_length // 2
        signal = tf.pad(signal, [[0, 0], [half, half]])
        frames = tf.signal.frame(signal, self.fft_length, self.hop_length)[:, :num_frames, :]
        spectrum = tf.signal.rfft(frames * tf.constant(self._window, tf.float32))
        spectrum = spectrum[..., self._first_fft_bin : self._first_fft_bin + self._weights.shape[0]]
        power = tf.math.square(tf.math.real(spectrum)) + tf.math.square(tf.math.imag(spectrum))
        mel_power = tf.matmul(power, tf.constant(self._weights))
        spectrogram = to_log_scale(tf.sqrt(tf.maximum(mel_power, 0.0)))
        return spectrogram[0] if unbatched else spectrogram
