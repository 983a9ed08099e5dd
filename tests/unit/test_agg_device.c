/*
 * test_agg_device.c - [strategy] device = cuda | auto: the GPU strategy
 * (agg/agg_device.c) through the pipeline the round engine owns, against
 * the CPU's, on a real GPU through the CUDA module (agg_device_cases.h:
 * FedAvg, the server optimizers, DP, the share cap, MPI-style partials and
 * FedBuff bit for bit; median, trimmed mean and the norm bound within
 * 1e-6 relative, floor 1e-3). Without the CUDA module or a GPU each of
 * those cases prints "skipped: no CUDA device (why)" and is reported as
 * skipped.
 *
 * What a machine without a GPU can check runs here on every machine:
 * device = auto falls back to the CPU with exactly one log line and the
 * CPU's result; device = cuda is refused with one message saying what is
 * missing; a strategy with no GPU form is refused with cuda and falls back
 * with auto. Where a GPU is present the first two are skipped (their
 * situation cannot arise) and auto must land on the GPU instead.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <fedc/cuda.h>

static void require_gpu(void);
#define REQUIRE_GPU() require_gpu()
#include "agg_device_cases.h"

static void require_gpu(void) {
  if (fedc_cuda_available()) return;
  fedc_pipeline_params pp;
  base_params(&pp, "fedavg", FEDC_AGG_DEVICE_CUDA, 1);
  fedc_pipeline *pl = NULL;
  if (fedc_pipeline_new(&pp, 4, &pl) == 0) fedc_pipeline_free(pl); /* for the reason */
  print_message("skipped: no CUDA device (%s)\n", fedc_error_msg());
  skip();
}

/* stderr into a file while fn runs; the lines containing needle. */
static int log_lines(void (*fn)(void *), void *arg, const char *needle, char *first,
                     size_t first_len) {
  char path[] = "/tmp/fedc_agg_device_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  fflush(stderr);
  int saved = dup(2);
  assert_true(saved >= 0);
  assert_true(dup2(fd, 2) >= 0);
  fn(arg);
  fflush(stderr);
  assert_true(dup2(saved, 2) >= 0);
  close(saved);
  FILE *f = fdopen(fd, "r");
  assert_non_null(f);
  rewind(f);
  char line[2048];
  int count = 0;
  if (first_len) first[0] = '\0';
  while (fgets(line, sizeof line, f))
    if (strstr(line, needle)) {
      if (count++ == 0 && first_len) snprintf(first, first_len, "%s", line);
    }
  fclose(f);
  unlink(path);
  return count;
}

typedef struct made {
  const char *name;
  int device;
  int rc;
  fedc_pipeline *pl;
  char msg[1024];
} made;

static void make_pipeline(void *arg) {
  made *m = arg;
  fedc_pipeline_params p;
  base_params(&p, m->name, m->device, 4);
  m->pl = NULL;
  m->rc = fedc_pipeline_new(&p, 1003, &m->pl);
  snprintf(m->msg, sizeof m->msg, "%s", m->rc ? fedc_error_msg() : "");
}

/* One round of 4 updates through pl and through a CPU pipeline: the
 * same bits (the fallback is the CPU's own strategy). */
static void same_as_cpu(fedc_pipeline *pl, const char *name) {
  const size_t n = 1003;
  float x1[1003], x2[1003], w[4 * 1003];
  uint64_t samples[4];
  for (size_t i = 0; i < n; i++)
    x1[i] = x2[i] = (float)i / (float)n;
  make_updates(5, x1, n, 4, 0.5, w, samples);
  fedc_pipeline_params p;
  base_params(&p, name, FEDC_AGG_DEVICE_CPU, 4);
  fedc_pipeline *cpu = pipeline_or_fail(&p, n);
  fedc_pipeline_round r;
  run_round(cpu, 1, x1, n, w, samples, NULL, 4, NULL, &r);
  run_round(pl, 1, x2, n, w, samples, NULL, 4, NULL, &r);
  assert_same_bits(x1, x2, n, name);
  fedc_pipeline_free(cpu);
}

static void test_auto_falls_back(void **state) {
  (void)state;
  const char *names[] = {"fedavg", "median", "krum"};
  for (size_t j = 0; j < 3; j++) {
    made m = {.name = names[j], .device = FEDC_AGG_DEVICE_AUTO};
    char line[2048];
    int lines = log_lines(make_pipeline, &m, "[strategy] device = auto: aggregating on the CPU",
                          line, sizeof line);
    if (m.rc != 0) print_message("%s: %s\n", names[j], m.msg);
    assert_int_equal(m.rc, 0);
    const int gpu_form = j < 2;
    if (gpu_form && fedc_cuda_available()) {
      /* a GPU is here: auto takes it, and says nothing about the CPU */
      assert_true(fedc_pipeline_on_gpu(m.pl));
      assert_int_equal(lines, 0);
    } else {
      assert_false(fedc_pipeline_on_gpu(m.pl));
      if (lines != 1) print_message("%s: %d fallback lines, want 1\n", names[j], lines);
      assert_int_equal(lines, 1);
      char want[64];
      snprintf(want, sizeof want, "strategy=%s device=cpu", names[j]);
      assert_non_null(strstr(line, want));
      assert_non_null(strstr(line, gpu_form ? "reason=\"agg_cuda: " : "has no GPU form"));
      print_message("%s", line);
      same_as_cpu(m.pl, names[j]);
    }
    fedc_pipeline_free(m.pl);
  }
}

static void test_cuda_refused_without_gpu(void **state) {
  (void)state;
  if (fedc_cuda_available()) {
    print_message("skipped: a CUDA device is present, so device = cuda is not refused\n");
    skip();
  }
  const char *names[] = {"fedavg", "fedadam", "median", "trimmed_mean"};
  for (size_t j = 0; j < 4; j++) {
    made m = {.name = names[j], .device = FEDC_AGG_DEVICE_CUDA};
    int lines = log_lines(make_pipeline, &m, "device=", NULL, 0);
    assert_int_equal(m.rc, FEDC_ECONFIG);
    assert_null(m.pl);
    assert_int_equal(lines, 0); /* the message is the error, not a log line */
    /* one line, saying the key and what is missing */
    assert_non_null(strstr(m.msg, "[strategy] device = cuda: agg_cuda: "));
    assert_true(strstr(m.msg, "CUDA module") != NULL || strstr(m.msg, "no CUDA device") != NULL);
    assert_null(strchr(m.msg, '\n'));
    if (j == 0) print_message("%s\n", m.msg);
  }
}

/* krum, multikrum and a program's strategies have no GPU form: refused
 * with cuda on every machine, before any device is looked for. */
static void test_no_gpu_form(void **state) {
  (void)state;
  const char *names[] = {"krum", "multikrum"};
  for (size_t j = 0; j < 2; j++) {
    made m = {.name = names[j], .device = FEDC_AGG_DEVICE_CUDA};
    make_pipeline(&m);
    assert_int_equal(m.rc, FEDC_ECONFIG);
    char want[64];
    snprintf(want, sizeof want, "[strategy] device = cuda: strategy %s has no GPU form", names[j]);
    assert_non_null(strstr(m.msg, want));
  }
  assert_int_equal(fedc__strategy_gpu_kind(fedc_strategy_lookup("fedbuff")), 0);
  assert_int_equal(fedc__strategy_gpu_kind(fedc_strategy_lookup("krum")), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_auto_falls_back),
      cmocka_unit_test(test_cuda_refused_without_gpu),
      cmocka_unit_test(test_no_gpu_form),
      AGG_DEVICE_CASES,
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
