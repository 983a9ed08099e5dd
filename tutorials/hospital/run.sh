#!/bin/sh
# run.sh - every command of docs/tutorials/hospital-network.md, on loopback,
# checking each outcome the page promises. `make tutorial-hospital` runs it.
#
# Three hospitals (their own folders: their data and keys never leave them),
# one coordinator (a queue daemon), three jobs on the same running sites.
# Exit 0: every check passed; 1: a check failed (its line says which);
# 77: python3-sklearn is missing. Work folder: $TUTORIAL_DIR (default a
# temporary one, removed at the end unless KEEP=1).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD_DIR=${FEDC_BUILD:-$ROOT/build}
case $BUILD_DIR in /*) ;; *) BUILD_DIR=$(pwd)/$BUILD_DIR ;; esac # before the cd below
BIN=$BUILD_DIR/bin
PY=/usr/bin/python3
export PATH="$BIN:$PATH"
$PY -c "import sklearn, numpy" 2>/dev/null || { echo "skip: python3-sklearn is not installed"; exit 77; }
W=${TUTORIAL_DIR:-$(mktemp -d /tmp/fedc-hospital.XXXXXX)}
mkdir -p "$W" && cd "$W" || exit 1
PORT=${PORT:-$((20000 + $$ % 20000))}
STATUS=$((PORT + 1))
PIDS=""
FAILS=0
T0=$(date +%s)
cleanup() {
  for p in $PIDS; do kill "$p" 2>/dev/null; done
  for p in $PIDS; do wait "$p" 2>/dev/null; done
  [ "${KEEP:-0}" = 1 ] || [ -n "${TUTORIAL_DIR:-}" ] || rm -rf "$W"
}
trap cleanup EXIT INT TERM
step() { printf '\n== %s\n' "$*"; }
check() { # check DESCRIPTION COMMAND...: the command must succeed
  d=$1; shift
  if "$@"; then echo "ok: $d"; else echo "FAILED: $d"; FAILS=$((FAILS + 1)); fi
}
# wait_until SECONDS COMMAND...
wait_until() {
  n=$1; shift
  while [ "$n" -gt 0 ]; do "$@" && return 0; sleep 1; n=$((n - 1)); done
  return 1
}

step "1. Each hospital's data (one folder each)"
$PY "$ROOT/tutorials/hospital/make_data.py" . || exit 1
head -c 160 hospital-a/hospital-a.csv; echo " ..."

step "2. The coordinator's PKI; each hospital enrolls; the operator signs"
fedc-coordinator pki init --dir coord/pki --san IP:127.0.0.1 --url "https://127.0.0.1:$PORT" \
  || exit 1
for h in hospital-a hospital-b hospital-c; do
  (cd $h && fedc-client enroll --name $h --dir .) || exit 1
  # only the CSR travels to the operator; the key stays in the hospital's folder
  fedc-coordinator pki sign $h/$h.csr --dir coord/pki --store coord/fedc.db --kit $h/kit || exit 1
done
check "the kits hold no private key" sh -c '! ls hospital-*/kit/*.key 2>/dev/null | grep -q .'
check "each key stayed at its hospital" test -f hospital-b/hospital-b.key

step "3. The coordinator: a queue daemon"
cat > coord/coordinator.ini <<INI
[server]
listen = 127.0.0.1:$PORT
status_listen = 127.0.0.1:$STATUS
queue = true
poll_s = 2
[tls]
ca = pki/ca.pem
cert = pki/server.pem
key = pki/server.key
[store]
path = fedc.db
INI
(cd coord && exec fedc-coordinator --config coordinator.ini serve 2> coordinator.log) &
PIDS="$PIDS $!"

step "4. Each hospital runs its site service"
for h in hospital-a hospital-b hospital-c; do
  cp $h/kit/* $h/
  cat >> $h/site.ini <<INI

[data]
format = csv
train = $h.csv
label = malignant
validation_split = 0.2   ; 20% of our patients score each model, never train

[client]
serve = true
backoff_max_s = 2
INI
  (cd $h && exec fedc-client --config site.ini --serve 2> site.log) &
  PIDS="$PIDS $!"
done

step "5. The job: written by init from a hospital's header, then edited"
fedc-coordinator init --data hospital-a/hospital-a.csv --job --out coord/logreg.ini || exit 1
sed -i -e 's/^rounds = 20 /rounds = 15 /' -e 's/^min_clients = 2 /min_clients = 3 /' coord/logreg.ini
grep -E '^(rounds|type|select|label|exclude) ' coord/logreg.ini

step "6. Privacy: central DP with its ledger (job 1); secure aggregation and DP at the sites in one job (job 2)"
# clip bounds: public ranges from the data dictionary, generous, never from the sites' data
CLIP="mean_radius:0:40,mean_texture:0:60,mean_perimeter:0:250,mean_area:0:4000"
CLIP="$CLIP,mean_smoothness:0:0.25,mean_compactness:0:0.5,mean_concavity:0:0.6"
CLIP="$CLIP,mean_concave_points:0:0.3,mean_symmetry:0:0.5,mean_fractal_dimension:0:0.15"
CLIP="$CLIP,radius_error:0:4,texture_error:0:6,perimeter_error:0:30,area_error:0:800"
CLIP="$CLIP,smoothness_error:0:0.05,compactness_error:0:0.2,concavity_error:0:0.6"
CLIP="$CLIP,concave_points_error:0:0.08,symmetry_error:0:0.12,fractal_dimension_error:0:0.05"
CLIP="$CLIP,worst_radius:0:50,worst_texture:0:70,worst_perimeter:0:350,worst_area:0:6000"
CLIP="$CLIP,worst_smoothness:0:0.3,worst_compactness:0:1.5,worst_concavity:0:1.8"
CLIP="$CLIP,worst_concave_points:0:0.4,worst_symmetry:0:1,worst_fractal_dimension:0:0.3"
sed "s/^label = malignant.*/&\nclip = $CLIP/" coord/logreg.ini > coord/logreg-dp.ini
printf '\n[privacy]\nnoise_multiplier = 1.0\nclip_norm = 1.0\ndelta = 0.00001\n' >> coord/logreg-dp.ini
# job 2: the same schema and bounds; 5 rounds of 5 local epochs; secure aggregation, and
# the DP noise added by the hospitals themselves (noise_at = sites)
sed -e 's/^rounds = 15 /rounds = 5 /' -e 's/^epochs = 1/epochs = 5/' -e '/^\[privacy\]/,$d' \
  coord/logreg-dp.ini > coord/logreg-sa-dp.ini
printf '[privacy]\nsecure_aggregation = true\nnoise_at = sites\nnoise_multiplier = 0.8\nclip_norm = 1.0\ndelta = 0.00001\n' \
  >> coord/logreg-sa-dp.ini
grep -E '^(rounds|epochs) ' coord/logreg-sa-dp.ini; tail -n 6 coord/logreg-sa-dp.ini

step "7. Submit the DP job and watch it"
(cd coord && fedc-coordinator --config coordinator.ini submit logreg-dp.ini --name logreg-dp) || exit 1
check "/v1/status answers while the job runs" wait_until 60 curl -sf "http://127.0.0.1:$STATUS/v1/status" -o /dev/null
curl -s "http://127.0.0.1:$STATUS/v1/status" | $PY -c 'import json,sys; s=json.load(sys.stdin); print("status:", s.get("state"), "round", s.get("round"), "statistics", (s.get("statistics") or {}).get("phase"))'
finished() { (cd coord && fedc-coordinator --config coordinator.ini jobs) | grep -q "^ *$1 *finished"; }
check "job 1 finishes" wait_until 300 finished 1
(cd coord && fedc-coordinator --config coordinator.ini jobs)
curl -s "http://127.0.0.1:$STATUS/v1/status" > status1.json
curl -s "http://127.0.0.1:$STATUS/" > dashboard.html
check "the dashboard is served" grep -qi "<html" dashboard.html
check "the ledger: epsilon grows every round, /v1/status privacy = last round's" $PY -c '
import json, sys
s = json.load(open("status1.json")); eps = [r["epsilon"] for r in s["rounds"]]
print("epsilon by round:", " ".join("%.2f" % e for e in eps), " ledger:", s["privacy"])
sys.exit(not (len(eps) == 15 and all(b > a for a, b in zip(eps, eps[1:]))
              and abs(s["privacy"]["epsilon"] - eps[-1]) < 1e-9))'

step "8. Export the best model (by federated ROC AUC) and predict on new patients"
(cd coord && fedc-coordinator --config coordinator.ini export 1 best ../logreg-dp.safetensors) || FAILS=$((FAILS + 1))
check "fedc-predict exits 0" fedc-predict --model logreg-dp.safetensors --input new-patients.csv \
  --output logreg-dp-pred.csv
head -3 logreg-dp-pred.csv
# job 2: statistics and updates under secure aggregation, DP noise added by the hospitals
(cd coord && fedc-coordinator --config coordinator.ini submit logreg-sa-dp.ini --name logreg-sa-dp) || exit 1
check "job 2 (secure aggregation + DP at the sites) finishes" wait_until 300 finished 2
curl -s "http://127.0.0.1:$STATUS/v1/status" > status2.json
check "job 2: statistics and every round through secure aggregation" $PY -c '
import json, sys
s = json.load(open("status2.json")); st = s["statistics"]; sa = s["secagg"]
print("statistics:", {k: st.get(k) for k in ("phase", "secure_aggregation", "sites", "rows", "label_counts")})
print("last secure round:", {k: sa["last"].get(k) for k in ("round", "committed", "survivors", "dropped", "frac_bits")})
sys.exit(not (st.get("secure_aggregation") is True and st["phase"] == "done" and st["sites"] == 3
              and sa["last"]["committed"] and sa["last"]["round"] == 5 and len(s["rounds"]) == 5))'
check "job 2: the ledger grows every round, noise at the sites, /v1/status privacy = last round's" $PY -c '
import json, sys
s = json.load(open("status2.json")); eps = [r["epsilon"] for r in s["rounds"]]
print("epsilon by round:", " ".join("%.2f" % e for e in eps), " ledger:", s["privacy"])
sys.exit(not (len(eps) == 5 and all(b > a for a, b in zip(eps, eps[1:]))
              and abs(s["privacy"]["epsilon"] - eps[-1]) < 1e-9 and s["privacy"]["noise_at"] == "sites"))'
check "job 2: each hospital clipped and noised its update in every round" sh -c \
  'for h in hospital-a hospital-b hospital-c; do [ "$(grep -c "clipped and noised at the site" $h/site.log)" -ge 5 ] || exit 1; done'
grep -h "clipped and noised at the site" hospital-a/site.log | tail -n 1 | sed 's/^[^ ]* //'
(cd coord && fedc-coordinator --config coordinator.ini export 2 best ../logreg-sa-dp.safetensors) || FAILS=$((FAILS + 1))
check "fedc-predict exits 0 (secure aggregation + DP)" fedc-predict --model logreg-sa-dp.safetensors \
  --input new-patients.csv --output logreg-sa-dp-pred.csv

step "9. A second job, an MLP, on the same running sites"
sed -e 's/^type = logreg .*/type = mlp/' -e 's/^; classes: .*/classes = 2\nhidden = 16/' \
    -e 's/^select = auc .*/select = -log_loss/' -e 's/^lr = 0.1/lr = 0.05/' \
    coord/logreg.ini > coord/mlp.ini
(cd coord && fedc-coordinator --config coordinator.ini submit mlp.ini --name mlp) || exit 1
check "job 3 finishes" wait_until 300 finished 3
(cd coord && fedc-coordinator --config coordinator.ini jobs)
(cd coord && fedc-coordinator --config coordinator.ini export 3 best ../mlp.safetensors) || FAILS=$((FAILS + 1))
check "fedc-predict exits 0 (mlp)" fedc-predict --model mlp.safetensors --input new-patients.csv \
  --output mlp-pred.csv

step "10. Against a centralized model on the pooled data"
$PY "$ROOT/tutorials/hospital/compare.py" . || FAILS=$((FAILS + 1))
check "the sites' data never left their folders" sh -c '! grep -rq "^patient_id" coord'

echo
echo "time: $(( $(date +%s) - T0 )) s"
if [ $FAILS -ne 0 ]; then echo "$FAILS check(s) FAILED (work folder: $W)"; KEEP=1; exit 1; fi
echo "all checks passed"
