/*
 * audit.h - the audit trail: one record per committed round, chained by
 * digest, written in the round's own store transaction; and its offline
 * check (`fedc-coordinator audit`).
 *
 * A record is a JSON text (the bytes are what is hashed, never re-encoded):
 *
 *   {"v":1, "job":ID, "round":r, "prev":DIGEST of round r-1's record (64
 *    zeros for round 1), "start":SHA-256 of checkpoint r-1's bytes,
 *    "result":SHA-256 of checkpoint r's bytes, the round's row ("selected",
 *    "clients", "samples", "train_loss", "test_loss", "test_acc", "secs"),
 *    "updates":[{"client":id, "fingerprint":F, "sha256":S, "samples":n,
 *    "train_loss":l},
 *    ... in the order they were folded], "params":{"strategy":{...},
 *    "privacy":{...}}, "privacy_spent":{"epsilon":e, "delta":d,
 *    "clip_norm":c} or null}
 *
 * where S is the update's own "sha256" (of its data section: the same as
 * the copy a site keeps with [client] keep_updates) and params holds every
 * key of the job's [strategy] and [privacy] sections as text. The record's
 * digest is the SHA-256 of its bytes; it is stored beside it.
 */
#ifndef FEDC_COORD_AUDIT_H
#define FEDC_COORD_AUDIT_H

#include <stdio.h>

#include "config/config.h"
#include "store.h"

/* The "params" object of the records of a job with this config: a new
 * string (fedc_free), or NULL with FEDC_ENOMEM / FEDC_ECONFIG set. */
char *fedc__audit_params_json(const fedc_config *cfg);

/*
 * Check the store's audit trail: every committed round's record against
 * its digest, the chain, the checkpoints' bytes, the rounds' and updates'
 * rows. With n_dirs folders of kept updates (keep_updates copies, any
 * number of sites), also recompute each round's model from its start
 * model and those updates with the job's strategy and compare the bytes
 * with the stored checkpoint. A report goes to out, one line per finding
 * naming its round. *failures gets the number of findings that show the
 * store is not what was committed (0 = it checks out); rounds that cannot
 * be recomputed (see audit.c for which) are listed but not failures.
 * Returns 0, or a negative code when the check itself could not run.
 */
int fedc__audit_verify(fedc_store *st, char **dirs, int n_dirs, FILE *out, int *failures);

/* `fedc-coordinator audit ...`: argv[0] is "audit"; the exit code. */
int fedc__audit_main(const fedc_config *cfg, int argc, char **argv);

#endif
