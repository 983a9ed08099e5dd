/*
 * agg_fedavg.c - FedAvg as an exact running weighted sum in 128-bit fixed
 * point (see agg.h for why). The registry (registry.c) makes it for fedavg,
 * the server optimizers and fedbuff.
 *
 * An update is converted and folded in slices of SLICE weights, so the only
 * scratch is one slice's fixed-point values whatever the model's size. The
 * sums live in memory (16 bytes a weight), or, for a model in large-model
 * mode ([server] spill_above_mb, fedc__fedavg_new_spill), in a file that
 * each slice is read from and written back to with pread/pwrite: the page
 * cache holds them, not the process. Both give the same integers.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "agg/agg.h"
#include "base/alloc.h"
#include "base/error.h"
#include "base/mapped.h"
#include "ml/kernels.h"

#define FRAC_BITS 32
#define W_LIMIT 2147483648.0 /* |w| < 2^31 keeps w * 2^32 inside int64 */
#define TWO_POW_FRAC 4294967296.0 /* 2^FRAC_BITS: scaling by it is exact */
#define SLICE ((size_t)1 << 16) /* weights per slice: 512 KiB of q, 1 MiB of sums */

typedef struct fedavg {
  fedc_strategy base;
  __int128 *acc; /* in memory; NULL when the sums are in the file */
  int fd;        /* the sums' file (large-model mode), else -1 */
  char path[1040];
  uint64_t total;
  int64_t *q;    /* one slice in fixed point */
  __int128 *a;   /* one slice of the file's sums */
  int io_rc;     /* a failed pread/pwrite, reported by the next add or finish */
} fedavg;

static size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }

/* The file's sums [off, off + len) into f->a, or back from it. */
static int acc_io(fedavg *f, size_t off, size_t len, int write) {
  char *p = (char *)f->a;
  size_t bytes = len * sizeof *f->a, done = 0;
  off_t at = (off_t)(off * sizeof *f->a);
  while (done < bytes) {
    ssize_t k = write ? pwrite(f->fd, p + done, bytes - done, at + (off_t)done)
                      : pread(f->fd, p + done, bytes - done, at + (off_t)done);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) {
      int e = k < 0 ? errno : EIO;
      return f->io_rc = fedc_error_set(FEDC_EIO, "fedavg: cannot %s %s: %s",
                                       write ? "write" : "read", f->path, strerror(e));
    }
    done += (size_t)k;
  }
  return 0;
}

/* acc[off .. off + len) += m * q: in memory, or through the file. */
static int fold_slice(fedavg *f, size_t off, size_t len, int64_t m) {
  const fedc_kernels *kern = fedc_kernels_get();
  if (f->acc) {
    kern->fx_fold(f->acc + off, f->q, len, m);
    return 0;
  }
  int rc = acc_io(f, off, len, 0);
  if (rc == 0) {
    kern->fx_fold(f->a, f->q, len, m);
    rc = acc_io(f, off, len, 1);
  }
  return rc;
}

void fedc__fedavg_fold_range(fedc_strategy *s, size_t off, const float *w, size_t len,
                             int64_t m) {
  fedavg *f = (fedavg *)s;
  const fedc_kernels *kern = fedc_kernels_get();
  for (size_t i = 0; i < len; i += SLICE) {
    size_t k = min_sz(SLICE, len - i);
    /* checked values (held updates): the conversion passes; a value that
     * did not would be folded as the scalar rounding gives it */
    if (kern->fx_convert(f->q, w + i, k, TWO_POW_FRAC, W_LIMIT) != k)
      for (size_t j = 0; j < k; j++) f->q[j] = (int64_t)nearbyint((double)w[i + j] * TWO_POW_FRAC);
    fold_slice(f, off + i, k, m);
  }
}

static int fedavg_begin(fedc_strategy *s, const float *global, size_t n) {
  fedavg *f = (fedavg *)s;
  (void)global;
  if (n != s->n) return fedc_error_set(FEDC_ESHAPE, "fedavg: %zu weights, want %zu", n, s->n);
  f->total = 0;
  f->io_rc = 0;
  if (f->acc) {
    memset(f->acc, 0, n * sizeof *f->acc);
    return 0;
  }
  /* zeroes, without writing them: a hole of the sums' size */
  if (ftruncate(f->fd, 0) != 0 || ftruncate(f->fd, (off_t)(n * sizeof *f->acc)) != 0)
    return f->io_rc = fedc_error_set(FEDC_EIO, "fedavg: cannot size %s: %s", f->path,
                                     strerror(errno));
  return 0;
}

/*
 * Convert and fold in one pass, slice by slice; a bad weight takes the
 * slices already folded out again (integer sums: the undo is exact), so a
 * refused update leaves the sums as they were, bit for bit. One pass keeps
 * the fold's throughput; a separate read-only check pass would read the
 * update twice. w * 2^32 is exact in double (a power-of-two scale), and
 * nearbyint rounds it to the fixed-point grid. Both loops are the CPU
 * variant's kernels (ml/kernels.h); their results are exact, so the same
 * in every variant. Each slice of w is dropped from the process once read
 * when w is a registered file mapping (base/mapped.h).
 */
static int fedavg_add(fedc_strategy *s, const float *w, size_t n,
                      uint64_t n_samples) {
  fedavg *f = (fedavg *)s;
  if (n != s->n) return fedc_error_set(FEDC_ESHAPE, "fedavg: %zu weights, want %zu", n, s->n);
  if (n_samples == 0 || n_samples > (1ull << 40))
    return fedc_error_set(FEDC_ERANGE, "fedavg: sample count %llu outside 1..2^40",
                          (unsigned long long)n_samples);
  if (f->io_rc) return f->io_rc;
  const fedc_kernels *kern = fedc_kernels_get();
  size_t bad = n;
  int rc = 0;
  for (size_t i = 0; i < n && bad == n && rc == 0; i += SLICE) {
    size_t k = min_sz(SLICE, n - i);
    size_t b = kern->fx_convert(f->q, w + i, k, TWO_POW_FRAC, W_LIMIT);
    if (b < k) {
      bad = i + b;
      fedc__fedavg_fold_range(s, 0, w, i, -(int64_t)n_samples); /* the undo */
      break;
    }
    rc = fold_slice(f, i, k, (int64_t)n_samples);
    fedc__mapped_drop(w + i, k * sizeof *w);
  }
  if (rc != 0) return rc; /* an I/O failure: the round cannot be trusted (io_rc) */
  if (bad < n) {
    double x = (double)w[bad];
    if (!isfinite(x))
      return fedc_error_set(FEDC_ENONFINITE, "fedavg: weight %zu is %g", bad, x);
    return fedc_error_set(FEDC_ERANGE, "fedavg: weight %zu = %g is outside +-2^31", bad, x);
  }
  f->total += n_samples;
  return 0;
}

static int fedavg_finish(fedc_strategy *s, float *out, size_t n) {
  fedavg *f = (fedavg *)s;
  if (n != s->n) return fedc_error_set(FEDC_ESHAPE, "fedavg: %zu weights, want %zu", n, s->n);
  if (f->total == 0) return fedc_error_set(FEDC_EQUORUM, "fedavg: no updates to average");
  if (f->io_rc) return f->io_rc;
  const double scale = ldexp(1.0, -FRAC_BITS) / (double)f->total;
  if (f->acc) {
    for (size_t i = 0; i < n; i++) out[i] = (float)((double)f->acc[i] * scale);
    return 0;
  }
  for (size_t i = 0; i < n; i += SLICE) {
    size_t k = min_sz(SLICE, n - i);
    int rc = acc_io(f, i, k, 0);
    if (rc != 0) return rc;
    for (size_t j = 0; j < k; j++) out[i + j] = (float)((double)f->a[j] * scale);
  }
  return 0;
}

static void fedavg_free(fedc_strategy *s) {
  fedavg *f = (fedavg *)s;
  if (f->fd >= 0) {
    close(f->fd);
    unlink(f->path);
  }
  fedc_free(f->acc);
  fedc_free(f->q);
  fedc_free(f->a);
  fedc_free(f);
}

/* The sums in memory; acc is NULL when they are in a file (large-model
 * mode): callers that need them whole refuse that mode. */
static void fedavg_sum(fedc_strategy *s, __int128 **acc, uint64_t **total) {
  fedavg *f = (fedavg *)s;
  *acc = f->acc;
  *total = &f->total;
}

static const fedc_strategy_ops fedavg_ops = {
    "fedavg", fedavg_begin, fedavg_add, fedavg_finish, fedavg_free, fedavg_sum};

int fedc__fedavg_spilled(const fedc_strategy *s) {
  return s != NULL && s->ops == &fedavg_ops && ((const fedavg *)s)->acc == NULL;
}

int fedc__fedavg_new_spill(size_t n, const char *path, fedc_strategy **out) {
  *out = NULL;
  fedavg *f = fedc_calloc(1, sizeof *f);
  if (f == NULL) return fedc_error_set(FEDC_ENOMEM, "fedavg: out of memory");
  f->fd = -1;
  f->base.ops = &fedavg_ops;
  f->base.n = n;
  f->q = fedc_calloc(min_sz(n ? n : 1, SLICE), sizeof *f->q);
  if (path) {
    f->a = fedc_calloc(min_sz(n ? n : 1, SLICE), sizeof *f->a);
    snprintf(f->path, sizeof f->path, "%s", path);
  } else {
    f->acc = fedc_calloc(n ? n : 1, sizeof *f->acc);
  }
  if (f->q == NULL || (path ? f->a == NULL : f->acc == NULL)) {
    fedavg_free(&f->base);
    return fedc_error_set(FEDC_ENOMEM, "fedavg: out of memory for %zu weights", n);
  }
  if (path) {
    f->fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (f->fd < 0) {
      int e = errno;
      fedavg_free(&f->base);
      return fedc_error_set(FEDC_EIO, "fedavg: cannot create the sums' file %s: %s", path,
                            strerror(e));
    }
    if (ftruncate(f->fd, (off_t)(n * sizeof(__int128))) != 0) {
      int e = errno;
      fedavg_free(&f->base);
      return fedc_error_set(FEDC_EIO, "fedavg: cannot size %s: %s", path, strerror(e));
    }
  }
  *out = &f->base;
  return 0;
}

int fedc_fedavg_new(size_t n, fedc_strategy **out) {
  return fedc__fedavg_new_spill(n, NULL, out);
}

void fedc_fedavg_state(fedc_strategy *s, __int128 **acc, uint64_t **total) {
  s->ops->sum(s, acc, total);
}

int fedc_strategy_new(const char *name, size_t n, fedc_strategy **out) {
  *out = NULL;
  const fedc_strategy_info *info = fedc_strategy_lookup(name);
  if (info == NULL)
    return fedc_error_set(FEDC_EINVAL, "[strategy] name = %s: unknown strategy",
                          name ? name : "(none)");
  fedc_agg_params p = {.name = name};
  return fedc__strategy_make(info, &p, n, out);
}

void fedc_strategy_free(fedc_strategy *s) {
  if (s) s->ops->free(s);
}

int fedc_strategy_is_additive(const fedc_strategy *s) {
  return s != NULL && s->ops->sum != NULL;
}
