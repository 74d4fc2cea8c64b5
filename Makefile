# `make demo` and `make test` each set up .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo demo-resume test test-compile lint bench study clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0 || $(BIN)/pip install -q "torch>=2.3"
	$(BIN)/pip install -q -e ".[dev,tensorboard,onnx]"
	touch $@

# THREADS: intra-op threads of the demo (make demo THREADS=1 on a busy machine); TEST_WORKERS: pytest processes.
THREADS ?= 2
TEST_WORKERS ?= 2

demo: $(BIN)/.installed
	OMP_NUM_THREADS=$(THREADS) $(BIN)/pcdarts demo --out runs/demo --overwrite --threads $(THREADS)

# continue a demo that was stopped (Ctrl-C): each part goes on where it stopped
demo-resume: $(BIN)/.installed
	OMP_NUM_THREADS=$(THREADS) $(BIN)/pcdarts demo --out runs/demo --resume --threads $(THREADS)

# A study of studies/ (STUDY=study1, study2, study3; docs/STUDY.md) into runs/STUDY: hours on 2 cores, and
# running it again continues where it stopped. The published results stay in docs/ as they are.
STUDY ?= study1
study: $(BIN)/.installed
	test -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz || \
		(apt-get update && apt-get install -y dataset-fashion-mnist) || \
		(echo "install the Debian package dataset-fashion-mnist (as root), or run pcdarts study with --data DIR"; exit 2)
	OMP_NUM_THREADS=1 $(BIN)/pcdarts study --config studies/$(STUDY).toml --out runs/$(STUDY) --threads 1

# Two one-thread pytest-xdist workers: small tensors gain little from a second thread, and two processes keep
# both cores busy.
test: $(BIN)/.installed
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal

test-compile: $(BIN)/.installed
	OMP_NUM_THREADS=2 $(BIN)/python -m pytest -m compile

lint: $(BIN)/.installed
	$(BIN)/ruff check src tests scripts studies
	$(BIN)/ruff format --check src tests scripts studies
	$(BIN)/lint-imports
	$(BIN)/python studies/tools/check_studies.py

bench: $(BIN)/.installed
	$(BIN)/python -m pcdarts.bench memory

clean:
	rm -rf $(VENV) runs build *.egg-info
