#!/usr/bin/env bash
# Creates the separate virtual environment that benchmarks/compare_basic_pitch.py runs Basic Pitch from.
#
# Basic Pitch 0.4.0 requires tensorflow<2.15.1 on Python 3.11, which conflicts with PolyAMP's TF 2.17.1,
# so it gets its own venv: basic-pitch is installed with --no-deps (no TensorFlow) and its inference
# path runs the ONNX model it ships in its wheel (basic_pitch/saved_models/icassp_2022/nmp.onnx) with
# onnxruntime. basic_pitch picks ONNX by itself when neither TensorFlow, coremltools nor tflite-runtime
# is importable. The other packages are the ones basic_pitch.inference and basic_pitch.note_creation
# import, pinned to the versions PolyAMP's own venv uses (numpy < 2).
#
#   bash benchmarks/basic_pitch_env.sh [VENV_DIR]      # default /work/venv-basic-pitch
#
# Re-running it on an existing venv re-installs the pins (idempotent).
set -euo pipefail

VENV_DIR="${1:-${BASIC_PITCH_VENV:-/work/venv-basic-pitch}}"
PYTHON="${PYTHON:-python3.11}"

if ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "basic_pitch_env.sh: $PYTHON not found; install Python 3.11 or set PYTHON=/path/to/python3.11" >&2
  exit 2
fi
if [ ! -x "$VENV_DIR/bin/python" ]; then
  "$PYTHON" -m venv "$VENV_DIR"
fi
PIP=("$VENV_DIR/bin/python" -m pip install --quiet --disable-pip-version-check)

"${PIP[@]}" --no-deps "basic-pitch==0.4.0"
# pip then warns that basic-pitch requires tensorflow: expected, TensorFlow is left out on purpose.
"${PIP[@]}" \
  "onnxruntime==1.32.0" \
  "numpy==1.26.4" \
  "scipy==1.17.1" \
  "librosa==0.11.0" \
  "soundfile==0.14.0" \
  "soxr==1.1.0" \
  "numba==0.68.1" \
  "llvmlite==0.50.0" \
  "resampy==0.4.2" \
  "scikit-learn==1.9.1" \
  "pretty_midi==0.2.11.post0" \
  "mir_eval==0.8.2" \
  "protobuf==4.25.9" \
  "typing_extensions==4.16.0"

# Check: basic_pitch imports without TensorFlow and selects the ONNX model. Then one warm-up prediction
# on a 2 s tone: the first run ever spends about 30 s compiling numba functions (librosa/resampy) into
# numba's on-disk cache; doing it here keeps that one-off install cost out of the benchmark's timings.
"$VENV_DIR/bin/python" - <<'PY'
import contextlib
import logging
import os
import sys
import tempfile

logging.disable(logging.WARNING)  # basic_pitch warns about each backend it does not find
import numpy as np
import soundfile

import basic_pitch
from basic_pitch import ICASSP_2022_MODEL_PATH, ONNX_PRESENT, TF_PRESENT

assert ONNX_PRESENT and not TF_PRESENT, "expected onnxruntime and no TensorFlow in the Basic Pitch venv"
assert ICASSP_2022_MODEL_PATH.name == "nmp.onnx" and ICASSP_2022_MODEL_PATH.is_file(), ICASSP_2022_MODEL_PATH
from basic_pitch.inference import Model, predict

times = np.arange(2 * 22050) / 22050
tone = 0.3 * np.sin(2 * np.pi * 440.0 * times) * (times < 1.5)
with tempfile.TemporaryDirectory() as folder:
    path = os.path.join(folder, "warm-up.wav")
    soundfile.write(path, tone.astype(np.float32), 22050)
    with contextlib.redirect_stdout(sys.stderr):
        _, _, events = predict(path, Model(ICASSP_2022_MODEL_PATH))
pitches = sorted({int(event[2]) for event in events})
assert 69 in pitches, f"warm-up: expected A4 (69) from a 440 Hz tone, got {pitches}"
print(f"Basic Pitch venv ready: {ICASSP_2022_MODEL_PATH} (warm-up tone -> pitches {pitches})")
PY
