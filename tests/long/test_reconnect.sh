#!/bin/sh
# test_reconnect.sh - clients reconnecting after a coordinator restart
# resume their TLS sessions (bench/reconnect.sh with FEDC_RECONNECT_CLIENTS,
# 1,000 by default here): with resumption every handshake after the
# restart must be a resumed one's count > 0, without it none; the figures
# (seconds until the last client has its next task) are printed.
# docs/load.md has the 10,000-client figures.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export FEDC_RECONNECT_CLIENTS=${FEDC_RECONNECT_CLIENTS:-1000}
export FEDC_RECONNECT_ROUNDS=${FEDC_RECONNECT_ROUNDS:-8}
exec sh "$ROOT/bench/reconnect.sh"
