"""Tests for polyamp.audio.decode: every format, rate conversion, downmix, streaming, tf.data, bad input."""

from __future__ import annotations

import concurrent.futures
import io
import math
import os
import struct
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile
from scipy.signal import resample_poly

from polyamp.audio.decode import (
    AudioInfo,
    AudioReader,
    audio_info,
    check_audible,
    decode_wav_tf,
    encode_wav,
    load_audio,
)
from polyamp.errors import AudioError

REPO_ROOT = Path(__file__).resolve().parents[1]
HAS_MP3 = "MP3" in soundfile.available_formats()


def tone(freq_hz: float, duration_s: float, rate_hz: int, amplitude: float = 0.5, onset_s: float = 0.0) -> np.ndarray:
    """A sine of ``duration_s`` seconds that starts (from silence) at ``onset_s``."""
    n = int(round(duration_s * rate_hz))
    t = np.arange(n) / rate_hz
    return np.where(t >= onset_s, amplitude * np.sin(2 * np.pi * freq_hz * (t - onset_s)), 0.0)


def peak_frequency_hz(samples: np.ndarray, rate_hz: int = 16000) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * rate_hz / len(samples))


def wav_bytes(samples: np.ndarray, rate_hz: int, subtype: str = "PCM_16", container: str = "WAV") -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate_hz, format=container, subtype=subtype)
    return buffer.getvalue()


def expected_length(num_frames: int, rate_hz: int) -> int:
    return -(-num_frames * 16000 // rate_hz)


# --------------------------------------------------------------------------------------------------------
# Formats, values, lengths, rates, downmix
# --------------------------------------------------------------------------------------------------------


def test_wav16_at_16k_round_trips_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    pcm = rng.integers(-20000, 20000, size=12345).astype(np.int16)
    path = tmp_path / "exact.wav"
    soundfile.write(path, pcm, 16000, subtype="PCM_16")

    samples = load_audio(path)
    assert samples.dtype == np.float32 and samples.shape == (12345,)
    np.testing.assert_array_equal(samples, pcm.astype(np.float32) / 32768.0)
    info = audio_info(path)
    assert info == AudioInfo(str(path), 16000, 1, 12345)
    assert info.duration_s == pytest.approx(12345 / 16000)


def test_encode_wav_round_trip_and_clipping(tmp_path: Path) -> None:
    values = np.array([0.0, 0.25, -0.5, 1.5, -2.0, 32767 / 32768, 1e-3], np.float32)
    data = encode_wav(values, 22050)
    decoded, rate = soundfile.read(io.BytesIO(data), dtype="int16")
    assert rate == 22050 and soundfile.info(io.BytesIO(data)).subtype == "PCM_16"
    np.testing.assert_array_equal(decoded, [0, 8192, -16384, 32767, -32768, 32767, 33])

    on_grid = np.round(tone(300, 0.5, 16000) * 32768) / 32768
    path = tmp_path / "encoded.wav"
    path.write_bytes(encode_wav(on_grid))
    np.testing.assert_array_equal(load_audio(path), on_grid.astype(np.float32))
    with pytest.raises(ValueError):
        encode_wav(np.zeros((10, 2)))


FORMATS = [
    ("WAV", "PCM_16", "wav", 2e-3),
    ("WAV", "PCM_24", "wav", 2e-3),
    ("WAV", "FLOAT", "wav", 2e-3),
    ("WAV", "PCM_U8", "wav", 2e-2),
    ("WAV", "PCM_32", "wav", 2e-3),  # tfio returns garbage for it: soundfile fallback
    ("WAV", "DOUBLE", "wav", 2e-3),  # tfio cannot read it: soundfile fallback
    ("WAVEX", "PCM_16", "wav", 2e-3),
    ("FLAC", "PCM_16", "flac", 2e-3),
    ("FLAC", "PCM_24", "flac", 2e-3),
    ("OGG", "VORBIS", "ogg", 4e-2),
    pytest.param(
        "MP3", "MPEG_LAYER_III", "mp3", 4e-2, marks=pytest.mark.skipif(not HAS_MP3, reason="no MP3 in libsndfile")
    ),
]


@pytest.mark.parametrize(("container", "subtype", "extension", "tolerance"), FORMATS)
def test_formats_decode_to_aligned_16k_mono(
    tmp_path: Path, container: str, subtype: str, extension: str, tolerance: float
) -> None:
    """44.1 kHz stereo, silence then a 440 Hz tone at 0.5 s: 16 kHz mono, same tone, same onset sample."""
    left = tone(440, 2.0, 44100, amplitude=0.5, onset_s=0.5)
    path = tmp_path / f"tone_{subtype.lower()}.{extension}"
    soundfile.write(path, np.stack([left, left], axis=1), 44100, format=container, subtype=subtype)

    samples = load_audio(path)
    assert samples.dtype == np.float32
    assert samples.shape == (expected_length(len(left), 44100),)
    ideal = tone(440, 2.0, 16000, amplitude=0.5, onset_s=0.5)
    # Away from the onset (where the band-limited resampler rings), the signal matches the ideal tone:
    # a shift of one 16 kHz sample would already give an error of 0.086.
    steady = slice(8200, len(ideal) - 200)
    assert np.max(np.abs(samples[steady] - ideal[steady])) < tolerance
    assert np.max(np.abs(samples[:7900])) < 0.02  # silence before the onset stays silent
    assert peak_frequency_hz(samples) == pytest.approx(440, abs=1.0)
    info = audio_info(path)
    assert (info.sample_rate_hz, info.num_channels, info.num_frames) == (44100, 2, len(left))


def test_44k_stereo_sine_gives_16k_mono_at_440_hz(tmp_path: Path) -> None:
    duration_s = 3.3
    sine = tone(440, duration_s, 44100, amplitude=0.4)
    path = tmp_path / "stereo44.wav"
    soundfile.write(path, np.stack([sine, sine], axis=1), 44100, subtype="PCM_16")

    samples = load_audio(path)
    assert abs(len(samples) - round(duration_s * 16000)) <= 1
    assert peak_frequency_hz(samples) == pytest.approx(440, abs=16000 / len(samples))
    assert np.max(np.abs(samples)) == pytest.approx(0.4, abs=0.01)


def test_downmix_is_the_mean_of_channels(tmp_path: Path) -> None:
    channels = np.stack([tone(440, 1.0, 16000, 0.4), tone(1000, 1.0, 16000, 0.2), np.full(16000, 0.1)], axis=1)
    path = tmp_path / "three_channels.wav"
    soundfile.write(path, channels, 16000, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(path), channels.mean(axis=1), atol=1e-6)


@pytest.mark.parametrize("rate_hz", [8000, 11025, 22050, 48000, 96000])
def test_rate_conversion_matches_whole_file_polyphase_resampling(tmp_path: Path, rate_hz: int) -> None:
    rng = np.random.default_rng(rate_hz)
    signal = (0.2 * rng.standard_normal(int(rate_hz * 1.7) + 3)).astype(np.float32)
    path = tmp_path / f"noise_{rate_hz}.wav"
    soundfile.write(path, signal, rate_hz, subtype="FLOAT")
    divisor = math.gcd(rate_hz, 16000)
    reference = resample_poly(signal.astype(np.float64), 16000 // divisor, rate_hz // divisor)

    samples = load_audio(path)
    assert len(samples) == len(reference) == expected_length(len(signal), rate_hz)
    np.testing.assert_allclose(samples, reference, atol=1e-5)


def test_other_sample_rate_target(tmp_path: Path) -> None:
    path = tmp_path / "tone.wav"
    soundfile.write(path, tone(440, 1.0, 44100), 44100, subtype="PCM_16")
    samples = load_audio(path, sample_rate_hz=22050)
    assert len(samples) == 22050
    assert peak_frequency_hz(samples, 22050) == pytest.approx(440, abs=1.5)


def test_wav_layouts_tfio_misreads_fall_back_correctly(tmp_path: Path) -> None:
    """An odd-sized chunk before the data and a mu-law WAV still decode to the right signal."""
    signal = tone(440, 0.5, 16000, 0.5)
    plain = wav_bytes(signal, 16000)
    fmt_chunk, data_chunk = plain[12:36], plain[36:]
    odd_chunk = b"LIST" + struct.pack("<I", 5) + b"abcde" + b"\0"
    body = b"WAVE" + fmt_chunk + odd_chunk + data_chunk
    odd = tmp_path / "odd_chunk.wav"
    odd.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    np.testing.assert_allclose(load_audio(odd), signal, atol=1 / 32768)

    ulaw = tmp_path / "ulaw.wav"
    soundfile.write(ulaw, signal, 16000, subtype="ULAW")
    np.testing.assert_allclose(load_audio(ulaw), signal, atol=0.02)


def test_truncated_wav_reads_the_frames_present(tmp_path: Path) -> None:
    signal = tone(440, 1.0, 16000, 0.5)
    data = wav_bytes(signal, 16000)
    path = tmp_path / "truncated.wav"
    path.write_bytes(data[: 44 + 2 * 6000 + 1])  # header + 6000 frames + half a frame

    assert audio_info(path).num_frames == 6000
    samples = load_audio(path)
    np.testing.assert_allclose(samples, signal[:6000], atol=1 / 32768)


# --------------------------------------------------------------------------------------------------------
# Streaming reader
# --------------------------------------------------------------------------------------------------------


def test_reader_slices_equal_load_audio_and_whole_file_resampling(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    stereo = (0.3 * rng.standard_normal((44100 * 2 + 17, 2))).astype(np.float32)
    path = tmp_path / "noise44.wav"
    soundfile.write(path, stereo, 44100, subtype="FLOAT")
    whole = load_audio(path)
    reference = resample_poly(stereo.mean(axis=1).astype(np.float64), 160, 441)
    assert np.max(np.abs(whole - reference)) < 1e-3

    with AudioReader(path, block_seconds=0.1) as reader:
        assert reader.num_samples == len(whole) == expected_length(len(stereo), 44100)
        assert reader.duration_s == pytest.approx(reader.num_samples / 16000)
        # Consecutive blocks, with odd sizes, concatenate to the whole-file signal.
        blocks = [reader.read(start, 1777) for start in range(0, reader.num_samples, 1777)]
        joined = np.concatenate(blocks)[: reader.num_samples]
        assert np.max(np.abs(joined - reference)) < 1e-3
        np.testing.assert_allclose(joined, whole, atol=1e-6)
        assert np.all(np.concatenate(blocks)[reader.num_samples :] == 0)

        n = reader.num_samples
        for start, count in [(-300, 1000), (-50, 20), (0, 1), (12345, 4000), (n - 100, 700), (n + 5, 10), (7, 0)]:
            got = reader.read(start, count)
            expected = np.zeros(count, np.float32)
            low, high = max(start, 0), min(start + count, n)
            if high > low:
                expected[low - start : high - start] = whole[low:high]
            assert got.dtype == np.float32 and got.shape == (count,)
            np.testing.assert_allclose(got, expected, atol=1e-6, err_msg=f"read({start}, {count})")
        assert reader.peak == pytest.approx(float(np.max(np.abs(whole))), rel=1e-6)
        with pytest.raises(ValueError):
            reader.read(0, -1)


def test_reader_peak_and_check_audible_for_silence(tmp_path: Path) -> None:
    path = tmp_path / "quiet.wav"
    soundfile.write(path, np.full(16000, 5e-5), 16000, subtype="FLOAT")
    with AudioReader(path) as reader:
        assert reader.peak == 0.0
        reader.read(-100, 4000)
        assert reader.peak == pytest.approx(5e-5)
        with pytest.raises(AudioError, match=r"quiet\.wav.*is silent \(peak amplitude below -80 dBFS\)"):
            check_audible(reader.peak, str(path))
    check_audible(1e-4, "loud.wav")
    with pytest.raises(AudioError):
        check_audible(float("nan"), "nan.wav")


def _write_long_sparse_wav(path: Path, rate_hz: int, duration_s: int, tone_at_s: int) -> None:
    """A 16-bit mono WAV of ``duration_s`` seconds, silent (sparse on disk) but for 11 s of 440 Hz."""
    num_frames = rate_hz * duration_s
    with open(path, "wb") as handle:
        header = bytearray(encode_wav(np.zeros(0), rate_hz))  # 44 bytes; set the RIFF and data sizes
        struct.pack_into("<I", header, 4, 36 + 2 * num_frames)
        struct.pack_into("<I", header, 40, 2 * num_frames)
        handle.write(header)
        handle.truncate(44 + 2 * num_frames)
        handle.seek(44 + 2 * rate_hz * tone_at_s)
        handle.write(np.round(tone(440, 11.0, rate_hz) * 32767).astype("<i2").tobytes())


def test_reader_memory_does_not_grow_with_file_length(tmp_path: Path) -> None:
    """Reading 10 s of a 10-minute 44.1 kHz file allocates a few MB, not the file (106 MB as float32)."""
    path = tmp_path / "ten_minutes.wav"
    _write_long_sparse_wav(path, 44100, 600, tone_at_s=300)
    audio_info(path)  # warm up TensorFlow outside the measurement

    tracemalloc.start()
    began = time.perf_counter()
    try:
        with AudioReader(path) as reader:
            assert reader.num_samples == 600 * 16000
            block = reader.read(300 * 16000, 10 * 16000)
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    elapsed = time.perf_counter() - began
    assert peak_bytes < 20e6, f"peak traced allocation {peak_bytes / 1e6:.1f} MB"
    assert elapsed < 5.0
    assert peak_frequency_hz(block) == pytest.approx(440, abs=0.5)
    assert np.max(np.abs(block)) == pytest.approx(0.5, abs=0.01)


def test_readers_of_different_files_stay_independent(tmp_path: Path) -> None:
    """tfio shares one resource between AudioIOTensors; a reader must still read its own file."""
    first, second = tmp_path / "first.wav", tmp_path / "second.flac"
    soundfile.write(first, tone(440, 1.0, 16000, 0.5), 16000, subtype="PCM_16")
    soundfile.write(second, tone(1000, 1.0, 16000, 0.3), 16000, subtype="PCM_16")
    with AudioReader(first) as reader_a:
        before = reader_a.read(0, 4000)
        with AudioReader(second) as reader_b:
            other = reader_b.read(0, 4000)
            audio_info(second)
            np.testing.assert_array_equal(reader_a.read(0, 4000), before)
            np.testing.assert_array_equal(reader_b.read(0, 4000), other)
    assert not np.allclose(before, other)


def test_concurrent_loads_give_the_same_results(tmp_path: Path) -> None:
    paths = []
    for index, freq in enumerate([220, 330, 550, 770]):
        path = tmp_path / f"tone{index}.{'wav' if index % 2 else 'flac'}"
        soundfile.write(path, np.stack([tone(freq, 1.5, 44100, 0.4)] * 2, axis=1), 44100, subtype="PCM_16")
        paths.append(path)
    sequential = [load_audio(path) for path in paths]
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        parallel = list(pool.map(load_audio, paths * 3))
    for index, samples in enumerate(parallel):
        np.testing.assert_array_equal(samples, sequential[index % len(paths)])


# --------------------------------------------------------------------------------------------------------
# Graph-mode decoding for tf.data
# --------------------------------------------------------------------------------------------------------


def test_decode_wav_tf_in_tf_data_map(tmp_path: Path) -> None:
    import tensorflow as tf

    mono16 = np.round(tone(440, 1.25, 16000, 0.5) * 32768) / 32768
    stereo44 = np.stack([tone(440, 1.5, 44100, 0.5), tone(440, 1.5, 44100, 0.25)], axis=1)
    items = [
        encode_wav(mono16, 16000),
        wav_bytes(stereo44, 44100, "PCM_16"),
        wav_bytes(stereo44, 44100, "FLOAT"),
        wav_bytes(stereo44, 44100, "PCM_24"),
        wav_bytes(tone(440, 1.0, 48000, 0.5), 48000, "PCM_16", container="WAVEX"),
    ]
    dataset = tf.data.Dataset.from_tensor_slices(items).map(decode_wav_tf, num_parallel_calls=2)
    assert dataset.element_spec.shape.as_list() == [None]
    outputs = [element.numpy() for element in dataset]

    np.testing.assert_array_equal(outputs[0], mono16.astype(np.float32))  # 16 kHz: untouched
    stereo_path = tmp_path / "stereo44.wav"
    stereo_path.write_bytes(items[1])
    from_file = load_audio(stereo_path)
    for output in outputs[1:4]:
        assert output.dtype == np.float32 and output.shape == (expected_length(len(stereo44), 44100),)
        assert peak_frequency_hz(output) == pytest.approx(440, abs=1.0)
        # tfio's resampler is a different filter, but with its delay removed it lines up with load_audio
        # (a delay of even one sample would differ by ~0.06 at this amplitude).
        assert np.max(np.abs(output - from_file)) < 0.02
    assert outputs[4].shape == (16000,)
    assert peak_frequency_hz(outputs[4]) == pytest.approx(440, abs=1.0)


def test_decode_wav_tf_rejects_bad_bytes() -> None:
    import tensorflow as tf

    for bad in [b"not a wav file at all", b"RIFF\0\0\0\0WAVE", wav_bytes(np.zeros(100), 16000)[:30]]:
        with pytest.raises(tf.errors.InvalidArgumentError, match="decode_wav_tf"):
            decode_wav_tf(tf.constant(bad))


# --------------------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------------------

PNG_BYTES = b"\x89PNG\r\n\x1a\n" + b"\0\0\0\rIHDR" + bytes(200)


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name -> (path, regex the message must match)."""
    good = wav_bytes(tone(440, 1.0, 16000), 16000)
    cases: dict[str, tuple[bytes | None, str, str]] = {
        "missing": (None, "missing.wav", "not found"),
        "text_as_wav": (b"hello, this is text\n" * 20, "notes.wav", "not a valid WAV"),
        "png_as_wav": (PNG_BYTES, "picture.wav", "not a valid WAV"),
        "png_as_flac": (PNG_BYTES, "picture.flac", "not a valid FLAC"),
        "text_as_mp3": (b"hello, this is text\n" * 20, "notes.mp3", "not a valid MP3"),
        "garbage_ogg": (b"OggS" + bytes(300), "garbage.ogg", "not a valid OGG"),
        "empty_file": (b"", "empty.wav", r"empty \(0 bytes\)"),
        "header_only": (good[:44], "header_only.wav", "truncated"),
        "cut_in_header": (good[:20], "cut_header.wav", "truncated or corrupt"),
        "zero_samples": (wav_bytes(np.zeros(0), 16000), "zero.wav", r"no audio samples"),
        "truncated_flac": (None, "cut.flac", "truncated or corrupt"),
        "truncated_ogg": (None, "cut.ogg", "truncated or corrupt"),
        "unsupported_extension": (
            wav_bytes(tone(440, 0.1, 16000), 16000, container="AIFF"),
            "tone.aiff",
            "unsupported format",
        ),
        "text_file": (b"just text", "readme.txt", "unsupported format"),
    }
    result = {}
    for name, (content, filename, pattern) in cases.items():
        path = tmp_path / filename
        if content is not None:
            path.write_bytes(content)
        result[name] = (path, pattern)
    flac, ogg = result["truncated_flac"][0], result["truncated_ogg"][0]
    stereo = np.stack([tone(440, 2.0, 44100)] * 2, axis=1)
    soundfile.write(flac, stereo, 44100, format="FLAC")
    flac.write_bytes(flac.read_bytes()[: flac.stat().st_size // 2])
    soundfile.write(ogg, stereo, 44100, format="OGG")
    ogg.write_bytes(ogg.read_bytes()[: ogg.stat().st_size // 2])
    directory = tmp_path / "folder.wav"
    directory.mkdir()
    result["directory"] = (directory, "is a directory")
    return result


def test_every_bad_input_raises_one_line_audio_error_naming_the_file(tmp_path: Path) -> None:
    cases = _bad_inputs(tmp_path)
    for name, (path, pattern) in cases.items():
        functions = (load_audio, AudioReader) if name == "truncated_flac" else (load_audio, AudioReader, audio_info)
        for function in functions:  # (a FLAC cut after its header fails only when its audio is decoded)
            with pytest.raises(AudioError) as caught:
                reader = function(path)
                if isinstance(reader, AudioReader):  # a truncated FLAC fails only when read
                    reader.read(0, reader.num_samples)
            message = str(caught.value)
            assert path.name in message, f"{name}: {message}"
            assert "\n" not in message, f"{name}: {message}"
            assert "function_node" not in message, f"{name}: {message}"
            if function is load_audio:
                assert caught.match(pattern), f"{name}: {message!r} !~ {pattern!r}"


def test_silent_file_raises_in_load_audio_only(tmp_path: Path) -> None:
    path = tmp_path / "silence.flac"
    soundfile.write(path, np.zeros((16000, 2)), 16000, format="FLAC")
    with pytest.raises(AudioError, match=r"silence\.flac.* is silent \(peak amplitude below -80 dBFS\)"):
        load_audio(path)
    with AudioReader(path) as reader:  # streaming callers check at the end
        assert np.all(reader.read(0, reader.num_samples) == 0) and reader.peak == 0.0


def test_import_is_light_and_decoding_is_quiet(tmp_path: Path) -> None:
    """Importing does not load TensorFlow; decoding prints no TensorFlow/tfio log lines."""
    path = tmp_path / "quiet_check.mp3" if HAS_MP3 else tmp_path / "quiet_check.ogg"
    soundfile.write(path, tone(440, 0.5, 44100), 44100, format="MP3" if HAS_MP3 else "OGG")
    script = (
        "import sys\n"
        "import polyamp.audio.decode as decode\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported at module import'\n"
        f"print(len(decode.load_audio({str(path)!r})))\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "8000"
    noisy = [line for line in result.stderr.splitlines() if "tensorflow" in line.lower() or "cuda" in line.lower()]
    assert not noisy, "\n".join(noisy)
