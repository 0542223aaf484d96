# The two commands a new user needs: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO_OUT ?= out/demo

.PHONY: setup demo test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/int8lab data inspect examples/fashion/data $(DEMO_FLAGS) --strategy stratified --num-samples 100
	$(BIN)/int8lab data export-npy examples/fashion/data -o $(DEMO_OUT) $(DEMO_FLAGS) --num-samples 100
	$(BIN)/int8lab data module examples/fashion/data -o $(DEMO_OUT)/representative_dataset.py $(DEMO_FLAGS) --num-samples 100

DEMO_FLAGS := --input-size 28 28 --channels 1 --preset unit

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python bench/bench_calibration_loading.py

clean:
	rm -rf $(VENV) out .pytest_cache
