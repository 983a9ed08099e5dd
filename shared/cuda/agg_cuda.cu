/*
 * agg_cuda.cu - aggregation on the GPU (see agg_cuda.h): FedAvg's exact
 * 128-bit fixed-point sum, update norms with the norm bound, and the
 * coordinate-wise median and trimmed mean, each computing bit for bit what
 * agg_fedavg.c, agg_robust.c and pipeline.c compute on the CPU.
 *
 * An update goes through at most three passes on the device:
 *   check   finite values (and FedAvg's |w| < 2^31 when it is folded as
 *           is), ||w - global||^2 in double, in one read;
 *   bound   with a norm bound: y = global + (w - global) * scale, the
 *           pipeline's float arithmetic, checked again;
 *   fold    FedAvg: acc += n_k * round(y * 2^32) in 128-bit integers;
 *           median, trimmed mean: y kept as this round's copy (-0 as +0).
 * The host waits for the check (it decides whether the update is refused,
 * and refusing must change nothing) but not for the fold.
 *
 * Order statistics are found without sorting: per coordinate, a bitwise
 * binary search on the floats' order-preserving 32-bit keys, 32 passes over
 * the k values (k = the round's update count), coalesced across
 * coordinates. That is O(32 k) reads per coordinate, no scratch per thread,
 * and ties handled exactly. The trimmed mean then sums the kept block in
 * the CPU's fixed point (agg_robust.c's exact_mean), counting the values
 * equal to the block's ends by rank.
 */
#include <limits.h>
#include <math.h>
#include <string.h>

#include "cuda/cuda_internal.h"

extern "C" {
#include "cuda/agg_cuda.h"
#include "base/alloc.h"
}

#define FRAC_SCALE 4294967296.0 /* 2^32: FedAvg's fixed point (agg_fedavg.c) */
#define W_LIMIT 2147483648.0f   /* |w| < 2^31 */
#define NO_INDEX ULLONG_MAX
#define CHUNK ((size_t)1 << 20) /* floats per pinned staging buffer (4 MiB) */

/* What the check passes report: the first bad indices and the norm. */
typedef struct check {
  unsigned long long bad_finite; /* first non-finite value, or NO_INDEX */
  unsigned long long bad_range;  /* first |v| >= 2^31 (FedAvg), or NO_INDEX */
  double ss;                     /* ||w - global||^2 */
} check;

struct fedc_agg_cuda {
  fedc_agg_cuda_params p;
  size_t n;
  cudaStream_t stream;
  float *x; /* the round's global model (n), when begin got one */
  int have_x;
  float *stage;  /* n: FedAvg's incoming update; finish's result */
  __int128 *acc; /* FedAvg: n sums of n_k * q_k */
  uint64_t total;
  float **upd; /* median, trimmed mean: device buffers, upd[0..count) in use */
  size_t n_buf, cap_ptr, count;
  const float **table; /* device copy of upd[0..count) for finish */
  size_t table_cap;
  float *pin[2]; /* pinned staging, CHUNK floats each */
  cudaEvent_t pin_free[2];
  check *chk_d, *chk_h;
  double *partials;
  int32_t added, clipped;
};

static const char *kname(const fedc_agg_cuda *a) {
  switch (a->p.kind) {
  case FEDC_AGG_CUDA_FEDAVG:
    return "agg_cuda fedavg";
  case FEDC_AGG_CUDA_MEDIAN:
    return "agg_cuda median";
  case FEDC_AGG_CUDA_TRIMMED_MEAN:
    return "agg_cuda trimmed_mean";
  }
  return "agg_cuda";
}

/* ---- 128-bit helpers and per-coordinate statistics ---------------------- */

/*
 * The code that decides each output value is __host__ __device__: the
 * kernels run it on the GPU, and fedc__agg_cuda_*_host (below) run the very
 * same functions on the CPU, so that a machine without a GPU still checks
 * the algorithms against agg_fedavg.c and agg_robust.c (test_agg_cuda.c).
 */
#define HD __host__ __device__

/*
 * u as a double, correctly rounded to nearest-even, as the host's
 * (double)__int128 is. Above 2^64 the top 64 bits are kept with a sticky
 * bit for everything shifted out: the bit sits far below double's rounding
 * position, so rounding those 64 bits gives the same double as rounding u.
 */
static HD inline double u128_to_double(unsigned __int128 u) {
  const unsigned long long hi = (unsigned long long)(u >> 64);
#ifdef __CUDA_ARCH__
  if (hi == 0) return __ull2double_rn((unsigned long long)u);
  const int s = 64 - __clzll((long long)hi); /* bits in hi, 1..64 */
#else
  if (hi == 0) return (double)(unsigned long long)u;
  const int s = 64 - __builtin_clzll(hi);
#endif
  unsigned long long m = (unsigned long long)(u >> s);
  if ((u & ((((unsigned __int128)1) << s) - 1)) != 0) m |= 1ull;
#ifdef __CUDA_ARCH__
  return ldexp(__ull2double_rn(m), s);
#else
  return ldexp((double)m, s);
#endif
}

static HD inline double i128_to_double(__int128 v) {
  return v < 0 ? -u128_to_double((unsigned __int128)(-v)) : u128_to_double((unsigned __int128)v);
}

/* An integral double (|x| < 2^96) as an int128, exactly. */
static HD inline __int128 integral_to_i128(double x) {
  if (fabs(x) < 9223372036854775808.0) return (__int128)(long long)x;
#ifdef __CUDA_ARCH__
  const unsigned long long bits = (unsigned long long)__double_as_longlong(x);
#else
  unsigned long long bits;
  memcpy(&bits, &x, sizeof bits);
#endif
  const int e = (int)((bits >> 52) & 0x7ff) - 1075; /* x = mant * 2^e, e >= 11 */
  const unsigned long long mant = (bits & ((1ull << 52) - 1)) | (1ull << 52);
  const __int128 m = ((__int128)mant) << e;
  return x < 0 ? -m : m;
}

/* FedAvg's fixed point: round(y * 2^32), y * 2^32 exact (a power of two),
 * llrint rounding to nearest-even like the CPU's nearbyint. */
static HD inline long long fixed32(float y) {
  return llrint((double)y * FRAC_SCALE);
}

/* FedAvg's result: acc * (2^-32 / total), in double, then float. */
static HD inline float fedavg_value(__int128 acc, double scale) {
  return (float)(i128_to_double(acc) * scale);
}

/* Finite floats to unsigned keys in the same order (no -0: stored as +0). */
static HD inline unsigned key_of(float v) {
  unsigned u;
#ifdef __CUDA_ARCH__
  u = __float_as_uint(v);
#else
  memcpy(&u, &v, sizeof u);
#endif
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

static HD inline float value_of(unsigned k) {
  const unsigned u = (k & 0x80000000u) ? (k & 0x7fffffffu) : ~k;
#ifdef __CUDA_ARCH__
  return __uint_as_float(u);
#else
  float v;
  memcpy(&v, &u, sizeof v);
  return v;
#endif
}

/*
 * The keys of the r_lo-th and r_hi-th smallest (0-based) of coordinate c
 * over the k updates. With f(t) = #{keys < t}, the r-th smallest key is the
 * largest t with f(t) <= r; f only grows, so that t is built bit by bit
 * from the top: keep a bit when f of the prefix with it is still <= r.
 */
static HD inline void select2(const float *const *upd, unsigned k, size_t c, unsigned r_lo,
                              unsigned r_hi, unsigned *k_lo, unsigned *k_hi) {
  unsigned lo = 0, hi = 0;
  for (int bit = 31; bit >= 0; bit--) {
    const unsigned tl = lo | (1u << bit), th = hi | (1u << bit);
    unsigned cl = 0, ch = 0;
    for (unsigned j = 0; j < k; j++) {
      const unsigned key = key_of(upd[j][c]);
      cl += key < tl;
      ch += key < th;
    }
    if (cl <= r_lo) lo = tl;
    if (ch <= r_hi) hi = th;
  }
  *k_lo = lo;
  *k_hi = hi;
}

/* Median: the middle value; for an even k the mean of the two middle ones
 * in double, as agg_robust.c. */
static HD inline float median_at(const float *const *upd, unsigned k, size_t c) {
  const unsigned h = k / 2, r_lo = (k & 1) ? h : h - 1;
  unsigned klo, khi;
  select2(upd, k, c, r_lo, h, &klo, &khi);
  const float hi = value_of(khi);
  return (k & 1) ? hi : (float)(((double)value_of(klo) + (double)hi) / 2.0);
}

/* agg_robust.c's fixed-point term: round(v * 2^(95 - e)) as an int128. */
static HD inline __int128 fixed95(float v, double scale) {
  return integral_to_i128(nearbyint((double)v * scale));
}

/*
 * Trimmed mean: the sorted values t .. k-t-1 averaged exactly. lo and hi
 * are the block's ends; values strictly between are summed as they come,
 * and the copies of lo and hi inside the block are counted from ranks:
 * #{v <= lo} - t of lo and (k - t) - #{v < hi} of hi. The fixed-point
 * grid is 2^(e - 95) with 2^e above max(|lo|, |hi|), the largest |v| kept,
 * and the sum is an integer, so its order does not matter: the mean is
 * exact_mean's, bit for bit.
 */
static HD inline float trimmed_at(const float *const *upd, unsigned k, unsigned t, size_t c) {
  const unsigned kept = k - 2 * t;
  unsigned klo, khi;
  select2(upd, k, c, t, k - 1 - t, &klo, &khi);
  const float lo = value_of(klo), hi = value_of(khi);
  const float amax = fmaxf(fabsf(lo), fabsf(hi));
  if (amax == 0.0f) return 0.0f;
  int e;
  (void)frexp((double)amax, &e);
  const double scale = ldexp(1.0, 95 - e);
  __int128 sum;
  if (klo == khi) {
    sum = (__int128)kept * fixed95(lo, scale);
  } else {
    sum = 0;
    unsigned le_lo = 0, lt_hi = 0;
    for (unsigned j = 0; j < k; j++) {
      const float v = upd[j][c];
      const unsigned key = key_of(v);
      if (key > klo && key < khi) sum += fixed95(v, scale);
      le_lo += key <= klo;
      lt_hi += key < khi;
    }
    sum += (__int128)(le_lo - t) * fixed95(lo, scale);
    sum += (__int128)((k - t) - lt_hi) * fixed95(hi, scale);
  }
  return (float)(ldexp(i128_to_double(sum), e - 95) / (double)kept);
}

/* ---- per-update kernels ------------------------------------------------- */

template <typename T> static __device__ __forceinline__ T warp_sum(T v) {
  for (int o = 16; o > 0; o >>= 1)
    v += __shfl_down_sync(0xffffffffu, v, o);
  return v;
}

static __device__ double block_sum_d(double v) {
  __shared__ double part[32];
  const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
  v = warp_sum(v);
  if (lane == 0) part[wid] = v;
  __syncthreads();
  const int nw = (int)(blockDim.x + 31) >> 5;
  v = (int)threadIdx.x < nw ? part[threadIdx.x] : 0.0;
  if (wid == 0) v = warp_sum(v);
  return v;
}

/* First pass of the check: bad indices by atomicMin (the smallest wins, as
 * the CPU's loop would report), squared distance to x summed per block. */
static __global__ void check_k(const float *w, const float *x, size_t n, int range, check *chk,
                               double *partials) {
  double acc = 0.0;
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (size_t)gridDim.x * blockDim.x) {
    const float v = w[i];
    if (!isfinite(v))
      atomicMin(&chk->bad_finite, (unsigned long long)i);
    else if (range && fabsf(v) >= W_LIMIT)
      atomicMin(&chk->bad_range, (unsigned long long)i);
    if (x) {
      const double d = (double)v - (double)x[i];
      acc += d * d;
    }
  }
  acc = block_sum_d(acc);
  if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

static __global__ void check_final_k(const double *partials, unsigned count, check *chk) {
  double acc = 0.0;
  for (unsigned i = threadIdx.x; i < count; i += blockDim.x)
    acc += partials[i];
  acc = block_sum_d(acc);
  if (threadIdx.x == 0) chk->ss = acc;
}

/*
 * The norm bound, as pipeline.c writes it: y = (float)((w - x) * scale) in
 * double, then y += x in float. The result is checked as the aggregator
 * would check it: finite, and for FedAvg |y| < 2^31. Robust aggregators
 * store -0 as +0 (agg_robust.c). dst may be src.
 */
static __global__ void bound_k(float *dst, const float *src, const float *x, size_t n, double scale,
                               int range, int positive_zero, check *chk) {
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (size_t)gridDim.x * blockDim.x) {
    const float xi = x[i];
    float y = (float)(((double)src[i] - (double)xi) * scale);
    y = __fadd_rn(y, xi);
    if (!isfinite(y))
      atomicMin(&chk->bad_finite, (unsigned long long)i);
    else if (range && fabsf(y) >= W_LIMIT)
      atomicMin(&chk->bad_range, (unsigned long long)i);
    if (positive_zero && y == 0.0f) y = 0.0f;
    dst[i] = y;
  }
}

/* A robust aggregator's copy of an update, -0 stored as +0. dst may be src. */
static __global__ void keep_k(float *dst, const float *src, size_t n) {
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (size_t)gridDim.x * blockDim.x) {
    const float v = src[i];
    dst[i] = v == 0.0f ? 0.0f : v;
  }
}

/* FedAvg: acc += n_k * round(y * 2^32). */
static __global__ void fold_k(__int128 *acc, const float *y, size_t n, unsigned long long m) {
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (size_t)gridDim.x * blockDim.x)
    acc[i] += (__int128)m * (__int128)fixed32(y[i]);
}

static __global__ void fedavg_out_k(float *out, const __int128 *acc, size_t n, double scale) {
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (size_t)gridDim.x * blockDim.x)
    out[i] = fedavg_value(acc[i], scale);
}

/* Order statistics: one thread per coordinate, reads coalesced across the
 * coordinates of a warp for each update. */
static __global__ void median_k(float *out, const float *const *upd, unsigned k, size_t n) {
  for (size_t c = (size_t)blockIdx.x * blockDim.x + threadIdx.x; c < n;
       c += (size_t)gridDim.x * blockDim.x)
    out[c] = median_at(upd, k, c);
}

static __global__ void trimmed_k(float *out, const float *const *upd, unsigned k, unsigned t,
                                 size_t n) {
  for (size_t c = (size_t)blockIdx.x * blockDim.x + threadIdx.x; c < n;
       c += (size_t)gridDim.x * blockDim.x)
    out[c] = trimmed_at(upd, k, t, c);
}

/* ---- the same per-coordinate code on the host, for tests ---------------- */

extern "C" void fedc__cuda_agg_robust_host(int trimmed, size_t t, const float *const *upd, size_t k,
                                           size_t n, float *out) {
  for (size_t c = 0; c < n; c++)
    out[c] =
        trimmed ? trimmed_at(upd, (unsigned)k, (unsigned)t, c) : median_at(upd, (unsigned)k, c);
}

extern "C" void fedc__cuda_agg_fedavg_host(const float *const *w, const uint64_t *samples, size_t k,
                                           size_t n, float *out) {
  uint64_t total = 0;
  for (size_t j = 0; j < k; j++)
    total += samples[j];
  const double scale = ldexp(1.0, -32) / (double)total;
  for (size_t c = 0; c < n; c++) {
    __int128 acc = 0;
    for (size_t j = 0; j < k; j++)
      acc += (__int128)samples[j] * (__int128)fixed32(w[j][c]);
    out[c] = fedavg_value(acc, scale);
  }
}

extern "C" double fedc__cuda_agg_i128_to_double_host(__int128 v) {
  return i128_to_double(v);
}

/* ---- host side ---------------------------------------------------------- */

static unsigned blocks_for(size_t n, unsigned cap) {
  size_t b = (n + FEDC_CUDA_THREADS - 1) / FEDC_CUDA_THREADS;
  if (b < 1) b = 1;
  if (b > cap) b = cap;
  return (unsigned)b;
}

static int launched(const char *what) {
  cudaError_t e = cudaGetLastError();
  return e == cudaSuccess ? 0 : fedc__cuda_error(e, what);
}

/*
 * Host memory to the device in CHUNK pieces through two pinned buffers:
 * while the DMA engine copies one piece, the CPU fills the other. A pinned
 * source goes straight to the DMA engine.
 */
static int upload(fedc_agg_cuda *a, float *dst, const float *w, size_t n, int pinned) {
  if (pinned) {
    FEDC_CUDA_TRY(cudaMemcpyAsync(dst, w, n * sizeof *w, cudaMemcpyHostToDevice, a->stream),
                  "agg_cuda upload");
    return 0;
  }
  for (size_t off = 0, piece = 0; off < n; piece++) {
    const size_t len = n - off < CHUNK ? n - off : CHUNK;
    const int b = (int)(piece & 1);
    FEDC_CUDA_TRY(cudaEventSynchronize(a->pin_free[b]), "agg_cuda upload");
    memcpy(a->pin[b], w + off, len * sizeof *w);
    FEDC_CUDA_TRY(
        cudaMemcpyAsync(dst + off, a->pin[b], len * sizeof *w, cudaMemcpyHostToDevice, a->stream),
        "agg_cuda upload");
    FEDC_CUDA_TRY(cudaEventRecord(a->pin_free[b], a->stream), "agg_cuda upload");
    off += len;
  }
  return 0;
}

/* Wait for the check and turn a bad index into the CPU's error. */
static int check_result(fedc_agg_cuda *a, const float *values, double *ss) {
  FEDC_CUDA_TRY(
      cudaMemcpyAsync(a->chk_h, a->chk_d, sizeof *a->chk_h, cudaMemcpyDeviceToHost, a->stream),
      "agg_cuda check");
  FEDC_CUDA_TRY(cudaStreamSynchronize(a->stream), "agg_cuda check");
  const check c = *a->chk_h;
  if (ss) *ss = c.ss;
  unsigned long long i = c.bad_finite < c.bad_range ? c.bad_finite : c.bad_range;
  if (i == NO_INDEX) return 0;
  float v = 0.0f;
  FEDC_CUDA_TRY(cudaMemcpy(&v, values + i, sizeof v, cudaMemcpyDeviceToHost), "agg_cuda check");
  if (i == c.bad_finite)
    return fedc_error_set(FEDC_ENONFINITE, "%s: weight %llu is %g", kname(a), i, (double)v);
  return fedc_error_set(FEDC_ERANGE, "%s: weight %llu = %g is outside +-2^31", kname(a), i,
                        (double)v);
}

static int reset_check(fedc_agg_cuda *a) {
  FEDC_CUDA_TRY(cudaMemsetAsync(a->chk_d, 0xff, 2 * sizeof(unsigned long long), a->stream),
                "agg_cuda check");
  return 0;
}

/* A device buffer for this round's next update (robust kinds). */
static int next_buffer(fedc_agg_cuda *a, float **out) {
  if (a->count == a->n_buf) {
    if (a->n_buf == a->cap_ptr) {
      size_t cap = a->cap_ptr ? 2 * a->cap_ptr : 8;
      if (cap > (size_t)a->p.max_updates) cap = (size_t)a->p.max_updates;
      float **p = (float **)fedc_realloc(a->upd, cap * sizeof *p);
      if (p == NULL)
        return fedc_error_set(FEDC_ENOMEM, "%s: out of memory for %zu updates", kname(a), cap);
      a->upd = p;
      a->cap_ptr = cap;
    }
    float *b = NULL;
    cudaError_t e = cudaMalloc((void **)&b, (a->n ? a->n : 1) * sizeof *b);
    if (e != cudaSuccess) {
      fedc__cuda_error(e, "cudaMalloc");
      return fedc_error_set(FEDC_ENOMEM, "%s: out of device memory for update %zu (%zu weights)",
                            kname(a), a->count + 1, a->n);
    }
    a->upd[a->n_buf++] = b;
  }
  *out = a->upd[a->count];
  return 0;
}

int fedc__cuda_agg_add(fedc_agg_cuda *a, const float *w, size_t n, uint64_t n_samples,
                      double *norm) {
  const int fedavg = a->p.kind == FEDC_AGG_CUDA_FEDAVG;
  if (norm) *norm = NAN;
  if (n != a->n) return fedc_error_set(FEDC_ESHAPE, "%s: %zu weights, want %zu", kname(a), n, a->n);
  if (fedavg && (n_samples == 0 || n_samples > (1ull << 40)))
    return fedc_error_set(FEDC_ERANGE, "%s: sample count %llu outside 1..2^40", kname(a),
                          (unsigned long long)n_samples);
  if (!fedavg && n_samples == 0) return fedc_error_set(FEDC_ERANGE, "%s: sample count 0", kname(a));
  if (!fedavg && a->count >= (size_t)a->p.max_updates)
    return fedc_error_set(FEDC_ERANGE,
                          "%s: round already holds %zu updates, its most (max_updates)", kname(a),
                          (size_t)a->p.max_updates);
  if (n == 0) {
    a->added++;
    if (fedavg)
      a->total += n_samples;
    else
      a->count++;
    return 0;
  }
  float *dst = a->stage;
  int rc = fedavg ? 0 : next_buffer(a, &dst);
  if (rc != 0) return rc;

  /* where the update lives decides whether it is uploaded first */
  cudaPointerAttributes at;
  FEDC_CUDA_TRY(cudaPointerGetAttributes(&at, w), "agg_cuda: cudaPointerGetAttributes");
  const int on_device = at.type == cudaMemoryTypeDevice || at.type == cudaMemoryTypeManaged;
  const float *src = w;
  if (!on_device) {
    rc = upload(a, dst, w, n, at.type == cudaMemoryTypeHost);
    if (rc != 0) return rc;
    src = dst;
  }

  /* check, and the norm when there is a global model */
  const double bound = a->p.norm_bound;
  const unsigned rb = blocks_for(n, FEDC_CUDA_RED_BLOCKS);
  rc = reset_check(a);
  if (rc != 0) return rc;
  check_k<<<rb, FEDC_CUDA_THREADS, 0, a->stream>>>(src, a->have_x ? a->x : NULL, n,
                                                   fedavg && bound <= 0.0, a->chk_d, a->partials);
  if ((rc = launched("agg_cuda check")) != 0) return rc;
  check_final_k<<<1, 1024, 0, a->stream>>>(a->partials, rb, a->chk_d);
  if ((rc = launched("agg_cuda check")) != 0) return rc;
  double ss = NAN;
  if ((rc = check_result(a, src, &ss)) != 0) return rc;
  const double nrm = a->have_x ? sqrt(ss) : NAN;
  if (norm) *norm = nrm;

  const unsigned eb = fedc__cuda_blocks(n);
  int clipped = 0;
  if (bound > 0.0) {
    double scale = 1.0;
    if (nrm > bound) {
      if (a->p.norm_refuse)
        return fedc_error_set(FEDC_ERANGE,
                              "update's distance from the global model %.6g exceeds "
                              "[strategy] norm_bound = %.6g",
                              nrm, bound);
      scale = bound / nrm;
      clipped = 1;
    }
    if ((rc = reset_check(a)) != 0) return rc;
    bound_k<<<eb, FEDC_CUDA_THREADS, 0, a->stream>>>(dst, src, a->x, n, scale, fedavg, !fedavg,
                                                     a->chk_d);
    if ((rc = launched("agg_cuda norm bound")) != 0) return rc;
    if ((rc = check_result(a, dst, NULL)) != 0) return rc;
    src = dst;
  } else if (!fedavg) {
    keep_k<<<eb, FEDC_CUDA_THREADS, 0, a->stream>>>(dst, src, n);
    if ((rc = launched("agg_cuda keep")) != 0) return rc;
    src = dst;
  }

  if (fedavg) {
    fold_k<<<eb, FEDC_CUDA_THREADS, 0, a->stream>>>(a->acc, src, n, n_samples);
    if ((rc = launched("agg_cuda fold")) != 0) return rc;
    /* the fold may still read the caller's device buffer: wait for it so
     * the caller may reuse the buffer when add returns */
    if (src == w) FEDC_CUDA_TRY(cudaStreamSynchronize(a->stream), "agg_cuda fold");
    a->total += n_samples;
  } else {
    /* keep_k or bound_k copied w; a copy from the caller's buffer must be
     * done before add returns */
    if (on_device) FEDC_CUDA_TRY(cudaStreamSynchronize(a->stream), "agg_cuda keep");
    a->count++;
  }
  a->added++;
  a->clipped += clipped;
  return 0;
}

int fedc__cuda_agg_begin(fedc_agg_cuda *a, const float *global, size_t n) {
  if (n != a->n) return fedc_error_set(FEDC_ESHAPE, "%s: %zu weights, want %zu", kname(a), n, a->n);
  if (global == NULL && a->p.norm_bound > 0.0)
    return fedc_error_set(FEDC_EINVAL, "%s: a norm bound needs the global model", kname(a));
  a->have_x = 0;
  if (global != NULL && n > 0) {
    if (a->x == NULL) FEDC_CUDA_TRY(cudaMalloc((void **)&a->x, n * sizeof *a->x), "cudaMalloc");
    FEDC_CUDA_TRY(cudaMemcpyAsync(a->x, global, n * sizeof *a->x, cudaMemcpyDefault, a->stream),
                  "agg_cuda begin");
    FEDC_CUDA_TRY(cudaStreamSynchronize(a->stream), "agg_cuda begin");
    a->have_x = 1;
  }
  if (a->acc)
    FEDC_CUDA_TRY(cudaMemsetAsync(a->acc, 0, n * sizeof *a->acc, a->stream), "agg_cuda begin");
  a->total = 0;
  a->count = 0;
  a->added = a->clipped = 0;
  return 0;
}

/* floor(beta * k) with agg_robust.c's hair of slack. */
static size_t trim_count(double beta, size_t k) {
  return (size_t)floor(beta * (double)k + 1e-9);
}

int fedc__cuda_agg_finish(fedc_agg_cuda *a, float *out, size_t n) {
  if (n != a->n) return fedc_error_set(FEDC_ESHAPE, "%s: %zu weights, want %zu", kname(a), n, a->n);
  const unsigned eb = fedc__cuda_blocks(n);
  int rc;
  if (a->p.kind == FEDC_AGG_CUDA_FEDAVG) {
    if (a->total == 0) return fedc_error_set(FEDC_EQUORUM, "%s: no updates to average", kname(a));
    if (n == 0) return 0;
    const double scale = ldexp(1.0, -32) / (double)a->total;
    fedavg_out_k<<<eb, FEDC_CUDA_THREADS, 0, a->stream>>>(a->stage, a->acc, n, scale);
    if ((rc = launched("agg_cuda fedavg finish")) != 0) return rc;
  } else {
    const size_t k = a->count;
    if (k == 0) return fedc_error_set(FEDC_EQUORUM, "%s: no updates to aggregate", kname(a));
    size_t t = 0;
    if (a->p.kind == FEDC_AGG_CUDA_TRIMMED_MEAN) {
      t = trim_count(a->p.trim_beta, k);
      if (2 * t >= k)
        return fedc_error_set(
            FEDC_EINVAL, "%s: trim_beta = %g cuts %zu of %zu updates at each end, leaving none",
            kname(a), a->p.trim_beta, t, k);
    }
    if (n == 0) return 0;
    if (k > a->table_cap) {
      const float **tb = NULL;
      FEDC_CUDA_TRY(cudaStreamSynchronize(a->stream), "agg_cuda finish");
      FEDC_CUDA_TRY(cudaMalloc((void **)&tb, k * sizeof *tb), "cudaMalloc");
      cudaFree(a->table);
      a->table = tb;
      a->table_cap = k;
    }
    FEDC_CUDA_TRY(
        cudaMemcpyAsync(a->table, a->upd, k * sizeof *a->table, cudaMemcpyHostToDevice, a->stream),
        "agg_cuda finish");
    if (a->p.kind == FEDC_AGG_CUDA_MEDIAN)
      median_k<<<eb, FEDC_CUDA_THREADS, 0, a->stream>>>(a->stage, a->table, (unsigned)k, n);
    else
      trimmed_k<<<eb, FEDC_CUDA_THREADS, 0, a->stream>>>(a->stage, a->table, (unsigned)k,
                                                         (unsigned)t, n);
    if ((rc = launched("agg_cuda finish")) != 0) return rc;
  }
  FEDC_CUDA_TRY(cudaMemcpyAsync(out, a->stage, n * sizeof *out, cudaMemcpyDefault, a->stream),
                "agg_cuda finish");
  FEDC_CUDA_TRY(cudaStreamSynchronize(a->stream), "agg_cuda finish");
  return 0;
}

/*
 * FedAvg's running sum to and from the host (agg_cuda.h): the n int128
 * sums and the sample count, copied whole. The stream is drained first, so
 * every fold already launched is in the copy; put replaces the sums and
 * the count, so that the next add and finish go on from the host's values.
 */
int fedc__cuda_agg_sums_get(fedc_agg_cuda *a, __int128 *acc, uint64_t *total, size_t n) {
  if (a->p.kind != FEDC_AGG_CUDA_FEDAVG)
    return fedc_error_set(FEDC_EINVAL, "%s: only fedavg keeps a running sum", kname(a));
  if (n != a->n) return fedc_error_set(FEDC_ESHAPE, "%s: %zu sums, want %zu", kname(a), n, a->n);
  if (n > 0)
    FEDC_CUDA_TRY(cudaMemcpyAsync(acc, a->acc, n * sizeof *acc, cudaMemcpyDeviceToHost, a->stream),
                  "agg_cuda sums get");
  FEDC_CUDA_TRY(cudaStreamSynchronize(a->stream), "agg_cuda sums get");
  *total = a->total;
  return 0;
}

int fedc__cuda_agg_sums_put(fedc_agg_cuda *a, const __int128 *acc, uint64_t total, size_t n) {
  if (a->p.kind != FEDC_AGG_CUDA_FEDAVG)
    return fedc_error_set(FEDC_EINVAL, "%s: only fedavg keeps a running sum", kname(a));
  if (n != a->n) return fedc_error_set(FEDC_ESHAPE, "%s: %zu sums, want %zu", kname(a), n, a->n);
  if (n > 0)
    FEDC_CUDA_TRY(cudaMemcpyAsync(a->acc, acc, n * sizeof *acc, cudaMemcpyHostToDevice, a->stream),
                  "agg_cuda sums put");
  FEDC_CUDA_TRY(cudaStreamSynchronize(a->stream), "agg_cuda sums put");
  a->total = total;
  return 0;
}

void fedc__cuda_agg_stats_get(const fedc_agg_cuda *a, fedc_agg_cuda_stats *out) {
  out->added = a->added;
  out->clipped = a->clipped;
  out->samples = a->total;
}

void fedc__cuda_agg_free(fedc_agg_cuda *a) {
  if (a == NULL) return;
  if (a->stream) cudaStreamSynchronize(a->stream);
  for (size_t i = 0; i < a->n_buf; i++)
    cudaFree(a->upd[i]);
  fedc_free(a->upd);
  cudaFree(a->table);
  cudaFree(a->x);
  cudaFree(a->stage);
  cudaFree(a->acc);
  for (int b = 0; b < 2; b++) {
    cudaFreeHost(a->pin[b]);
    if (a->pin_free[b]) cudaEventDestroy(a->pin_free[b]);
  }
  cudaFree(a->chk_d);
  cudaFreeHost(a->chk_h);
  cudaFree(a->partials);
  if (a->stream) cudaStreamDestroy(a->stream);
  (void)cudaGetLastError();
  fedc_free(a);
}

static int init(fedc_agg_cuda *a) {
  const size_t n = a->n ? a->n : 1;
  const size_t chunk = n < CHUNK ? n : CHUNK;
  FEDC_CUDA_TRY(cudaSetDevice(0), "cudaSetDevice(0)");
  FEDC_CUDA_TRY(cudaStreamCreate(&a->stream), "cudaStreamCreate");
  FEDC_CUDA_TRY(cudaMalloc((void **)&a->stage, n * sizeof *a->stage), "cudaMalloc");
  if (a->p.kind == FEDC_AGG_CUDA_FEDAVG) {
    FEDC_CUDA_TRY(cudaMalloc((void **)&a->acc, n * sizeof *a->acc), "cudaMalloc");
    FEDC_CUDA_TRY(cudaMemsetAsync(a->acc, 0, n * sizeof *a->acc, a->stream), "cudaMemset");
  }
  for (int b = 0; b < 2; b++) {
    FEDC_CUDA_TRY(cudaMallocHost((void **)&a->pin[b], chunk * sizeof(float)), "cudaMallocHost");
    FEDC_CUDA_TRY(cudaEventCreateWithFlags(&a->pin_free[b], cudaEventDisableTiming),
                  "cudaEventCreate");
  }
  FEDC_CUDA_TRY(cudaMalloc((void **)&a->chk_d, sizeof *a->chk_d), "cudaMalloc");
  FEDC_CUDA_TRY(cudaMallocHost((void **)&a->chk_h, sizeof *a->chk_h), "cudaMallocHost");
  FEDC_CUDA_TRY(cudaMalloc((void **)&a->partials, FEDC_CUDA_RED_BLOCKS * sizeof(double)),
                "cudaMalloc");
  FEDC_CUDA_TRY(cudaStreamSynchronize(a->stream), "agg_cuda new");
  return 0;
}

int fedc__cuda_agg_new(const fedc_agg_cuda_params *p, size_t n, fedc_agg_cuda **out) {
  *out = NULL;
  if (p->kind != FEDC_AGG_CUDA_FEDAVG && p->kind != FEDC_AGG_CUDA_MEDIAN &&
      p->kind != FEDC_AGG_CUDA_TRIMMED_MEAN)
    return fedc_error_set(FEDC_EINVAL, "agg_cuda: unknown kind %d", (int)p->kind);
  if (p->kind != FEDC_AGG_CUDA_FEDAVG && p->max_updates < 1)
    return fedc_error_set(FEDC_EINVAL, "agg_cuda: max_updates = %d must be >= 1",
                          (int)p->max_updates);
  if (p->kind == FEDC_AGG_CUDA_TRIMMED_MEAN && !(p->trim_beta >= 0.0 && p->trim_beta < 0.5))
    return fedc_error_set(FEDC_EINVAL, "agg_cuda: trim_beta = %g outside [0, 0.5)", p->trim_beta);
  if (!(p->norm_bound >= 0.0))
    return fedc_error_set(FEDC_EINVAL, "agg_cuda: norm_bound = %g must be >= 0", p->norm_bound);
  if (n > (size_t)LLONG_MAX / sizeof(__int128))
    return fedc_error_set(FEDC_EINVAL, "agg_cuda: %zu weights is too many", n);
  int rc = fedc__cuda_device_present("agg_cuda");
  if (rc != 0) return rc;
  fedc_agg_cuda *a = (fedc_agg_cuda *)fedc_calloc(1, sizeof *a);
  if (a == NULL) return fedc_error_set(FEDC_ENOMEM, "agg_cuda: out of memory");
  a->p = *p;
  a->n = n;
  rc = init(a);
  if (rc != 0) {
    fedc__cuda_agg_free(a);
    return rc;
  }
  *out = a;
  return 0;
}
