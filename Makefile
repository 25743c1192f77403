# Two commands do everything (see README):
#   make report   set up .venv if needed, then run the main job on the embedded corpus
#   make test     set up .venv if needed, then run the whole test suite (what CI runs)
#   make test-fast   the unit tier only (tests/unit: under a minute), while you work
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU build here; elsewhere e.g. make test TORCH="torch --index-url https://download.pytorch.org/whl/cpu"
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.installed-stamp
# pytest workers: one per core of a 2-core CI box (each test file stays on one worker, in order)
TEST_WORKERS ?= 2

.PHONY: setup report test test-fast clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# install torch only where the environment has none (never replace Colab's or a CUDA build)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[notebooks,lab,web,test,data,sweep,tensorboard,postgres]"
	touch $(STAMP)

report: $(STAMP)
	$(BIN)/python -m lmlib report --profile default

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

clean:
	rm -rf $(VENV) prepared runs
