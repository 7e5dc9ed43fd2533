"""The ``polyamp`` command line (installed as the ``polyamp.cli`` package)."""
