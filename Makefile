# odapi developer commands. `make setup && make test` on a fresh clone; see README.md.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
PIP_TOOLS_VERSION := 7.6.2

.PHONY: setup protos test test-fast lint demo bench image image-cuda lock clean

setup: $(VENV)/.installed protos  ## create .venv from requirements.lock and compile the protos

$(VENV)/.installed: requirements.lock pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes --no-deps -r requirements.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

protos: $(VENV)/.installed  ## compile odapi/protos/*.proto with protoc (grpcio-tools)
	$(BIN)/python -m odapi.protos.compile

lint: $(VENV)/.installed
	$(BIN)/ruff check odapi tests bench

# Two workers (pytest-xdist), a test file each at a time so module fixtures are built once,
# the longest files first (tests/conftest.py; its shared runs are trained once for both);
# most of a test's time is single-threaded Python (TensorFlow tracing), so two share 2 cores.
# TensorFlow sizes its thread pools to every core, in each of the workers and each process
# they start: one thread each instead, or the pools spin against each other (two 3-step
# trainings side by side: 63-68 s each, 81-84 with TensorFlow's default pools). A process
# left running alone pays for it (SpineNet's 160-step training: 315 s instead of 207).
PYTEST_WORKERS ?= 2
PYTEST = TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 \
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile

test: setup lint  ## the whole suite, as CI runs it
	$(PYTEST) --durations=15

test-fast: setup  ## skip the slow tests and the fuzz cases
	$(PYTEST) -m "not slow and not fuzz"

demo: setup  ## synthetic data -> convert -> train -> evaluate, on the CPU, no Docker
	$(BIN)/odapi demo --out demo-run

# The images. Behind a TLS-intercepting proxy: make image EXTRA_CA=/path/to/ca-bundle.crt
EXTRA_CA ?= $(wildcard /etc/ssl/certs/ca-certificates.crt)
BUILD = docker buildx build -f docker/Dockerfile $(if $(EXTRA_CA),--secret id=extra_ca,src=$(EXTRA_CA))
image:  ## the cpu image, odapi:cpu
	$(BUILD) --target cpu -t odapi:cpu .

image-cuda:  ## the CUDA image, odapi:cuda (downloads ~3 GB of CUDA libraries)
	$(BUILD) --target cuda -t odapi:cuda .

bench: setup  ## run the benchmarks and rewrite docs/benchmarks.md
	$(BIN)/python bench/convert_speed.py
	$(BIN)/python bench/convert_memory.py
	$(BIN)/python bench/demo_quality.py
	$(BIN)/python bench/fine_tune.py
	$(BIN)/python bench/export_formats.py
	$(BIN)/python bench/images.py --cuda
	$(BIN)/python bench/input_pipeline.py
	$(BIN)/python bench/train_overhead.py

# Regenerate the lock files (pinned, with hashes) from pyproject.toml, in a separate venv so the
# project's own packages cannot leak into the resolution: requirements.lock for development and
# CI, docker/requirements-{cpu,cuda}.lock for the image's two targets.
PIP_COMPILE = env -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null .lockenv/bin/pip-compile --quiet \
	--generate-hashes --allow-unsafe --strip-extras \
	--index-url https://pypi.org/simple --no-emit-index-url
lock:
	$(PYTHON) -m venv .lockenv
	.lockenv/bin/pip install --quiet pip-tools==$(PIP_TOOLS_VERSION)
	$(PIP_COMPILE) --extra dev -o requirements.lock pyproject.toml
	$(PIP_COMPILE) -o docker/requirements-cpu.lock pyproject.toml
	$(PIP_COMPILE) --extra cuda -o docker/requirements-cuda.lock pyproject.toml

clean:
	rm -rf $(VENV) .lockenv build *.egg-info .pytest_cache .ruff_cache
	rm -f odapi/protos/*_pb2.py odapi/protos/*_pb2.pyi
