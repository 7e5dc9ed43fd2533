"""Faults: training killed with SIGKILL at random points, partial checkpoints, a full disk, a read-only folder.

- Kills: a tiny-model run saving every 2 steps is killed 3 times, twice at random moments and once as soon
  as a save is seen in progress; every restart resumes from an intact checkpoint (it loads, every tensor
  reads) and never more than the save interval behind the last step the killed process reached.
- Writers on a full disk or in a read-only folder raise a one-line OutputError and leave no file behind.
  As root (CI), chmod cannot make a folder read-only, so the writers run in a private mount namespace
  (``unshare --mount``) on real tmpfs mounts: one filled to the last byte (ENOSPC), one remounted
  read-only (EROFS). Without root the read-only case uses chmod 0o555 and the full-disk case is skipped.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from reporting import report

from polyamp.checkpoints import latest_checkpoint, remove_partial_checkpoints

HERE = Path(__file__).parent
SAVE_EVERY = 2
KILLS = 3


class StepLog:
    """Reads a training worker's ``step N`` lines as they come."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.steps: list[int] = []
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen) -> None:
        for line in process.stdout:
            self.lines.append(line)
            if line.startswith("step "):
                self.steps.append(int(line.split()[1]))

    def wait_for_steps(self, count: int, process: subprocess.Popen, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.steps) < count:
            if process.poll() is not None:
                self._thread.join(5)
                raise AssertionError(f"the worker exited ({process.returncode}) before step {count}: {self.lines[-5:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no step {count} within {timeout_s} s")
            time.sleep(0.02)

    def finish(self) -> None:
        self._thread.join(10)


def start_worker(examples: Path, model_dir: Path, num_steps: int, stderr: Path) -> subprocess.Popen:
    command = [sys.executable, str(HERE / "train_worker.py"), str(examples), str(model_dir), "--model-id", "killed"]
    command += ["--num-steps", str(num_steps), "--seed", "0", "--gin-file", "melodic/tiny.gin"]
    command += ["--gin-param", f"train.checkpoint_every = {SAVE_EVERY}", "--gin-param", "train.keep_checkpoints = 2"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    with open(stderr, "a") as log:
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True, env=env)


def _saving(names: list[str]) -> bool:
    """Whether a checkpoint save is in progress: TensorFlow's temporary files or folder are there."""
    return any("tempstate" in name or name.endswith("_temp") or name.startswith("checkpoint.tmp") for name in names)


def wait_for_a_save(run: Path, process: subprocess.Popen, timeout_s: float) -> float:
    """Returns (seconds waited) as soon as a save is seen in progress, or after ``timeout_s``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s and process.poll() is None:
        if _saving(os.listdir(run)):
            break
        time.sleep(0.0005)
    return time.monotonic() - started


def assert_intact(prefix: str, holds: str = "step") -> None:
    """The checkpoint's index lists its tensors (one called ``holds``...) and every one of them reads."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(prefix)
    names = reader.get_variable_to_shape_map()
    assert any(name.startswith(holds) for name in names), sorted(names)[:5]
    for name in names:
        reader.get_tensor(name)


def test_sigkill_at_random_points_resumes_from_an_intact_checkpoint(synthetic_tfrecord, tmp_path, request) -> None:
    seed = int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)
    run = tmp_path / "melodic" / "killed"
    stderr = tmp_path / "stderr.txt"
    history = []
    for kill in range(KILLS):
        before = latest_checkpoint(run) if run.exists() else None
        process = start_worker(synthetic_tfrecord, tmp_path, 1_000_000, stderr)
        log = StepLog(process)
        try:
            log.wait_for_steps(1, process, timeout_s=300)
            resumed_at = log.steps[0] - 1
            assert resumed_at == (before.step if before else 0), f"seed {seed}: resumed at {resumed_at}, not {before}"
            if kill < KILLS - 1:
                delay = rng.uniform(0.0, 2.0)  # a random moment: in a step, in a save, or between
                time.sleep(delay)
            else:
                delay = wait_for_a_save(run, process, timeout_s=60)  # the last kill aims at a save in progress
        finally:
            process.kill()
            process.wait(30)
            log.finish()
        reached = max(log.steps)
        interrupted_save = sorted(name for name in os.listdir(run) if _saving([name]))
        after = latest_checkpoint(run)  # None: killed before the first save, so a restart begins at 0
        if after is not None:
            assert_intact(after.prefix)
        resumable = after.step if after is not None else 0
        # The process may have been one step past its last line: never lose more than the save interval.
        assert resumable >= reached + 1 - SAVE_EVERY, f"seed {seed}: step {reached} reached, resumable {resumable}"
        history.append(f"kill {kill + 1} after {delay:.2f} s at step ~{reached}: resumes at {resumable}")
        if interrupted_save:
            history[-1] += f" (a save was cut short: {', '.join(interrupted_save)})"

    target = resumable + 3
    process = start_worker(synthetic_tfrecord, tmp_path, target, stderr)
    log = StepLog(process)
    assert process.wait(300) == 0, stderr.read_text()[-2000:]
    log.finish()
    summary = json.loads(log.lines[-1])
    history.append(f"final run: steps {summary['first_step']} -> {summary['last_step']}")
    report(request.config, f"SIGKILL faults (seed {seed}): " + "; ".join(history))
    assert summary["last_step"] == target
    assert not _saving(os.listdir(run)), os.listdir(run)  # the restarts removed what the kills left


def test_latest_checkpoint_skips_a_cut_short_save_and_the_leftovers_are_removed(tmp_path) -> None:
    import tensorflow as tf

    state = tf.train.Checkpoint(weights=tf.Variable([1.0, 2.0]))
    manager = tf.train.CheckpointManager(state, str(tmp_path), max_to_keep=3)
    manager.save(checkpoint_number=4)
    # What a save of step 6 killed part-way can leave: a temporary folder and files, an index whose
    # data shards are not all there, and a state file already naming it.
    (tmp_path / "ckpt-6_temp").mkdir()
    (tmp_path / "ckpt-6_temp" / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"half")
    (tmp_path / "ckpt-6.data-00000-of-00002.tempstate123").write_bytes(b"half")
    (tmp_path / "ckpt-6.data-00000-of-00002").write_bytes(b"one of two shards")
    (tmp_path / "ckpt-6.index").write_bytes(b"index")
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "ckpt-6"\n')
    ref = latest_checkpoint(tmp_path)
    assert ref is not None and ref.step == 4
    remove_partial_checkpoints(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint", "ckpt-4.data-00000-of-00001", "ckpt-4.index"]
    assert latest_checkpoint(tmp_path).step == 4
    assert_intact(str(tmp_path / "ckpt-4"), holds="weights")


WRITERS = ("midi", "json", "tfrecord", "checkpoint", "training")


def _mount_namespace_works() -> bool:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "true"], capture_output=True, timeout=30, check=False
    )
    return probe.returncode == 0


def test_full_disk_and_read_only_folder_give_one_clear_error_and_no_partial_file(synthetic_tfrecord, tmp_path) -> None:
    full, read_only = tmp_path / "full", tmp_path / "read-only"
    full.mkdir()
    read_only.mkdir()
    script = [sys.executable, str(HERE / "fault_writers.py"), str(synthetic_tfrecord)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    folders = " ".join(WRITERS)
    if _mount_namespace_works():
        shell = f"""set -e
mount -t tmpfs -o size=256k tmpfs {full}
mount -t tmpfs -o size=256k tmpfs {read_only}
for name in {folders}; do mkdir {full}/$name {read_only}/$name; done
dd if=/dev/zero of={full}/filler bs=4k 2>/dev/null || true
mount -o remount,ro {read_only}
exec "$@"
"""
        command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", shell, "sh", *script]
        command += [str(full), str(read_only)]
        expected = {"full disk": "No space left on device", "read-only folder": "Read-only file system"}
    elif os.geteuid() != 0:
        for name in WRITERS:
            (read_only / name).mkdir()
            (read_only / name).chmod(0o555)
        command = [*script, "-", str(read_only)]
        expected = {"read-only folder": "Permission denied"}
    else:
        pytest.skip("as root, chmod does not make a folder read-only and unshare --mount is not available")
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    outcomes = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(outcomes) == len(WRITERS) * len(expected), sorted(outcomes)
    for case, outcome in outcomes.items():
        reason = next(text for kind, text in expected.items() if case.endswith(kind))
        assert outcome["error"] == "OutputError", f"{case}: {outcome}"
        # The CLI prints the first line (gin appends "In call to configurable 'train'" below it).
        message = outcome["message"].splitlines()[0]
        assert reason in message and "{{" not in message and "[Op:" not in message, f"{case}: {message!r}"
        assert outcome["left"] == [], f"{case} left {outcome['left']}"
