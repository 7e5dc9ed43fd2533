#!/usr/bin/env bash
# The README's demo: make training data (synthesised tones, no download), train the small Melodic
# model briefly on this CPU, then transcribe the bundled clip demo/demo_clip.flac to MIDI and score it
# against demo/demo_clip.mid.
# Usage: scripts/demo.sh VENV_BIN_DIR OUTPUT_DIR
set -euo pipefail
bin=${1:-.venv/bin}
out=${2:-demo-output}
steps=${DEMO_STEPS:-500}
mkdir -p "$out"
export TF_CPP_MIN_LOG_LEVEL=3

if [ ! -d "$out/tones" ]; then
    "$bin/polyamp" synthetic-tones "$out/tones" --num-examples 40 --duration 10 --seed 1
fi
"$bin/polyamp" train --model-type melodic --examples-path "$out/tones" --model-dir "$out/models" \
    --model-id demo --gin-file recipes/synthetic_tones.gin --num-steps "$steps" --seed 1
"$bin/polyamp" transcribe demo/demo_clip.flac --model-dir "$out/models" --load-id demo \
    --output-dir "$out" --overwrite
mkdir -p "$out/reference"
cp demo/demo_clip.flac demo/demo_clip.mid "$out/reference/"
"$bin/polyamp" eval --examples-path "$out/reference" --model-dir "$out/models" --load-id demo \
    --output-json "$out/demo_metrics.json" --overwrite
echo "MIDI written to $out/demo_clip.polyamp.mid"
