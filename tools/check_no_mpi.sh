#!/usr/bin/env bash
# A build without Open MPI (LORANAS_MPI=0, what a machine without libopenmpi-dev gets) does not link libmpi, runs as
# one process and says so, and refuses to start under mpirun rather than run the whole job once per process.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="$(realpath "${1:-.venv-test/bin/python}")"
LORANAS_MPI=0 swift build --scratch-path .build-nompi --product loranas
LIB="$PWD/.build-nompi/debug/libloranas.so"
if ldd "$LIB" | grep -q libmpi; then echo "a build with LORANAS_MPI=0 links libmpi"; exit 1; fi
export LORANAS_LIBRARY="$LIB" PYTHONPATH="$PWD/python"
"$PY" -c "
import loranas
w = loranas.world()
assert (w.rank, w.size, w.summary) == (0, 1, 'one process (this build has no Open MPI)'), w
print('without Open MPI:', w.summary)"
root=(); [ "$(id -u)" -eq 0 ] && root=(--allow-run-as-root)
if out=$(mpirun -np 2 "${root[@]}" "$PY" -c "import loranas" 2>&1); then
    echo "a build without Open MPI started under mpirun"; exit 1
fi
grep -q "mpirun started 2 processes, but this build of loranas has no Open MPI" <<<"$out"
echo "without Open MPI, under mpirun: refused with a clear error"
