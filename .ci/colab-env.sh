#!/usr/bin/env bash
# Colab's library versions, tested: build .venv-colab as a Colab GPU runtime has it (ipywidgets
# 7.7.1, ipykernel 6.17.1, IPython 7.34, notebook 6.5.7, nbformat 5.11.1, nbclient 0.10.4,
# numpy 2.1.3, ... from Colab's own pip freeze; torch and Python as this machine has them), install
# lmlib into it exactly as the notebooks' first cell does on Colab, check that the install replaced
# none of the runtime's packages, then run the panel tests and all the notebooks (nbval, smoke
# parameters) in it.  Called by .ci/run; by hand: bash .ci/colab-env.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/.venv-colab
PYTHON=${PYTHON:-python3}
started=$SECONDS
unset PYTHONPATH VIRTUAL_ENV
export PYDEVD_DISABLE_FILE_VALIDATION=1  # ipykernel 6.17's debugger warns about frozen modules on every start
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# 1. The runtime: Colab's preinstalled packages at Colab's versions (rebuilt when the lists change).
stamp=$VENV/.runtime-$(cat .ci/colab-runtime.txt .ci/colab-constraints.txt | sha1sum | cut -c1-12)
if [ ! -f "$stamp" ]; then
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q -c .ci/colab-constraints.txt -r .ci/colab-runtime.txt
  touch "$stamp"
fi
"$VENV/bin/python" -m pip uninstall -q -y lmlib 2>/dev/null || true
runtime_s=$((SECONDS - started))
"$VENV/bin/python" -m pip freeze --exclude-editable | sort > "$work/before.txt"

# 2. What a Colab user runs: the first code cell of a notebook, from an empty folder, installing
#    lmlib from a copy of this checkout's files (on Colab: from git) instead of the placeholder URL.
mkdir "$work/source" "$work/content"
git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$work/source" 2>/dev/null || true
"$VENV/bin/python" -c 'import json, sys; cells = json.load(open(sys.argv[1]))["cells"]
print("".join(next(c for c in cells if c["cell_type"] == "code")["source"]))' notebooks/01_data_prep.ipynb > "$work/first_cell.py"
(cd "$work/content" && LMLIB_SOURCE="file://$work/source" "$VENV/bin/python" "$work/first_cell.py")
"$VENV/bin/python" -m pip freeze --exclude-editable | sort > "$work/after.txt"
changed=$(comm -23 "$work/before.txt" "$work/after.txt")
if [ -n "$changed" ]; then
  echo "colab-env: installing lmlib replaced packages of the Colab runtime:" >&2
  echo "$changed" >&2
  exit 1
fi
echo "colab-env: lmlib installed as on Colab, $(comm -13 "$work/before.txt" "$work/after.txt" | wc -l) packages added, none replaced"
(cd "$work/content" && "$VENV/bin/python" -c "import lmlib, ipywidgets, IPython, torch; print('colab-env: lmlib from', \
  lmlib.__file__, '| ipywidgets', ipywidgets.__version__, '| IPython', IPython.__version__, '| torch', torch.__version__)")

# 3. The test tools a Colab user would add (papermill came with lmlib[notebooks]), changing nothing.
"$VENV/bin/python" -m pip install -q -c "$work/after.txt" nbval
install_s=$((SECONDS - started - runtime_s))

# 4. The panel tests and every notebook, top to bottom with the smoke parameters, under these versions
#    (bin/pytest, not python -m pytest, so that the tests import the installed lmlib, not the checkout's).
"$VENV/bin/pytest" -q -p no:cacheprovider tests/integration/test_panel.py tests/e2e/test_notebooks.py tests/e2e/test_colab.py
echo "colab-env: runtime ${runtime_s} s, lmlib + test tools ${install_s} s, in all $((SECONDS - started)) s"
