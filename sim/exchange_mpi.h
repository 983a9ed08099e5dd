/*
 * exchange_mpi.h - how fedc-sim-mpi's ranks combine a round: each rank's
 * engine replica writes its partial (engine.h: FedAvg's 128-bit fixed-point
 * sums, the sample total, the per-slot reports), one MPI_Allreduce with a
 * user-defined operator sums the partials of all ranks as 128-bit integers,
 * and each rank merges the other ranks' share (the sum less its own) into
 * its replica. Integer sums are exact and associative, so every rank closes
 * the round to the same model, bit for bit, as fedc-sim in one process.
 *
 * Only the MPI driver includes this header (it needs mpi.h).
 */
#ifndef FEDC_EXCHANGE_MPI_H
#define FEDC_EXCHANGE_MPI_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "round/engine.h"

typedef struct fedc_mpi_exchange fedc_mpi_exchange;

/* What the exchanges cost so far, on this rank. */
typedef struct fedc_mpi_stats {
  int32_t rounds;         /* exchanges made */
  double wait_secs;       /* in the barrier: waiting for slower ranks */
  double comm_secs;       /* in MPI_Allreduce itself */
  uint64_t bytes;         /* the reduced buffer of the last exchange */
  int32_t failed_ranks;   /* ranks that reported a failure in the last one */
  int failed_here;        /* this rank was one of them */
} fedc_mpi_stats;

/* For rounds of partials of at most max_words words (n_params + 1 + 3 *
 * clients_per_round): the buffers are allocated here, never per round.
 * Errors: FEDC_ENOMEM, FEDC_ERANGE (more words than an MPI count holds). */
int fedc_mpi_exchange_new(MPI_Comm comm, size_t max_words,
                          fedc_mpi_exchange **out);
void fedc_mpi_exchange_free(fedc_mpi_exchange *x);

/*
 * A fedc_sim_combine_fn (ctx: the exchange). Collective: every rank calls
 * it once per round, also after its own training failed (local_rc < 0), so
 * that no rank waits forever. A failure on any rank fails the round on
 * every rank: the failed rank returns its own error, the others
 * FEDC_ESTATE naming how many ranks failed (stats.failed_ranks).
 */
int fedc_mpi_exchange_combine(void *ctx, fedc_engine *e, int local_rc);
const fedc_mpi_stats *fedc_mpi_exchange_stats(const fedc_mpi_exchange *x);

#endif
