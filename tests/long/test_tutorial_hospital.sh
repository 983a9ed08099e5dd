#!/bin/sh
# test_tutorial_hospital.sh - docs/tutorials/hospital-network.md end to end:
# runs tutorials/hospital/run.sh (every command of the page on loopback,
# each promised outcome checked). Exit 0 passed, 77 skipped (no
# python3-sklearn), else failed.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
FEDC_BUILD=${FEDC_BUILD:-$ROOT/build} exec sh "$ROOT/tutorials/hospital/run.sh"
