#!/usr/bin/env bash
# Every test: installs what it needs on a fresh machine (Debian packages, a Python venv with the
# pip packages, including CPU torch + transformers + peft for the interop tests), builds, then runs
# XCTest and pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== style (lines <= 120, one statement per line)"
python3 tools/style_check.py Sources Tests bench/swift
bash tools/setup.sh

VENV="$(realpath -m "${LORANAS_VENV:-.venv-test}")"
if [ ! -x "$VENV/bin/python" ]; then python3 -m venv "$VENV"; fi
echo "== pip packages"
# torch: the CPU wheel (pip would otherwise pick a newer CUDA build from PyPI, gigabytes of it).
links=(); [ -d /opt/wheels ] && links=(--find-links /opt/wheels)
"$VENV/bin/pip" install -q --disable-pip-version-check "${links[@]}" numpy pytest safetensors tokenizers pillow tqdm \
    "torch==2.13.0+cpu" "transformers==5.24.*" "peft==0.21.*" quicktok-v1 tiktoken datasets matplotlib \
    scikit-learn nbclient nbformat nbconvert ipykernel

echo "== XCTest"
swift build --product loranas          # the debug libloranas.so the header/symbol test reads
swift test

echo "== Python package"
"$VENV/bin/pip" install -q --disable-pip-version-check ./python
(cd /tmp && "$VENV/bin/python" -c "import loranas; print('loranas', loranas.version(), 'ABI', loranas.abi_version())")

echo "== pytest"
# test_mpi.py runs jobs under `mpirun -np 2`; here a missing mpirun fails them instead of skipping.
LORANAS_REQUIRE_MPI=1 "$VENV/bin/python" -m pytest -q python/tests

echo "== a build without Open MPI: one process, refused under mpirun"
bash tools/check_no_mpi.sh "$VENV/bin/python"

echo "== the quickstart notebook, executed (nbclient)"
"$VENV/bin/python" tools/make_notebook.py --check

echo "== thread pool under ThreadSanitizer"
bash tools/test_pool.sh

echo "== fuzz (libFuzzer, 15 s per target)"
bash tools/fuzz.sh 15
