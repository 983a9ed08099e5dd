/*
 * test_kernels_u8.c - a data set kept as bytes (data.h's x_u8): every
 * kernel variant's unpack_u8 gives b / 255.0f exactly for all 256 bytes,
 * gemm_nt_u8 the same bits as the variant's gemm_nt on the unpacked rows
 * and each byte's float read back exactly;
 * fedc_dataset_pack_u8 keeps a copy only of byte-valued features and
 * standardize drops it; an evaluation and a prediction that read the bytes
 * give the same bits as those that read the floats (softmax and MLP).
 *
 * A variant the build or the CPU lacks prints "skipped: ..." and skips.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "base/cpu.h"
#include "base/rng.h"
#include "data/data.h"
#include "ml/backend.h"
#include "ml/kernels.h"
#include "ml/model.h"
#include "ml/train.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static fedc_cpu_variant v_scalar = FEDC_CPU_SCALAR, v_avx2 = FEDC_CPU_AVX2,
                        v_avx512 = FEDC_CPU_AVX512, v_neon = FEDC_CPU_NEON;

static const fedc_kernels *kernels_or_skip(void **state) {
  fedc_cpu_variant v = *(fedc_cpu_variant *)*state;
  const fedc_kernels *k = fedc_kernels_for(v);
  if (k == NULL) {
    print_message("skipped: %s is not in this build\n", fedc_cpu_variant_name(v));
    skip();
  }
  if (!fedc_cpu_supported(v)) {
    print_message("skipped: this CPU cannot run %s\n", fedc_cpu_variant_name(v));
    skip();
  }
  return k;
}

/* All 256 bytes, at every offset and tail length up to 40. */
static void test_unpack(void **state) {
  const fedc_kernels *kern = kernels_or_skip(state);
  uint8_t src[256 + 64];
  float got[256 + 64];
  for (int i = 0; i < (int)sizeof src; i++) src[i] = (uint8_t)(i * 7 + 3);
  for (int i = 0; i < 256; i++) src[i] = (uint8_t)i;
  kern->unpack_u8(got, src, 256);
  for (int i = 0; i < 256; i++) {
    float want = (float)i / 255.0f;
    assert_memory_equal(&got[i], &want, sizeof want);
  }
  for (int off = 0; off < 8; off++)
    for (int n = 0; n <= 40; n++) {
      memset(got, 0xff, sizeof got);
      kern->unpack_u8(got, src + off, (size_t)n);
      for (int i = 0; i < n; i++) {
        float want = (float)src[off + i] / 255.0f;
        assert_memory_equal(&got[i], &want, sizeof want);
      }
      uint32_t untouched;
      memcpy(&untouched, &got[n], sizeof untouched);
      assert_int_equal(untouched, 0xffffffffu);
    }
}

/* gemm_nt_u8 against gemm_nt on the unpacked rows: bit-equal. */
static void test_gemm_nt_u8(void **state) {
  const fedc_kernels *kern = kernels_or_skip(state);
  fedc_rng r;
  fedc_rng_seed(&r, 5);
  static const int ms[] = {1, 2, 3, 5, 7, 31, 100, 625};
  static const int ns[] = {1, 4, 10, 16};
  static const int ks[] = {1, 7, 8, 17, 784, 3000, FEDC_KERNEL_U8_MAXK};
  const size_t big = 625 * (size_t)(FEDC_KERNEL_U8_MAXK + 3);
  uint8_t *a8 = fedc_malloc(big);
  float *af = fedc_malloc_array(big, sizeof(float));
  float *b = fedc_malloc_array(16 * (size_t)FEDC_KERNEL_U8_MAXK, sizeof(float));
  float *c1 = fedc_malloc_array(625 * 17, sizeof(float)), *c2 = fedc_malloc_array(625 * 17, sizeof(float));
  assert_true(a8 && af && b && c1 && c2);
  for (size_t i = 0; i < big; i++) a8[i] = (uint8_t)(fedc_rng_u64(&r) >> 56);
  for (size_t i = 0; i < 16 * (size_t)FEDC_KERNEL_U8_MAXK; i++) b[i] = (float)fedc_rng_normal(&r);
  kern->unpack_u8(af, a8, big);
  for (size_t mi = 0; mi < COUNT(ms); mi++)
    for (size_t ni = 0; ni < COUNT(ns); ni++)
      for (size_t ki = 0; ki < COUNT(ks); ki++)
        for (int beta = 0; beta < 2; beta++) {
          int m = ms[mi], n = ns[ni], k = ks[ki], lda = k + 3, ldc = n + 1;
          if ((size_t)m * (size_t)lda > big) continue;
          for (int i = 0; i < m * ldc; i++) c1[i] = c2[i] = (float)i;
          kern->gemm_nt(m, n, k, 0.5f, af, lda, b, k, beta ? 1.0f : 0.0f, c1, ldc);
          kern->gemm_nt_u8(m, n, k, 0.5f, a8, lda, b, k, beta ? 1.0f : 0.0f, c2, ldc);
          assert_memory_equal(c1, c2, (size_t)m * ldc * sizeof *c1);
        }
  fedc_free(a8), fedc_free(af), fedc_free(b), fedc_free(c1), fedc_free(c2);
}

/*
 * gemm_nt_u8 reads every byte back as exactly b / 255.0f: B's rows are
 * one-hot (row j picks element base + j), so C[i][j] is A[i][base + j]
 * alone (the other terms are zeros, alpha is 1). Every row holds all 256
 * bytes, and there are several blocks of rows, so that rows converted
 * alongside the products of the block before them (kernels_simd.h) are
 * covered as well as the first block and the last partial one; k leaves a
 * tail shorter than a vector.
 */
static void test_gemm_nt_u8_exact(void **state) {
  const fedc_kernels *kern = kernels_or_skip(state);
  enum { M = 41, K = 256 + 5, N = 16 };
  uint8_t *a8 = fedc_malloc((size_t)M * K);
  float *b = fedc_calloc((size_t)N * K, sizeof(float)), *c = fedc_malloc_array(M * N, sizeof(float));
  assert_true(a8 && b && c);
  for (int i = 0; i < M; i++)
    for (int p = 0; p < K; p++) a8[i * K + p] = (uint8_t)(i * 7 + p);
  for (int base = 0; base < K; base += N) {
    int n = K - base < N ? K - base : N;
    memset(b, 0, (size_t)N * K * sizeof(float));
    for (int j = 0; j < n; j++) b[j * K + base + j] = 1.0f;
    kern->gemm_nt_u8(M, n, K, 1.0f, a8, K, b, K, 0.0f, c, N);
    for (int i = 0; i < M; i++)
      for (int j = 0; j < n; j++) {
        float want = (float)a8[i * K + base + j] / 255.0f;
        assert_memory_equal(&c[i * N + j], &want, sizeof want);
      }
  }
  fedc_free(a8), fedc_free(b), fedc_free(c);
}

/* A data set of n x d pixels (bytes / 255) and labels 0..9. */
static void pixels(fedc_dataset *ds, int64_t n, int64_t d, uint64_t seed) {
  fedc_rng r;
  fedc_rng_seed(&r, seed);
  memset(ds, 0, sizeof *ds);
  ds->n = n, ds->d = d, ds->n_classes = 10;
  ds->x = fedc_malloc_aligned((size_t)(n * d) * sizeof(float));
  ds->y = fedc_malloc_aligned((size_t)n * sizeof(float));
  assert_true(ds->x && ds->y);
  for (int64_t i = 0; i < n * d; i++) {
    uint64_t v = fedc_rng_u64(&r);
    ds->x[i] = (v & 3) == 0 ? 0.0f : (float)(uint8_t)(v >> 56) / 255.0f;
  }
  for (int64_t i = 0; i < n; i++) ds->y[i] = (float)(i % 10);
}

static void test_pack(void **state) {
  (void)state;
  fedc_dataset ds;
  pixels(&ds, 50, 30, 1);
  assert_int_equal(fedc_dataset_pack_u8(&ds), 1);
  assert_non_null(ds.x_u8);
  for (int64_t i = 0; i < ds.n * ds.d; i++) {
    float v = (float)ds.x_u8[i] / 255.0f;
    assert_memory_equal(&v, &ds.x[i], sizeof v);
  }
  assert_int_equal(fedc_dataset_pack_u8(&ds), 1); /* already there */
  fedc_dataset test;
  pixels(&test, 10, 30, 2);
  assert_int_equal(fedc_dataset_pack_u8(&test), 1);
  assert_int_equal(fedc_dataset_standardize(&ds, &test), 0);
  assert_null(ds.x_u8);
  assert_null(test.x_u8);
  assert_int_equal(fedc_dataset_pack_u8(&ds), 0); /* standardized: not bytes */
  assert_null(ds.x_u8);
  fedc_dataset_free(&test);
  fedc_dataset_free(&ds);
  /* values that are not some byte / 255 */
  static const float bad[] = {0.5f, -1.0f / 255.0f, 1.0f + 1.0f / 128.0f, -0.0f, NAN, 2.0f};
  for (size_t i = 0; i < COUNT(bad); i++) {
    pixels(&ds, 4, 5, 3);
    ds.x[17] = bad[i];
    assert_int_equal(fedc_dataset_pack_u8(&ds), 0);
    assert_null(ds.x_u8);
    fedc_dataset_free(&ds);
  }
}

/* fedc_evaluate and fedc_predict with and without the byte copy: the same
 * sums and outputs, to the bit, for a softmax (gemm_u8) and an MLP (the
 * first layer unpacked, then OpenBLAS), every variant. */
static void eval_both(void **state, int mlp) {
  const fedc_kernels *kern = kernels_or_skip(state);
  fedc_cpu_variant was = fedc_cpu_current();
  assert_int_equal(fedc_cpu_set(kern->variant), 0);
  fedc_dataset ds;
  pixels(&ds, 1100, 784, 9);
  assert_int_equal(fedc_dataset_pack_u8(&ds), 1);
  fedc_model_spec spec;
  fedc_model_spec_init(&spec, mlp ? FEDC_MODEL_MLP : FEDC_MODEL_SOFTMAX, 784, 10);
  if (mlp) spec.n_hidden = 2, spec.hidden[0] = 40, spec.hidden[1] = 20;
  size_t np = fedc_model_n_params(&spec);
  float *w = fedc_malloc_array(np, sizeof(float));
  float *o1 = fedc_malloc_array(1100 * 10, sizeof(float)), *o2 = fedc_malloc_array(1100 * 10, sizeof(float));
  assert_true(w && o1 && o2);
  fedc_rng r;
  fedc_rng_seed(&r, 4);
  for (size_t i = 0; i < np; i++) w[i] = 0.05f * (float)fedc_rng_normal(&r);
  fedc_backend *be;
  assert_int_equal(fedc_backend_open(FEDC_DEVICE_CPU, &be), 0);
  fedc_trainer *t;
  assert_int_equal(fedc_trainer_new(be, &spec, 512, &t), 0);
  fedc_data_view v;
  assert_int_equal(fedc_data_view_open(be, ds.x, ds.y, ds.n, ds.d, &v), 0);
  fedc_eval_sums s1 = {0}, s2 = {0};
  assert_int_equal(fedc_evaluate(t, w, &v, 3, 1100, &s1, NULL), 0);
  assert_int_equal(fedc_predict(t, w, &v, 0, 1100, o1), 0);
  v.x_u8 = ds.x_u8;
  assert_int_equal(fedc_evaluate(t, w, &v, 3, 1100, &s2, NULL), 0);
  assert_int_equal(fedc_predict(t, w, &v, 0, 1100, o2), 0);
  assert_memory_equal(&s1.loss_sum, &s2.loss_sum, sizeof s1.loss_sum);
  assert_int_equal(s1.correct, s2.correct);
  assert_int_equal(s1.n, s2.n);
  assert_memory_equal(o1, o2, 1100 * 10 * sizeof *o1);
  fedc_data_view_close(be, &v);
  fedc_trainer_free(t);
  fedc_backend_close(be);
  fedc_free(w), fedc_free(o1), fedc_free(o2);
  fedc_dataset_free(&ds);
  assert_int_equal(fedc_cpu_set(was), 0);
}

static void test_eval_softmax(void **state) { eval_both(state, 0); }
static void test_eval_mlp(void **state) { eval_both(state, 1); }

#define VARIANT_CASES(v, name)                                               \
  {"unpack_u8/" name, test_unpack, NULL, NULL, &v},                          \
      {"gemm_nt_u8/" name, test_gemm_nt_u8, NULL, NULL, &v},                 \
      {"gemm_nt_u8_exact/" name, test_gemm_nt_u8_exact, NULL, NULL, &v},     \
      {"evaluate_u8_softmax/" name, test_eval_softmax, NULL, NULL, &v},      \
      {"evaluate_u8_mlp/" name, test_eval_mlp, NULL, NULL, &v}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pack),
      VARIANT_CASES(v_scalar, "scalar"),
      VARIANT_CASES(v_avx2, "avx2"),
      VARIANT_CASES(v_avx512, "avx512"),
      VARIANT_CASES(v_neon, "neon"),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
