"""Render :class:`~polyamp.synth.piece.Part` s to mono audio with a General MIDI SoundFont (FluidSynth).

Ground truth: a note starting at ``start_s`` sounds from EXACTLY output sample
``round(start_s * sample_rate_hz)`` (its first block fades in from 0, like any fresh FluidSynth voice).

Sample-exact onsets. FluidSynth applies MIDI events only at the start of its 64-sample blocks, so
a plain render delays each onset by 0-63 samples. The dry signal of a part is therefore rendered
in *phase passes*: the notes whose onset sample is ``r`` modulo 64 play together in one pass whose
blocks start at samples ``r, r + 64, ...``, and the passes are summed (FluidSynth's voices are
independent; its mixer only adds them). A pass renders only while its own voices sound, so this
costs about 20 % more than one ordinary render. Interactions between notes are kept across
passes: a re-struck pitch releases the earlier note (its note-off moves to the re-strike), and
General MIDI choke groups (open/closed hi-hat, whistles, guiros, cuicas, triangles) are replayed
in the choked note's pass as a velocity-1 strike of the choking key, so that FluidSynth's own
exclusive-class cut happens there. Note-offs land on the nearest block start of their pass
(within 32 internal samples; a note lasts at least one block).

Alias-free synthesis. FluidSynth does not low-pass a sample it plays at a lower rate than it was
recorded at, so synthesizing 44.1 kHz samples directly at 16 kHz folds their 8-22 kHz content into
the band (hi-hats and cymbals: alias about as loud as the signal). By default the dry signal is
synthesized at 32 kHz and decimated 2:1 with ``scipy.signal.resample_poly`` (see
``benchmarks/bench_synth_render.py --quality``); ``internal_rate_hz=16000`` is about 1.5-2x faster.

Effects. Reverb and chorus are time-varying and keep state, so they run once per part, in a
separate synthesizer at the output rate that plays every note on the nearest block start and
contributes only its effects output (wet onsets within 32 output samples of the dry ones).

Sound variation. ``Part.sound_offsets`` offsets SoundFont generators (filter cutoff and resonance,
volume envelope, vibrato) on the part's channel in the dry and the effects synthesizers alike, so
one preset can be heard as many instruments of its kind (``ArrangeOptions.sound_variation``).

Determinism. Every part is rendered by brand-new synthesizers that borrow the SoundFont parsed
once by the renderer, and the voice slots are cleared between passes: the output depends only on
the part, the duration and the settings, bit for bit (a MIDI reset does not clear FluidSynth's
per-voice-slot gains or its reverb state).
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from fractions import Fraction
from pathlib import Path

import numpy as np

from polyamp.constants import SAMPLE_RATE_HZ
from polyamp.errors import SoundFontError
from polyamp.synth.fluidsynth import BLOCK_SAMPLES, DRUM_BANK, DRUM_CHANNEL, FluidSynth
from polyamp.synth.piece import NoteEvent, Part

__all__ = ["CHOKE_GROUPS", "DEFAULT_SYNTH_GAIN", "SoundFontRenderer", "alias_free_rate_hz"]

DEFAULT_SYNTH_GAIN = 0.25
"""FluidSynth master gain for unit-gain stems. Measured: eight 5-note chords at velocity 127 peak at
0.2-0.5 (median 0.22-0.31) over the GM programs of TimGM6mb, FluidR3_GM and MuseScore_General, a
dense drum part at 0.25, so a mix of a few stems rarely clips."""

CHOKE_GROUPS: tuple[frozenset[int], ...] = (
    frozenset({42, 44, 46}),  # closed, pedal, open hi-hat
    frozenset({71, 72}),  # short, long whistle
    frozenset({73, 74}),  # short, long guiro
    frozenset({78, 79}),  # mute, open cuica
    frozenset({80, 81}),  # mute, open triangle
)
"""General MIDI percussion keys that cut each other (SoundFont exclusive classes)."""

MELODIC_CHANNEL = 0
_GHOST_VELOCITY = 1  # -96 dB: only there to trigger FluidSynth's exclusive-class cut
_CHOKE_WINDOW_S = 10.0  # a choke-group note older than this is assumed to have died out
_EFFECTS_CHUNK_SAMPLES = 64 * BLOCK_SAMPLES  # granularity of the check for the end of a reverb tail
_RESAMPLE_MARGIN_SAMPLES = 2 * BLOCK_SAMPLES  # extra internal samples rendered for the resampler's edge
_EFFECTS_SILENCE = 1e-7  # wet chunks below this peak (-140 dBFS) with no voice left end the reverb tail
_MAX_DRAIN_BLOCKS = 1024

SOUNDFONT_SAMPLE_RATE_HZ = 44100
"""Rate at which General MIDI SoundFont samples are typically recorded."""

_NOTE_OFF, _NOTE_ON = 0, 1  # event order at the same sample: offs first, then ons


@dataclasses.dataclass
class _Note:
    """A note in internal-rate samples; ``off`` may lie beyond the clip (then it is never released)."""

    on: int
    off: int
    pitch: int
    velocity: int


def alias_free_rate_hz(sample_rate_hz: int, source_rate_hz: int = SOUNDFONT_SAMPLE_RATE_HZ) -> int:
    """Smallest multiple of ``sample_rate_hz`` at which FluidSynth can play samples recorded at
    ``source_rate_hz`` without aliasing below ``sample_rate_hz / 2`` once resampled down.

    FluidSynth does not low-pass a sample it plays back at a lower rate, so content between the
    synthesis Nyquist ``R / 2`` and ``source_rate_hz / 2`` folds down to ``R - f``; that stays
    above the output band if ``R >= source_rate_hz / 2 + sample_rate_hz / 2`` (32 kHz for 16 kHz).
    """
    needed = source_rate_hz / 2 + sample_rate_hz / 2
    return sample_rate_hz * max(1, math.ceil(needed / sample_rate_hz))


def _grid_at_or_after(sample: int, phase: int) -> int:
    """Smallest ``phase + 64 k >= sample``."""
    return phase + -(-(sample - phase) // BLOCK_SAMPLES) * BLOCK_SAMPLES


def _nearest_grid(sample: int, phase: int) -> int:
    """``phase + 64 k`` nearest to ``sample`` (ties go later)."""
    return phase + ((sample - phase + BLOCK_SAMPLES // 2) // BLOCK_SAMPLES) * BLOCK_SAMPLES


def _choke_group_of(pitch: int) -> int | None:
    for index, group in enumerate(CHOKE_GROUPS):
        if pitch in group:
            return index
    return None


class SoundFontRenderer:
    """Render parts with one SoundFont, loaded once and reused for every part.

    ``sample_rate_hz``: output rate (Hz); ``internal_rate_hz``: rate of the dry synthesis (default
    :func:`alias_free_rate_hz`, 32 kHz for 16 kHz output; anything else than the output rate is
    resampled with ``scipy.signal.resample_poly``); ``reverb``/``chorus``: FluidSynth's effect units;
    ``synth_gain``: FluidSynth master gain (stems come out at unit gain, ``Part.gain_db`` is the
    mixer's job); ``polyphony``: voices per synthesizer.

    Programs missing from the SoundFont fall back to program 0 of bank 0 (or the first preset) and
    are recorded in :attr:`missing_programs` (drum kits: bank 128 kit 0, :attr:`missing_drum_kits`).
    Use as a context manager or call :meth:`close`. Not thread-safe: one renderer per thread.
    """

    def __init__(
        self,
        soundfont_path: str | Path,
        sample_rate_hz: int = SAMPLE_RATE_HZ,
        reverb: bool = True,
        chorus: bool = False,
        synth_gain: float = DEFAULT_SYNTH_GAIN,
        internal_rate_hz: int | None = None,
        polyphony: int = 256,
    ) -> None:
        if sample_rate_hz <= 0:
            raise ValueError(f"sample_rate_hz must be positive, got {sample_rate_hz}")
        if internal_rate_hz is None:
            internal_rate_hz = alias_free_rate_hz(sample_rate_hz)
        if not 8000 <= internal_rate_hz <= 96000:
            raise ValueError(f"internal_rate_hz must be within 8000-96000 Hz, got {internal_rate_hz}")
        if not 0.0 < synth_gain <= 10.0:
            raise ValueError(f"synth_gain must be within (0, 10], got {synth_gain}")
        self.soundfont_path = Path(soundfont_path)
        self.sample_rate_hz = int(sample_rate_hz)
        self.internal_rate_hz = int(internal_rate_hz)
        self.reverb = bool(reverb)
        self.chorus = bool(chorus)
        self.synth_gain = float(synth_gain)
        self.polyphony = int(polyphony)
        self.missing_programs: set[int] = set()
        self.missing_drum_kits: set[int] = set()
        ratio = Fraction(self.sample_rate_hz, self.internal_rate_hz)
        self._resample_up, self._resample_down = ratio.numerator, ratio.denominator
        # The owner only holds the parsed SoundFont; every render borrows it into fresh synthesizers.
        self._owner: FluidSynth | None = FluidSynth(self.internal_rate_hz, gain=self.synth_gain, polyphony=16)
        try:
            self._sfont_id = self._owner.load_soundfont(self.soundfont_path)
            self._sfont = self._owner.soundfont_pointer(self._sfont_id)
            self._presets = self._owner.presets(self._sfont_id)
        except BaseException:
            self.close()
            raise
        if not self._presets:
            self.close()
            raise SoundFontError(f"SoundFont {self.soundfont_path} has no presets: pass a General MIDI SoundFont")
        self._preset_set = set(self._presets)

    # -- public API -------------------------------------------------------------------------------

    @property
    def has_drum_kits(self) -> bool:
        """Whether the SoundFont has a percussion bank (128) for drum parts."""
        return any(bank == DRUM_BANK for bank, _ in self._presets)

    def render_part(self, part: Part, duration_s: float) -> np.ndarray:
        """Render ``part`` into float32 mono of exactly ``round(duration_s * sample_rate_hz)`` samples.

        A note sounds from output sample ``round(note.start_s * sample_rate_hz)``; notes starting at
        or after ``duration_s`` are not played, notes still sounding at the end are cut off.
        ``part.gain_db`` is ignored (unit gain). Same inputs give bit-identical output.
        """
        if not (math.isfinite(duration_s) and duration_s >= 0):
            raise ValueError(f"duration_s must be a finite number >= 0, got {duration_s}")
        num_out = round(duration_s * self.sample_rate_hz)
        if num_out == 0:
            return np.zeros(0, np.float32)
        resample = self.internal_rate_hz != self.sample_rate_hz
        if resample:
            num_internal = math.ceil(num_out * self.internal_rate_hz / self.sample_rate_hz) + _RESAMPLE_MARGIN_SAMPLES
        else:
            num_internal = num_out
        channel, bank, program = self._channel_and_preset(part)
        notes = self._schedule(part.notes, num_internal, self.internal_rate_hz)
        # Left and right are both added into one buffer (room to finish the last block of any phase).
        stereo_sum = np.zeros(_grid_at_or_after(num_internal, 0) + BLOCK_SAMPLES, np.float32)
        if notes:
            self._render_dry(notes, part.is_drum, channel, bank, program, part.sound_offsets, stereo_sum, num_internal)
        mono = stereo_sum[:num_internal] * np.float32(0.5)
        if resample:
            from scipy.signal import resample_poly

            mono = resample_poly(mono, self._resample_up, self._resample_down)[:num_out].astype(np.float32)
        if self.reverb or self.chorus:
            # Effects run at the output rate: they need no alias-free detail, and it halves their cost.
            wet_notes = self._schedule(part.notes, num_out, self.sample_rate_hz)
            if wet_notes:
                mono += self._render_effects(wet_notes, channel, bank, program, part.sound_offsets, num_out)
        return np.ascontiguousarray(mono, dtype=np.float32)

    def render_note(self, program: int, pitch: int, velocity: int, note_s: float, total_s: float) -> np.ndarray:
        """One melodic note held ``note_s`` seconds from time 0 in a ``total_s`` clip (NSynth style:
        3 s held in 4 s), float32 mono of ``round(total_s * sample_rate_hz)`` samples."""
        if not note_s > 0:
            raise ValueError(f"note_s must be positive, got {note_s}")
        note = NoteEvent(pitch=pitch, start_s=0.0, end_s=float(note_s), velocity=velocity)
        part = Part(name=f"program {program} pitch {pitch}", program=program, is_drum=False, notes=(note,))
        return self.render_part(part, total_s)

    def close(self) -> None:
        """Free the SoundFont and FluidSynth; safe to call twice."""
        if self._owner is not None:
            self._owner.close()
            self._owner = None

    def __enter__(self) -> SoundFontRenderer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- presets ----------------------------------------------------------------------------------

    def _channel_and_preset(self, part: Part) -> tuple[int, int, int]:
        """(MIDI channel, bank, program) that will play ``part``, after any fallback."""
        if not 0 <= part.program <= 127:
            raise ValueError(f"part {part.name!r}: program must be within 0-127, got {part.program}")
        if part.is_drum:
            if (DRUM_BANK, part.program) in self._preset_set:
                return DRUM_CHANNEL, DRUM_BANK, part.program
            kits = [program for bank, program in self._presets if bank == DRUM_BANK]
            if not kits:
                raise SoundFontError(
                    f"SoundFont {self.soundfont_path} has no drum kits (bank 128) for drum part {part.name!r}: "
                    "use a General MIDI SoundFont"
                )
            self.missing_drum_kits.add(part.program)
            return DRUM_CHANNEL, DRUM_BANK, 0 if 0 in kits else kits[0]
        if (0, part.program) in self._preset_set:
            return MELODIC_CHANNEL, 0, part.program
        self.missing_programs.add(part.program)
        if (0, 0) in self._preset_set:
            return MELODIC_CHANNEL, 0, 0
        melodic = [preset for preset in self._presets if preset[0] != DRUM_BANK] or self._presets
        return MELODIC_CHANNEL, melodic[0][0], melodic[0][1]

    # -- scheduling -------------------------------------------------------------------------------

    def _schedule(self, notes: tuple[NoteEvent, ...], num_samples: int, rate: int) -> list[_Note]:
        """Notes in samples at ``rate`` that start before ``num_samples``, sorted by onset; a re-struck
        pitch ends the earlier note.

        Times go through the output sample grid first (``round(t * sample_rate_hz)``), so with an
        internal rate that is a multiple of the output rate an onset lands EXACTLY on its output sample.
        """
        scale = rate / self.sample_rate_hz
        by_pitch: dict[int, list[_Note]] = defaultdict(list)
        for note in notes:
            if not 0 <= note.pitch <= 127:
                raise ValueError(f"MIDI pitch must be within 0-127, got {note.pitch}")
            if not 1 <= note.velocity <= 127:
                raise ValueError(f"MIDI velocity must be within 1-127, got {note.velocity}")
            if not (math.isfinite(note.start_s) and math.isfinite(note.end_s) and note.start_s >= 0):
                raise ValueError(f"note times must be finite and start >= 0, got {note.start_s}-{note.end_s} s")
            on = round(round(note.start_s * self.sample_rate_hz) * scale)
            if on >= num_samples:
                continue
            off = max(round(round(note.end_s * self.sample_rate_hz) * scale), on)
            by_pitch[note.pitch].append(_Note(on, off, note.pitch, note.velocity))
        scheduled: list[_Note] = []
        for pitch_notes in by_pitch.values():
            pitch_notes.sort(key=lambda n: (n.on, -n.off))
            kept: list[_Note] = []
            for note in pitch_notes:
                if kept and kept[-1].on == note.on:
                    # Two strikes of one key at one instant sound as one: keep the louder, longer one.
                    kept[-1].velocity = max(kept[-1].velocity, note.velocity)
                    continue
                if kept and kept[-1].off > note.on:
                    kept[-1].off = note.on
                kept.append(note)
            scheduled.extend(kept)
        scheduled.sort(key=lambda n: (n.on, n.pitch))
        return scheduled

    def _phase_events(
        self, notes: list[_Note], is_drum: bool, num_internal: int
    ) -> dict[int, list[tuple[int, int, int, int]]]:
        """Events ``(sample, kind, pitch, velocity)`` of each phase pass, keyed by onset phase (0-63)."""
        passes: dict[int, list[tuple[int, int, int, int]]] = defaultdict(list)
        ghosts: list[tuple[int, int, int]] = []  # (phase, sample, pitch)
        # Per choke group: phase -> onset of the group's latest, possibly still sounding, note there.
        sounding: list[dict[int, int]] = [{} for _ in CHOKE_GROUPS]
        choke_window = round(_CHOKE_WINDOW_S * self.internal_rate_hz)
        for note in notes:
            phase = note.on % BLOCK_SAMPLES
            group = _choke_group_of(note.pitch) if is_drum else None
            if group is not None:
                # This strike cuts the group's notes sounding in other passes: replay it there.
                for other_phase, last_on in sounding[group].items():
                    if other_phase != phase and note.on - last_on <= choke_window:
                        ghost = max(_nearest_grid(note.on, other_phase), last_on + BLOCK_SAMPLES)
                        if ghost < num_internal:
                            ghosts.append((other_phase, ghost, note.pitch))
                sounding[group] = {phase: note.on}
            passes[phase].append((note.on, _NOTE_ON, note.pitch, note.velocity))
            off = max(_nearest_grid(note.off, phase), note.on + BLOCK_SAMPLES)
            if off < num_internal:
                passes[phase].append((off, _NOTE_OFF, note.pitch, 0))
        for phase, sample, pitch in ghosts:
            group = _choke_group_of(pitch)
            struck = any(
                event[0] == sample and event[1] == _NOTE_ON and _choke_group_of(event[2]) == group
                for event in passes[phase]
            )
            if not struck:  # a real strike of the group at that sample already cuts natively
                passes[phase].append((sample, _NOTE_ON, pitch, _GHOST_VELOCITY))
                passes[phase].append((sample + BLOCK_SAMPLES, _NOTE_OFF, pitch, 0))
        for events in passes.values():
            events.sort()
        return dict(sorted(passes.items()))

    # -- synthesis --------------------------------------------------------------------------------

    def _new_synth(self, effects: bool) -> tuple[FluidSynth, int]:
        """A fresh synthesizer borrowing the SoundFont: dry at the internal rate, or effects at the output rate."""
        if self._owner is None:
            raise RuntimeError("this SoundFontRenderer is closed")
        synth = FluidSynth(
            self.sample_rate_hz if effects else self.internal_rate_hz,
            gain=self.synth_gain,
            reverb=effects and self.reverb,
            chorus=effects and self.chorus,
            polyphony=self.polyphony,
        )
        try:
            sfont_id = synth.borrow_soundfont(self._sfont)
        except BaseException:
            synth.close()
            raise
        return synth, sfont_id

    @staticmethod
    def _select(
        synth: FluidSynth,
        sfont_id: int,
        channel: int,
        bank: int,
        program: int,
        sound_offsets: tuple[tuple[int, float], ...] = (),
    ) -> None:
        synth.set_drum_channel(channel, channel == DRUM_CHANNEL)
        synth.program_select(channel, sfont_id, bank, program)
        for generator, offset in sound_offsets:
            synth.set_generator_offset(channel, generator, offset)

    @staticmethod
    def _send(synth: FluidSynth, channel: int, event: tuple[int, int, int, int]) -> None:
        _, kind, pitch, velocity = event
        if kind == _NOTE_ON:
            synth.noteon(channel, pitch, velocity)
        else:
            synth.noteoff(channel, pitch)

    @staticmethod
    def _drain(synth: FluidSynth, scratch: np.ndarray) -> None:
        """Stop every voice (rendering the stop into ``scratch``) and reset the MIDI state."""
        synth.all_sounds_off()
        for _ in range(_MAX_DRAIN_BLOCKS):
            synth.mix_dry(scratch[0], scratch[1], 0, BLOCK_SAMPLES)
            if synth.active_voices() == 0:
                break
        else:
            raise RuntimeError("FluidSynth voices did not stop after all-sounds-off")
        synth.system_reset()

    def _clear_voice_slots(
        self, synth: FluidSynth, sfont_id: int, channel: int, bank: int, program: int, slots: int, scratch: np.ndarray
    ) -> None:
        """Make the first ``slots`` voice slots start their next voice like a fresh synthesizer does.

        A FluidSynth voice slot remembers the output gains of its last voice and ramps from them
        over the first block of the next one (a fresh slot ramps from 0). Playing a silent voice
        (master gain 0) in each slot for one block brings them back to 0, so each note's rendering
        does not depend on which notes of the part were rendered before it. FluidSynth fills the
        lowest free slot first, so a pass that had at most ``n`` voices at once used slots 0..n-1.
        """
        synth.set_gain(0.0)
        self._select(synth, sfont_id, channel, bank, program)
        for attempt in range(4 * 128):
            if synth.active_voices() >= min(slots, self.polyphony):
                break
            synth.noteon(channel, attempt % 128, 127)
        synth.mix_dry(scratch[0], scratch[1], 0, BLOCK_SAMPLES)
        self._drain(synth, scratch)
        synth.set_gain(self.synth_gain)

    def _render_dry(
        self,
        notes: list[_Note],
        is_drum: bool,
        channel: int,
        bank: int,
        program: int,
        sound_offsets: tuple[tuple[int, float], ...],
        stereo_sum: np.ndarray,
        num_internal: int,
    ) -> None:
        """Add the dry signal (left + right) of ``notes`` into ``stereo_sum``, one phase pass at a time."""
        synth, sfont_id = self._new_synth(effects=False)
        scratch = np.zeros((2, BLOCK_SAMPLES), np.float32)
        try:
            dirty_slots = 0  # voice slots used since the synthesizer was fresh or last cleared
            for phase, events in self._phase_events(notes, is_drum, num_internal).items():
                if dirty_slots:
                    self._clear_voice_slots(synth, sfont_id, channel, bank, program, dirty_slots, scratch)
                    dirty_slots = 0
                self._select(synth, sfont_id, channel, bank, program, sound_offsets)
                pos = events[0][0]  # an onset of this phase: the pass's blocks start on its grid
                for event in events:
                    sample = event[0]
                    if sample >= num_internal:
                        break
                    if sample > pos:
                        sounding = synth.active_voices()
                        dirty_slots = max(dirty_slots, sounding)
                        if sounding:  # idle stretches of a pass are skipped: adding silence is a no-op
                            synth.mix_dry(stereo_sum, stereo_sum, pos, sample)
                        pos = sample
                    self._send(synth, channel, event)
                sounding = synth.active_voices()
                dirty_slots = max(dirty_slots, sounding)
                if sounding:
                    synth.mix_dry(stereo_sum, stereo_sum, pos, _grid_at_or_after(num_internal, phase))
                self._drain(synth, scratch)
        finally:
            synth.close()

    def _render_effects(
        self,
        notes: list[_Note],
        channel: int,
        bank: int,
        program: int,
        sound_offsets: tuple[tuple[int, float], ...],
        num_out: int,
    ) -> np.ndarray:
        """Mono reverb/chorus output (``num_out`` samples at the output rate) of ``notes``, whose events
        are played on the nearest block start."""
        events = []
        for note in notes:
            on = _nearest_grid(note.on, 0)
            events.append((on, _NOTE_ON, note.pitch, note.velocity))
            events.append((max(_nearest_grid(note.off, 0), on + BLOCK_SAMPLES), _NOTE_OFF, note.pitch, 0))
        events.sort()
        end = _grid_at_or_after(num_out, 0)
        events = [event for event in events if event[0] < end]
        events.append((end, _NOTE_OFF, -1, 0))  # sentinel: render up to the end
        stereo_sum = np.zeros(end, np.float32)  # left and right are both added here
        synth, sfont_id = self._new_synth(effects=True)
        try:
            # The effects input needs no fine detail: linear interpolation saves ~20 % of the voices' cost.
            synth.set_interpolation(1)
            self._select(synth, sfont_id, channel, bank, program, sound_offsets)
            pos = 0
            silent = True  # no voice sounds and the effects output has died out
            for event in events:
                sample = event[0]
                while pos < sample and not silent:
                    stop = min(pos + _EFFECTS_CHUNK_SAMPLES, sample)
                    synth.mix_effects(stereo_sum, stereo_sum, pos, stop)
                    if not synth.active_voices():
                        silent = bool(np.abs(stereo_sum[pos:stop]).max() < 2 * _EFFECTS_SILENCE)
                    pos = stop
                pos = max(pos, sample)  # a silent stretch is skipped in whole blocks
                if event[2] >= 0:
                    self._send(synth, channel, event)
                    silent = False
        finally:
            synth.close()
        return stereo_sum[:num_out] * np.float32(0.5)
