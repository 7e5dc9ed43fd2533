#!/usr/bin/env bash
# System packages PolyAMP uses beyond PyPI (Debian/Ubuntu): FluidSynth renders MIDI with
# SoundFonts for `polyamp synth`; TimGM6mb (6 MB) is the SoundFont the tests render with.
# Set POLYAMP_SOUNDFONTS="fluid-soundfont-gm timgm6mb-soundfont" for the larger FluidR3 GM set.
set -euo pipefail
packages="fluidsynth ${POLYAMP_SOUNDFONTS:-timgm6mb-soundfont}"
missing=""
for package in $packages; do
    dpkg -s "$package" >/dev/null 2>&1 || missing="$missing $package"
done
if [ -n "$missing" ]; then
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends $missing
fi
