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
# The exact versions the committed report was built with (torch aside: it is installed first, above).
LOCK   := constraints.txt
EXTRAS := notebooks,lab,web,test,data,sweep,tensorboard,postgres,hub
# pytest workers: one per core of a 2-core CI box (each test file stays on one worker, in order)
TEST_WORKERS ?= 2

.PHONY: setup report test test-fast lock clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# install torch only where the environment has none (never replace Colab's or a CUDA build)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -c $(LOCK) -e ".[$(EXTRAS)]"
	# notebooks enter git without outputs (.gitattributes names the filter; this tells git what it runs)
	if git rev-parse --git-dir >/dev/null 2>&1; then $(BIN)/nbstripout --install --attributes .gitattributes; fi
	touch $(STAMP)

report: $(STAMP)
	$(BIN)/python -m lmlib report --profile default

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=25  # the slowest tests, so CI shows where the time goes

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

# Pin what .venv has now (after changing a dependency: install it, run the tests and the report, then this).
lock: $(STAMP)
	{ echo "# The versions the committed report was built with; make installs them (pip -c). Regenerate: make lock."; \
	  echo "# torch is not pinned here: make installs $(TORCH) (CPU) first, or keeps the environment's own."; \
	  $(BIN)/python -m pip freeze --exclude-editable | grep -v -i -E '^(torch|nvidia-|triton)'; } > $(LOCK)

clean:
	rm -rf $(VENV) prepared runs
