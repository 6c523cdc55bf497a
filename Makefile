# All set-up happens here: `make train` and `make test` create .venv and install what is needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# the exact versions the test suite passed with; `make lock` renews it (see the target)
CONSTRAINTS := constraints.txt

.PHONY: lock train test test-fast bench gpu-check gpu-wheels gpu-assets reproduce analyze lint clean

$(STAMP): pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c $(CONSTRAINTS) -e '.[dev,nlp,sweep]'
	touch $(STAMP)

train: $(STAMP)  ## the main job: SimpleNN on CIFAR-10 with the reference settings (downloads CIFAR-10 on first use)
	$(PY) train.py $(ARGS)

PYTEST_WORKERS ?= auto
test: $(STAMP)  ## the whole test suite, one worker per core (real-data smokes run when ../shared/data or DLLABS_DATA_DIR exists)
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

bench: $(STAMP)  ## speed against baselines; tables printed, JSON in benchmarks/results/
	$(PY) benchmarks/run_all.py $(ARGS)

gpu-check:  ## on the GPU machine as it is (no venv; installs hydra from .whl/): one JSON + table, <= 8 min
	bash benchmarks/gpu_check.sh $(ARGS)

gpu-wheels:  ## hydra-core, omegaconf, antlr4 wheels for the GPU machine (Python 3.12, x86-64) into .whl/
	python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl hydra-core==1.3.2 omegaconf==2.3.0 && python3 -m pip wheel -q --no-deps -w .whl antlr4-python3-runtime==4.9.3  # antlr4 4.9.3 is an sdist only: built here (pure Python)

DATA ?= $(or $(DLLABS_DATA_DIR),../shared/data)
gpu-assets: gpu-wheels  ## + the GPT-2 tokenizer files and WikiText-2 validation text (2.6 MB) into .gpu_check/
	mkdir -p .gpu_check/gpt2-tokenizer
	cp $(DATA)/gpt2-tokenizer/vocab.json $(DATA)/gpt2-tokenizer/merges.txt $(DATA)/gpt2-tokenizer/tokenizer_config.json $(DATA)/gpt2-tokenizer/special_tokens_map.json .gpu_check/gpt2-tokenizer/
	cp $(DATA)/wikitext-2-raw/wiki.valid.raw .gpu_check/

reproduce: $(STAMP)  ## a lab's whole study: make reproduce LAB=lms  (ARGS="--dry-run" or ARGS="-- trainer=gpu"; a tree with uncommitted code/config is refused unless ARGS=--allow-dirty)
	$(PY) scripts/reproduce.py $(LAB) $(ARGS)

analyze: $(STAMP)  ## layer table + histograms of a model: make analyze ARGS="model=resnet20"
	$(PY) scripts/analyze.py $(ARGS)

LOCK_VENV := .venv-lock
lock:  ## renew constraints.txt: the newest versions pyproject.toml allows, in a fresh venv; then run make test on them
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install -q --upgrade pip
	$(LOCK_VENV)/bin/python -m pip install -q -e '.[dev,nlp,sweep]'
	{ echo "# Exact versions the test suite passed with: make installs from this file (pip -c), CI too. Renew with"; \
	  echo "# make lock (newest versions pyproject.toml allows), then make test. Local build labels (+cpu, +cu130) are"; \
	  echo "# dropped so that the same pins take a CPU or a CUDA build of torch."; \
	  $(LOCK_VENV)/bin/python -m pip freeze --all --exclude-editable | grep -v '^pip==' | sed -E 's/\+[A-Za-z0-9.]+$$//'; } > $(CONSTRAINTS)
	rm -rf $(LOCK_VENV)

lint: $(STAMP)
	$(PY) -m ruff check src tests scripts benchmarks

clean:
	rm -rf $(VENV) .pytest_cache
