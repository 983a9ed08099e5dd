#!/bin/sh
# test_lint.sh - scripts/lint.sh as part of the suite.
exec sh scripts/lint.sh
