#!/bin/sh
# test_init_config.sh - no Fashion-MNIST where it surprises, and
# `fedc-coordinator init`: a config for the user's own CSV (schema from its
# header) that the coordinator runs as written; a site config without
# [data] train says the key is missing; a coordinator with a schema and no
# `test =` starts (it used to load Fashion-MNIST's test set and stop).
. "$(dirname "$0")/lib.sh"
B=${FEDC_BUILD:-build}/bin
C="$B/fedc-coordinator"

# a small table: an id, a text column, a missing value, a 0/1 label
{
  echo "id,age,smoker,bmi,outcome"
  i=0
  while [ $i -lt 40 ]; do
    s=no; [ $((i % 3)) = 0 ] && s=yes
    b=$((20 + i % 9)); [ $i = 7 ] && b=NA
    echo "$((1000 + i)),$((30 + i)),$s,$b,$((i % 4 == 0))"
    i=$((i + 1))
  done
} > "$T/site.csv"

expect 0 "wrote" "init --data writes a config" -- $C init --data "$T/site.csv" --out "$T/full.ini"
f="$T/full.ini"
grep -q '^features = age,smoker,bmi$' "$f" && grep -q '^label = outcome' "$f" &&
  grep -q '^exclude = id' "$f" && grep -q '^categorical = smoker:yes|no' "$f" &&
  grep -q '^missing = mean' "$f" && grep -q '^type = logreg' "$f" && grep -q '^select = auc' "$f" &&
  grep -q '^\[store\]' "$f" && ok "the schema, label, model and metric come from the CSV" ||
  bad "init's config: $(grep -E '^(features|label|exclude|categorical|missing|type|select) ' "$f")"
expect 0 "wrote" "init --job leaves the daemon's keys out" -- \
  $C init --data "$T/site.csv" --job --label outcome --out "$T/job.ini"
grep -q '^\[server\]' "$T/job.ini" && bad "a job file with [server]" || ok "a job file has no [server]"
expect 0 "features = age,bmi,smoker" "init without --data writes placeholders to stdout" -- $C init
expect 1 "no column named nope" "an unknown --label is refused" -- \
  $C init --data "$T/site.csv" --label nope --out "$T/x.ini"
expect 1 "cannot open" "a missing CSV is refused" -- $C init --data "$T/none.csv" --out "$T/x.ini"

# the job file is accepted by a queue as written (submit checks it as the coordinator would)
printf '[store]\npath = %s/q.db\n[tls]\nca = a\ncert = b\nkey = c\n' "$T" > "$T/daemon.ini"
expect 0 "submitted job 1" "a queue accepts init's job file" -- \
  $C --config "$T/daemon.ini" submit "$T/job.ini"

# a site without [data] train: the key is missing, not Fashion-MNIST
printf '[server]\nurl = https://127.0.0.1:1\n[tls]\nca = a\ncert = b\nkey = c\n' > "$T/site.ini"
expect 2 "\[data\] train is missing" "a site without [data] train is told the key is missing" -- \
  "$B/fedc-client" --config "$T/site.ini"
expect 2 "\[data\] train is missing" "fedc-sim with format = csv and no tables says so" -- \
  "$B/fedc-sim" --set data.format=csv --set job.rounds=1

# the coordinator init wrote starts without `test =` (no Fashion-MNIST test set loaded)
$C pki init --dir "$T/pki" --san IP:127.0.0.1 >/dev/null 2>&1
PORT=$((30000 + $$ % 20000))
(cd "$T" && exec "$OLDPWD/$C" --config full.ini --set "server.listen=127.0.0.1:$PORT" \
  --set server.status_listen= --set "tls.ca=pki/ca.pem" --set "tls.cert=pki/server.pem" \
  --set "tls.key=pki/server.key" 2> coord.log) &
pid=$!
n=0
while [ $n -lt 50 ] && ! grep -q "job started" "$T/coord.log" 2>/dev/null && kill -0 $pid 2>/dev/null; do
  sleep 0.2; n=$((n + 1))
done
if grep -q "job started" "$T/coord.log"; then ok "the coordinator runs init's config without test ="
else bad "the coordinator did not start: $(head -c 300 "$T/coord.log")"; fi
kill $pid 2>/dev/null; wait $pid 2>/dev/null
summary test_init_config
