/*
 * embedded_coordinator.c - a federated learning coordinator inside a
 * program's own libuv loop, built only against the installed library
 * (<fedc/...> headers, libfedc and libuv).
 *
 *     embedded_coordinator JOB.ini [section.key=value]...
 *
 * The program owns the loop: beside the coordinator it runs its own timer
 * (a heartbeat on stderr) and handles SIGINT and SIGTERM itself. Each round
 * the coordinator commits is printed from the round-committed callback as
 * one line on stdout:
 *
 *     round=3 clients=2 samples=600 train_loss=0.512345 test_acc=nan secs=0.412
 *
 * and when the job-finished callback fires the program stops the
 * coordinator, closes its own handles and exits with the coordinator's
 * exit code (0; 2 for a usage or config error, 3 cannot listen, 4 store).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

#include <fedc/coordinator.h>
#include <fedc/error.h>
#include <fedc/settings.h>

typedef struct app {
  uv_timer_t heartbeat;
  uv_signal_t sigint, sigterm;
  fedc_coordinator *coord;
  int rounds_seen;
  int beats;
} app;

static void on_round(fedc_coordinator *c, const fedc_round_metrics *m, void *user_data) {
  app *a = user_data;
  (void)c;
  a->rounds_seen++;
  printf("round=%d clients=%d samples=%lld train_loss=%.6f test_acc=%.4f secs=%.3f\n",
         (int)m->round, (int)m->clients, (long long)m->samples, m->train_loss, m->test_acc,
         m->secs);
  fflush(stdout);
}

static void on_joined(fedc_coordinator *c, int32_t id, const char *name, void *user_data) {
  (void)c;
  (void)user_data;
  printf("joined client=%d name=%s\n", (int)id, name);
  fflush(stdout);
}

static void on_finished(fedc_coordinator *c, void *user_data) {
  app *a = user_data;
  printf("finished rounds_seen=%d\n", a->rounds_seen);
  fflush(stdout);
  fedc_coordinator_stop(c); /* on_stopped follows once it has let go */
}

static void closed(uv_handle_t *h) { (void)h; }

/* The coordinator holds no handle now: close ours and the loop ends. */
static void on_stopped(fedc_coordinator *c, int exit_code, void *user_data) {
  app *a = user_data;
  (void)c;
  fprintf(stderr, "embedded_coordinator: stopped (exit %d) after %d heartbeats\n", exit_code,
          a->beats);
  uv_close((uv_handle_t *)&a->heartbeat, closed);
  uv_close((uv_handle_t *)&a->sigint, closed);
  uv_close((uv_handle_t *)&a->sigterm, closed);
}

static void on_heartbeat(uv_timer_t *t) {
  app *a = t->data;
  a->beats++;
}

static void on_signal(uv_signal_t *s, int signum) {
  app *a = s->data;
  fprintf(stderr, "embedded_coordinator: signal %d, stopping\n", signum);
  fedc_coordinator_stop(a->coord);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: embedded_coordinator JOB.ini [section.key=value]...\n");
    return 2;
  }
  fedc_settings *s;
  if (fedc_settings_new(&s) != 0 || fedc_settings_load(s, argv[1]) != 0) {
    fprintf(stderr, "embedded_coordinator: %s\n", fedc_error_msg());
    return 2;
  }
  for (int i = 2; i < argc; i++)
    if (fedc_settings_set(s, argv[i]) != 0) {
      fprintf(stderr, "embedded_coordinator: %s\n", fedc_error_msg());
      fedc_settings_free(s);
      return 2;
    }

  uv_loop_t *loop = uv_default_loop();
  app a = {0};
  fedc_coordinator_params p;
  fedc_coordinator_params_init(&p);
  p.loop = loop;
  p.settings = s;
  p.user_data = &a;
  p.on_round = on_round;
  p.on_client_joined = on_joined;
  p.on_finished = on_finished;
  p.on_stopped = on_stopped;
  int code;
  int rc = fedc_coordinator_start(&p, &a.coord, &code);
  fedc_settings_free(s); /* the coordinator copied what it needs */
  if (rc != 0) {
    fprintf(stderr, "embedded_coordinator: %s\n", fedc_error_msg());
    uv_run(loop, UV_RUN_DEFAULT); /* let what start opened close */
    uv_loop_close(loop);
    return code;
  }
  printf("listening port=%d\n", fedc_coordinator_port(a.coord));
  fflush(stdout);

  uv_timer_init(loop, &a.heartbeat);
  a.heartbeat.data = &a;
  uv_timer_start(&a.heartbeat, on_heartbeat, 1000, 1000);
  uv_signal_init(loop, &a.sigint);
  uv_signal_init(loop, &a.sigterm);
  a.sigint.data = a.sigterm.data = &a;
  uv_signal_start(&a.sigint, on_signal, SIGINT);
  uv_signal_start(&a.sigterm, on_signal, SIGTERM);

  uv_run(loop, UV_RUN_DEFAULT);
  code = fedc_coordinator_exit_code(a.coord);
  fedc_coordinator_free(a.coord);
  uv_loop_close(loop);
  return code;
}
