# speech-dae: the two commands of the quick start are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
DATA   ?= data_sample
FEATURE ?= fbank
MODEL  ?= type2
RUN    ?= $(FEATURE)_$(MODEL)
export TF_CPP_MIN_LOG_LEVEL = 2

.PHONY: demo test test-all lint setup clean help

help:
	@echo "make demo      set up .venv and run 01 -> 05 on $(DATA)/ (FEATURE=$(FEATURE) MODEL=$(MODEL))"
	@echo "make test      set up .venv and run the fast tests (everyday work, a few minutes; skips the slow ones)"
	@echo "make test-all  set up .venv and run every test, slow ones included (what .ci/run calls); lists the 20 slowest"
	@echo "make lint      ruff check and ruff format --check (the code style, configured in pyproject.toml)"
	@echo "make clean     remove generated folders (features, datasets, models, model_logs, outputs, images, reports)"

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(PY) 01_extract_features.py --data $(DATA) --feature $(FEATURE) --out features/$(FEATURE)
	$(PY) 02_build_dataset.py --features features/$(FEATURE) --out datasets/$(FEATURE)
	$(PY) 03_train_autoencoder.py --dataset datasets/$(FEATURE) --model $(MODEL) --run $(RUN)
	$(PY) 04_reconstruct.py --model models/$(RUN)
	$(PY) 05_evaluate.py --models models/$(RUN) --baselines all --out reports/$(RUN) --jobs 2

test: setup
	$(PY) -m pytest -q -m "not slow"

test-all: setup
	$(PY) -m pytest -q --durations=20

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf features datasets models model_logs outputs images reports
