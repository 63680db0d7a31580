# keras-asc: the two README commands are `make demo` and `make test`.
SYSTEM_PYTHON ?= python3
# A system Python that is externally managed (PEP 668: Debian/Ubuntu's, Homebrew's) refuses pip
# installs; there every target runs in a virtual environment made here, .venv (seeing the system's
# packages, so what is installed already is not downloaded again). Elsewhere (an activated venv,
# conda, pyenv, CI) the Python on the PATH is used as it is.
EXTERNALLY_MANAGED := $(shell $(SYSTEM_PYTHON) -c "import os, sys, sysconfig; print(int(sys.prefix == sys.base_prefix and os.path.exists(os.path.join(sysconfig.get_path('stdlib'), 'EXTERNALLY-MANAGED'))))" 2>/dev/null)
ifeq ($(EXTERNALLY_MANAGED),1)
VENV ?= .venv
PYTHON ?= $(VENV)/bin/python
else
PYTHON ?= $(SYSTEM_PYTHON)
endif
PIP ?= $(PYTHON) -m pip
DEMO_DIR ?= demo
PYTEST_ARGS ?=
# The suite runs on every CPU (pytest-xdist, one worker per logical CPU, at most 4). Whole test
# files go to one worker (--dist loadfile): a module's fixtures (trained runs, corpora) are built
# once. `make test PYTEST_PARALLEL=` runs it in one process.
PYTEST_PARALLEL ?= -n logical --maxprocesses 4 --dist loadfile

.PHONY: install install-oracle lint test demo bench clean

install: $(if $(VENV),$(VENV)/bin/python)
	$(PIP) install -q -e ".[dev]"

ifdef VENV
$(VENV)/bin/python:
	$(SYSTEM_PYTHON) -m venv --system-site-packages $(VENV)
endif

# The PyTorch parity oracle: the CPU torch wheel, timm, and hear21passt/torchaudio without their
# (CUDA-pulling) dependencies. Only tests and the checkpoint converter use it.
install-oracle: install
	$(PIP) install -q -e ".[dev,oracle]"
	$(PIP) install -q --no-deps "hear21passt==0.0.26" "torchaudio==2.11.0"

lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

test: install-oracle lint
	$(PYTHON) -m pytest $(PYTEST_PARALLEL) $(PYTEST_ARGS)

# Main job: synthetic corpus in the real layouts -> TFRecords -> ICL + Multi-DIR training of a
# small PaSST (configs/demo.yaml) -> per-device evaluation table. Re-running resumes / skips work.
demo: install
	$(PYTHON) -m tfrecords_builder synthetic --out $(DEMO_DIR)/raw --size small --seed 0
	$(PYTHON) -m tfrecords_builder tau22 --source $(DEMO_DIR)/raw/TAU-urban-acoustic-scenes-2022-mobile-development --out $(DEMO_DIR)/tfrecords/tau22
	$(PYTHON) -m tfrecords_builder micirp --source $(DEMO_DIR)/raw/micirp --out $(DEMO_DIR)/tfrecords/micirp
	$(PYTHON) -m tfrecords_builder multi-dirs --source $(DEMO_DIR)/raw/Microphone_Impulse_Responses --out $(DEMO_DIR)/tfrecords/multi_dirs
	$(PYTHON) -m tfrecords_builder inspect --out $(DEMO_DIR)/tfrecords/tau22
	$(PYTHON) scripts/train.py --config configs/demo.yaml --run-dir $(DEMO_DIR)/runs/demo
	$(PYTHON) scripts/evaluate.py --run $(DEMO_DIR)/runs/demo --split evaluate
	$(PYTHON) scripts/plot_dirs.py --dirs $(DEMO_DIR)/tfrecords/multi_dirs --out $(DEMO_DIR)/fig1_multi_dirs.png

bench: install-oracle
	$(PYTHON) benchmarks/bench_builder.py
	$(PYTHON) benchmarks/bench_pipeline.py
	$(PYTHON) benchmarks/bench_model.py
	$(PYTHON) benchmarks/bench_optimizer.py

clean:
	rm -rf $(DEMO_DIR) .pytest_cache .ruff_cache $(VENV)
