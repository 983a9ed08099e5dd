#!/bin/sh
# test_large_model.sh - large-model mode with a 256 MiB model (a tensor
# job's F32 tensor, two sites, two rounds): the coordinator's peak RSS
# stays under 3x the model plus its own size with a tiny model (printed).
# tests/integration/large_model_tests.py with LARGE_MODEL_MB=256; needs
# about 4 GiB of memory and 2 GiB of disk.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
export LARGE_MODEL_MB=${LARGE_MODEL_MB:-256}
exec sh tests/integration/test_large_model.sh test_memory
