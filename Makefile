# odapi developer commands. `make setup && make test` on a fresh clone; see README.md.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
PIP_TOOLS_VERSION := 7.6.2

.PHONY: setup protos test test-fast lint lock clean

setup: $(VENV)/.installed protos  ## create .venv from requirements.lock and compile the protos

$(VENV)/.installed: requirements.lock pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes --no-deps -r requirements.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

protos: $(VENV)/.installed  ## compile odapi/protos/*.proto with protoc (grpcio-tools)
	$(BIN)/python -m odapi.protos.compile

lint: $(VENV)/.installed
	$(BIN)/ruff check odapi tests

test: setup lint  ## the whole suite, as CI runs it
	$(BIN)/pytest

test-fast: setup  ## skip the slow tests
	$(BIN)/pytest -m "not slow"

# Regenerate requirements.lock (pinned, with hashes) from pyproject.toml, in a separate venv so
# the project's own packages cannot leak into the resolution.
lock:
	$(PYTHON) -m venv .lockenv
	.lockenv/bin/pip install --quiet pip-tools==$(PIP_TOOLS_VERSION)
	env -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null .lockenv/bin/pip-compile --quiet \
		--extra dev --generate-hashes --allow-unsafe --strip-extras \
		--index-url https://pypi.org/simple --no-emit-index-url \
		-o requirements.lock pyproject.toml

clean:
	rm -rf $(VENV) .lockenv build *.egg-info .pytest_cache .ruff_cache
	rm -f odapi/protos/*_pb2.py odapi/protos/*_pb2.pyi
