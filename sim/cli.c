/*
 * cli.c - the simulators' shared command line (see cli.h): option parsing
 * with --config applied before the --set overrides, the usage text, and
 * the output contract of DESIGN.md (one JSON object per round with --json,
 * a final one with "final":true; otherwise a progress line on a terminal
 * and a short table at the end). fedc-sim's and fedc-sim-mpi's mains only
 * add what differs: how the rounds are run.
 */
#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/cpu.h"
#include "base/error.h"
#include "ml/model.h"
#include "base/version.h"

static void usage(FILE *f, const char *prog, const char *about) {
  fprintf(f, "usage: %s [options]\n\n%s\n\n", prog, about);
  fputs("  --config FILE          read the job from an INI file\n"
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

double fedc_cli_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double fedc_cli_peak_rss_mb(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_maxrss / 1024.0;
}

/* Apply one --set style assignment, or say why not. */
static int apply_set(fedc_cli *cli, const char *assignment, int speak) {
  if (fedc_config_set(&cli->cfg, assignment) == 0) return 0;
  if (speak) fprintf(stderr, "%s: %s\n", cli->prog, fedc_error_msg());
  return FEDC_EXIT_USAGE;
}

/*
 * Two passes so that "--set a=b --config f" still lets the --set win: the
 * first pass loads every --config, the second applies the rest in order.
 * Options that end the program (--help, --version, --config-doc) answer at
 * once, before the config is checked.
 */
int fedc_cli_parse(fedc_cli *cli, const char *prog, const char *about,
                   int argc, char **argv, int speak) {
  memset(cli, 0, sizeof *cli);
  cli->prog = prog;
  cli->last_acc = cli->last_loss = NAN;
  fedc_config_defaults(&cli->cfg);
  /* FEDC_CPU forces a kernel variant (base/cpu.h), before anything runs */
  const char *cpu = getenv("FEDC_CPU");
  if (cpu && cpu[0] && fedc_cpu_select(cpu) != 0) {
    if (speak) fprintf(stderr, "%s: FEDC_CPU: %s\n", prog, fedc_error_msg());
    return FEDC_EXIT_USAGE;
  }
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--config") != 0) continue;
    if (i + 1 >= argc) {
      if (speak) fprintf(stderr, "%s: --config needs a file\n", prog);
      return FEDC_EXIT_USAGE;
    }
    if (fedc_config_load(&cli->cfg, argv[++i]) != 0) {
      if (speak) fprintf(stderr, "%s: %s\n", prog, fedc_error_msg());
      return FEDC_EXIT_USAGE;
    }
  }
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      if (speak) usage(stdout, prog, about);
      return FEDC_EXIT_OK;
    } else if (strcmp(a, "--version") == 0) {
      if (speak) printf("%s %s\ncpu kernels: %s\n", prog, FEDC_VERSION, fedc_cpu_name());
      return FEDC_EXIT_OK;
    } else if (strcmp(a, "--config-doc") == 0) {
      if (speak) fedc_config_write_doc(stdout);
      return FEDC_EXIT_OK;
    } else if (strcmp(a, "--config") == 0) {
      i++;
    } else if (strcmp(a, "--json") == 0) {
      cli->json = 1;
    } else if (strcmp(a, "--quiet") == 0) {
      cli->quiet = 1;
    } else if (strcmp(a, "--set") == 0 || strcmp(a, "--threads") == 0 ||
               strcmp(a, "--save") == 0) {
      if (i + 1 >= argc) {
        if (speak) fprintf(stderr, "%s: %s needs a value\n", prog, a);
        return FEDC_EXIT_USAGE;
      }
      const char *v = argv[++i];
      char buf[256];
      int rc = 0;
      if (strcmp(a, "--save") == 0) {
        cli->save = v;
      } else if (strcmp(a, "--threads") == 0) {
        snprintf(buf, sizeof buf, "train.threads=%s", v);
        rc = apply_set(cli, buf, speak);
      } else {
        rc = apply_set(cli, v, speak);
      }
      if (rc != 0) return rc;
    } else {
      if (speak) fprintf(stderr, "%s: unknown option '%s' (try --help)\n", prog, a);
      return FEDC_EXIT_USAGE;
    }
  }
  if (fedc_config_check(&cli->cfg) != 0) {
    if (speak) fprintf(stderr, "%s: %s\n", prog, fedc_error_msg());
    return FEDC_EXIT_USAGE;
  }
  return FEDC_CLI_RUN;
}

void fedc_cli_start(fedc_cli *cli, double setup_secs, const char *workers) {
  const fedc_config *c = &cli->cfg;
  cli->tty = !cli->json && !cli->quiet && isatty(STDERR_FILENO);
  if (!cli->json && !cli->quiet)
    fprintf(stderr, "%s: %s, %d clients (%s), %d per round, %d rounds, %s; "
                    "setup %.2fs\n",
            cli->prog, fedc_model_type_name(c->model_type), (int)c->clients,
            c->partition == 0 ? "iid" : c->partition == 1 ? "dirichlet" : "shards",
            (int)c->clients_per_round, (int)c->rounds, workers, setup_secs);
  cli->t_rounds = fedc_cli_now();
}

/* JSON number or null for NAN. */
static void json_num(char *buf, size_t n, double v, int digits) {
  if (isnan(v)) snprintf(buf, n, "null");
  else snprintf(buf, n, "%.*f", digits, v);
}

void fedc_cli_set_eval(fedc_cli *cli, char *eval_json) {
  if (eval_json == NULL) return; /* keep the last one for the final line */
  fedc_free(cli->eval_json);
  cli->eval_json = eval_json;
  cli->eval_fresh = 1;
}

static void print_json_round(const fedc_round_metrics *m, const char *eval) {
  char acc[32], tl[32], trl[32];
  json_num(acc, sizeof acc, m->test_acc, 4);
  json_num(tl, sizeof tl, m->test_loss, 4);
  json_num(trl, sizeof trl, m->train_loss, 4);
  char privacy[96] = "";
  if (!isnan(m->epsilon))
    snprintf(privacy, sizeof privacy, ",\"epsilon\":%.5f,\"delta\":%g,\"clip_norm\":%.5g",
             m->epsilon, m->delta, m->clip_norm);
  printf("{\"round\":%d,\"test_acc\":%s,\"test_loss\":%s,\"train_loss\":%s,"
         "\"clients\":%d,\"samples\":%lld,\"secs\":%.4f%s%s%s}\n",
         (int)m->round, acc, tl, trl, (int)m->clients, (long long)m->samples,
         m->secs, privacy, eval ? ",\"eval\":" : "", eval ? eval : "");
  fflush(stdout);
}

void fedc_cli_round(fedc_cli *cli, const fedc_round_metrics *m) {
  if (!isnan(m->test_acc)) cli->last_acc = m->test_acc;
  if (!isnan(m->test_loss)) cli->last_loss = m->test_loss;
  if (cli->json) {
    print_json_round(m, cli->eval_fresh ? cli->eval_json : NULL);
    cli->eval_fresh = 0;
    return;
  }
  if (!cli->tty) return;
  int32_t rounds = cli->cfg.rounds;
  double per = (fedc_cli_now() - cli->t_rounds) / m->round;
  double eta = per * (rounds - m->round);
  fprintf(stderr, "\r\033[Kround %d/%d  test_acc %.4f  test_loss %.4f  "
                  "train_loss %.4f  %.4f s/round  eta %.0fs",
          (int)m->round, (int)rounds, cli->last_acc, cli->last_loss,
          m->train_loss, per, eta);
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

void fedc_cli_finish(fedc_cli *cli, const fedc_engine *e, double setup_secs,
                     const char *extra_json) {
  double secs = fedc_cli_now() - cli->t_rounds;
  int32_t rounds = fedc_engine_round(e) - 1;
  double per = rounds > 0 ? secs / rounds : NAN;
  if (cli->json) {
    char acc[32], tl[32], privacy[96] = "";
    json_num(acc, sizeof acc, cli->last_acc, 4);
    json_num(tl, sizeof tl, cli->last_loss, 4);
    int32_t nh;
    const fedc_round_metrics *h = fedc_engine_history(e, &nh);
    if (nh > 0 && !isnan(h[nh - 1].epsilon))
      snprintf(privacy, sizeof privacy, ",\"epsilon\":%.5f,\"delta\":%g",
               h[nh - 1].epsilon, h[nh - 1].delta);
    printf("{\"final\":true,\"rounds\":%d,\"test_acc\":%s,\"test_loss\":%s,"
           "\"secs\":%.3f,\"sec_per_round\":%.5f,\"setup_secs\":%.3f,"
           "\"peak_rss_mb\":%.1f,\"model\":\"%s\",\"strategy\":\"%s\","
           "\"threads\":%d%s%s%s%s}\n",
           (int)rounds, acc, tl, secs, per, setup_secs, fedc_cli_peak_rss_mb(),
           fedc_model_type_name(cli->cfg.model_type), cli->cfg.strategy,
           (int)cli->cfg.threads, privacy, extra_json, cli->eval_json ? ",\"eval\":" : "",
           cli->eval_json ? cli->eval_json : "");
    fflush(stdout);
  } else if (!cli->quiet) {
    print_table(e);
    fprintf(stderr, "final test accuracy %.4f after %d rounds; %.4f s/round; "
                    "peak RSS %.0f MB\n",
            cli->last_acc, (int)rounds, per, fedc_cli_peak_rss_mb());
  }
}

void fedc_cli_release(fedc_cli *cli) {
  fedc_free(cli->eval_json);
  cli->eval_json = NULL;
}

void fedc_cli_fail(const fedc_cli *cli, const char *prefix) {
  if (cli->tty) fputc('\n', stderr);
  fprintf(stderr, "%s: %s%s\n", cli->prog, prefix ? prefix : "", fedc_error_msg());
}
