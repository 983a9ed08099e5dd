/*
 * main.c - fedc-sim's command line: read the config and overrides, run the
 * job round by round, report progress (a line on a terminal, or one JSON
 * object per round with --json), print the final figures and optionally
 * save the final model. Options and output are sim/cli.c's, shared with
 * fedc-sim-mpi.
 *
 * Exit codes (documented in README.md, never renumbered):
 *   0 success   1 runtime failure (training diverged, out of memory)
 *   2 usage, config or input data error   3 cannot write the --save file
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "cli.h"
#include "base/error.h"
#include "sim.h"
#include "wire/compress.h"
#include <fedc/cuda.h>

/* The process's CPU time, all threads: the rounds' cost on a machine that
 * others share, where wall-clock seconds also count their time slices. */
static double cpu_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static const char about[] =
    "Simulate a federated learning job: many clients on this machine,\n"
    "the same round engine as the fedc coordinator.";

int main(int argc, char **argv) {
  fedc_cli cli;
  fedc_cuda_module_set_path(getenv("FEDC_CUDA_MODULE")); /* docs/cuda.md */
  int code = fedc_cli_parse(&cli, "fedc-sim", about, argc, argv, 1);
  if (code != FEDC_CLI_RUN) return code;
  double t0 = fedc_cli_now();
  fedc_sim *sim;
  int rc = fedc_sim_new_config(&cli.cfg, &sim);
  if (rc != 0) {
    fedc_cli_fail(&cli, NULL);
    return rc == FEDC_ENOMEM ? FEDC_EXIT_RUNTIME : FEDC_EXIT_USAGE;
  }
  double setup = fedc_cli_now() - t0;
  char workers[32];
  snprintf(workers, sizeof workers, "%d threads", (int)cli.cfg.threads);
  fedc_cli_start(&cli, setup, workers);
  double cpu0 = cpu_now();
  int32_t rounds_run = 0;
  while (!fedc_sim_done(sim)) {
    fedc_round_metrics m;
    int rrc = fedc_sim_round(sim, &m);
    if (rrc == FEDC_EBUDGET) {
      /* differential privacy: the next round would overspend; stop here */
      fprintf(stderr, "fedc-sim: %s\n", fedc_error_msg());
      break;
    }
    if (rrc != 0) {
      fedc_cli_fail(&cli, NULL);
      fedc_sim_free(sim);
      return FEDC_EXIT_RUNTIME;
    }
    char *eval = NULL;
    if (fedc_sim_eval_json(sim, &eval) != 0) {
      fedc_cli_fail(&cli, NULL);
      fedc_sim_free(sim);
      fedc_cli_release(&cli);
      return FEDC_EXIT_RUNTIME;
    }
    fedc_cli_set_eval(&cli, eval);
    cli.vtime = fedc_sim_vtime(sim);
    fedc_cli_round(&cli, &m);
    rounds_run++;
  }
  double cpu_per = rounds_run ? (cpu_now() - cpu0) / rounds_run : 0.0;
  double per = 0, f32 = 0;
  int codec = fedc_sim_bytes_up(sim, &per, &f32);
  double ph[3];
  fedc_sim_phase_secs(sim, ph);
  char extra[320];
  snprintf(extra, sizeof extra,
           ",\"compression\":\"%s\",\"bytes_up_per_update\":%.0f,\"float32_bytes_per_update\":%.0f"
           ",\"phase_secs\":{\"train\":%.4f,\"aggregate\":%.4f,\"evaluate\":%.4f}"
           ",\"cpu_sec_per_round\":%.5f",
           fedc_codec_name((fedc_codec)codec), per, f32, ph[0], ph[1], ph[2], cpu_per);
  fedc_cli_finish(&cli, fedc_sim_engine(sim), setup, extra);
  if (!cli.json && !cli.quiet && codec != FEDC_CODEC_NONE)
    fprintf(stderr, "compression %s: %.0f bytes up per update (float32: %.0f, %.1fx fewer)\n",
            fedc_codec_name((fedc_codec)codec), per, f32, per > 0 ? f32 / per : 0.0);
  fedc_cli_release(&cli);
  code = FEDC_EXIT_OK;
  if (cli.save && fedc_sim_save(sim, cli.save) != 0) {
    char prefix[FEDC_CONFIG_PATH_MAX + 16];
    snprintf(prefix, sizeof prefix, "--save %s: ", cli.save);
    fedc_cli_fail(&cli, prefix);
    code = FEDC_EXIT_SAVE;
  }
  fedc_sim_free(sim);
  return code;
}
