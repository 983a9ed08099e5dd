#!/bin/sh
# test_polls.sh - pending long-polls while the client array grows, and a
# commit that fails before its durable write (tests/integration/poll_tests.py).
# Run it with FEDC_BUILD=build/san after `make SANITIZE=address,undefined`
# for the use-after-free check to bite.
BUILD=${FEDC_BUILD:-build}
for b in fedc-coordinator fedc-client; do
  if [ ! -x "$BUILD/bin/$b" ]; then
    echo "test_polls: $BUILD/bin/$b is not built"
    exit 1
  fi
done
exec python3 tests/integration/poll_tests.py "$@"
