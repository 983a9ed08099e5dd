#!/bin/sh
# early_fold.sh - a chunked update folded as its bytes arrive against folded
# at completion (bench/early_fold.py): each round's time from the last byte
# of its last update to its commit, and the coordinator's peak RSS, with
# FedAvg's sums in large-model mode and in memory. FEDC_EFOLD_MB (256),
# FEDC_EFOLD_CLIENTS (3) and FEDC_EFOLD_ROUNDS (2) change the job,
# FEDC_EFOLD_SHARE ([strategy] max_client_share, 0; "default": 0.5) and
# FEDC_EFOLD_BIG (site 1's claimed sample count, for the cap to cut) its
# strategy; the default needs about 6 GiB of memory.
BUILD=${FEDC_BUILD:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
for b in bin/fedc-coordinator bin/fedc-client; do
  if [ ! -x "$BUILD/$b" ]; then
    echo "early_fold: $BUILD/$b is not built (make all)"
    exit 1
  fi
done
FEDC_BUILD=$BUILD exec /usr/bin/python3 bench/early_fold.py
