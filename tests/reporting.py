"""Lines a test wants in the CI log even though pytest captures output (step rates, example counts)."""

from __future__ import annotations

import pytest


def report(config: pytest.Config, line: str) -> None:
    """Writes ``line`` to the terminal past pytest's capture (``-q`` included); prints it without pytest."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        print(line)
        return
    with capture.global_and_fixture_disabled():
        reporter.ensure_newline()
        reporter.write_line(line)
