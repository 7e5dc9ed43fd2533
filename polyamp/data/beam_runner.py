"""Running PolyAMP's data pipelines on Apache Beam: options, per-item error handling, shard writing.

Every data job (``polyamp prepare``, ``polyamp synth``) is a Beam pipeline. By default it runs on
the DirectRunner in multi-processing mode with one worker per core; any Beam runner (Dataflow,
Flink, Spark, ...) is chosen with the standard pipeline options (``--runner=FlinkRunner ...``).

Bad inputs never stop a job: :class:`SkipBadItems` turns a failing item into a one-line message
on a ``skipped`` output, and the driver reports how many were skipped and why.
Shards are written deterministically (records sorted by key inside each shard) to temporary
names and renamed only when the whole pipeline has succeeded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import pathlib
import sys
import tempfile
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from polyamp.errors import ConfigError, MissingDependencyError, PolyampError

logger = logging.getLogger(__name__)

SKIPPED_TAG = "skipped"

DEFAULT_PIPELINE_ARGS = (
    "--runner=DirectRunner",
    "--direct_running_mode=multi_processing",
    "--direct_num_workers=0",  # 0: one worker per core
    "--default_sdk_harness_log_level=WARNING",
)


def split_pipeline_args(text: str | Sequence[str] | None) -> list[str]:
    """Pipeline options from ``--pipeline-options`` text (comma- or space-separated) or a list."""
    if not text:
        return []
    if isinstance(text, str):
        return [part for chunk in text.split(",") for part in chunk.split() if part]
    return [str(part) for part in text]


def make_pipeline_options(pipeline_args: Sequence[str] | None = None) -> Any:
    """Beam ``PipelineOptions``: the defaults above, overridden by ``pipeline_args``.

    Unknown options raise ConfigError (Beam itself would silently drop them).
    """
    try:
        _import_beam_quietly()
        from apache_beam.options.pipeline_options import PipelineOptions
    except ImportError as error:  # pragma: no cover - apache-beam is a dependency
        raise MissingDependencyError("Apache Beam is not installed: pip install apache-beam") from error

    args = list(DEFAULT_PIPELINE_ARGS) + list(pipeline_args or [])
    user_runner = [arg for arg in (pipeline_args or []) if arg.startswith("--runner")]
    if user_runner and "DirectRunner" not in user_runner[-1]:
        args = [arg for arg in args if not arg.startswith("--direct_")] + list(pipeline_args or [])
        args = [arg for arg in args if arg != "--runner=DirectRunner"]
    options = PipelineOptions(args)
    known = options.get_all_options()
    with _quiet_beam_warnings():
        everything = options.get_all_options(retain_unknown_options=True)
    unknown = sorted(set(everything) - set(known))
    if unknown:
        raise ConfigError(f"unknown Beam pipeline option(s): {', '.join('--' + name for name in unknown)}")
    if known.get("direct_num_workers") == 0:
        options.view_as(_direct_options()).direct_num_workers = os.cpu_count() or 1
    return options


def _import_beam_quietly() -> None:
    """Imports apache_beam with the root logger muted: it warns about optional GCP clients at import."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        import apache_beam  # noqa: F401
    finally:
        root.setLevel(level)


def _direct_options() -> Any:
    from apache_beam.options.pipeline_options import DirectOptions

    return DirectOptions


class _quiet_beam_warnings:
    def __enter__(self) -> None:
        self.logger = logging.getLogger("apache_beam.options.pipeline_options")
        self.level = self.logger.level
        self.logger.setLevel(logging.ERROR)

    def __exit__(self, *exc: object) -> None:
        self.logger.setLevel(self.level)


def quiet_beam_logging() -> None:
    """Keeps Beam's INFO chatter (worker start-up, gRPC channels) out of the user's terminal."""
    for name in ("apache_beam", "apache_beam.runners", "apache_beam.runners.worker"):
        logging.getLogger(name).setLevel(logging.WARNING)


def describe_item(item: Any) -> str:
    """A short name for an input item in skip messages (its path or id when it has one)."""
    for attribute in ("describe", "example_id", "track_id", "piece_id", "path", "source"):
        value = getattr(item, attribute, None)
        if callable(value):
            return str(value())
        if value is not None:
            return str(value)
    return str(item)[:120]


class Skipped(str):
    """Yielded by an item function for a part of an item that was skipped (the message)."""


def make_skip_bad_items(function: Callable[[Any], Iterable[Any]]) -> Any:
    """A Beam DoFn applying ``function`` to each item; failures go to the ``skipped`` output.

    A PolyampError (bad input) becomes its own one-line message; any other exception is
    reported as unexpected, with its type, so one bad item never stops a corpus-sized job.
    ``function`` may also yield :class:`Skipped` messages for parts of an item it skipped.
    """
    import apache_beam as beam

    class SkipBadItems(beam.DoFn):
        def process(self, item: Any) -> Iterator[Any]:
            try:
                outputs = list(function(item))
            except PolyampError as error:
                yield beam.pvalue.TaggedOutput(SKIPPED_TAG, _one_line(str(error)))
                return
            except Exception as error:  # noqa: BLE001 - reported, never silent
                logger.debug("unexpected error on %s", describe_item(item), exc_info=True)
                yield beam.pvalue.TaggedOutput(
                    SKIPPED_TAG, _one_line(f"{describe_item(item)}: unexpected {type(error).__name__}: {error}")
                )
                return
            for output in outputs:
                if isinstance(output, Skipped):
                    yield beam.pvalue.TaggedOutput(SKIPPED_TAG, _one_line(str(output)))
                else:
                    yield output

    return SkipBadItems()


def _one_line(text: str) -> str:
    return " ".join(text.split())[:400]


def shard_of(key: str, num_shards: int) -> int:
    """Stable shard index of a record key (crc32, the same in every process and run)."""
    return zlib.crc32(key.encode("utf-8")) % num_shards


@dataclasses.dataclass(frozen=True)
class ShardSpec:
    """Where one split's shards go: ``<output_dir>/<name>-SSSSS-of-NNNNN`` (temporary suffix until done)."""

    output_dir: str
    name: str
    num_shards: int
    token: str

    def final_path(self, index: int) -> pathlib.Path:
        return pathlib.Path(self.output_dir) / f"{self.name}-{index:05d}-of-{self.num_shards:05d}"

    def temp_path(self, index: int) -> pathlib.Path:
        final = self.final_path(index)
        return final.with_name(f".{final.name}.{self.token}.tmp")


def new_shard_spec(output_dir: str | os.PathLike[str], name: str, num_shards: int) -> ShardSpec:
    """A ShardSpec with a fresh temporary-name token."""
    return ShardSpec(str(output_dir), name, max(1, int(num_shards)), uuid.uuid4().hex[:12])


def write_shards(records: Any, spec: ShardSpec, label: str) -> Any:
    """Beam: ``(key, serialized record)`` pairs -> TFRecord shards under temporary names.

    Records go to shard ``shard_of(key)`` and are written sorted by key, so the same records
    give byte-identical shards whatever the runner's ordering. Returns a PCollection of
    ``(shard index, record count)``.
    """
    import apache_beam as beam

    def write(element: tuple[int, Iterable[tuple[str, bytes]]]) -> tuple[int, int]:
        import tensorflow as tf

        index, items = element
        ordered = sorted(items, key=lambda pair: pair[0])
        path = spec.temp_path(index)
        with tf.io.TFRecordWriter(str(path)) as writer:
            for _, record in ordered:
                writer.write(record)
        return index, len(ordered)

    return (
        records
        | f"{label}: key by shard" >> beam.Map(lambda pair: (shard_of(pair[0], spec.num_shards), pair))
        | f"{label}: group shards" >> beam.GroupByKey()
        | f"{label}: write shards" >> beam.Map(write)
    )


def finalize_shards(spec: ShardSpec) -> list[pathlib.Path]:
    """Renames every temporary shard into place (empty shards are written as empty files)."""
    import tensorflow as tf

    paths = []
    for index in range(spec.num_shards):
        temp = spec.temp_path(index)
        if not temp.exists():
            with tf.io.TFRecordWriter(str(temp)):
                pass
        final = spec.final_path(index)
        os.replace(temp, final)
        paths.append(final)
    return paths


def abort_shards(spec: ShardSpec) -> None:
    """Removes a failed run's temporary shards."""
    for index in range(spec.num_shards):
        spec.temp_path(index).unlink(missing_ok=True)


def collect_to_file(pcollection: Any, path: str | os.PathLike[str], label: str) -> None:
    """Beam: gathers a (small) PCollection of JSON-able items into one JSON list file."""
    import apache_beam as beam

    def write(items: list[Any]) -> None:
        pathlib.Path(path).write_text(json.dumps(sorted(items, key=json.dumps)), encoding="utf-8")

    _ = pcollection | f"{label}: gather" >> beam.combiners.ToList() | f"{label}: save" >> beam.Map(write)


def read_collected(path: str | os.PathLike[str]) -> list[Any]:
    """The list saved by :func:`collect_to_file` (empty if the PCollection was empty)."""
    path = pathlib.Path(path)
    if not path.exists():
        return []
    return json.loads(path.read_text(encoding="utf-8"))


def run_pipeline(build: Callable[[Any], None], pipeline_args: Sequence[str] | None = None) -> None:
    """Builds a pipeline with ``build(pipeline)`` and runs it to completion."""
    import apache_beam as beam

    options = make_pipeline_options(pipeline_args)
    quiet_beam_logging()
    runner = None
    if options.get_all_options().get("runner") in (None, "DirectRunner"):
        # Beam's DirectRunner first tries the Prism runner, which downloads a binary from
        # GitHub: PolyAMP never touches the network at run time, so use the FnApiRunner
        # (the DirectRunner's own local engine, honouring --direct_running_mode) directly.
        from apache_beam.runners.portability.fn_api_runner import fn_runner

        runner = fn_runner.FnApiRunner()
    pipeline = beam.Pipeline(runner=runner, options=options)
    build(pipeline)
    local_processes = runner is not None and options.get_all_options().get("direct_running_mode") == "multi_processing"
    with _worker_stderr_to_log() if local_processes else contextlib.nullcontext():
        result = pipeline.run()
        result.wait_until_finish()


@contextlib.contextmanager
def _worker_stderr_to_log() -> Iterator[None]:
    """Sends the stderr of Beam's local worker processes (start-up INFO chatter) to a temporary log.

    Worker processes inherit file descriptor 2, so it points at the log while they start; this
    process keeps writing to the terminal through a duplicate of the original descriptor
    (``sys.stderr`` is swapped, so rich progress and Python warnings still show).
    """
    sys.stderr.flush()
    saved = os.dup(2)
    original_stderr = sys.stderr
    with tempfile.NamedTemporaryFile(prefix="polyamp-beam-workers-", suffix=".log", delete=False) as log:
        log_path = log.name
        os.dup2(log.fileno(), 2)
    sys.stderr = open(os.dup(saved), "w", buffering=1, encoding="utf-8", errors="replace")  # noqa: SIM115
    try:
        yield
    finally:
        sys.stderr.flush()
        sys.stderr.close()
        sys.stderr = original_stderr
        os.dup2(saved, 2)
        os.close(saved)
        with contextlib.suppress(OSError):
            os.unlink(log_path)
