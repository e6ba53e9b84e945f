# The two commands the README shows:  make run  /  make test
# Each creates the virtual environment (pinned by constraints.txt) on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
ARGS   ?=
export HF_HUB_OFFLINE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test test-slow clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt pip

$(VENV)/.installed-run: $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/python -m pip install -q -c constraints.txt -e .
	touch $@

$(VENV)/.installed-test: $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[test]"
	touch $@ $(VENV)/.installed-run

## make run: set up and run the default benchmark cell (mnist / ae / ppo / transformer, config.DEFAULT_PLUGINS) on the embedded data
run: $(VENV)/.installed-run
	$(BIN)/benchbox run $(ARGS)

## make test: set up with test extras and run the default test suite (slow tests excluded)
test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q -m "not slow" $(ARGS)

## make test-slow: the second CI stage
test-slow: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q -m slow $(ARGS)

clean-venv:
	rm -rf $(VENV)
