#!/bin/sh
# test_flood.sh - the hardening suite's flood: 1,000 slow connections
# (ClientHellos trickled from 20 loopback addresses) plus a replayed-
# ClientHello flood from one attacking core, against a coordinator limited
# to 1,024 descriptors: a 4-client job of 80 rounds completes, its median
# round under attack at most 2x the undisturbed one, the coordinator's RSS under 200
# MiB (tests/integration/attack_tls_tests.py test_flood_long; the short
# version with 200 connections and a 5 s flood is in make test).
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
exec python3 tests/integration/attack_tls_tests.py test_flood_long
