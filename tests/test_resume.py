"""Training killed with SIGKILL resumes from its last complete checkpoint."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

from polyamp.checkpoints import latest_checkpoint


def test_sigkill_then_resume(polyamp_command, synthetic_tfrecord, tmp_path) -> None:
    command = polyamp_command + [
        "train",
        "--examples-path",
        str(synthetic_tfrecord),
        "--model-dir",
        str(tmp_path),
        "--model-id",
        "killed",
        "--gin-file",
        "melodic/tiny.gin",
        "--gin-param",
        "train.checkpoint_every = 5",
        "--num-steps",
        "100000",
    ]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    run = tmp_path / "melodic" / "killed"
    deadline = time.time() + 240
    try:
        while time.time() < deadline:
            ref = latest_checkpoint(run) if run.exists() else None
            if ref is not None and ref.step >= 15:
                break
            assert process.poll() is None, process.stderr.read().decode()
            time.sleep(0.2)
        else:
            raise AssertionError("no checkpoint appeared in time")
        time.sleep(0.7)  # kill at an arbitrary point, likely between or during saves
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    killed_at = latest_checkpoint(run)
    assert killed_at is not None and killed_at.step >= 15

    target = killed_at.step + 7
    resumed = subprocess.run(command[:-1] + [str(target)], capture_output=True, text=True, timeout=300, env=env)
    assert resumed.returncode == 0, resumed.stderr
    match = re.search(r"trained steps (\d+) -> (\d+)", resumed.stdout)
    assert match, resumed.stdout
    assert int(match.group(1)) == killed_at.step and int(match.group(2)) == target
    final = latest_checkpoint(run)
    assert final is not None and final.step == target
