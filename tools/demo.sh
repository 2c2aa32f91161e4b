#!/usr/bin/env bash
# The main job on a fresh machine: installs the Debian packages and builds the engine (tools/setup.sh), installs
# the Python package with its demo extras in a venv (.venv, or $LORANAS_VENV), then runs `python -m loranas demo`:
# the built-in tasks, a rank search per task, and the searched / uniform-64 / random-equal-budget adapters
# fine-tuned on the embedded pretrained base, printed as the paper's Table 1 in miniature. Arguments go to the
# demo (`--full` for the three adapter sets on more data, `--tasks charts,digits`, `--seed N`); the results go to
# ./loranas-demo (or $LORANAS_DEMO_OUT).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
VENV="$(realpath -m "${LORANAS_VENV:-.venv}")"
if [ ! -x "$VENV/bin/python" ]; then python3 -m venv "$VENV"; fi
echo "== Python package (numpy, Pillow, scikit-learn, matplotlib, tqdm)"
"$VENV/bin/pip" install -q --disable-pip-version-check "./python[demo]"
echo "== demo"
"$VENV/bin/python" -m loranas demo "${LORANAS_DEMO_OUT:-loranas-demo}" "$@"
