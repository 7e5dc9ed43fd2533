"""Two worker processes on 127.0.0.1 train the tiny Melodic model with MultiWorkerMirroredStrategy (TF_CONFIG)
and end with identical weights; the chief alone writes the run folder; SIGTERM to one worker stops both
after the same step. Prints each worker's step rate."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from reporting import report

WORKER = Path(__file__).with_name("train_worker.py")
STOP_AFTER = 4  # SIGTERM to worker 1 once it has printed this step; the run's total is far away
TIMEOUT_S = 420  # both workers are killed past this (a 2-core CI machine needs about a tenth of it)


def free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 right now (the OS picks them)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@pytest.fixture(scope="module")
def two_shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two TFRecord files of 3 clips of 4 s tones each: one file per worker."""
    from polyamp.data.synthetic import write_synthetic_tfrecord

    folder = tmp_path_factory.mktemp("shards")
    for index in range(2):
        write_synthetic_tfrecord(folder / f"train.tfrecord-0000{index}-of-00002", 3, 4.0, seed=20 + index)
    return folder


def test_two_workers_train_to_identical_weights(two_shards: Path, tmp_path: Path, request: pytest.FixtureRequest):
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    model_dir = tmp_path / "models"
    processes, logs = [], []
    for index in range(2):
        scratch = tmp_path / f"tmp{index}"  # where a non-chief keeps its throw-away checkpoints
        scratch.mkdir()
        env = dict(
            os.environ,
            TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
            TF_CPP_MIN_LOG_LEVEL="2",
            TMPDIR=str(scratch),
        )
        command = [sys.executable, str(WORKER), str(two_shards), str(model_dir), "--model-id", "two"]
        command += ["--num-steps", "100000", "--gin-file", "melodic/tiny.gin"]
        command += ["--gin-file", "training/multi_worker.gin", "--weights", str(tmp_path / f"weights{index}.npz")]
        # Different seeds: equal weights at the end then show the strategy's work (the chief's initial
        # values broadcast, gradients and batch-norm statistics all-reduced), not equal random draws.
        command += ["--seed", str(index + 1)]
        out = open(tmp_path / f"worker{index}.out", "w+")  # closed below
        err = open(tmp_path / f"worker{index}.err", "w+")
        logs.append((out, err))
        processes.append(subprocess.Popen(command, stdout=out, stderr=err, env=env, text=True))
    started = time.monotonic()
    try:
        while f"step {STOP_AFTER}\n" not in (tmp_path / "worker1.out").read_text():
            assert time.monotonic() - started < TIMEOUT_S, f"worker 1 did not reach step {STOP_AFTER} in {TIMEOUT_S} s"
            assert all(process.poll() is None for process in processes), "a worker exited early"
            time.sleep(0.05)
        processes[1].send_signal(signal.SIGTERM)  # one worker stops: both must stop after the same step
        for process in processes:
            process.wait(timeout=max(1.0, TIMEOUT_S - (time.monotonic() - started)))
    except subprocess.TimeoutExpired:
        pytest.fail(f"the two workers did not finish within {TIMEOUT_S} s")
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    elapsed = time.monotonic() - started
    outputs = []
    for index, (out, err) in enumerate(logs):
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
        out.close()
        err.close()
        tail = "\n".join(stderr.strip().splitlines()[-15:])
        assert processes[index].returncode == 0, f"worker {index} exited {processes[index].returncode}:\n{tail}"
        outputs.append(json.loads(stdout.strip().splitlines()[-1]))

    steps = outputs[0]["last_step"]
    rates = ", ".join(f"worker {index} {output['steps_per_s']:.2f} steps/s" for index, output in enumerate(outputs))
    report(request.config, f"two-worker training ({steps} steps, {elapsed:.0f} s in all): {rates}")
    assert outputs[0]["first_step"] == outputs[1]["first_step"] == 0, f"{outputs}; {rates}"
    assert outputs[1]["last_step"] == steps > STOP_AFTER, f"the workers stopped at different steps: {outputs}; {rates}"
    assert outputs[0]["loss"] == outputs[1]["loss"], f"the workers report different losses: {outputs}; {rates}"

    first, second = (np.load(tmp_path / f"weights{index}.npz") for index in range(2))
    assert len(first.files) == len(second.files) > 0
    differing = [name for name in first.files if not np.array_equal(first[name], second[name])]
    assert not differing, f"{len(differing)} of {len(first.files)} weight arrays differ between workers; {rates}"

    # The chief wrote the run folder; the other worker's throw-away checkpoints are gone.
    run = model_dir / "melodic" / "two"
    assert (run / f"ckpt-{steps}.index").is_file() and (run / f"operative_config-{steps}.gin").is_file()
    assert (run / "hparams.json").is_file() and any((run / "train").iterdir())
    for index in range(2):
        left = list((tmp_path / f"tmp{index}").glob("polyamp-worker-checkpoints-*"))
        assert not left, f"worker {index} left {left}"


def test_strategy_choices_fail_with_one_clear_config_error(monkeypatch) -> None:
    from polyamp.distribution import get_strategy
    from polyamp.errors import ConfigError

    with pytest.raises(ConfigError, match="valid strategies: default, mirrored, multi_worker, tpu"):
        get_strategy("parameter_server")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="needs the TF_CONFIG environment variable"):
        get_strategy("multi_worker")
    for bad, problem in (
        ("{not json", "not valid JSON"),
        ('{"cluster": {"worker": ["127.0.0.1:1"]}}', "needs a 'cluster' and a 'task'"),
        ('{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 3}}', "outside its 1"),
    ):
        monkeypatch.setenv("TF_CONFIG", bad)
        with pytest.raises(ConfigError, match=problem):
            get_strategy("multi_worker")
    # No TPU on this machine: the 'local' TPU (a Cloud TPU VM's) is not found, without any network lookup.
    with pytest.raises(ConfigError, match="found no usable TPU 'local'") as caught:
        get_strategy("tpu", tpu="local")
    assert "\n" not in str(caught.value).split("  In call to")[0].strip()


def test_each_worker_reads_its_own_files(two_shards: Path, synthetic_folder: Path) -> None:
    from polyamp.data.datasets import open_dataset
    from polyamp.distribution import shard_source

    source = open_dataset(str(two_shards))
    parts = [shard_source(source, 2, index) for index in range(2)]
    assert all(sharded for _, sharded in parts)
    assert [part.files for part, _ in parts] == [[name] for name in source.files]
    # Fewer files than workers: every worker reads all of them (in its own order, by its seed).
    assert shard_source(source, 3, 2) == (source, False)
    folder = open_dataset(str(synthetic_folder))
    pieces = [shard_source(folder, 2, index)[0].pairs for index in range(2)]
    assert sorted(pieces[0] + pieces[1], key=lambda pair: pair.example_id) == folder.pairs
    assert not set(pieces[0]) & set(pieces[1])
