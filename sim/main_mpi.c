/*
 * main_mpi.c - fedc-sim-mpi: fedc-sim spread over MPI ranks, started by
 * `mpirun -np N fedc-sim-mpi [fedc-sim's options]`.
 *
 * Every rank reads the same config, loads the data files itself and builds
 * the same partition and engine replica (all seeded), then keeps only the
 * rows of its own clients (c % N == rank). Each round every replica draws
 * the same selection, each rank trains its selected clients on its own
 * threads, and one MPI reduction combines the ranks' exact fixed-point sums
 * (exchange_mpi.c), after which every rank closes the round itself. Rank 0
 * alone evaluates on the test set, prints what fedc-sim prints (the same
 * --json lines; the final line adds the MPI figures) and writes --save.
 *
 * Exit codes are fedc-sim's (sim/cli.h): 0 ok, 1 runtime failure (on any
 * rank), 2 usage, config or data error, 3 the --save file cannot be
 * written. Every rank returns the same code, except 3, which only rank 0
 * can meet; mpirun passes a non-zero code on. An error that leaves the
 * ranks out of step (one that strikes after a round's exchange on one rank
 * only) ends the job with MPI_Abort rather than leave ranks waiting.
 */
#include <mpi.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "base/error.h"
#include "exchange_mpi.h"
#include "ml/model.h"
#include "sim.h"

static const char about[] =
    "Simulate a federated learning job over MPI ranks: run it as\n"
    "  mpirun -np N fedc-sim-mpi [options]\n"
    "The clients are spread over the ranks (client c on rank c % N), each\n"
    "rank trains its own on its --threads; the result is fedc-sim's, bit\n"
    "for bit. Rank 0 prints and saves.";

/* Resident memory now (not the peak): what a rank holds once set up. */
static double rss_mb(void) {
  long pages = 0, resident = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f == NULL) return 0.0;
  if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
  fclose(f);
  return (double)resident * (double)sysconf(_SC_PAGESIZE) / (1024.0 * 1024.0);
}

/*
 * Setup is local (each rank loads its own files), so ranks agree on its
 * outcome before anything collective: the worst exit code wins, and a rank
 * speaks of its own failure unless rank 0 failed too (then rank 0's message,
 * the same on every rank for a config or data error, is enough).
 */
static int agree_setup(int rank, int code, int *rank0_failed) {
  int mine[2] = {code, rank == 0 ? code : 0}, all[2];
  MPI_Allreduce(mine, all, 2, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  *rank0_failed = all[1] != 0;
  return all[0];
}

/* The MPI figures for the final JSON line, reduced over the ranks: the
 * worst rank's times and memory, and the fewest and most training rows a
 * rank holds (how the data was shared out). */
static void mpi_figures(const fedc_sim *sim, const fedc_mpi_exchange *x,
                        int size, double secs, char *buf, size_t n) {
  const fedc_mpi_stats *st = fedc_mpi_exchange_stats(x);
  double rows = (double)fedc_sim_rows(sim);
  double mine[6] = {st->comm_secs, st->wait_secs, rss_mb(),
                    fedc_cli_peak_rss_mb(), rows, -rows};
  double most[6];
  MPI_Reduce(mine, most, 6, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
  snprintf(buf, n,
           ",\"ranks\":%d,\"comm_secs\":%.4f,\"comm_share\":%.4f,"
           "\"wait_secs\":%.4f,\"wait_share\":%.4f,\"comm_secs_max\":%.4f,"
           "\"wait_secs_max\":%.4f,\"reduce_bytes\":%llu,"
           "\"rss_mb_max\":%.1f,\"peak_rss_mb_max\":%.1f,"
           "\"rows_min\":%.0f,\"rows_max\":%.0f",
           size, st->comm_secs, secs > 0 ? st->comm_secs / secs : 0.0,
           st->wait_secs, secs > 0 ? st->wait_secs / secs : 0.0, most[0],
           most[1], (unsigned long long)st->bytes, most[2], most[3], -most[5], most[4]);
}

/*
 * The job on one rank: set up this rank's share and agree on the outcome,
 * run the rounds (every rank, collectively), then rank 0 reports and saves.
 * Returns the exit code. Rank 0 prints everything that concerns the job;
 * another rank prints only a failure of its own, prefixed "rank R: ".
 */
static int run(fedc_cli *cli, int rank, int size) {
  const fedc_config *c = &cli->cfg;
  double t0 = fedc_cli_now();
  fedc_sim_share share = {.rank = rank, .size = size, .evaluator = rank == 0};
  fedc_sim *sim = NULL;
  fedc_mpi_exchange *x = NULL;
  int rc = fedc_sim_new_share(c, &share, &sim);
  if (rc == 0) {
    size_t n_params = fedc_model_n_params(fedc_sim_spec(sim));
    rc = fedc_mpi_exchange_new(MPI_COMM_WORLD,
                               n_params + 1 + 3 * (size_t)c->clients_per_round, &x);
  }
  int code = rc == 0 ? FEDC_EXIT_OK
                     : rc == FEDC_ENOMEM ? FEDC_EXIT_RUNTIME : FEDC_EXIT_USAGE;
  int rank0_failed;
  char prefix[32];
  snprintf(prefix, sizeof prefix, "rank %d: ", rank);
  int worst = agree_setup(rank, code, &rank0_failed);
  if (worst != FEDC_EXIT_OK) {
    if (code != FEDC_EXIT_OK && (rank == 0 || !rank0_failed))
      fedc_cli_fail(cli, rank == 0 ? NULL : prefix);
    fedc_mpi_exchange_free(x);
    fedc_sim_free(sim);
    return worst;
  }
  double setup = fedc_cli_now() - t0;
  char workers[64];
  snprintf(workers, sizeof workers, "%d ranks x %d threads", size, (int)c->threads);
  if (rank == 0) fedc_cli_start(cli, setup, workers);
  else cli->t_rounds = fedc_cli_now();
  while (!fedc_sim_done(sim)) {
    fedc_round_metrics m;
    rc = fedc_sim_round_combined(sim, fedc_mpi_exchange_combine, x, &m);
    if (rc == FEDC_EBUDGET) {
      /* every rank reaches the budget at the same round: stop together */
      if (rank == 0) fprintf(stderr, "fedc-sim-mpi: %s\n", fedc_error_msg());
      break;
    }
    if (rc != 0) {
      const fedc_mpi_stats *st = fedc_mpi_exchange_stats(x);
      int shared = st->failed_ranks > 0;
      if (rank == 0 || !shared || st->failed_here)
        fedc_cli_fail(cli, rank == 0 ? NULL : prefix);
      /* every rank saw the failure in the exchange and stops alike;
       * anything else may have struck this rank alone */
      if (!shared && size > 1) MPI_Abort(MPI_COMM_WORLD, FEDC_EXIT_RUNTIME);
      fedc_mpi_exchange_free(x);
      fedc_sim_free(sim);
      return FEDC_EXIT_RUNTIME;
    }
    if (rank == 0) {
      char *eval = NULL; /* rank 0 holds the test set: the same metrics as fedc-sim */
      if (fedc_sim_eval_json(sim, &eval) == 0) fedc_cli_set_eval(cli, eval);
      fedc_cli_round(cli, &m);
    }
  }
  char extra[512];
  mpi_figures(sim, x, size, fedc_cli_now() - cli->t_rounds, extra, sizeof extra);
  code = FEDC_EXIT_OK;
  if (rank == 0) {
    fedc_cli_finish(cli, fedc_sim_engine(sim), setup, extra);
    fedc_cli_release(cli);
    if (cli->save && fedc_sim_save(sim, cli->save) != 0) {
      char what[FEDC_CONFIG_PATH_MAX + 16];
      snprintf(what, sizeof what, "--save %s: ", cli->save);
      fedc_cli_fail(cli, what);
      code = FEDC_EXIT_SAVE;
    }
  }
  fedc_mpi_exchange_free(x);
  fedc_sim_free(sim);
  return code;
}

int main(int argc, char **argv) {
  int provided = 0, rank = 0, size = 1;
  /* only the main thread calls MPI; the training threads never do */
  if (MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
    fprintf(stderr, "fedc-sim-mpi: MPI_Init_thread failed\n");
    return FEDC_EXIT_RUNTIME;
  }
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  fedc_cli cli;
  int code = fedc_cli_parse(&cli, "fedc-sim-mpi", about, argc, argv, rank == 0);
  if (code == FEDC_CLI_RUN) code = run(&cli, rank, size);
  MPI_Finalize();
  return code;
}
