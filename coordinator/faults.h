/*
 * faults.h - fedc-coordinator's fault-injection test hooks (faults.c;
 * docs/hardening.md). Read from the environment, off unless set:
 *
 *   FEDC_FAIL_ALLOC_AFTER=N[,sticky]
 *       the Nth fedc allocation after the daemon starts listening fails
 *       (fedc_alloc_fail_after); 0 only counts allocations.
 *   FEDC_FAIL_STORE_AFTER=N[,ioerr|full][,sticky]
 *       the Nth write, sync or truncate of the store's files after the
 *       daemon starts listening fails: with SQLITE_IOERR_WRITE, _FSYNC or
 *       _TRUNCATE (an I/O error, the default), or, with "full", a write
 *       with SQLITE_FULL (a sync or truncate still gets its I/O error, as
 *       ENOSPC from fsync does); 0 only counts.
 *
 *   FEDC_FAIL_COMMIT_AFTER=N[,sticky]
 *       the Nth commit attempt fails before its durable write, with an
 *       injected out-of-memory (the round must be retried, not lost).
 *
 * The program reads the variables (main.c) and passes their values in
 * fedc_coordinator_params. Internal to the daemon (fedc__ prefix):
 * coordinator.c calls _init before it opens the store, _arm once it
 * listens, and _report when it is freed; round.c asks _commit.
 */
#ifndef FEDC_COORD_FAULTS_H
#define FEDC_COORD_FAULTS_H

/* Parse the variables and install the counting allocator and the failing
 * sqlite VFS they ask for. FEDC_ECONFIG for a malformed value. */
int fedc__faults_init(const char *alloc_spec, const char *store_spec, const char *commit_spec);
/* 0, or the injected failure of this commit attempt (FEDC_ENOMEM). */
int fedc__faults_commit(void);
/* Start counting and failing from now. */
void fedc__faults_arm(void);
/* Log what the hooks saw (allocations and store writes since armed, fedc
 * blocks still live): the tests read this line. No-op when off. */
void fedc__faults_report(void);

#endif
