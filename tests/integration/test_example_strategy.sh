#!/bin/sh
# test_example_strategy.sh - examples/custom_strategy, built against the
# installed library (make examples), registers a geometric-median strategy
# from outside fedc and runs a simulation on Fashion-MNIST with it: each
# round is printed from the simulation's callback, the strategy's callbacks
# were the ones called (counted), the accuracy is sane; a second run with a
# strategy name nobody registered is a config error naming the key.
# Skipped (exit 77) when the example was not built.
set -u
BUILD=${FEDC_BUILD:-build}
EX="$BUILD/examples/custom_strategy"
if [ ! -x "$EX" ]; then
  echo "skipped: $EX was not built (make examples)"
  exit 77
fi
. "$(dirname "$0")/lib.sh"

expect 0 "" "custom_strategy runs its geomedian simulation" -- "$EX"
grep -q "^registered geomedian " "$T/out" && ok "the strategy is registered" || bad "no registration line: $(head -c 300 "$T/out")"
n=$(grep -c "^round [0-9]*: 5 clients" "$T/out")
[ "$n" = 3 ] && ok "3 rounds printed from the callback" || bad "rounds printed: $n"
grep -q "^geomedian callbacks: create 1, begin 3, add 15, finish 3$" "$T/out" &&
  ok "the simulation called geomedian's callbacks (3 rounds x 5 clients)" ||
  bad "callback counts: $(grep callbacks "$T/out")"
acc=$(sed -n 's/^final accuracy \([0-9.]*\).*/\1/p' "$T/out")
if [ -n "$acc" ] && awk -v a="$acc" 'BEGIN { exit !(a >= 0.6 && a <= 1.0) }'; then
  ok "final accuracy $acc in [0.6, 1]"
else
  bad "final accuracy '$acc'"
fi
expect 0 "" "custom_strategy with 4 rounds" -- "$EX" job.rounds=4
grep -q "^geomedian callbacks: create 1, begin 4, add 20, finish 4$" "$T/out" &&
  ok "settings from the command line reach the simulation" || bad "4 rounds: $(grep callbacks "$T/out")"
expect 2 "\[strategy\] name = nosuch: must be one of fedavg" \
  "an unregistered strategy is a config error naming the key" -- "$EX" strategy.name=nosuch

summary test_example_strategy
