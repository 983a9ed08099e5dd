#!/bin/sh
# test_tutorial_fraud.sh - the fraud-consortium tutorial
# (docs/tutorials/fraud-consortium.md) run by its script, tutorials/fraud/run.sh,
# which checks every outcome the page promises (about 6 minutes on 2 cores).
# Skipped (77) without numpy under /usr/bin/python3 or without curl.
cd "$(dirname "$0")/../.." || exit 1
/usr/bin/python3 -c 'import numpy' 2>/dev/null || { echo "SKIP: /usr/bin/python3 has no numpy"; exit 77; }
command -v curl >/dev/null 2>&1 || { echo "SKIP: no curl"; exit 77; }
FEDC_BUILD=${FEDC_BUILD:-build} sh tutorials/fraud/run.sh
