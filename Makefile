# All set-up happens here: `make train` and `make test` create .venv and install what is needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: train test test-fast bench reproduce analyze lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,nlp,sweep]'
	touch $(STAMP)

train: $(STAMP)  ## the main job: SimpleNN on CIFAR-10 with the reference settings (downloads CIFAR-10 on first use)
	$(PY) train.py $(ARGS)

test: $(STAMP)  ## the whole test suite (real-data smokes run when ../shared/data or DLLABS_DATA_DIR exists)
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

bench: $(STAMP)  ## speed against baselines; tables printed, JSON in benchmarks/results/
	$(PY) benchmarks/run_all.py $(ARGS)

reproduce: $(STAMP)  ## a lab's whole study: make reproduce LAB=lms  (ARGS="--dry-run" or ARGS="-- trainer=gpu")
	$(PY) scripts/reproduce.py $(LAB) $(ARGS)

analyze: $(STAMP)  ## layer table + histograms of a model: make analyze ARGS="model=resnet20"
	$(PY) scripts/analyze.py $(ARGS)

lint: $(STAMP)
	$(PY) -m ruff check src tests scripts benchmarks

clean:
	rm -rf $(VENV) .pytest_cache
