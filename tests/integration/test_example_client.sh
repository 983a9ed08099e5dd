#!/bin/sh
# test_example_client.sh - examples/client_custom_trainer.c, a program built
# against the installed library with its own training callback (a tanh MLP
# trained by its own SGD code), takes part in a real job over mutual TLS
# beside two fedc-clients: every round commits with its update counted, and
# the losses it prints fall from round to round.
BUILD=${FEDC_BUILD:-build}
EX="$BUILD/examples/client_custom_trainer"
for b in "$BUILD/bin/fedc-coordinator" "$BUILD/bin/fedc-client"; do
  if [ ! -x "$b" ]; then
    echo "test_example_client: $b is not built"
    exit 1
  fi
done
if [ ! -x "$EX" ]; then
  echo "test_example_client: skipped: $EX is not built (make examples)"
  exit 77
fi
exec python3 - "$EX" <<'PY'
import os, subprocess, sys, time
sys.path.insert(0, "tests/integration")
from harness import Job

EX = os.path.abspath(sys.argv[1])
ROUNDS = 6

def main():
    job = Job("example", 3, rounds=ROUNDS, model="mlp", hidden="32", epochs=1)
    try:
        job.allow_all()
        job.start_coordinator()
        clients = [job.start_client(k) for k in (1, 2)]
        d = os.path.join(job.dir, "data", "client-3")
        out = open(os.path.join(job.dir, "example.out"), "w+")
        err = open(os.path.join(job.dir, "example.err"), "w+")
        ex = subprocess.Popen([EX, "--url", f"https://127.0.0.1:{job.port}",
                               "--ca", job.pki("ca.pem"), "--cert", job.pki("client-3.pem"),
                               "--key", job.pki("client-3.key"), "--name", "custom",
                               "--images", f"{d}/train-images.idx", "--labels", f"{d}/train-labels.idx",
                               "--give-up", "60"], stdout=out, stderr=err)
        job.procs.append(ex)
        rc = ex.wait(timeout=120)
        err.seek(0)
        assert rc == 0, f"the example exited {rc}: {err.read()[-1500:]}"
        for p in clients:
            assert p.wait(timeout=60) == 0, "a fedc-client did not finish with exit 0"
        # every round committed, each with three updates, the example's among them
        st = job.status()
        assert len(st["rounds"]) == ROUNDS, st["rounds"]
        assert all(r["clients"] == 3 for r in st["rounds"]), st["rounds"]
        ex_id = job.client_ids()[job.fingerprint(3)]
        for r in range(1, ROUNDS + 1):
            ids = [cid for cid, n, _ in job.updates_of(r)]
            assert ex_id in ids, f"round {r}: the example's update is not in the store ({ids})"
        # it printed its fingerprint, then one falling loss a round
        out.seek(0)
        lines = out.read().split("\n")
        assert lines[0] == f"fingerprint {job.fingerprint(3)}", lines[0]
        losses = [float(l.split()[3]) for l in lines if l.startswith("round ")]
        assert len(losses) == ROUNDS, lines
        assert losses[-1] < 0.8 * losses[0], f"the example's losses did not fall: {losses}"
        assert sum(b < a for a, b in zip(losses, losses[1:])) >= ROUNDS - 2, losses
        print("       example's losses: " + " ".join(f"{x:.3f}" for x in losses) +
              f"; {ROUNDS} rounds of 3 updates committed")
    finally:
        job.close()

t0 = time.time()
try:
    main()
    print(f"  ok   test_example_client ({time.time() - t0:.1f}s)")
    print("test_example_client: 1 passed, 0 failed")
except Exception as e:  # noqa: BLE001
    print(f"  FAIL test_example_client: {type(e).__name__}: {e}")
    print("test_example_client: 0 passed, 1 failed")
    sys.exit(1)
PY
