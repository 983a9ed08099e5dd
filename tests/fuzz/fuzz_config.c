/*
 * fuzz_config.c - fuzz target for the configuration parser: INI job files
 * (fedc_config_load, through inih and config.c's own line reader) and the
 * `--set section.key=value` overrides (fedc_config_set).
 *
 * The input up to its first NUL byte is the INI file (an in-memory file
 * opened by path); after it, NUL-separated assignments are applied one by
 * one. Checked: only the documented error codes; a failed load or set
 * leaves the config exactly as it was and says where ("<path>:<line>:" or
 * "--set:"); every role check runs on whatever was accepted; the numbers
 * training takes as floats (l1, l2, lr, momentum, prox_mu) convert without
 * undefined behaviour and stay in range as floats; and a config
 * that was accepted is written by fedc_config_dump and read back by
 * fedc_config_load to the same values (the dump's contract). Every fedc
 * block allocated is freed before the input is done.
 */
#include <float.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "base/alloc.h"
#include "config/config.h"
#include "config/config_params.h"
#include "base/error.h"
#include "fuzz_util.h"
#include "ml/model.h"

static fuzz_file ini, dump;

/* The values of two configs, without where each was set. */
static int same_values(const fedc_config *a, const fedc_config *b) {
  return memcmp(a, b, offsetof(fedc_config, origin)) == 0;
}

/* A number the binaries hand to training as a float (the model's spec,
 * fedc_train_params in sim.c and the client) must convert without undefined
 * behaviour and keep its documented range once it is a float. */
static void check_floats(const fedc_config *c) {
  fedc_model_spec spec;
  int rc = fedc_model_spec_from_config(c, 4, 3, &spec);
  FUZZ_CHECK(rc == 0 || rc == FEDC_EINVAL);
  FUZZ_CHECK(spec.l1 >= 0 && isfinite(spec.l1));
  FUZZ_CHECK(spec.l2 >= 0 && isfinite(spec.l2));
  FUZZ_CHECK(c->lr <= FLT_MAX && (float)c->lr > 0);
  FUZZ_CHECK(c->momentum <= FLT_MAX && (float)c->momentum >= 0 && (float)c->momentum < 1);
  FUZZ_CHECK(c->prox_mu <= FLT_MAX && isfinite((float)c->prox_mu));
}

/* What is accepted is checked by each binary; then it survives a dump and
 * a load into fresh defaults. */
static void check_accepted(const fedc_config *c) {
  for (int role = FEDC_ROLE_SIM; role <= FEDC_ROLE_CLIENT; role++) {
    int rc = fedc_config_check_role(c, (fedc_config_role)role);
    FUZZ_CHECK(rc == 0 || rc == FEDC_ECONFIG);
  }
  check_floats(c);
  FILE *f = fopen(dump.path, "w");
  FUZZ_CHECK(f != NULL);
  int rc = fedc_config_dump(c, f);
  FUZZ_CHECK(fclose(f) == 0);
  FUZZ_CHECK(rc == 0);
  fedc_config *back = fedc_malloc(sizeof *back);
  FUZZ_CHECK(back != NULL);
  fedc_config_defaults(back);
  rc = fedc_config_load(back, dump.path);
  if (rc != 0) {
    size_t len;
    char *text = fuzz_file_get(&dump, &len);
    fprintf(stderr, "dump does not load back: %s\n---\n%s---\n", fedc_error_msg(), text);
    free(text);
  }
  FUZZ_CHECK(rc == 0);
  FUZZ_CHECK(same_values(c, back));
  fedc_free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int64_t live = fedc_alloc_live();
  fuzz_file_open(&ini, "fedc-fuzz.ini");
  fuzz_file_open(&dump, "fedc-fuzz-dump.ini");
  const uint8_t *nul = memchr(data, 0, size);
  size_t file_len = nul ? (size_t)(nul - data) : size;
  fuzz_file_set(&ini, data, file_len);

  fedc_config *c = fedc_malloc(sizeof *c), *before = fedc_malloc(sizeof *c);
  FUZZ_CHECK(c != NULL && before != NULL);
  fedc_config_defaults(c);
  memcpy(before, c, sizeof *c);
  int rc = fedc_config_load(c, ini.path);
  FUZZ_CHECK(rc == 0 || rc == FEDC_ECONFIG || rc == FEDC_ENOMEM);
  if (rc != 0) {
    FUZZ_CHECK(memcmp(c, before, sizeof *c) == 0);
    FUZZ_CHECK(strncmp(fedc_error_msg(), ini.path, strlen(ini.path)) == 0);
  }

  /* The assignments, one per NUL-terminated piece (the last may end at
   * the end of the input). */
  if (nul != NULL) {
    const uint8_t *p = nul + 1, *end = data + size;
    while (p < end) {
      const uint8_t *q = memchr(p, 0, (size_t)(end - p));
      size_t n = q ? (size_t)(q - p) : (size_t)(end - p);
      char *a = fedc_malloc(n + 1);
      FUZZ_CHECK(a != NULL);
      memcpy(a, p, n);
      a[n] = '\0';
      memcpy(before, c, sizeof *c);
      int src = fedc_config_set(c, a);
      FUZZ_CHECK(src == 0 || src == FEDC_ECONFIG || src == FEDC_ENOMEM);
      if (src != 0) {
        FUZZ_CHECK(memcmp(c, before, sizeof *c) == 0);
        FUZZ_CHECK(strncmp(fedc_error_msg(), "--set", 5) == 0);
      }
      fedc_free(a);
      p += n + 1;
    }
  }
  check_accepted(c);
  fedc_free(c);
  fedc_free(before);
  FUZZ_CHECK(fedc_alloc_live() == live);
  return 0;
}
