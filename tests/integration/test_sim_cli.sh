#!/bin/sh
# test_sim_cli.sh - fedc-sim as a user meets it: exit codes and messages for
# bad input, the --json contract, --save output checked by an independent
# reader, and the same seed giving the same model file byte for byte.
set -u
BUILD=${FEDC_BUILD:-build}
SIM="$BUILD/bin/fedc-sim"
. "$(dirname "$0")/lib.sh"

FAST="--set job.rounds=3 --set sim.clients=20 --set job.clients_per_round=4 --quiet"

expect 0 "" "--help exits 0" -- "$SIM" --help
expect 0 "" "--version exits 0" -- "$SIM" --version
grep -q "fedc-sim [0-9]" "$T/out" && ok "--version prints the version" || bad "--version output"
expect 2 "unknown option" "unknown option is a usage error" -- "$SIM" --frobnicate

printf '[job]\nrounds = 5\n[train]\nlrr = 0.1\n' >"$T/bad-key.ini"
expect 2 "bad-key.ini:4: unknown key 'lrr' in \[train\]" "unknown key names file, line and key" -- "$SIM" --config "$T/bad-key.ini"
printf '[train]\nlr = fast\n' >"$T/bad-type.ini"
expect 2 "bad-type.ini:2: \[train\] lr = fast" "wrong type names file, line and key" -- "$SIM" --config "$T/bad-type.ini"
expect 2 "\[train\] lr = 0: must be > 0" "lr <= 0 refused" -- "$SIM" --set train.lr=0
expect 2 "\[sim\] alpha = -1" "alpha <= 0 refused" -- "$SIM" --set sim.alpha=-1
expect 2 "clients_per_round = 200: must be <= \[sim\] clients = 100" "clients_per_round > clients refused" -- "$SIM" --set job.clients_per_round=200
expect 2 "/nonexistent/images.gz" "missing data file names the path" -- "$SIM" $FAST --set data.train=/nonexistent/images.gz
expect 2 "cannot open" "missing config file" -- "$SIM" --config "$T/none.ini"

# --json: one object per round, then the final one, with the documented keys
if "$SIM" $FAST --json --save "$T/a.safetensors" >"$T/run.json" 2>"$T/err"; then
  if python3 - "$T/run.json" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
rounds, final = lines[:-1], lines[-1]
assert [r["round"] for r in rounds] == [1, 2, 3], rounds
for r in rounds:
    for k in ("test_acc", "test_loss", "train_loss", "clients", "samples", "secs"):
        assert k in r, (k, r)
    assert r["clients"] == 4 and r["samples"] > 0
assert final["final"] is True and final["rounds"] == 3
for k in ("test_acc", "secs", "sec_per_round"):
    assert k in final, k
assert 0.3 < final["test_acc"] <= 1.0, final
PY
  then ok "--json prints 3 round objects and a final one"; else bad "--json contract"; fi
else
  bad "--json run failed: $(head -c 300 "$T/err")"
fi

# --save: an independent reader (stdlib Python) validates the file
if python3 tests/tools/check_safetensors.py "$T/a.safetensors" >"$T/check" 2>&1 &&
   grep -q "layers.0.weight" "$T/check"; then
  ok "--save writes a valid safetensors file"
else
  bad "--save output: $(cat "$T/check")"
fi

# same seed, same model, whatever the thread count
"$SIM" $FAST --threads 1 --save "$T/b.safetensors" 2>/dev/null
if cmp -s "$T/a.safetensors" "$T/b.safetensors"; then ok "same seed gives the same model file (2 vs 1 threads)"
else bad "same seed, different model"; fi
"$SIM" $FAST --set job.seed=2 --save "$T/c.safetensors" 2>/dev/null
if cmp -s "$T/a.safetensors" "$T/c.safetensors"; then bad "different seed gives the same model"
else ok "a different seed gives a different model"; fi
expect 3 "--save /nonexistent-dir/m.safetensors" "unwritable --save exits 3" -- "$SIM" $FAST --save /nonexistent-dir/m.safetensors

summary test_sim_cli
