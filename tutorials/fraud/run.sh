#!/bin/sh
# run.sh - the fraud-consortium tutorial (docs/tutorials/fraud-consortium.md),
# every command of the page in order, on loopback, with a check of each
# outcome the page promises. `make tutorial-fraud` runs it; so does `make
# test-long` (tests/long/test_tutorial_fraud.sh).
#
#   tutorials/fraud/run.sh [WORKDIR]
#
# FEDC_BUILD (default build) holds the programs. WORKDIR (default a fresh
# temporary folder, removed on success) gets the consortium's files: data/,
# consortium/ (the operator's PKI, config, store, job files) and one folder
# per bank. The bank that trains with PyTorch needs torch under
# /usr/bin/python3: when it is missing, the script installs it as root
# (scripts/install-deps.sh with FEDC_DEPS_EXTRA=python3-torch) or else runs
# that bank on the built-in trainer and reports the PyTorch part SKIPPED.
# Exit 0: every check passed; 1: a check failed.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${FEDC_BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
PATH=$BUILD/bin:$PATH
PY=/usr/bin/python3
EX=$ROOT/tutorials/fraud
export PYTHONPATH=$ROOT/python
W=${1:-}
KEEP=1
[ -n "$W" ] || { W=$(mktemp -d /tmp/fedc-fraud.XXXXXX); KEEP=0; }
mkdir -p "$W" && W=$(cd "$W" && pwd)
START=$(date +%s)
FAILED=0
PIDS=""

say() { printf '\n== %s\n' "$*"; }
ok() { printf '  ok    %s\n' "$*"; }
bad() { printf '  FAIL  %s\n' "$*"; FAILED=1; }
skip() { printf '  SKIP  %s\n' "$*"; }
check() { # check DESCRIPTION COMMAND...: ok when the command succeeds
  d=$1; shift
  if "$@"; then ok "$d"; else bad "$d"; fi
}
stop_all() {
  for p in $PIDS; do kill "$p" 2>/dev/null; done
  for p in $PIDS; do wait "$p" 2>/dev/null; done
  PIDS=""
}
trap 'stop_all' EXIT
trap 'stop_all; exit 130' INT TERM
free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
elapsed() { echo $(( $(date +%s) - START )); }

[ -x "$BUILD/bin/fedc-coordinator" ] && [ -x "$BUILD/bin/fedc-client" ] || {
  echo "run.sh: no programs in $BUILD/bin: build them first (make)"; exit 1; }
$PY -c 'import numpy' 2>/dev/null || { echo "run.sh: $PY has no numpy (python3-numpy)"; exit 1; }

# ---- 0. PyTorch for bank D ------------------------------------------------------------------
TORCH=1
if ! $PY -c 'import torch' 2>/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    FEDC_DEPS_EXTRA=python3-torch sh "$ROOT/scripts/install-deps.sh" >/dev/null 2>&1
  fi
  $PY -c 'import torch' 2>/dev/null || TORCH=0
fi

# ---- 1. the data ------------------------------------------------------------------------------
say "1. four banks' transactions (tutorials/fraud/make_data.py)"
mkdir -p "$W/data"
$PY "$EX/make_data.py" "$W/data" | tee "$W/data/summary.txt"
check "five CSVs written" test -s "$W/data/bank-d.csv" -a -s "$W/data/test.csv"
check "each bank's fraud rate is in 0.5-2%" $PY - "$W/data" <<'PYEOF'
import csv, sys
for b in "abcd":
    y = [int(r["is_fraud"]) for r in csv.DictReader(open(f"{sys.argv[1]}/bank-{b}.csv"))]
    r = sum(y) / len(y)
    assert 0.005 <= r <= 0.02, (b, r)
PYEOF

# ---- 2. the PKI: no private key leaves its owner ---------------------------------------------
PORT=$(free_port); STATUS_PORT=$(free_port)
C=$W/consortium
mkdir -p "$C"
say "2. the consortium's PKI (fedc-coordinator pki init; fedc-client enroll; pki sign)"
fedc-coordinator pki init --dir "$C/pki" --san IP:127.0.0.1 --url "https://127.0.0.1:$PORT"
for b in a b c d; do
  mkdir -p "$W/bank-$b"
  cp "$W/data/bank-$b.csv" "$W/bank-$b/"
  (cd "$W/bank-$b" && fedc-client enroll --name "bank-$b" --dir .) >/dev/null
  fedc-coordinator pki sign "$W/bank-$b/bank-$b.csr" --dir "$C/pki" --store "$C/fedc.db" \
      --kit "$W/bank-$b" | sed 's/^/  /'
done
check "each bank's key stayed in its folder" sh -c \
  "ls $C/pki | grep -q bank && exit 1; test -f $W/bank-a/bank-a.key -a -f $W/bank-d/bank-d.key"
check "the four banks are allowed in the store" sh -c \
  "[ \$(fedc-coordinator --set store.path=$C/fedc.db clients 2>/dev/null | grep -c allowed) = 4 ]"

# ---- 3. the coordinator, as a queue daemon ----------------------------------------------------
say "3. the coordinator: one daemon, a queue of jobs"
cat > "$C/coordinator.ini" <<INI
[server]
listen = 127.0.0.1:$PORT
status_listen = 127.0.0.1:$STATUS_PORT
queue = true
poll_s = 2
[tls]
ca = $C/pki/ca.pem
cert = $C/pki/server.pem
key = $C/pki/server.key
[store]
path = $C/fedc.db
INI
fedc-coordinator --config "$C/coordinator.ini" > "$C/coordinator.log" 2>&1 &
PIDS="$PIDS $!"

# ---- 4. the banks' site services ---------------------------------------------------------------
say "4. each bank's site service (fedc-client --serve)"
start_bank() { # start_bank LETTER [EXTRA --set ...]
  b=$1; shift
  (cd "$W/bank-$b" && exec fedc-client --config site.ini --serve "$@") >> "$W/bank-$b/client.log" 2>&1 &
  eval "PID_$b=$!"
  PIDS="$PIDS $!"
}
BUILTIN_BANKS="a b c d"
[ $TORCH = 1 ] && BUILTIN_BANKS="a b c"
for b in $BUILTIN_BANKS; do
  cat >> "$W/bank-$b/site.ini" <<INI
format = csv
train = bank-$b.csv
test =
validation_split = 0.2

[policy]
model_types = logreg, mlp
trainers = builtin
max_epochs = 5
INI
done
if [ $TORCH = 1 ]; then
  cat >> "$W/bank-d/site.ini" <<INI
format = csv
train = bank-d.csv
test =

[policy]
model_types = logreg, mlp
trainers = external
max_epochs = 5

[trainer]
command = $PY $EX/torch_trainer.py --data bank-d.csv --holdout 0.2
evaluate = $PY $EX/torch_trainer.py --data bank-d.csv --holdout 0.2
timeout_s = 600
INI
fi
for b in a b c d; do start_bank $b; done

# ---- 5. the first job ---------------------------------------------------------------------------
say "5. job 1: logistic regression, class-weighted, PR AUC selects the best round"
mkdir -p "$C/jobs"
write_job() { # write_job FILE STRATEGY EXTRA-STRATEGY-LINE CLASS_WEIGHT
  cat > "$1" <<INI
[job]
rounds = 8
clients_per_round = 4
min_clients = 4
round_timeout_s = 120
seed = 7

[model]
type = logreg

[data]
test =
label = is_fraud
exclude = tx_id
features = amount,hour,merchant,card_present,distance_km,tx_24h,amount_ratio,new_merchant
categorical = merchant:grocery|fuel|restaurant|travel|online|electronics|atm

[train]
epochs = 1
batch_size = 64
lr = 0.05
class_weight = $4

[eval]
every = 1
select = pr_auc
threshold = 0.8

[strategy]
name = $2
$3
INI
}
write_job "$C/jobs/fraud-lr.ini" fedavg "" balanced
jobs() { fedc-coordinator --config "$C/coordinator.ini" jobs 2>/dev/null; }
state() { jobs | awk -v j="$1" '$1 == j { print $2 }'; }
wait_job() { # wait_job N SECONDS
  t=0
  while [ $t -lt "$2" ]; do
    s=$(state "$1")
    case $s in finished|failed|cancelled) [ "$s" = finished ]; return ;; esac
    sleep 1; t=$((t + 1))
  done
  return 1
}
T0=$(date +%s)
fedc-coordinator --config "$C/coordinator.ini" submit "$C/jobs/fraud-lr.ini" --name fraud-lr
check "job 1 finished" wait_job 1 240
T1=$(( $(date +%s) - T0 ))
jobs
curl -s "http://127.0.0.1:$STATUS_PORT/v1/status" > "$C/status-1.json"
$PY - "$C/status-1.json" <<'PYEOF' | tee "$C/eval-1.txt"
import json, sys
e = json.load(open(sys.argv[1]))["eval"]
for r in e["rounds"]:
    print(f"  round {r['round']:2d}: sites {r['sites']}  PR AUC {r['pr_auc']:.3f}  ROC AUC {r['auc']:.3f}"
          f"  precision {r['precision']:.3f}  recall {r['recall']:.3f}")
print(f"  best round by {e['select']}: {e['best_round']} ({e['best_value']:.3f})")
PYEOF
check "every round was evaluated by the four banks" $PY -c "
import json,sys; e=json.load(open('$C/status-1.json'))['eval']
assert e['select'] == 'pr_auc' and len(e['rounds']) == 8 and all(r['sites'] == 4 for r in e['rounds'])"
check "every bank trained every round" $PY -c "
import sqlite3; c=sqlite3.connect('file:$C/fedc.db.jobs/job-1.db?mode=ro', uri=True)
n=dict(c.execute('SELECT client_id, COUNT(*) FROM updates GROUP BY client_id').fetchall())
assert sorted(n) == [1,2,3,4] and set(n.values()) == {8}, n"
if [ $TORCH = 1 ]; then
  check "bank D trained with PyTorch (its log) and its evaluations were accepted" sh -c \
    "[ \$(grep -c '\"bank\": \"torch_trainer\"' $W/bank-d/client.log) -ge 8 ] &&
     [ \$(grep -c 'evaluation accepted' $W/bank-d/client.log) -ge 8 ]"
else
  skip "bank D's PyTorch trainer: $PY has no torch (FEDC_DEPS_EXTRA=python3-torch scripts/install-deps.sh); bank D ran the built-in trainer"
fi
fedc-coordinator --config "$C/coordinator.ini" export 1 best "$C/fraud-lr.safetensors"
fedc-predict --model "$C/fraud-lr.safetensors" --input "$W/data/test.csv" \
    --output "$C/fraud-lr.csv"
$PY "$EX/score.py" "$C/fraud-lr.csv" "$W/data/test.csv" --threshold 0.8 | tee "$C/score-1.txt"
check "job 1 on the held-out transactions: PR AUC >= 0.40, recall at 0.8 >= 0.40" $PY -c "
import json,subprocess,sys
f=json.loads(subprocess.run(['$PY','$EX/score.py','$C/fraud-lr.csv','$W/data/test.csv','--json'],capture_output=True,text=True).stdout)
assert f['pr_auc'] >= 0.40 and f['recall'] >= 0.40, f"
echo "  (job 1: 8 rounds in ${T1}s)"
printf '  the same model fitted on the pooled rows (scikit-learn): '
$PY "$EX/centralized.py" "$W/data" --threshold 0.8 | tee "$C/score-pooled.txt"

# ---- 6. a bank's corrupted data: FedAvg against trimmed mean -----------------------------------
say "6. bank C's botched export (fraud flags inverted): fedavg and trimmed_mean"
kill "$PID_c"; wait "$PID_c" 2>/dev/null
cp "$W/data/bank-c-broken.csv" "$W/bank-c/"
start_bank c --set data.train=bank-c-broken.csv
write_job "$C/jobs/fedavg-broken.ini" fedavg "" balanced
write_job "$C/jobs/trimmed-broken.ini" trimmed_mean "trim_beta = 0.25" balanced
T0=$(date +%s)
fedc-coordinator --config "$C/coordinator.ini" submit "$C/jobs/fedavg-broken.ini" --name fedavg-broken
fedc-coordinator --config "$C/coordinator.ini" submit "$C/jobs/trimmed-broken.ini" --name trimmed-broken
check "job 2 (fedavg) finished" wait_job 2 240
check "job 3 (trimmed_mean) finished" wait_job 3 240
T23=$(( $(date +%s) - T0 ))
jobs
curl -s "http://127.0.0.1:$STATUS_PORT/v1/status" > "$C/status-3.json"
check "the federation's label counts show bank C's inverted flags" $PY - "$C" "$W/data" <<'PYEOF'
import csv, json, sys
n = {f: [int(r["is_fraud"]) for r in csv.DictReader(open(f"{sys.argv[2]}/{f}.csv"))]
     for f in ("bank-a", "bank-b", "bank-c", "bank-d", "bank-c-broken")}
clean = sum(sum(n[f"bank-{b}"]) for b in "abcd")
broken = clean - sum(n["bank-c"]) + sum(n["bank-c-broken"])
s1 = json.load(open(f"{sys.argv[1]}/status-1.json"))["statistics"]["label_counts"]
s3 = json.load(open(f"{sys.argv[1]}/status-3.json"))["statistics"]["label_counts"]
print(f"  frauds in the federation's label counts: job 1 {s1[1]}, job 3 {s3[1]}")
assert s1[1] == clean and s3[1] == broken, (s1, s3, clean, broken)
PYEOF
for j in 2 3; do
  fedc-coordinator --config "$C/coordinator.ini" export $j latest "$C/job-$j.safetensors"
  fedc-predict --model "$C/job-$j.safetensors" --input "$W/data/test.csv" --output "$C/job-$j.csv"
done
printf '  fedavg,       bank C broken: '; $PY "$EX/score.py" "$C/job-2.csv" "$W/data/test.csv" | tee "$C/score-2.txt"
printf '  trimmed_mean, bank C broken: '; $PY "$EX/score.py" "$C/job-3.csv" "$W/data/test.csv" | tee "$C/score-3.txt"
check "trimmed_mean keeps PR AUC within 0.10 of the clean job and beats fedavg by 0.05 or more" $PY -c "
import json,subprocess
def f(p): return json.loads(subprocess.run(['$PY','$EX/score.py',p,'$W/data/test.csv','--json'],capture_output=True,text=True).stdout)
clean, avg, trim = f('$C/fraud-lr.csv'), f('$C/job-2.csv'), f('$C/job-3.csv')
print('  PR AUC: clean %.3f, fedavg %.3f, trimmed_mean %.3f' % (clean['pr_auc'], avg['pr_auc'], trim['pr_auc']))
assert trim['pr_auc'] >= clean['pr_auc'] - 0.10 and trim['pr_auc'] >= avg['pr_auc'] + 0.05"
echo "  (jobs 2 and 3: 16 rounds in ${T23}s)"

# ---- the end ------------------------------------------------------------------------------------
stop_all
say "done in $(elapsed)s"
if [ $FAILED = 0 ]; then
  echo "tutorial-fraud: every check passed$([ $TORCH = 1 ] || echo ' (the PyTorch part SKIPPED)')"
  [ $KEEP = 1 ] || rm -rf "$W"
  exit 0
fi
echo "tutorial-fraud: FAILED (files in $W)"
exit 1
