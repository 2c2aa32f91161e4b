#!/usr/bin/env bash
# Installs the system packages loranas needs (Debian: OpenBLAS, libpng, zlib, libjpeg-turbo, Open MPI, Python
# headers) and builds the release engine: libloranas.so and the loranas-cli binary in .build/release/.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for pkg in libopenblas-dev libpng-dev zlib1g-dev libjpeg62-turbo-dev openmpi-bin libopenmpi-dev python3-dev; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing ${missing[*]}"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

command -v swift >/dev/null || export PATH="/opt/swift/usr/bin:$PATH"
echo "== building the release engine"
swift build -c release --product loranas
swift build -c release --product loranas-cli
# SwiftPM needs distinct product names for the library (libloranas.so) and the executable, so the
# CLI is built as loranas-cli; `loranas` beside it is the name it answers to.
ln -sf loranas-cli .build/release/loranas
