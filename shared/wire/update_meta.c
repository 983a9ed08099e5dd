/*
 * update_meta.c - reads the metadata an update carries (round, sample
 * count, training loss) out of its decoded container, with the rules of
 * docs/protocol.md and nothing looser: integers are plain decimal digits
 * (strtoll alone would also take leading spaces and a '+'), and the loss
 * must be a whole, non-empty, finite decimal number (strtod alone takes ""
 * as 0, and hexadecimal floats, "inf" and "nan" too).
 * Values come from an untrusted peer and end up in the store and in the
 * weighted sum, so every refusal names the key for the person reading the
 * 400 answer.
 */
#include "wire/update_meta.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"

/* At most this much of a bad value is quoted back, printable ASCII only. */
#define SHOW_MAX 32

/* A bad value for a message: cut short, anything but printable ASCII as
 * '?', so a hostile value can neither flood nor forge a log line. */
static void show(const char *v, char out[SHOW_MAX + 4]) {
  size_t i = 0;
  for (; v[i] != '\0' && i < SHOW_MAX; i++) {
    unsigned char ch = (unsigned char)v[i];
    out[i] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
  }
  if (v[i] != '\0') {
    memcpy(out + i, "...", 3);
    i += 3;
  }
  out[i] = '\0';
}

/* key's value as decimal digits in [lo, hi]. FEDC_EFORMAT naming key. */
static int meta_uint(const fedc_st_file *f, const char *key, int64_t lo, int64_t hi, int64_t *out) {
  const char *v = fedc_st_meta_get(f, key);
  char shown[SHOW_MAX + 4];
  if (v == NULL) return fedc_error_set(FEDC_EFORMAT, "update: metadata \"%s\" is missing", key);
  size_t n = strlen(v);
  int digits = n > 0;
  for (size_t i = 0; digits && i < n; i++)
    digits = v[i] >= '0' && v[i] <= '9';
  if (!digits) {
    show(v, shown);
    return fedc_error_set(FEDC_EFORMAT,
                          "update: metadata \"%s\" = \"%s\": not a decimal "
                          "integer",
                          key, shown);
  }
  errno = 0;
  long long x = strtoll(v, NULL, 10);
  if (errno == ERANGE || x < lo || x > hi) {
    show(v, shown);
    return fedc_error_set(FEDC_EFORMAT,
                          "update: metadata \"%s\" = \"%s\": must be in "
                          "%lld..%lld",
                          key, shown, (long long)lo, (long long)hi);
  }
  *out = (int64_t)x;
  return 0;
}

/* Is v a decimal number as docs/protocol.md has it: an optional sign,
 * digits with an optional fraction (at least one digit in all), an
 * optional exponent? No hexadecimal, no "inf" or "nan", no spaces. */
static int is_decimal(const char *v) {
  const char *p = v;
  int digits = 0;
  if (*p == '-' || *p == '+') p++;
  for (; *p >= '0' && *p <= '9'; p++) digits++;
  if (*p == '.')
    for (p++; *p >= '0' && *p <= '9'; p++) digits++;
  if (!digits) return 0;
  if (*p == 'e' || *p == 'E') {
    p++;
    if (*p == '-' || *p == '+') p++;
    if (!(*p >= '0' && *p <= '9')) return 0;
    while (*p >= '0' && *p <= '9') p++;
  }
  return *p == '\0';
}

/* train_loss: the whole value is one finite decimal number. */
static int meta_loss(const fedc_st_file *f, double *out) {
  const char *v = fedc_st_meta_get(f, "train_loss");
  char shown[SHOW_MAX + 4];
  if (v == NULL) return fedc_error_set(FEDC_EFORMAT, "update: metadata \"train_loss\" is missing");
  char *end = NULL;
  double x = NAN;
  /* strtod skips leading white space and reads "" as 0: neither is a loss */
  if (is_decimal(v)) x = strtod(v, &end);
  if (end == NULL || *end != '\0' || !isfinite(x)) {
    show(v, shown);
    return fedc_error_set(FEDC_EFORMAT,
                          "update: metadata \"train_loss\" = \"%s\": not a "
                          "finite decimal number",
                          shown);
  }
  *out = x;
  return 0;
}

int fedc_update_meta_parse(const fedc_st_file *f, fedc_update_meta *out) {
  if (out == NULL) return fedc_error_set(FEDC_EINVAL, "update: metadata: no output");
  memset(out, 0, sizeof *out);
  if (f == NULL) return fedc_error_set(FEDC_EINVAL, "update: metadata: no container");
  int64_t round = 0, samples = 0;
  double loss = 0;
  int rc = meta_uint(f, "round", 1, INT32_MAX, &round);
  if (rc == 0) rc = meta_uint(f, "num_samples", 1, FEDC_UPDATE_MAX_SAMPLES, &samples);
  if (rc == 0) rc = meta_loss(f, &loss);
  if (rc != 0) return rc;
  out->round = (int32_t)round;
  out->num_samples = samples;
  out->train_loss = loss;
  out->sha256 = fedc_st_meta_get(f, "sha256");
  return 0;
}
