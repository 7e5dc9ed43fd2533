"""``polyamp synth``: render MIDI collections into Slakh2100-layout training data, on Apache Beam.

Sources are MIDI files and/or works of music21's built-in corpus (never the reserved
evaluation works). Each piece is arranged (programs by strategy, humanised velocities and
timing, stem gains, optional transposition), rendered stem by stem with FluidSynth and a
SoundFont, and written as ``<output>/<split>/TrackNNNNN/`` (mix, stems, per-stem MIDI,
``metadata.yaml``). A piece's split follows from its id alone, so renders with other
SoundFonts or seeds keep every piece in the same split.

Pieces are taken in a seeded order until ``minutes`` of audio (or ``max_pieces``) are reached:
the selection is the shortest prefix of that order, so it is the same however the work is
spread over workers. With the same inputs and seed every output file is byte-identical.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import pathlib
import tempfile
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

import gin

from polyamp.constants import SAMPLE_RATE_HZ
from polyamp.errors import ConfigError, DatasetError, OutputExistsError, SoundFontError
from polyamp.synth.short_loops import ShortLoopOptions, write_short_loop_soundfont

RELEASE_TAIL_S = 1.5
"""Audio kept after the last note-off, for release and reverb tails."""
ESTIMATED_PIECE_S = 60.0
"""First guess of a piece's length, used to size the first batch of pieces to load."""
MANIFEST_NAME = "synth_manifest.json"


@dataclasses.dataclass(frozen=True)
class PieceSource:
    """Where a piece comes from: ``kind`` ``corpus`` (a music21 corpus path) or ``midi`` (a file)."""

    kind: str
    path: str
    rank: int

    def describe(self) -> str:
        return f"{self.kind} {self.path}"


@dataclasses.dataclass
class SynthReport:
    """What a ``synth`` run wrote: one manifest entry per track, skipped sources, seconds of audio."""

    output_dir: pathlib.Path
    tracks: list[dict[str, Any]]
    skipped: list[str]
    nsynth_notes: int = 0

    @property
    def seconds(self) -> float:
        return sum(track["duration_s"] for track in self.tracks)


def split_of(piece_id: str, validation_fraction: float, test_fraction: float) -> str:
    """Split of a piece from a stable hash of its id: the same for every seed and SoundFont."""
    position = (zlib.crc32(piece_id.encode("utf-8")) % 10000) / 10000
    if position < test_fraction:
        return "test"
    if position < test_fraction + validation_fraction:
        return "validation"
    return "train"


def list_sources(
    midi_dir: str | os.PathLike[str] | None,
    corpus: bool,
    corpus_include: Sequence[str] | None,
    seed: int,
) -> list[PieceSource]:
    """Every candidate piece in the order pieces are taken: MIDI files, then corpus works (seeded order)."""
    from polyamp.synth import sources

    candidates: list[tuple[str, str]] = []
    if midi_dir is not None:
        candidates += [("midi", str(path)) for path in sources.list_midi_files(midi_dir)]
    if corpus:
        works = interleave_composers(sources.list_corpus_works(seed, include=corpus_include))
        candidates += [("corpus", path) for path in works]
    if not candidates:
        raise ConfigError("nothing to render: give --midi-dir and/or --corpus")
    return [PieceSource(kind, path, rank) for rank, (kind, path) in enumerate(candidates)]


def source_piece_id(source: PieceSource) -> str:
    """The piece id a source's piece will have, known without reading it (its split follows from it)."""
    from polyamp.synth import sources

    if source.kind == "corpus":
        return sources.corpus_piece_id(source.path)
    return sources.midi_piece_id(source.path)


def sources_in_splits(
    candidates: Sequence[PieceSource], splits: Sequence[str], validation_fraction: float, test_fraction: float
) -> list[PieceSource]:
    """The candidates whose pieces fall in ``splits`` (ranks renumbered, order kept); ConfigError for unknown splits."""
    unknown = sorted(set(splits) - {"train", "validation", "test"})
    if unknown:
        raise ConfigError(f"unknown split {unknown[0]!r}; valid splits: train, validation, test")
    kept = [
        source
        for source in candidates
        if split_of(source_piece_id(source), validation_fraction, test_fraction) in set(splits)
    ]
    if not kept:
        raise ConfigError(f"no source piece falls in the split(s) {', '.join(splits)}")
    return [dataclasses.replace(source, rank=rank) for rank, source in enumerate(kept)]


def interleave_composers(paths: Sequence[str]) -> list[str]:
    """Corpus paths taken round-robin over composers (first path component), each keeping its order.

    music21's corpus is 70 % Palestrina masses; interleaving gives every composer's style an
    equal share of the first pieces taken.
    """
    queues: dict[str, list[str]] = {}
    for path in paths:
        queues.setdefault(path.split("/", 1)[0], []).append(path)
    ordered = []
    position = 0
    while len(ordered) < len(paths):
        for queue in queues.values():
            if position < len(queue):
                ordered.append(queue[position])
        position += 1
    return ordered


def load_piece(source: PieceSource, arrange_options: Any, seed: int) -> Any:
    """The arranged :class:`Piece` of a source (raises PolyAMP errors for unreadable sources)."""
    from polyamp.synth import arrange, sources

    if source.kind == "corpus":
        piece = sources.piece_from_corpus(source.path)
    else:
        piece = sources.piece_from_midi_file(source.path)
    piece = arrange.arrange_piece(piece, arrange_options, seed)
    if not piece.parts or piece.num_notes == 0:
        raise DatasetError(f"{source.describe()}: no notes to render")
    return piece


def select_prefix(
    loaded: list[tuple[int, Any]], budget_s: float | None, budget_pieces: int | None
) -> tuple[list[Any], bool]:
    """The shortest rank-ordered prefix of ``(rank, piece)`` reaching the budgets; and whether it did."""
    chosen = []
    seconds = 0.0
    for _, piece in sorted(loaded, key=lambda pair: pair[0]):
        if budget_pieces is not None and len(chosen) >= budget_pieces:
            return chosen, True
        if budget_s is not None and seconds >= budget_s:
            return chosen, True
        chosen.append(piece)
        seconds += piece.duration_s + RELEASE_TAIL_S
    reached = (budget_pieces is not None and len(chosen) >= budget_pieces) or (
        budget_s is not None and seconds >= budget_s
    )
    return chosen, reached


@gin.configurable
def render_settings(
    reverb: bool = True,
    chorus: bool = False,
    synth_gain: float = 0.25,
    internal_rate_hz: int | None = None,
) -> dict[str, Any]:
    """FluidSynth settings for every worker's SoundFontRenderer (resolved from gin on the driver,
    since Beam workers do not see the driver's gin bindings). ``internal_rate_hz`` None: 32 kHz
    synthesis resampled to 16 kHz (alias-free below 8 kHz); 16000 renders faster but aliases."""
    return {"reverb": reverb, "chorus": chorus, "synth_gain": synth_gain, "internal_rate_hz": internal_rate_hz}


@gin.configurable(denylist=["output_dir", "soundfont", "overwrite", "pipeline_args"])
def synthesize_dataset(
    output_dir: str | os.PathLike[str],
    soundfont: str | os.PathLike[str],
    *,
    midi_dir: str | os.PathLike[str] | None = None,
    corpus: bool = False,
    corpus_include: Sequence[str] | None = None,
    minutes: float | None = None,
    max_pieces: int | None = None,
    seed: int = 0,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    sample_rate_hz: int = SAMPLE_RATE_HZ,
    nsynth_notes: int = 0,
    arrange_options: Any = None,
    overwrite: bool = False,
    pipeline_args: Sequence[str] | None = None,
    splits: Sequence[str] | None = None,
    short_loops: ShortLoopOptions | None = None,
) -> SynthReport:
    """Renders pieces into ``<output_dir>/<split>/TrackNNNNN`` (Slakh2100 layout, 16 kHz FLAC).

    ``minutes``: stop once this much audio is rendered (None: no limit); ``max_pieces``: at
    most this many pieces. ``nsynth_notes`` > 0 also writes an NSynth-style single-note set
    (4 s notes, family labels) to ``<output_dir>/nsynth/``. ``splits`` (e.g. ``["test"]``) renders
    only the pieces of those splits, so held-out pieces can be rendered with another SoundFont
    without rendering the training pieces. Unreadable sources are skipped and reported. Refuses a
    non-empty ``output_dir`` unless ``overwrite``. ``short_loops`` (a
    :class:`~polyamp.synth.short_loops.ShortLoopOptions`) renders with a short-loop copy of the SF2
    ``soundfont`` (written to a temporary folder in ``output_dir`` and removed afterwards; the
    manifest records the options).
    """
    from polyamp.synth.arrange import ArrangeOptions
    from polyamp.synth.render import SoundFontRenderer

    arrange_options = arrange_options or ArrangeOptions()
    if minutes is not None and minutes <= 0:
        raise ConfigError(f"--minutes must be > 0, got {minutes}")
    if max_pieces is not None and max_pieces <= 0:
        raise ConfigError(f"--max-pieces must be > 0, got {max_pieces}")
    if validation_fraction < 0 or test_fraction < 0 or validation_fraction + test_fraction > 1:
        raise ConfigError("validation and test fractions must be >= 0 and sum to at most 1")
    soundfont = str(soundfont)
    if short_loops is not None and pathlib.Path(soundfont).suffix.lower() != ".sf2":
        raise ConfigError(f"short loops: need an uncompressed .sf2 SoundFont, got {os.path.basename(soundfont)}")
    settings = render_settings()
    with SoundFontRenderer(soundfont, sample_rate_hz=sample_rate_hz, **settings):
        pass  # a missing FluidSynth or a bad SoundFont fails here, once, before any worker starts
    output_dir = pathlib.Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise OutputExistsError(f"output path exists and is not a folder: {output_dir}")
    if output_dir.is_dir() and any(output_dir.iterdir()) and not overwrite:
        raise OutputExistsError(f"output folder is not empty: {output_dir} (use --overwrite to replace its tracks)")
    output_dir.mkdir(parents=True, exist_ok=True)
    with _rendering_soundfont(soundfont, short_loops, output_dir) as rendering_soundfont:
        candidates = list_sources(midi_dir, corpus, corpus_include, seed)
        if splits:
            candidates = sources_in_splits(candidates, splits, validation_fraction, test_fraction)
        budget_s = None if minutes is None else minutes * 60.0
        tracks: list[dict[str, Any]] = []
        skipped: list[str] = []
        next_rank = 0
        mean_piece_s = ESTIMATED_PIECE_S
        while next_rank < len(candidates):
            remaining_s = None if budget_s is None else budget_s - sum(track["duration_s"] for track in tracks)
            remaining_pieces = None if max_pieces is None else max_pieces - len(tracks)
            if (remaining_s is not None and remaining_s <= 0) or remaining_pieces == 0:
                break
            batch = _next_batch(candidates, next_rank, remaining_s, remaining_pieces, mean_piece_s)
            next_rank = batch[-1].rank + 1
            rendered, batch_skipped, reached = _render_round(
                batch,
                remaining_s,
                remaining_pieces,
                first_number=len(tracks) + 1,
                output_dir=output_dir,
                soundfont=rendering_soundfont,
                seed=seed,
                fractions=(validation_fraction, test_fraction),
                sample_rate_hz=sample_rate_hz,
                arrange_options=arrange_options,
                overwrite=overwrite,
                pipeline_args=pipeline_args,
                settings=settings,
            )
            tracks += rendered
            skipped += batch_skipped
            if rendered:
                mean_piece_s = max(5.0, sum(track["duration_s"] for track in tracks) / len(tracks))
            if reached:
                break
        if not tracks:
            first = f": {skipped[0]}" if skipped else ""
            raise DatasetError(f"no piece could be rendered ({len(skipped)} skipped{first})")
        nsynth_written = 0
        if nsynth_notes > 0:
            from polyamp.synth.nsynth_set import render_nsynth_set

            nsynth_written, nsynth_skipped = render_nsynth_set(
                output_dir / "nsynth",
                rendering_soundfont,
                nsynth_notes,
                seed,
                sample_rate_hz,
                pipeline_args,
                overwrite=overwrite,
                settings=settings,
            )
            skipped += nsynth_skipped
    tracks.sort(key=lambda track: track["track"])
    manifest = {"seed": seed, "soundfont": os.path.basename(soundfont), "tracks": tracks}
    if short_loops is not None:
        manifest["short_loops"] = dataclasses.asdict(short_loops)
    from polyamp.fileio import atomic_write_text

    atomic_write_text(output_dir / MANIFEST_NAME, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return SynthReport(output_dir=output_dir, tracks=tracks, skipped=skipped, nsynth_notes=nsynth_written)


@contextlib.contextmanager
def _rendering_soundfont(
    soundfont: str, short_loops: ShortLoopOptions | None, output_dir: pathlib.Path
) -> Iterator[str]:
    """``soundfont`` itself, or (``short_loops`` given) a short-loop copy of it under the same file name
    in a temporary folder of ``output_dir``, removed when the block ends."""
    if short_loops is None:
        yield soundfont
        return
    with tempfile.TemporaryDirectory(prefix=".short-loops-", dir=output_dir) as folder:
        copy = pathlib.Path(folder) / os.path.basename(soundfont)
        try:
            write_short_loop_soundfont(soundfont, copy, short_loops)
        except SoundFontError as error:
            raise ConfigError(f"short loops: {error}") from None
        yield str(copy)


def _next_batch(
    candidates: list[PieceSource],
    start: int,
    remaining_s: float | None,
    remaining_pieces: int | None,
    mean_piece_s: float,
) -> list[PieceSource]:
    """The next candidates to load: enough to reach the budget with a margin, given pieces' mean length."""
    if remaining_s is None and remaining_pieces is None:
        count = len(candidates) - start
    else:
        by_time = math.inf if remaining_s is None else math.ceil(1.3 * remaining_s / mean_piece_s) + 4
        by_count = math.inf if remaining_pieces is None else remaining_pieces + 4
        count = int(min(by_time, by_count))
    return candidates[start : start + max(1, count)]


def _render_round(
    batch: list[PieceSource],
    remaining_s: float | None,
    remaining_pieces: int | None,
    *,
    first_number: int,
    output_dir: pathlib.Path,
    soundfont: str,
    seed: int,
    fractions: tuple[float, float],
    sample_rate_hz: int,
    arrange_options: Any,
    overwrite: bool,
    pipeline_args: Sequence[str] | None,
    settings: dict[str, Any],
) -> tuple[list[dict[str, Any]], list[str], bool]:
    """One Beam pipeline: load + arrange the batch, keep the budget's prefix, render it."""
    from polyamp.data import beam_runner

    validation_fraction, test_fraction = fractions

    def load(source: PieceSource) -> Iterator[tuple[int, Any]]:
        yield source.rank, load_piece(source, arrange_options, seed)

    def choose(loaded: list[tuple[int, Any]]) -> Iterator[tuple[int, str, Any]]:
        chosen, _ = select_prefix(loaded, remaining_s, remaining_pieces)
        for offset, piece in enumerate(chosen):
            yield first_number + offset, split_of(piece.piece_id, validation_fraction, test_fraction), piece

    with tempfile.TemporaryDirectory(prefix="polyamp-synth-") as report_dir:
        tracks_file = os.path.join(report_dir, "tracks.json")
        skipped_file = os.path.join(report_dir, "skipped.json")
        summary_file = os.path.join(report_dir, "summary.json")

        def build(pipeline: Any) -> None:
            import apache_beam as beam

            loaded = (
                pipeline
                | "sources" >> beam.Create(batch, reshuffle=False)
                | "spread sources" >> beam.Reshuffle()
                | "load and arrange"
                >> beam.ParDo(beam_runner.make_skip_bad_items(load)).with_outputs(
                    beam_runner.SKIPPED_TAG, main="pieces"
                )
            )
            chosen = loaded.pieces | "gather pieces" >> beam.combiners.ToList() | "choose" >> beam.FlatMap(choose)
            beam_runner.collect_to_file(
                loaded.pieces | "durations" >> beam.Map(lambda pair: [pair[0], pair[1].duration_s]),
                summary_file,
                "summary",
            )
            rendered = (
                chosen
                | "spread pieces" >> beam.Reshuffle()
                | "render"
                >> beam.ParDo(
                    beam_runner.make_skip_bad_items(
                        _RenderAdapter(str(output_dir), soundfont, seed, sample_rate_hz, overwrite, settings)
                    )
                ).with_outputs(beam_runner.SKIPPED_TAG, main="tracks")
            )
            beam_runner.collect_to_file(rendered.tracks, tracks_file, "tracks")
            beam_runner.collect_to_file(
                (loaded[beam_runner.SKIPPED_TAG], rendered[beam_runner.SKIPPED_TAG]) | "all skips" >> beam.Flatten(),
                skipped_file,
                "skips",
            )

        beam_runner.run_pipeline(build, pipeline_args)
        tracks = beam_runner.read_collected(tracks_file)
        skipped = beam_runner.read_collected(skipped_file)
        durations = beam_runner.read_collected(summary_file)
    loaded_total_s = sum(duration + RELEASE_TAIL_S for _, duration in durations)
    reached = (remaining_s is not None and loaded_total_s >= remaining_s) or (
        remaining_pieces is not None and len(durations) >= remaining_pieces
    )
    return tracks, skipped, reached


class _RenderAdapter:
    """Picklable ``(number, split, piece) -> [track entry]`` holding one SoundFont renderer per process."""

    _renderers: dict[tuple[str, int], Any] = {}

    def __init__(
        self,
        output_dir: str,
        soundfont: str,
        seed: int,
        sample_rate_hz: int,
        overwrite: bool,
        settings: dict[str, Any],
    ) -> None:
        self.settings = dict(settings)
        self.output_dir = output_dir
        self.soundfont = soundfont
        self.seed = seed
        self.sample_rate_hz = sample_rate_hz
        self.overwrite = overwrite

    def _renderer(self) -> Any:
        from polyamp.synth.render import SoundFontRenderer

        key = (self.soundfont, self.sample_rate_hz, tuple(sorted(self.settings.items())))
        if key not in self._renderers:
            self._renderers[key] = SoundFontRenderer(
                self.soundfont, sample_rate_hz=self.sample_rate_hz, **self.settings
            )
        return self._renderers[key]

    def __call__(self, element: tuple[int, str, Any]) -> Iterator[dict[str, Any]]:
        from polyamp.data.slakh_layout import write_slakh_track

        number, split, piece = element
        duration_s = piece.duration_s + RELEASE_TAIL_S
        renderer = self._renderer()
        stems = [renderer.render_part(part, duration_s) for part in piece.parts]
        name = f"Track{number:05d}"
        write_slakh_track(
            pathlib.Path(self.output_dir) / split / name,
            piece,
            stems,
            sample_rate_hz=self.sample_rate_hz,
            metadata_extra={"soundfont": os.path.basename(self.soundfont), "seed": self.seed},
            overwrite=self.overwrite,
        )
        yield {
            "track": f"{split}/{name}",
            "split": split,
            "piece_id": piece.piece_id,
            "source": piece.source,
            "duration_s": round(duration_s, 3),
            "notes": piece.num_notes,
            "stems": [
                {
                    "program": part.program,
                    "is_drum": part.is_drum,
                    "family": part.family_name,
                    **({"sound_offsets": [list(pair) for pair in part.sound_offsets]} if part.sound_offsets else {}),
                }
                for part in piece.parts
            ],
        }
