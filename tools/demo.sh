#!/usr/bin/env bash
# The main job, end to end on a fresh machine: install, build, inspect a Mllama checkpoint, then
# search LoRA ranks and fine-tune searched, uniform and random-rank adapters at equal budget.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
MODEL=Tests/LoRANASTests/Fixtures/mllama/tiles4_gqa
.build/release/loranas inspect "$MODEL"
echo
.build/release/loranas compare "$MODEL" --random-init "$@"
