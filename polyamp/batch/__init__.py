"""The parts of batch transcription (:mod:`polyamp.batch_transcription` runs the batch and re-exports them):

* :mod:`polyamp.batch.outputs`: the output options, each input's output paths, and the batch plan.
* :mod:`polyamp.batch.engines`: transcription engines (one audio file -> :class:`Transcribed`) and their loading.
* :mod:`polyamp.batch.writers`: the MIDI, CSV, NPZ, PNG and WAV writers of one transcription.
"""
