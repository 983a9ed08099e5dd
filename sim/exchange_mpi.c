/*
 * exchange_mpi.c - the per-round reduction of fedc-sim-mpi (see
 * exchange_mpi.h). One collective a round: an MPI_Allreduce of the partials
 * plus one status word, so that every rank learns both the combined round
 * and whether any rank failed, and closes (or abandons) the round itself.
 * A barrier just before it separates the time spent waiting for the
 * slowest rank (load imbalance) from the time of the reduction proper
 * (communication), which the benchmark reports apart.
 *
 * Why an allreduce, not a reduce to rank 0 and a broadcast: with the sum on
 * every rank, each engine replica closes the round through the same
 * fedc_engine_close as fedc-sim (same model, same metrics, same quorum
 * decision) and no rank needs a way to be told a model from outside; the
 * price is that the reduced buffer comes back to every rank (16 bytes a
 * parameter) where a broadcast would send the float model (4 bytes a
 * parameter), immaterial next to training (docs/scaling.md).
 */
#include "exchange_mpi.h"

#include <limits.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"

struct fedc_mpi_exchange {
  MPI_Comm comm;
  MPI_Datatype word; /* one 128-bit integer: 2 x uint64, no conversion */
  MPI_Op sum;        /* adds words modulo 2^128 */
  size_t cap;        /* words in own and all, the status word included */
  __int128 *own, *all;
  fedc_mpi_stats stats;
};

/*
 * The user-defined MPI operator: inout[i] += in[i] modulo 2^128 (the
 * compiler's add-with-carry on two 64-bit halves). Integer addition is
 * associative and commutative, so whatever tree or ring MPI reduces over,
 * and however many ranks there are, the sum has the same bits. memcpy,
 * because MPI's buffers need not be 16-byte aligned.
 */
static void sum_words(void *in, void *inout, int *len, MPI_Datatype *type) {
  (void)type;
  const unsigned char *a = in;
  unsigned char *b = inout;
  for (int i = 0; i < *len; i++) {
    unsigned __int128 x, y;
    memcpy(&x, a + 16 * (size_t)i, 16);
    memcpy(&y, b + 16 * (size_t)i, 16);
    y += x;
    memcpy(b + 16 * (size_t)i, &y, 16);
  }
}

int fedc_mpi_exchange_new(MPI_Comm comm, size_t max_words,
                          fedc_mpi_exchange **out) {
  *out = NULL;
  if (max_words + 1 > (size_t)INT_MAX)
    return fedc_error_set(FEDC_ERANGE, "mpi: a partial of %zu words is more "
                          "than one MPI call can reduce", max_words);
  fedc_mpi_exchange *x = fedc_calloc(1, sizeof *x);
  if (x == NULL) return fedc_error_set(FEDC_ENOMEM, "mpi: out of memory");
  x->comm = comm;
  x->cap = max_words + 1;
  x->own = fedc_malloc_array(x->cap, sizeof *x->own);
  x->all = fedc_malloc_array(x->cap, sizeof *x->all);
  if (x->own == NULL || x->all == NULL) {
    fedc_free(x->own);
    fedc_free(x->all);
    fedc_free(x);
    return fedc_error_set(FEDC_ENOMEM, "mpi: out of memory for %zu words",
                          max_words);
  }
  MPI_Type_contiguous(2, MPI_UINT64_T, &x->word);
  MPI_Type_commit(&x->word);
  MPI_Op_create(sum_words, 1 /* commutative */, &x->sum);
  *out = x;
  return 0;
}

void fedc_mpi_exchange_free(fedc_mpi_exchange *x) {
  if (x == NULL) return;
  MPI_Op_free(&x->sum);
  MPI_Type_free(&x->word);
  fedc_free(x->own);
  fedc_free(x->all);
  fedc_free(x);
}

/*
 * A rank that failed contributes zeros and a 1 in the status word, so the
 * collective still matches on every rank. The others' share is the sum
 * less this rank's own partial, in the same modulo-2^128 arithmetic, which
 * undoes its contribution exactly.
 */
int fedc_mpi_exchange_combine(void *ctx, fedc_engine *e, int local_rc) {
  fedc_mpi_exchange *x = ctx;
  size_t n = fedc_engine_partial_words(e);
  int rc = local_rc;
  if (rc == 0 && n + 1 > x->cap)
    rc = fedc_error_set(FEDC_ESHAPE, "mpi: partial of %zu words, room for %zu",
                        n, x->cap - 1);
  if (rc == 0) rc = fedc_engine_partial(e, x->own, n);
  if (n + 1 > x->cap) n = x->cap - 1; /* keep the collective's count agreed */
  if (rc != 0) memset(x->own, 0, n * sizeof *x->own);
  x->own[n] = rc != 0 ? 1 : 0;
  double t0 = MPI_Wtime();
  MPI_Barrier(x->comm);
  double t1 = MPI_Wtime();
  MPI_Allreduce(x->own, x->all, (int)(n + 1), x->word, x->sum, x->comm);
  double t2 = MPI_Wtime();
  x->stats.rounds++;
  x->stats.wait_secs += t1 - t0;
  x->stats.comm_secs += t2 - t1;
  x->stats.bytes = (uint64_t)(n + 1) * 16u;
  x->stats.failed_ranks = (int32_t)x->all[n];
  x->stats.failed_here = rc != 0;
  if (rc != 0) return rc;
  if (x->all[n] != 0)
    return fedc_error_set(FEDC_ESTATE, "round %d: %d rank(s) failed to train "
                          "their clients (see their messages)",
                          (int)fedc_engine_round(e), (int)x->all[n]);
  for (size_t i = 0; i < n; i++)
    x->all[i] = (__int128)((unsigned __int128)x->all[i] - (unsigned __int128)x->own[i]);
  return fedc_engine_merge(e, fedc_engine_round(e), x->all, n);
}

const fedc_mpi_stats *fedc_mpi_exchange_stats(const fedc_mpi_exchange *x) {
  return &x->stats;
}
