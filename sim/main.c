/*
 * main.c - fedc-sim's command line: read the config and overrides, run the
 * job round by round, report progress (a line on a terminal, or one JSON
 * object per round with --json), print the final figures and optionally
 * save the final model.
 *
 * Exit codes (documented in docs/sim.md, never renumbered):
 *   0 success   1 runtime failure (training diverged, out of memory)
 *   2 usage, config or input data error   3 cannot write the --save file
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "error.h"
#include "log.h"
#include "sim.h"
#include "version.h"

enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2, EXIT_SAVE = 3 };

static void usage(FILE *f) {
  fputs("usage: fedc-sim [options]\n"
        "\n"
        "Simulate a federated learning job: many clients on this machine,\n"
        "the same round engine as the fedc coordinator.\n"
        "\n"
        "  --config FILE          read the job from an INI file\n"
        "  --set SECTION.KEY=VAL  override one key (repeatable; after --config)\n"
        "  --threads N            worker threads (same as --set train.threads=N)\n"
        "  --json                 one JSON object per round on stdout, then a\n"
        "                         final one with \"final\":true\n"
        "  --save FILE            write the final global model (safetensors)\n"
        "  --quiet                no progress line and no table\n"
        "  --config-doc           print every config key as a markdown table\n"
        "  --help, --version\n"
        "\n"
        "exit codes: 0 ok, 1 runtime failure, 2 usage/config/data error,\n"
        "            3 cannot write the --save file\n",
        f);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double peak_rss_mb(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_maxrss / 1024.0;
}

/* JSON number or null for NAN. */
static void json_num(char *buf, size_t n, double v, int digits) {
  if (isnan(v)) snprintf(buf, n, "null");
  else snprintf(buf, n, "%.*f", digits, v);
}

static void print_json_round(const fedc_round_metrics *m) {
  char acc[32], tl[32], trl[32];
  json_num(acc, sizeof acc, m->test_acc, 4);
  json_num(tl, sizeof tl, m->test_loss, 4);
  json_num(trl, sizeof trl, m->train_loss, 4);
  printf("{\"round\":%d,\"test_acc\":%s,\"test_loss\":%s,\"train_loss\":%s,"
         "\"clients\":%d,\"samples\":%lld,\"secs\":%.4f}\n",
         (int)m->round, acc, tl, trl, (int)m->clients, (long long)m->samples,
         m->secs);
  fflush(stdout);
}

static void progress(const fedc_round_metrics *m, int32_t rounds, double elapsed,
                     double last_acc, double last_loss) {
  double per = elapsed / m->round;
  double eta = per * (rounds - m->round);
  fprintf(stderr, "\r\033[Kround %d/%d  test_acc %.4f  test_loss %.4f  "
                  "train_loss %.4f  %.4f s/round  eta %.0fs",
          (int)m->round, (int)rounds, last_acc, last_loss, m->train_loss, per,
          eta);
  fflush(stderr);
}

static void print_table(const fedc_engine *e) {
  int32_t n;
  const fedc_round_metrics *h = fedc_engine_history(e, &n);
  fprintf(stderr, "\n%7s %9s %9s %10s %8s %8s\n", "round", "test_acc",
          "test_loss", "train_loss", "clients", "secs");
  int32_t step = n > 10 ? n / 10 : 1;
  for (int32_t i = 0; i < n; i++) {
    if ((i + 1) % step != 0 && i != n - 1 && i != 0) continue;
    fprintf(stderr, "%7d %9.4f %9.4f %10.4f %8d %8.4f\n", (int)h[i].round,
            h[i].test_acc, h[i].test_loss, h[i].train_loss, (int)h[i].clients,
            h[i].secs);
  }
}

int main(int argc, char **argv) {
  fedc_config cfg;
  fedc_config_defaults(&cfg);
  int json = 0, quiet = 0;
  const char *save = NULL;
  /* --config is applied first wherever it stands, then every --set in order */
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--config") == 0) {
      if (i + 1 >= argc) {
        fprintf(stderr, "fedc-sim: --config needs a file\n");
        return EXIT_USAGE;
      }
      if (fedc_config_load(&cfg, argv[++i]) != 0) {
        fprintf(stderr, "fedc-sim: %s\n", fedc_error_msg());
        return EXIT_USAGE;
      }
    }
  }
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return EXIT_OK;
    } else if (strcmp(a, "--version") == 0) {
      printf("fedc-sim %s\n", FEDC_VERSION);
      return EXIT_OK;
    } else if (strcmp(a, "--config-doc") == 0) {
      fedc_config_write_doc(stdout);
      return EXIT_OK;
    } else if (strcmp(a, "--config") == 0) {
      i++;
    } else if (strcmp(a, "--json") == 0) {
      json = 1;
    } else if (strcmp(a, "--quiet") == 0) {
      quiet = 1;
    } else if (strcmp(a, "--set") == 0 || strcmp(a, "--threads") == 0 ||
               strcmp(a, "--save") == 0) {
      if (i + 1 >= argc) {
        fprintf(stderr, "fedc-sim: %s needs a value\n", a);
        return EXIT_USAGE;
      }
      const char *v = argv[++i];
      if (strcmp(a, "--save") == 0) {
        save = v;
        continue;
      }
      char buf[256];
      if (strcmp(a, "--threads") == 0) {
        snprintf(buf, sizeof buf, "train.threads=%s", v);
        v = buf;
      }
      if (fedc_config_set(&cfg, v) != 0) {
        fprintf(stderr, "fedc-sim: %s\n", fedc_error_msg());
        return EXIT_USAGE;
      }
    } else {
      fprintf(stderr, "fedc-sim: unknown option '%s' (try --help)\n", a);
      return EXIT_USAGE;
    }
  }
  if (fedc_config_check(&cfg) != 0) {
    fprintf(stderr, "fedc-sim: %s\n", fedc_error_msg());
    return EXIT_USAGE;
  }
  double t0 = now_s();
  fedc_sim *sim;
  int rc = fedc_sim_new(&cfg, &sim);
  if (rc != 0) {
    fprintf(stderr, "fedc-sim: %s\n", fedc_error_msg());
    return rc == FEDC_ENOMEM ? EXIT_RUNTIME : EXIT_USAGE;
  }
  double setup = now_s() - t0;
  int tty = !json && !quiet && isatty(STDERR_FILENO);
  if (!json && !quiet)
    fprintf(stderr, "fedc-sim: %s, %d clients (%s), %d per round, %d rounds, "
                    "%d threads; setup %.2fs\n",
            fedc_model_type_name(cfg.model_type), (int)cfg.clients,
            cfg.partition == 0 ? "iid" : cfg.partition == 1 ? "dirichlet" : "shards",
            (int)cfg.clients_per_round, (int)cfg.rounds, (int)cfg.threads, setup);
  double t_rounds = now_s(), last_acc = NAN, last_loss = NAN;
  fedc_round_metrics m = {0};
  while (!fedc_sim_done(sim)) {
    rc = fedc_sim_round(sim, &m);
    if (rc != 0) {
      if (tty) fputc('\n', stderr);
      fprintf(stderr, "fedc-sim: %s\n", fedc_error_msg());
      fedc_sim_free(sim);
      return EXIT_RUNTIME;
    }
    if (!isnan(m.test_acc)) last_acc = m.test_acc;
    if (!isnan(m.test_loss)) last_loss = m.test_loss;
    if (json) print_json_round(&m);
    else if (tty) progress(&m, cfg.rounds, now_s() - t_rounds, last_acc, last_loss);
  }
  double secs = now_s() - t_rounds;
  int32_t rounds = m.round;
  if (json) {
    char acc[32], tl[32];
    json_num(acc, sizeof acc, last_acc, 4);
    json_num(tl, sizeof tl, last_loss, 4);
    printf("{\"final\":true,\"rounds\":%d,\"test_acc\":%s,\"test_loss\":%s,"
           "\"secs\":%.3f,\"sec_per_round\":%.5f,\"setup_secs\":%.3f,"
           "\"peak_rss_mb\":%.1f,\"model\":\"%s\",\"threads\":%d}\n",
           (int)rounds, acc, tl, secs, secs / rounds, setup, peak_rss_mb(),
           fedc_model_type_name(cfg.model_type), (int)cfg.threads);
  } else if (!quiet) {
    print_table(fedc_sim_engine(sim));
    fprintf(stderr, "final test accuracy %.4f after %d rounds; %.4f s/round; "
                    "peak RSS %.0f MB\n",
            last_acc, (int)rounds, secs / rounds, peak_rss_mb());
  }
  if (save && fedc_sim_save(sim, save) != 0) {
    fprintf(stderr, "fedc-sim: --save %s: %s\n", save, fedc_error_msg());
    fedc_sim_free(sim);
    return EXIT_SAVE;
  }
  fedc_sim_free(sim);
  return EXIT_OK;
}
