"""Tests of the CQT and mel front ends (polyamp.audio.frontends) on synthesised audio."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import gin
import numpy as np
import pytest

from polyamp.audio.frontends import CQTFrontend, MelFrontend
from polyamp.errors import AudioError, ConfigError
from polyamp.registry import FRONTENDS

SAMPLE_RATE = 16000
HOP = 512
PITCHES = (33, 45, 60, 69, 84, 100)


@pytest.fixture(scope="module")
def cqt() -> CQTFrontend:
    return CQTFrontend()


@pytest.fixture(scope="module")
def mel() -> MelFrontend:
    return MelFrontend()


def _sine(freq_hz: float, seconds: float, amplitude: float = 1.0, phase: float = 0.3) -> np.ndarray:
    times = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (amplitude * np.sin(2.0 * np.pi * freq_hz * times + phase)).astype(np.float32)


def _midi_hz(pitch: int) -> float:
    return 440.0 * 2.0 ** ((pitch - 69) / 12.0)


def _noisy_signal(seconds: float) -> np.ndarray:
    rng = np.random.default_rng(7)
    signal = 0.05 * rng.standard_normal(int(seconds * SAMPLE_RATE))
    for freq in (29.0, 61.0, 440.0, 3100.0):
        signal = signal + 0.2 * _sine(freq, seconds)
    return signal.astype(np.float32)


def test_registered_and_import_does_not_load_tensorflow() -> None:
    assert FRONTENDS.get("cqt") is CQTFrontend
    assert FRONTENDS.get("mel") is MelFrontend
    code = "import sys, polyamp.audio.frontends; assert 'tensorflow' not in sys.modules, 'tf imported'"
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", ["cqt", "mel"])
@pytest.mark.parametrize("num_samples", [0, 1, 511, 512, 513, 5000, 16384])
def test_shapes_and_frame_count(name: str, num_samples: int, cqt: CQTFrontend, mel: MelFrontend) -> None:
    frontend = cqt if name == "cqt" else mel
    expected_frames = num_samples // HOP + 1
    single = frontend(np.zeros(num_samples, np.float32))
    assert single.shape == (expected_frames, 229)
    assert single.dtype.name == "float32"
    batch = frontend(np.zeros((3, num_samples), np.float32))
    assert batch.shape == (3, expected_frames, 229)
    assert frontend.num_bins == 229


@pytest.mark.parametrize("name", ["cqt", "mel"])
def test_silence_is_zero(name: str, cqt: CQTFrontend, mel: MelFrontend) -> None:
    frontend = cqt if name == "cqt" else mel
    output = frontend(np.zeros((2, 9000), np.float32)).numpy()
    assert np.all(output == 0.0)


def test_cqt_sine_peaks_in_nearest_bin(cqt: CQTFrontend) -> None:
    signals = np.stack([_sine(_midi_hz(pitch), 2.0) for pitch in PITCHES])
    output = cqt(signals).numpy()
    centre_frame = 31  # sample 15872: far enough from both ends for the 27.5 Hz kernel
    for row, pitch in enumerate(PITCHES):
        expected_bin = round(28 * np.log2(_midi_hz(pitch) / 27.5))
        frame = output[row, centre_frame]
        assert frame.argmax() == expected_bin, pitch
        assert abs(frame.max() - 1.0) < 0.02, (pitch, frame.max())  # within 2 dB of 0 dB
        # Far from the tone the transform is quiet (at least 40 dB down).
        far = np.abs(np.arange(229) - expected_bin) > 28
        assert frame[far].max() < 0.6, pitch


def test_cqt_unit_sine_at_every_bin_centre_reads_zero_db(cqt: CQTFrontend) -> None:
    freqs = cqt.center_frequencies_hz
    np.testing.assert_allclose(freqs[[0, 28, 228]], 27.5 * 2.0 ** (np.array([0, 28, 228]) / 28.0))
    output = cqt(np.stack([_sine(freq, 2.0) for freq in freqs])).numpy()[:, 31, :]
    assert np.array_equal(output.argmax(axis=1), np.arange(229))
    peak_db = (np.diagonal(output) - 1.0) * 100.0
    assert np.abs(peak_db).max() < 0.5, peak_db  # the same gain in every octave


@pytest.mark.parametrize("name", ["cqt", "mel"])
def test_frames_are_centred_in_every_octave(name: str, cqt: CQTFrontend, mel: MelFrontend) -> None:
    # A click at sample 40 * hop is seen by every bin's (symmetric) kernel centred there.
    click = np.zeros(80 * HOP, np.float32)
    click[40 * HOP] = 1.0
    output = (cqt if name == "cqt" else mel)(click).numpy()
    assert np.array_equal(output.argmax(axis=0), np.full(229, 40))
    np.testing.assert_allclose(output[39], output[41], atol=1e-4)
    np.testing.assert_allclose(output[20], output[60], atol=1e-4)


def test_log_scale_in_decibels(cqt: CQTFrontend, mel: MelFrontend) -> None:
    freq = cqt.center_frequencies_hz[112]  # 440 Hz
    quiet = cqt(_sine(freq, 2.0, amplitude=0.1)).numpy()[31]
    assert quiet[112] == pytest.approx(0.8, abs=0.005)  # -20 dB
    freq = mel.center_frequencies_hz[100]
    quiet = mel(_sine(freq, 1.0, amplitude=0.01)).numpy()[15]
    assert quiet[100] == pytest.approx(0.6, abs=0.005)  # -40 dB


def test_mel_sine_peaks_in_nearest_band(mel: MelFrontend) -> None:
    centres = mel.center_frequencies_hz
    signals = np.stack([_sine(_midi_hz(pitch), 1.0) for pitch in PITCHES])
    output = mel(signals).numpy()[:, 15, :]
    for row, pitch in enumerate(PITCHES):
        expected_band = int(np.argmin(np.abs(centres - _midi_hz(pitch))))
        assert output[row].argmax() == expected_band, pitch
        assert abs(output[row].max() - 1.0) < 0.02, (pitch, output[row].max())
    band_centres = mel(np.stack([_sine(freq, 1.0) for freq in centres[::20]])).numpy()[:, 15, :]
    assert np.array_equal(band_centres.argmax(axis=1), np.arange(229)[::20])
    np.testing.assert_allclose(band_centres.max(axis=1), 1.0, atol=0.002)


@pytest.mark.parametrize("name", ["cqt", "mel"])
def test_windows_with_context_frames_match_whole_signal(name: str, cqt: CQTFrontend, mel: MelFrontend) -> None:
    frontend = cqt if name == "cqt" else mel
    context = frontend.context_frames
    signal = _noisy_signal(6.0)
    whole = frontend(signal).numpy()
    first, last = 70, 110  # the frames wanted from this window
    window = signal[(first - context) * HOP : (last + context) * HOP]
    windowed = frontend(window).numpy()[context : context + last - first]
    np.testing.assert_allclose(windowed, whole[first:last], atol=1e-3)
    # Too little context visibly changes the edge frames, so the check above means something.
    short = max(context // 4, 1)
    window = signal[(first - short) * HOP : (last + short) * HOP]
    edge = frontend(window).numpy()[short : short + last - first]
    assert np.abs(edge - whole[first:last]).max() > 1e-2


def test_cqt_context_is_about_one_second(cqt: CQTFrontend) -> None:
    # Half of the ~23,000-sample 27.5 Hz kernel is ~22.6 frames, plus the anti-alias filters' reach.
    assert 23 <= cqt.context_frames <= 32
    assert MelFrontend().context_frames == 2


@pytest.mark.parametrize("name", ["cqt", "mel"])
def test_tf_function_and_dataset_map(name: str, cqt: CQTFrontend, mel: MelFrontend) -> None:
    import tensorflow as tf

    frontend = cqt if name == "cqt" else mel
    signal = _noisy_signal(1.5)
    eager = frontend(signal).numpy()
    function = tf.function(frontend, input_signature=[tf.TensorSpec([None, None], tf.float32)])
    np.testing.assert_allclose(function(signal[np.newaxis]).numpy()[0], eager, atol=1e-5)
    shorter = function(signal[np.newaxis, :7000]).numpy()
    assert shorter.shape == (1, 7000 // HOP + 1, 229)

    dataset = tf.data.Dataset.from_tensor_slices(np.stack([signal, signal[::-1]])).map(frontend)
    outputs = [element.numpy() for element in dataset]
    assert len(outputs) == 2
    np.testing.assert_allclose(outputs[0], eager, atol=1e-5)
    np.testing.assert_allclose(outputs[1], frontend(signal[::-1].copy()).numpy(), atol=1e-5)


def test_other_hop_and_gin_configuration() -> None:
    gin.clear_config()
    try:
        gin.parse_config("CQTFrontend.hop_length = 320")
        frontend = CQTFrontend()
    finally:
        gin.clear_config()
    assert frontend.hop_length == 320
    freq = frontend.center_frequencies_hz[40]
    output = frontend(_sine(freq, 2.0)).numpy()
    assert output.shape == (32000 // 320 + 1, 229)
    assert output[50].argmax() == 40
    assert output[50].max() == pytest.approx(1.0, abs=0.01)


def test_bad_input_and_configuration_raise_clear_errors(cqt: CQTFrontend, mel: MelFrontend) -> None:
    with pytest.raises(AudioError, match="shape"):
        cqt(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(AudioError, match="shape"):
        mel(np.float32(0.5))
    with pytest.raises(AudioError, match="floating-point"):
        cqt(np.zeros(1000, np.int16))
    with pytest.raises(AudioError, match="floating-point"):
        mel(["not", "audio"])
    with pytest.raises(AudioError, match="numeric"):
        mel([[0.1], [0.2, 0.3]])
    with pytest.raises(ConfigError, match="bins_per_octave"):
        CQTFrontend(bins_per_octave=0)
    with pytest.raises(ConfigError, match="Nyquist"):
        CQTFrontend(num_bins=260)
    with pytest.raises(ConfigError, match="hop_length"):
        CQTFrontend(hop_length=512.5)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="fmax_hz"):
        MelFrontend(fmax_hz=9000.0)
