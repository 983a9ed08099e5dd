/*
 * main.c - fedc-client's command line: read the config and overrides,
 * check them for the client's role, make the client (certificate, local
 * data, backend) and run its task loop until the job finishes. SIGINT and
 * SIGTERM stop it promptly: the request in flight is abandoned (local
 * training, once started, finishes first) and the exit code says so.
 *
 * Exit codes (documented in --help and docs/client.md, never renumbered):
 *   0 the job finished   1 runtime failure   2 usage, config or data error
 *   3 refused by the coordinator, or its certificate failed verification
 *   4 gave up: coordinator unreachable for [client] give_up_s
 *   5 interrupted by a signal
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "client.h"
#include "enroll.h"
#include "config/config.h"
#include "site_policy.h"
#include "base/cpu.h"
#include "base/error.h"
#include "base/log.h"
#include "base/version.h"
#include <fedc/cuda.h>

static void usage(FILE *f) {
  fputs("usage: fedc-client --config FILE [options]\n"
        "       fedc-client enroll --name NAME [--dir DIR]   (a key and a CSR)\n"
        "\n"
        "Take part in a federated learning job: join the coordinator at\n"
        "[server] url over mutual TLS, train on the local data of [data]\n"
        "when selected, and send back only the weights.\n"
        "\n"
        "  --config FILE          read the settings from an INI file\n"
        "  --set SECTION.KEY=VAL  override one key (repeatable; applied after\n"
        "                         --config, in order)\n"
        "  --log-level LEVEL      error, warn, info (default) or debug\n"
        "  --serve                run as a site service ([client] serve = true):\n"
        "                         take part in each job [policy] allows, one\n"
        "                         after another, waiting between jobs\n"
        "  --help, --version\n"
        "\n"
        "Keys the client needs: [server] url, [tls] ca, cert and key, [data]\n"
        "train (and train_labels for idx); [data] test (optional) is used to\n"
        "evaluate each global model; [client] name, keep_updates,\n"
        "backoff_max_s, give_up_s. [trainer] command (with evaluate and\n"
        "timeout_s) runs the site's own trainer instead of training on [data]:\n"
        "see docs/trainers.md. See docs/client.md.\n"
        "\n"
        "exit codes: 0 the job finished\n"
        "            1 runtime failure\n"
        "            2 usage, config or data error (the job's model does not\n"
        "              fit the data, too)\n"
        "            3 refused by the coordinator (certificate not allowed or\n"
        "              revoked), or the coordinator's certificate failed\n"
        "              verification against [tls] ca\n"
        "            4 gave up: no answer from the coordinator for\n"
        "              [client] give_up_s\n"
        "            5 interrupted by SIGINT or SIGTERM\n",
        f);
}

static fedc_client *volatile g_client;
/* set by the handler too: an external trainer's command is killed on it */
static volatile sig_atomic_t g_stop;

/* The trainer in use: the built-in one, or [trainer] command's. */
typedef struct trainers {
  fedc_client_builtin *builtin;
  fedc_client_external *external;
} trainers;

static void trainers_free(trainers *t) {
  fedc_client_builtin_free(t->builtin);
  fedc__client_external_free(t->external);
  t->builtin = NULL;
  t->external = NULL;
}

/* First SIGINT/SIGTERM asks the run to stop; SA_RESETHAND makes a second
 * one kill the process, for when the first is not enough. */
static void on_signal(int sig) {
  (void)sig;
  g_stop = 1;
  fedc_client *c = g_client;
  if (c) fedc_client_stop(c);
}

static int install_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_RESETHAND;
  sigemptyset(&sa.sa_mask);
  struct sigaction ign;
  memset(&ign, 0, sizeof ign);
  ign.sa_handler = SIG_IGN;
  sigemptyset(&ign.sa_mask);
  /* libcurl runs with CURLOPT_NOSIGNAL: a peer closing a TLS connection
   * must not kill the client with SIGPIPE */
  return sigaction(SIGINT, &sa, NULL) | sigaction(SIGTERM, &sa, NULL) |
         sigaction(SIGPIPE, &ign, NULL);
}

/* "file:line: [section] key = value" for messages about a config value. */
static const char *where(const fedc_config *cfg, const char *section, const char *key,
                         const char *value, char *buf, size_t n) {
  const char *o = fedc_config_origin(cfg, section, key);
  snprintf(buf, n, "%s: [%s] %s = %s", o ? o : "?", section, key, value);
  return buf;
}

static int check_readable(const fedc_config *cfg, const char *key, const char *path) {
  if (access(path, R_OK) == 0) return 0;
  char w[FEDC_CONFIG_PATH_MAX + 128];
  return fedc_error_set(FEDC_ECONFIG, "%s: cannot read: %s",
                        where(cfg, "tls", key, path, w, sizeof w), strerror(errno));
}

/* Creates keep_updates (one level) when it is missing. */
static int keep_dir(const fedc_config *cfg) {
  const char *d = cfg->client_keep_updates;
  if (d[0] == '\0') return 0;
  struct stat st;
  if (stat(d, &st) == 0 && S_ISDIR(st.st_mode) && access(d, W_OK) == 0) return 0;
  if (mkdir(d, 0755) == 0) return 0;
  char w[FEDC_CONFIG_PATH_MAX + 128];
  return fedc_error_set(FEDC_ECONFIG, "%s: not a writable folder: %s",
                        where(cfg, "client", "keep_updates", d, w, sizeof w), strerror(errno));
}

/*
 * The client of a checked config, with the built-in trainer: the settings
 * that name files are checked here first, so that a message names the
 * config file, line and key ([tls] files readable, the certificate a
 * certificate, [server] url https://, keep_updates writable), then the
 * local data is loaded and the library's client made from parameters.
 */
static int make_client(const fedc_config *cfg, fedc_site *site, trainers *tr,
                       fedc_client **out) {
  char w[FEDC_CONFIG_PATH_MAX + 128];
  char fp[FEDC_CLIENT_SHA_HEX + 1];
  int rc = check_readable(cfg, "ca", cfg->tls_ca);
  if (rc == 0) rc = check_readable(cfg, "cert", cfg->tls_cert);
  if (rc == 0) rc = check_readable(cfg, "key", cfg->tls_key);
  if (rc == 0 && (rc = fedc_client_cert_fingerprint(cfg->tls_cert, fp)) != 0) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", fedc_error_msg());
    rc = fedc_error_set(FEDC_ECONFIG, "%s: %s", where(cfg, "tls", "cert", cfg->tls_cert, w, sizeof w),
                        msg);
  }
  if (rc == 0 && (strncasecmp(cfg->server_url, "https://", 8) != 0 || cfg->server_url[8] == '\0'))
    rc = fedc_error_set(FEDC_ECONFIG, "%s: must be an https:// URL (plain HTTP is not supported)",
                        where(cfg, "server", "url", cfg->server_url, w, sizeof w));
  if (rc == 0) rc = keep_dir(cfg);
  fedc_client_params p;
  fedc_client_params_init(&p);
  if (rc == 0 && cfg->trainer_command[0] != '\0') {
    rc = fedc__client_external_new_config(cfg, &tr->external, &p.trainer);
    if (rc == 0) fedc__client_external_set_stop(tr->external, &g_stop);
    /* test hook: a dense job's rounds through train_st, as a tensor job's */
    const char *st = getenv("FEDC_TEST_TRAINER_ST");
    if (rc == 0 && st && strcmp(st, "1") == 0) p.trainer.train = NULL, p.trainer.evaluate = NULL;
  } else if (rc == 0) {
    rc = fedc__client_builtin_new_config(cfg, &tr->builtin, &p.trainer);
  }
  if (rc != 0) return rc;
  p.url = cfg->server_url;
  p.ca = cfg->tls_ca;
  p.cert = cfg->tls_cert;
  p.key = cfg->tls_key;
  p.name = cfg->client_name;
  p.keep_updates = cfg->client_keep_updates;
  p.state_dir = cfg->client_state_dir;
  p.poll_s = cfg->server_poll_s;
  p.backoff_max_s = cfg->client_backoff_max_s;
  p.give_up_s = cfg->client_give_up_s;
  if (site) {
    p.job_filter = fedc__site_filter;
    p.job_filter_data = site;
  }
  rc = fedc_client_new(&p, out);
  if (rc != 0) trainers_free(tr);
  return rc;
}

/* Sleeps s seconds unless a signal asks to stop (then -1). */
static int pause_s(double s) {
  for (double t = 0; t < s; t += 0.1) {
    if (g_stop) return -1;
    struct timespec ts = {.tv_sec = 0, .tv_nsec = 100000000L};
    nanosleep(&ts, NULL);
  }
  return g_stop ? -1 : 0;
}

/*
 * The site service (--serve): one job after another, as [policy] allows.
 * The client is made with the data set the next job names (remade when a
 * job asks for another one); after a job it finished, declined or could
 * not take part in, it long-polls for the next (fedc_client_wait_next).
 * Only a signal (exit 5) or a certificate the coordinator refuses (exit 3)
 * ends it; a coordinator that is away is waited for.
 */
static int serve(const fedc_config *cfg) {
  fedc_site site = {.cfg = cfg};
  snprintf(site.loaded_set, sizeof site.loaded_set, "default");
  fedc_config *dc = fedc_malloc(sizeof *dc);
  if (dc == NULL) return FEDC_CLIENT_EXIT_FAILED;
  fedc_log_info("msg=\"site service starting\" model_types=\"%s\" max_rounds=%d max_epochs=%d "
                "min_noise_multiplier=%g require_secagg=%d datasets=\"%s\"",
                cfg->policy_model_types, (int)cfg->policy_max_rounds, (int)cfg->policy_max_epochs,
                cfg->policy_min_noise, (int)cfg->policy_require_secagg, cfg->policy_datasets);
  int code = FEDC_CLIENT_EXIT_FINISHED;
  while (!g_stop) {
    trainers tr = {0};
    fedc_client *c = NULL;
    int rc = fedc__site_data_config(cfg, site.loaded_set, dc);
    if (rc == 0) rc = make_client(dc, &site, &tr, &c);
    if (rc != 0) {
      fprintf(stderr, "fedc-client: data set %s: %s\n", site.loaded_set, fedc_error_msg());
      if (strcmp(site.loaded_set, "default") == 0) {
        code = rc == FEDC_ENOMEM ? FEDC_CLIENT_EXIT_FAILED : FEDC_CLIENT_EXIT_BAD_INPUT;
        break;
      }
      snprintf(site.loaded_set, sizeof site.loaded_set, "default");
      if (pause_s(5) != 0) break;
      continue;
    }
    g_client = c;
    if (g_stop) fedc_client_stop(c);
    double last_run = 0;
    for (;;) {
      /* a job that keeps coming back at once (declined, then offered
       * again) must not make a busy loop: runs at most once a second */
      struct timespec now;
      clock_gettime(CLOCK_MONOTONIC, &now);
      double t = (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
      if (t - last_run < 1.0 && pause_s(1.0 - (t - last_run)) != 0) {
        code = FEDC_CLIENT_EXIT_INTERRUPTED;
        break;
      }
      last_run = t < last_run + 1.0 ? last_run + 1.0 : t;
      fedc_client_exit e = fedc_client_run(c);
      if (e == FEDC_CLIENT_EXIT_INTERRUPTED || g_stop) {
        code = FEDC_CLIENT_EXIT_INTERRUPTED;
        break;
      }
      if (e == FEDC_CLIENT_EXIT_REFUSED) {
        fprintf(stderr, "fedc-client: %s\n", fedc_error_msg());
        code = e;
        break;
      }
      if (e == FEDC_CLIENT_EXIT_FINISHED) {
        snprintf(site.done_job, sizeof site.done_job, "%s", fedc_client_job_id(c));
        fedc_log_info("msg=\"job done; waiting for the next\" job=%s", site.done_job);
      } else if (e == FEDC_CLIENT_EXIT_DECLINED && site.want_set[0]) {
        fedc_log_info("msg=\"loading data set %s for job %s\"", site.want_set,
                      fedc_client_job_id(c));
        break; /* remade with that set */
      } else if (e != FEDC_CLIENT_EXIT_DECLINED) {
        fedc_log_warn("msg=\"run ended; waiting for the next job\" exit=%d error=\"%s\"",
                      (int)e, fedc_error_msg());
        if (pause_s(1) != 0) continue;
      }
      if (fedc_client_wait_next(c) != 0) { /* FEDC_ECANCELED: stopped by a signal */
        code = FEDC_CLIENT_EXIT_INTERRUPTED;
        break;
      }
    }
    g_client = NULL;
    fedc_client_free(c);
    trainers_free(&tr);
    if (code != FEDC_CLIENT_EXIT_FINISHED) break;
    if (site.want_set[0]) {
      snprintf(site.loaded_set, sizeof site.loaded_set, "%s", site.want_set);
      site.want_set[0] = '\0';
    }
  }
  fedc_free(dc);
  if (g_stop) code = FEDC_CLIENT_EXIT_INTERRUPTED;
  if (code == FEDC_CLIENT_EXIT_INTERRUPTED)
    fedc_log_info("msg=\"site service stopped by a signal\"");
  return code;
}

int main(int argc, char **argv) {
  /* provisioning: the site's key and request (enroll.c) */
  if (argc >= 2 && strcmp(argv[1], "enroll") == 0) return fedc__client_enroll_main(argc - 1, argv + 1);
  fedc_config cfg;
  fedc_config_defaults(&cfg);
  fedc_cuda_module_set_path(getenv("FEDC_CUDA_MODULE")); /* docs/cuda.md */
  if (getenv("FEDC_LOG") == NULL) fedc_log_set_level(FEDC_LOG_INFO);
  int have_config = 0;
  /* FEDC_CPU forces a kernel variant (base/cpu.h), before anything runs */
  const char *cpu = getenv("FEDC_CPU");
  if (cpu && cpu[0] && fedc_cpu_select(cpu) != 0) {
    fprintf(stderr, "fedc-client: FEDC_CPU: %s\n", fedc_error_msg());
    return FEDC_CLIENT_EXIT_BAD_INPUT;
  }
  /* --help and --version win wherever they stand; --config is applied
   * first, then every --set in order */
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout);
      return FEDC_CLIENT_EXIT_FINISHED;
    }
    if (strcmp(argv[i], "--version") == 0) {
      printf("fedc-client %s\ncpu kernels: %s\n", FEDC_VERSION, fedc_cpu_name());
      return FEDC_CLIENT_EXIT_FINISHED;
    }
  }
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--config") == 0) {
      if (i + 1 >= argc) {
        fprintf(stderr, "fedc-client: --config needs a file\n");
        return FEDC_CLIENT_EXIT_BAD_INPUT;
      }
      if (have_config) {
        fprintf(stderr, "fedc-client: --config given twice\n");
        return FEDC_CLIENT_EXIT_BAD_INPUT;
      }
      have_config = 1;
      if (fedc_config_load(&cfg, argv[++i]) != 0) {
        fprintf(stderr, "fedc-client: %s\n", fedc_error_msg());
        return FEDC_CLIENT_EXIT_BAD_INPUT;
      }
    }
  }
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--config") == 0) {
      i++;
    } else if (strcmp(a, "--serve") == 0) {
      cfg.client_serve = 1;
    } else if (strcmp(a, "--set") == 0 || strcmp(a, "--log-level") == 0) {
      if (i + 1 >= argc) {
        fprintf(stderr, "fedc-client: %s needs a value\n", a);
        return FEDC_CLIENT_EXIT_BAD_INPUT;
      }
      const char *v = argv[++i];
      if (strcmp(a, "--log-level") == 0) {
        int l = fedc_log_level_parse(v);
        if (l < 0) {
          fprintf(stderr,
                  "fedc-client: --log-level %s: not error, warn, info "
                  "or debug\n",
                  v);
          return FEDC_CLIENT_EXIT_BAD_INPUT;
        }
        fedc_log_set_level((fedc_log_level)l);
      } else if (fedc_config_set(&cfg, v) != 0) {
        fprintf(stderr, "fedc-client: %s\n", fedc_error_msg());
        return FEDC_CLIENT_EXIT_BAD_INPUT;
      }
    } else {
      fprintf(stderr, "fedc-client: unknown option '%s' (try --help)\n", a);
      return FEDC_CLIENT_EXIT_BAD_INPUT;
    }
  }
  if (fedc_config_check_role(&cfg, FEDC_ROLE_CLIENT) != 0) {
    fprintf(stderr, "fedc-client: %s\n", fedc_error_msg());
    if (!have_config) fprintf(stderr, "fedc-client: (no --config given; try --help)\n");
    return FEDC_CLIENT_EXIT_BAD_INPUT;
  }
  if (cfg.client_serve) {
    if (install_signals() != 0) {
      fprintf(stderr, "fedc-client: cannot install signal handlers\n");
      return FEDC_CLIENT_EXIT_FAILED;
    }
    return serve(&cfg);
  }
  trainers tr = {0};
  fedc_client *c = NULL;
  int rc = make_client(&cfg, NULL, &tr, &c);
  if (rc != 0) {
    fprintf(stderr, "fedc-client: %s\n", fedc_error_msg());
    return rc == FEDC_ENOMEM ? FEDC_CLIENT_EXIT_FAILED : FEDC_CLIENT_EXIT_BAD_INPUT;
  }
  const char *delay = getenv("FEDC_TEST_TRAIN_DELAY_S"); /* a slow site, in tests */
  if (delay) {
    char *end;
    double secs = strtod(delay, &end);
    if (end != delay && secs > 0) fedc_client_set_test_train_delay(c, secs);
  }
  const char *stall = getenv("FEDC_TEST_SECAGG_STALL_S");
  if (stall) {
    char *end;
    double secs = strtod(stall, &end);
    if (end != stall && secs > 0) fedc_client_set_test_stall(c, secs);
  }
  const char *lie = getenv("FEDC_TEST_SECAGG_LIE"); /* test hook: a lying client */
  if (lie && strcmp(lie, "1") == 0) fedc_client_set_test_secagg_lie(c, 1);
  g_client = c;
  if (install_signals() != 0) {
    fprintf(stderr, "fedc-client: cannot install signal handlers\n");
    g_client = NULL;
    fedc_client_free(c);
    trainers_free(&tr);
    return FEDC_CLIENT_EXIT_FAILED;
  }
  fedc_client_exit e = fedc_client_run(c);
  if (e != FEDC_CLIENT_EXIT_FINISHED) {
    if (e == FEDC_CLIENT_EXIT_INTERRUPTED)
      fedc_log_warn("msg=\"stopped by a signal\"");
    else
      fprintf(stderr, "fedc-client: %s\n", fedc_error_msg());
  }
  /* the handler reads g_client: a late signal must not see a freed client */
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  g_client = NULL;
  fedc_client_free(c);
  trainers_free(&tr);
  return (int)e;
}
