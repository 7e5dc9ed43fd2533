"""Rendering MIDI collections into training data with SoundFonts (``polyamp synth``)."""
