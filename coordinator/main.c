/*
 * main.c - fedc-coordinator's command line: run the daemon, or administer
 * its store (enroll and revoke client certificates, list clients, export a
 * committed round's model).
 *
 * The daemon is the library's embeddable coordinator (fedc/coordinator.h)
 * in this program's libuv loop; the program, not the library, handles
 * SIGTERM and SIGINT (a clean stop after the commit in flight), reads the
 * test hooks' environment variables (FEDC_FAIL_*, FEDC_SECAGG_DEBUG_DIR)
 * and runs the loop.
 *
 * Exit codes (docs/operations.md; never renumbered): 0 success, 1 runtime
 * failure, 2 usage or config error, 3 cannot listen, 4 store failure.
 */
#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/x509_crt.h>
#include <uv.h>

#include "base/alloc.h"
#include "config/config.h"
#include "config/settings.h"
#include "coordinator.h"
#include "base/cpu.h"
#include "base/error.h"
#include "base/log.h"
#include "base/mbedtls_compat.h"
#include "job_runner.h"
#include "store.h"
#include "audit.h"
#include "certs.h"
#include "pki.h"
#include "init_config.h"
#include "relay.h"
#include "base/version.h"
#include <fedc/cuda.h>

static void usage(FILE *f) {
  fputs("usage: fedc-coordinator [--config FILE] [--set SECTION.KEY=VALUE]... [COMMAND]\n"
        "\n"
        "Run a federated learning job: FedAvg rounds over mutual TLS, state in\n"
        "a sqlite store.\n"
        "\n"
        "commands:\n"
        "  run                      run the daemon (the default)\n"
        "  allow CERT|FINGERPRINT [--name NAME]\n"
        "                           enroll a client certificate (PEM file or\n"
        "                           64-hex SHA-256 fingerprint of its DER)\n"
        "  revoke CERT|FINGERPRINT  refuse that client from now on\n"
        "  clients                  list the enrolled clients (with their\n"
        "                           certificates' expiry where known)\n"
        "  export ROUND FILE        write the model after ROUND (0 = initial;\n"
        "                           best = the best round by [eval] select)\n"
        "                           as safetensors\n"
        "  relay                    run as a relay: a coordinator to the sites\n"
        "                           below it, one client to [relay] parent\n"
        "                           (docs/relays.md)\n"
        "  pki init|sign ...        provisioning: the CA and the server's\n"
        "                           certificate; a site's CSR signed into a\n"
        "                           startup kit (pki --help; docs/operations.md)\n"
        "  init [--data FILE.csv] [--label NAME] [--job] [--out FILE]\n"
        "                           write a commented config for your own data\n"
        "                           (the schema from the CSV's header)\n"
        "  audit [--store FILE] [JOB] [--updates DIR...]\n"
        "                           check the audit trail of every committed\n"
        "                           round (a queue's JOB number, or every job);\n"
        "                           recompute them from kept updates\n"
        "\n"
        "job queue ([server] queue = true; docs/operations.md):\n"
        "  serve                    run the queue daemon (the same as run with\n"
        "                           [server] queue = true)\n"
        "  submit JOB.ini [--name NAME]\n"
        "                           queue a job (its model, rounds, training...)\n"
        "  jobs                     list the jobs, with sites that declined them\n"
        "  cancel JOB               cancel a queued or running job\n"
        "  export JOB ROUND|best|latest FILE\n"
        "                           write a job's model as safetensors\n"
        "\n"
        "options:\n"
        "  --config FILE            the job file (INI; see docs/config.md)\n"
        "  --set SECTION.KEY=VAL    override one key (repeatable)\n"
        "  --help, --version\n"
        "\n"
        "exit codes: 0 ok, 1 runtime failure, 2 usage/config error,\n"
        "            3 cannot listen, 4 store failure\n",
        f);
}

/* A fingerprint argument: 64 hex digits as they are, or a PEM certificate
 * file whose DER is hashed. */
static int fingerprint_of(const char *arg, char out[65]) {
  size_t n = strlen(arg);
  int hex = n == 64;
  for (size_t i = 0; hex && i < n; i++) hex = isxdigit((unsigned char)arg[i]);
  if (hex) {
    for (size_t i = 0; i < 64; i++) out[i] = (char)tolower((unsigned char)arg[i]);
    out[64] = '\0';
    return 0;
  }
  mbedtls_x509_crt crt;
  mbedtls_x509_crt_init(&crt);
  int rc = mbedtls_x509_crt_parse_file(&crt, arg);
  if (rc != 0) {
    mbedtls_x509_crt_free(&crt);
    return fedc_error_set(FEDC_EINVAL,
                          "%s: neither a 64-hex fingerprint nor a readable PEM "
                          "certificate (mbedTLS error -0x%04x)",
                          arg, (unsigned)-rc);
  }
  rc = fedc__sha256_hex(crt.raw.p, crt.raw.len, out);
  mbedtls_x509_crt_free(&crt);
  return rc;
}

/* After an allow or revoke: the running job of a queue store sees it too
 * (its coordinator re-reads its own store's list). */
static int sync_jobs(const fedc_config *cfg) {
  char dir[FEDC_CONFIG_PATH_MAX + 8];
  snprintf(dir, sizeof dir, "%s.jobs", cfg->store_path);
  if (access(dir, F_OK) != 0) return 0; /* not a queue store */
  return fedc__jobq_sync_all(cfg->store_path);
}

/* export JOB ROUND|best|latest FILE on a queue store. */
static int export_job(const fedc_config *cfg, const char *job, const char *which,
                      const char *file) {
  char *end;
  long id = strtol(job, &end, 10);
  if (*job == '\0' || *end != '\0' || id < 1 || id > INT32_MAX)
    return fedc_error_set(FEDC_EINVAL, "export: '%s' is not a job id", job);
  uint8_t *bytes = NULL;
  size_t len = 0;
  int32_t round = 0;
  char note[256];
  int rc = fedc__runner_export(cfg->store_path, (int32_t)id, which, &bytes, &len, &round, note,
                               sizeof note);
  if (rc == 0) {
    FILE *f = fopen(file, "wb");
    int ok = f != NULL && fwrite(bytes, 1, len, f) == len;
    if (f != NULL && fclose(f) != 0) ok = 0;
    if (!ok) rc = fedc_error_set(FEDC_EIO, "%s: cannot write", file);
  }
  if (rc == 0 && note[0]) fprintf(stderr, "fedc-coordinator: export: %s\n", note);
  if (rc == 0)
    printf("wrote the model of job %ld after round %d to %s (%zu bytes)\n", id, (int)round, file,
           len);
  fedc_free(bytes);
  return rc;
}

/* submit, jobs, cancel: the queue in the store, as the daemon reads it
 * (it notices a new job or a cancel within a tick). */
static int queue_command(const fedc_config *cfg, int argc, char **argv, const char *name,
                         int *usage_err) {
  const char *cmd = argv[0];
  fedc_jobq *q = NULL;
  if ((strcmp(cmd, "jobs") == 0 && argc != 1) || (strcmp(cmd, "jobs") != 0 && argc != 2)) {
    fprintf(stderr, "fedc-coordinator: usage: %s\n",
            strcmp(cmd, "jobs") == 0 ? "jobs" : strcmp(cmd, "cancel") == 0 ? "cancel JOB"
                                                : "submit JOB.ini [--name NAME]");
    *usage_err = 1;
    return 0;
  }
  int rc = fedc__jobq_open(cfg->store_path, &q);
  if (rc == 0 && strcmp(cmd, "submit") == 0) {
    int32_t id = 0;
    rc = fedc__runner_submit(q, cfg, argv[1], name, &id);
    if (rc == 0) printf("submitted job %d\n", (int)id);
  } else if (rc == 0 && strcmp(cmd, "cancel") == 0) {
    char *end;
    long id = strtol(argv[1], &end, 10);
    rc = *end != '\0' || id < 1 ? fedc_error_set(FEDC_EINVAL, "'%s' is not a job id", argv[1])
                                : fedc__jobq_cancel(q, (int32_t)id);
    if (rc == 0) printf("cancelled job %ld\n", id);
  } else if (rc == 0) {
    fedc_jobq_job *jobs = NULL;
    int32_t n = 0;
    rc = fedc__jobq_list(q, &jobs, &n);
    for (int32_t i = 0; rc == 0 && i < n; i++) {
      const fedc_jobq_job *j = &jobs[i];
      printf("%4d  %-9s rounds=%d/%-5d %s%s%s\n", (int)j->id, j->state, (int)j->rounds_done,
             (int)j->rounds, j->name, j->note[0] ? "  " : "", j->note);
      fedc_jobq_decline *d = NULL;
      int32_t nd = 0;
      if (fedc__jobq_declines(q, j->id, &d, &nd) == 0)
        for (int32_t k = 0; k < nd; k++)
          printf("      declined by %s: %s\n", d[k].site, d[k].reason);
      fedc_free(d);
    }
    fedc_free(jobs);
  }
  fedc__jobq_close(q);
  return rc;
}

/* `allow CERT.pem`: keep the certificate's expiry and admin mark too. */
static int record_cert(fedc_store *st, const char *arg) {
  if (strlen(arg) == 64) return 0; /* a bare fingerprint: nothing more known */
  fedc__cert_info ci;
  int rc = fedc__cert_file_info(arg, &ci);
  if (rc != 0) return rc;
  FILE *f = fopen(arg, "rb");
  char pem[8192];
  size_t n = f ? fread(pem, 1, sizeof pem - 1, f) : 0;
  if (f) fclose(f);
  pem[n] = '\0';
  return fedc__certs_put(st, &ci, pem);
}

/* "expires=YYYY-MM-DD (N d)", flagged within the warning window, or
 * "expires=?" when the store has only the fingerprint. */
static void expiry_text(const fedc__cert_row *certs, int32_t n, const char *fpr, char *out,
                        size_t size) {
  snprintf(out, size, "expires=?");
  for (int32_t i = 0; i < n; i++) {
    if (strcmp(certs[i].fingerprint, fpr) != 0) continue;
    time_t t = (time_t)certs[i].not_after;
    struct tm tm;
    char day[16];
    gmtime_r(&t, &tm);
    strftime(day, sizeof day, "%Y-%m-%d", &tm);
    double left = (certs[i].not_after - (double)time(NULL)) / 86400.0;
    snprintf(out, size, "expires=%s(%.0fd)%s%s", day, left,
             left < 0 ? "EXPIRED" : left < FEDC_PKI_WARN_DAYS ? "SOON" : "",
             certs[i].admin ? " admin" : "");
  }
}

static int admin(const fedc_config *cfg, int argc, char **argv,
                 const char *name) {
  const char *cmd = argv[0];
  fedc_store *st;
  if (fedc_store_open(cfg->store_path, &st) != 0) {
    fprintf(stderr, "fedc-coordinator: %s\n", fedc_error_msg());
    return FEDC_COORD_EXIT_STORE;
  }
  int rc = 0, code = FEDC_COORD_EXIT_OK;
  char fpr[65];
  if ((strcmp(cmd, "allow") == 0 || strcmp(cmd, "revoke") == 0)) {
    if (argc != 2 || (strcmp(cmd, "revoke") == 0 && name != NULL)) {
      fprintf(stderr, "fedc-coordinator: usage: %s CERT|FINGERPRINT%s\n", cmd,
              strcmp(cmd, "allow") == 0 ? " [--name NAME]" : "");
      code = FEDC_COORD_EXIT_USAGE;
    } else if ((rc = fingerprint_of(argv[1], fpr)) != 0) {
      code = FEDC_COORD_EXIT_USAGE;
    } else if (strcmp(cmd, "allow") == 0) {
      int32_t id;
      rc = fedc_store_client_allow(st, fpr, name, &id);
      if (rc == 0) rc = record_cert(st, argv[1]);
      if (rc == 0) rc = sync_jobs(cfg);
      if (rc == 0) printf("allowed client %d %s\n", (int)id, fpr);
    } else {
      rc = fedc_store_client_revoke(st, fpr);
      if (rc == 0) rc = sync_jobs(cfg);
      if (rc == 0) printf("revoked %s\n", fpr);
    }
  } else if (strcmp(cmd, "clients") == 0) {
    fedc_store_client *list = NULL;
    fedc__cert_row *certs = NULL;
    int32_t n = 0, n_certs = 0;
    rc = fedc_store_client_list(st, &list, &n);
    if (rc == 0) rc = fedc__certs_list(st, &certs, &n_certs);
    for (int32_t i = 0; rc == 0 && i < n; i++) {
      char expiry[64];
      expiry_text(certs, n_certs, list[i].fingerprint, expiry, sizeof expiry);
      printf("%4d  %-8s %s  updates=%-6lld %-26s %s\n", (int)list[i].id,
             list[i].status == FEDC_CLIENT_REVOKED ? "revoked" : "allowed",
             list[i].fingerprint, (long long)list[i].updates, expiry, list[i].name);
    }
    fedc_free(list);
    fedc_free(certs);
  } else if (strcmp(cmd, "export") == 0 && argc == 4) {
    rc = export_job(cfg, argv[1], argv[2], argv[3]);
  } else if (strcmp(cmd, "submit") == 0 || strcmp(cmd, "jobs") == 0 ||
             strcmp(cmd, "cancel") == 0) {
    int usage_err = 0;
    rc = queue_command(cfg, argc, argv, name, &usage_err);
    if (usage_err) code = FEDC_COORD_EXIT_USAGE;
  } else if (strcmp(cmd, "export") == 0) {
    char *end = NULL;
    long round = argc == 3 ? strtol(argv[1], &end, 10) : -1;
    if (argc == 3 && strcmp(argv[1], "best") == 0) {
      int32_t best = 0;
      rc = fedc_store_eval_best(st, &best);
      round = best;
      end = rc == 0 ? argv[1] + 4 : NULL;
      if (rc == 0) printf("best round by the federated evaluation: %d\n", (int)best);
    }
    if (rc != 0) {
      /* reported below */
    } else if (argc != 3 || *end != '\0' || round < 0) {
      fprintf(stderr, "fedc-coordinator: usage: export ROUND FILE\n");
      code = FEDC_COORD_EXIT_USAGE;
    } else {
      uint8_t *bytes = NULL;
      size_t len = 0;
      rc = fedc_store_checkpoint(st, (int32_t)round, &bytes, &len);
      if (rc == 0) {
        FILE *f = fopen(argv[2], "wb");
        int ok = f != NULL && fwrite(bytes, 1, len, f) == len;
        if (f != NULL && fclose(f) != 0) ok = 0;
        if (!ok) rc = fedc_error_set(FEDC_EIO, "%s: cannot write", argv[2]);
      }
      if (rc == 0) printf("wrote the model after round %ld to %s (%zu bytes)\n", round, argv[2], len);
      fedc_free(bytes);
    }
  } else {
    fprintf(stderr, "fedc-coordinator: unknown command '%s' (try --help)\n", cmd);
    code = FEDC_COORD_EXIT_USAGE;
  }
  if (rc != 0) {
    fprintf(stderr, "fedc-coordinator: %s: %s\n", cmd, fedc_error_msg());
    /* a job file that does not check out is a config error, as at start */
    if (code == FEDC_COORD_EXIT_OK)
      code = rc == FEDC_EIO       ? FEDC_COORD_EXIT_STORE
             : rc == FEDC_ECONFIG ? FEDC_COORD_EXIT_USAGE
                                  : FEDC_COORD_EXIT_RUNTIME;
  }
  fedc_store_close(st);
  return code;
}

/* The signals and the coordinator share the loop; the signal handles go
 * once the coordinator has stopped, which ends the loop. */
typedef struct coord_daemon {
  uv_signal_t sig_term, sig_int;
  fedc_coordinator *c;
} coord_daemon;

static void on_signal(uv_signal_t *s, int signum) {
  coord_daemon *d = s->data;
  fedc_log_info("msg=\"signal %d: stopping after the commit in flight\"", signum);
  if (d->c) fedc_coordinator_stop(d->c);
}

static void on_stopped(fedc_coordinator *c, int exit_code, void *user_data) {
  coord_daemon *d = user_data;
  (void)c;
  (void)exit_code;
  uv_close((uv_handle_t *)&d->sig_term, NULL);
  uv_close((uv_handle_t *)&d->sig_int, NULL);
}

/*
 * Raise the soft descriptor limit to the hard one: every connection costs
 * a descriptor, and the default soft limit (1,024) is far below what a
 * coordinator with thousands of clients needs. The daemon does it, not the
 * library (an embedding program owns its process limits); the coordinator
 * then warns at start if the result is still low for [server] limits.
 */
static void raise_nofile(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max) return;
  rlim_t was = rl.rlim_cur;
  rl.rlim_cur = rl.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
    fedc_log_debug("RLIMIT_NOFILE raised from %llu to %llu",
                   (unsigned long long)was, (unsigned long long)rl.rlim_cur);
}

static int run_daemon(const fedc_config *cfg) {
  raise_nofile();
  fedc_settings *s = NULL;
  if (fedc_settings_new(&s) != 0) {
    fprintf(stderr, "fedc-coordinator: %s\n", fedc_error_msg());
    return FEDC_COORD_EXIT_RUNTIME;
  }
  s->cfg = *cfg;
  uv_loop_t loop;
  uv_loop_init(&loop);
  coord_daemon d = {0};
  fedc_coordinator_params p;
  fedc_coordinator_params_init(&p);
  p.loop = &loop;
  p.settings = s;
  p.user_data = &d;
  p.on_stopped = on_stopped;
  p.fail_alloc_after = getenv("FEDC_FAIL_ALLOC_AFTER");
  p.fail_store_after = getenv("FEDC_FAIL_STORE_AFTER");
  p.fail_commit_after = getenv("FEDC_FAIL_COMMIT_AFTER");
  p.secagg_debug_dir = getenv("FEDC_SECAGG_DEBUG_DIR");
  int code;
  int rc = fedc_coordinator_start(&p, &d.c, &code);
  fedc_settings_free(s);
  if (rc != 0) {
    fprintf(stderr, "fedc-coordinator: %s\n", fedc_error_msg());
    uv_run(&loop, UV_RUN_DEFAULT); /* the closes of what start had opened */
    uv_loop_close(&loop);
    return code;
  }
  uv_signal_init(&loop, &d.sig_term);
  uv_signal_init(&loop, &d.sig_int);
  d.sig_term.data = d.sig_int.data = &d;
  uv_signal_start(&d.sig_term, on_signal, SIGTERM);
  uv_signal_start(&d.sig_int, on_signal, SIGINT);
  fedc_log_info("msg=\"listening\" address=%s port=%d", cfg->server_listen,
                fedc_coordinator_port(d.c));
  uv_run(&loop, UV_RUN_DEFAULT);
  code = fedc_coordinator_exit_code(d.c);
  fedc_coordinator_free(d.c);
  uv_loop_close(&loop);
  fedc_log_info("msg=\"stopped\" exit=%d", code);
  return code;
}

/* The queue daemon: the runner on the loop, stopped by SIGTERM/SIGINT. */
typedef struct queue_daemon {
  uv_signal_t sig_term, sig_int;
  fedc_job_runner *r;
} queue_daemon;

static void on_queue_signal(uv_signal_t *s, int signum) {
  queue_daemon *d = s->data;
  fedc_log_info("msg=\"signal %d: stopping after the commit in flight\"", signum);
  uv_close((uv_handle_t *)&d->sig_term, NULL);
  uv_close((uv_handle_t *)&d->sig_int, NULL);
  fedc__runner_stop(d->r);
}

static int run_queue(const fedc_config *cfg) {
  raise_nofile();
  uv_loop_t loop;
  uv_loop_init(&loop);
  queue_daemon d = {0};
  int code;
  if (fedc__runner_start(&loop, cfg, &d.r, &code) != 0) {
    fprintf(stderr, "fedc-coordinator: %s\n", fedc_error_msg());
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return code;
  }
  uv_signal_init(&loop, &d.sig_term);
  uv_signal_init(&loop, &d.sig_int);
  d.sig_term.data = d.sig_int.data = &d;
  uv_signal_start(&d.sig_term, on_queue_signal, SIGTERM);
  uv_signal_start(&d.sig_int, on_queue_signal, SIGINT);
  fedc_log_info("msg=\"job queue daemon started\" store=%s listen=%s", cfg->store_path,
                cfg->server_listen);
  uv_run(&loop, UV_RUN_DEFAULT);
  code = fedc__runner_exit_code(d.r);
  fedc__runner_free(d.r);
  uv_loop_close(&loop);
  fedc_log_info("msg=\"stopped\" exit=%d", code);
  return code;
}

int main(int argc, char **argv) {
  fedc_config cfg;
  fedc_config_defaults(&cfg);
  fedc_cuda_module_set_path(getenv("FEDC_CUDA_MODULE")); /* docs/cuda.md */
  /* a peer that resets a connection while its answer (a model) is being
   * written must cost that connection an EPIPE, not the daemon its life */
  signal(SIGPIPE, SIG_IGN);
  if (fedc_log_get_level() < FEDC_LOG_INFO && getenv("FEDC_LOG") == NULL)
    fedc_log_set_level(FEDC_LOG_INFO); /* a daemon logs what it does */
  char **rest = fedc_calloc((size_t)argc + 1, sizeof *rest);
  int n_rest = 0;
  const char *name = NULL;
  if (rest == NULL) return FEDC_COORD_EXIT_RUNTIME;
  /* FEDC_CPU forces a kernel variant (base/cpu.h), before anything runs */
  const char *cpu = getenv("FEDC_CPU");
  if (cpu && cpu[0] && fedc_cpu_select(cpu) != 0) {
    fprintf(stderr, "fedc-coordinator: FEDC_CPU: %s\n", fedc_error_msg());
    fedc_free(rest);
    return FEDC_COORD_EXIT_USAGE;
  }
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
      if (fedc_config_load(&cfg, argv[++i]) != 0) {
        fprintf(stderr, "fedc-coordinator: %s\n", fedc_error_msg());
        return FEDC_COORD_EXIT_USAGE;
      }
    }
  }
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return FEDC_COORD_EXIT_OK;
    } else if (strcmp(a, "--version") == 0) {
      printf("fedc-coordinator %s\ncpu kernels: %s\n", FEDC_VERSION, fedc_cpu_name());
      return FEDC_COORD_EXIT_OK;
    } else if (strcmp(a, "--config") == 0) {
      if (++i >= argc) {
        fprintf(stderr, "fedc-coordinator: --config needs a file\n");
        return FEDC_COORD_EXIT_USAGE;
      }
    } else if (strcmp(a, "--set") == 0) {
      if (++i >= argc || fedc_config_set(&cfg, argv[i]) != 0) {
        fprintf(stderr, "fedc-coordinator: %s\n",
                i >= argc ? "--set needs section.key=value" : fedc_error_msg());
        return FEDC_COORD_EXIT_USAGE;
      }
    } else if (strcmp(a, "--name") == 0) {
      if (++i >= argc) {
        fprintf(stderr, "fedc-coordinator: --name needs a value\n");
        return FEDC_COORD_EXIT_USAGE;
      }
      name = argv[i];
    } else if (n_rest == 0 && strcmp(a, "relay") == 0) {
      return fedc__relay_main(&cfg, argc - i, argv + i); /* relay.h, docs/relays.md */
    } else if (n_rest == 0 && strcmp(a, "init") == 0) {
      fedc_free(rest);
      return fedc__init_main(argc - i, argv + i); /* init_config.h */
    } else if (n_rest == 0 && (strcmp(a, "pki") == 0 || strcmp(a, "audit") == 0)) {
      /* these parse their own options (pki.c, audit.c) */
      fedc_free(rest);
      return a[0] == 'p' ? fedc__pki_main(&cfg, argc - i, argv + i)
                         : fedc__audit_main(&cfg, argc - i, argv + i);
    } else if (a[0] == '-' && a[1] == '-') {
      fprintf(stderr, "fedc-coordinator: unknown option '%s' (try --help)\n", a);
      return FEDC_COORD_EXIT_USAGE;
    } else {
      rest[n_rest++] = argv[i];
    }
  }
  int code;
  if (n_rest > 0 && strcmp(rest[0], "serve") == 0) {
    cfg.server_queue = 1;
    n_rest = 0;
  }
  if (n_rest > 0 && strcmp(rest[0], "run") != 0) {
    code = admin(&cfg, n_rest, rest, name);
    fedc_free(rest);
    return code;
  }
  fedc_free(rest);
  if (cfg.server_queue) return run_queue(&cfg); /* each job is checked as it is submitted */
  if (fedc_config_check_role(&cfg, FEDC_ROLE_COORDINATOR) != 0) {
    fprintf(stderr, "fedc-coordinator: %s\n", fedc_error_msg());
    return FEDC_COORD_EXIT_USAGE;
  }
  return run_daemon(&cfg);
}
