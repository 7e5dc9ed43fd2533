"""Lines a test wants in the CI log even though pytest captures output (step rates, example counts).

Run plainly, a line is written at once past pytest's capture (``-q`` included). Under pytest-xdist
(``make test`` runs two workers) a worker has no terminal: it appends the line to a file the
controller named (see ``tests/conftest.py``), and the controller prints the file in its summary.
"""

from __future__ import annotations

import os

import pytest

REPORT_FILE_KEY = "polyamp_report_file"
"""The ``workerinput`` key (and ``config.stash`` name) of the file that collects workers' lines."""


def report(config: pytest.Config, line: str) -> None:
    """Writes ``line`` to the terminal past pytest's capture, or to the workers' report file under xdist."""
    worker_input = getattr(config, "workerinput", None)
    if worker_input is not None and REPORT_FILE_KEY in worker_input:
        with open(worker_input[REPORT_FILE_KEY], "a", encoding="utf-8") as stream:
            stream.write(f"[{worker_input.get('workerid', 'worker')}] {line}{os.linesep}")
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        print(line)
        return
    with capture.global_and_fixture_disabled():
        reporter.ensure_newline()
        reporter.write_line(line)
