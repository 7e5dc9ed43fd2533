# Two entry points for a fresh machine (each builds its own virtual environment in .venv):
#   make demo   install PolyAMP, train a model on synthesised tones, transcribe the bundled demo clip
#   make test   install PolyAMP with its test extras and run the test suite

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DIR ?= demo-output
# Test processes (pytest-xdist; each test file runs whole on one worker, so module fixtures are made once).
TEST_WORKERS ?= 2

.PHONY: install demo test lint clean

$(BIN)/polyamp: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet ".[test]"
	@touch $@

install: $(BIN)/polyamp

demo: install
	bash scripts/demo.sh "$(BIN)" "$(DEMO_DIR)"

test: install
	$(BIN)/pip install --quiet --no-deps --force-reinstall .
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile

lint: install
	$(BIN)/ruff check polyamp cli tests benchmarks
	$(BIN)/ruff format --check polyamp cli tests benchmarks

clean:
	rm -rf $(VENV) $(DEMO_DIR) build *.egg-info
