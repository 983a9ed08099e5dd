/*
 * test_partition.c - the simulation partitioners on a synthetic data set.
 *
 * 10,000 rows over 10 classes of uneven sizes (class c has about
 * 10000 * (c + 6) / 105 rows, 571 to 1429), labels scattered over the row
 * indices. For every kind: each row belongs to exactly one client, the same
 * seed gives a byte-identical partition and another seed a different one.
 * Then what each kind promises: iid sizes within one, shards made of few
 * contiguous label runs, Dirichlet skew that follows alpha with every client
 * at least min(10, n / K) rows; bad parameters are FEDC_EINVAL naming the
 * parameter; allocation failures are clean; nothing leaks; 60,000 rows
 * partition in milliseconds.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "data/data.h"
#include "base/error.h"
#include "base/log.h"
#include "data/partition.h"
#include "base/rng.h"

#define N_ROWS 10000
#define N_CLASSES 10

/* A classification data set of n rows with d = 1 and class c holding a share
 * (c + 6) / 105 of the rows (the last class takes the rounding), labels
 * shuffled over the rows with a fixed seed. Freed with free_dataset. */
static void build_dataset(fedc_dataset *ds, int64_t n, int32_t n_classes) {
  memset(ds, 0, sizeof *ds);
  ds->n = n;
  ds->d = 1;
  ds->n_classes = n_classes;
  ds->x = fedc_malloc_aligned((size_t)n * sizeof(float));
  ds->y = fedc_malloc_aligned((size_t)n * sizeof(float));
  assert_non_null(ds->x);
  assert_non_null(ds->y);
  int64_t weight_sum = 0;
  for (int32_t c = 0; c < n_classes; c++) weight_sum += c + 6;
  int64_t i = 0;
  for (int32_t c = 0; c < n_classes; c++) {
    int64_t cnt = (c == n_classes - 1) ? n - i : n * (c + 6) / weight_sum;
    for (int64_t j = 0; j < cnt; j++, i++) ds->y[i] = (float)c;
  }
  for (int64_t j = 0; j < n; j++) ds->x[j] = (float)j;
  fedc_rng r;
  fedc_rng_seed(&r, 12345);
  for (int64_t j = n - 1; j > 0; j--) {
    int64_t k = (int64_t)fedc_rng_below(&r, (uint64_t)j + 1);
    float t = ds->y[j];
    ds->y[j] = ds->y[k];
    ds->y[k] = t;
  }
}

static void free_dataset(fedc_dataset *ds) {
  fedc_free_aligned(ds->x);
  fedc_free_aligned(ds->y);
  memset(ds, 0, sizeof *ds);
}

static int group_setup(void **state) {
  static fedc_dataset ds;
  build_dataset(&ds, N_ROWS, N_CLASSES);
  *state = &ds;
  return 0;
}

static int group_teardown(void **state) {
  free_dataset(*state);
  return 0;
}

static fedc_partition_params params(fedc_partition_kind kind, int32_t k,
                                    double alpha, int32_t spc, uint64_t seed) {
  fedc_partition_params p = {kind, k, alpha, spc, seed};
  return p;
}

/* Offsets run from 0 to n without going back, and every row index appears
 * exactly once. */
static void assert_covers_once(const fedc_partition *pt, int64_t n) {
  assert_non_null(pt->offsets);
  assert_non_null(pt->index);
  assert_int_equal(pt->offsets[0], 0);
  assert_int_equal(pt->offsets[pt->n_clients], n);
  for (int32_t k = 0; k < pt->n_clients; k++)
    assert_true(pt->offsets[k] <= pt->offsets[k + 1]);
  unsigned char *seen = fedc_calloc((size_t)n, 1);
  assert_non_null(seen);
  for (int64_t i = 0; i < n; i++) {
    int64_t row = pt->index[i];
    assert_true(row >= 0 && row < n);
    assert_int_equal(seen[row], 0);
    seen[row] = 1;
  }
  fedc_free(seen);
}

static int partitions_equal(const fedc_partition *a, const fedc_partition *b) {
  if (a->n_clients != b->n_clients) return 0;
  size_t no = ((size_t)a->n_clients + 1) * sizeof *a->offsets;
  if (memcmp(a->offsets, b->offsets, no) != 0) return 0;
  size_t ni = (size_t)a->offsets[a->n_clients] * sizeof *a->index;
  return memcmp(a->index, b->index, ni) == 0;
}

/* Per client: the number of distinct labels, and the largest class share. */
static void label_stats(const fedc_dataset *ds, const fedc_partition *pt,
                        int32_t k, int *n_labels, double *max_share) {
  int64_t count[64] = {0};
  assert_true(ds->n_classes <= 64);
  for (int64_t i = pt->offsets[k]; i < pt->offsets[k + 1]; i++)
    count[(int)ds->y[pt->index[i]]]++;
  int64_t size = pt->offsets[k + 1] - pt->offsets[k], best = 0;
  *n_labels = 0;
  for (int c = 0; c < ds->n_classes; c++) {
    if (count[c] > 0) (*n_labels)++;
    if (count[c] > best) best = count[c];
  }
  *max_share = size > 0 ? (double)best / (double)size : 0.0;
}

static double avg_max_share(const fedc_dataset *ds, const fedc_partition *pt) {
  double sum = 0.0;
  for (int32_t k = 0; k < pt->n_clients; k++) {
    int nl;
    double share;
    label_stats(ds, pt, k, &nl, &share);
    sum += share;
  }
  return sum / pt->n_clients;
}

static void test_every_row_once_each_kind(void **state) {
  const fedc_dataset *ds = *state;
  int64_t live = fedc_alloc_live();
  const int32_t clients[] = {1, 7, 100, 1000};
  /* Dirichlet over 1000 clients cannot give each 10 rows and says so. */
  fedc_log_level old = fedc_log_get_level();
  fedc_log_set_level(FEDC_LOG_ERROR);
  for (int kind = 0; kind < 3; kind++) {
    for (size_t i = 0; i < sizeof clients / sizeof clients[0]; i++) {
      fedc_partition_params p = params(kind, clients[i], 0.5, 2, 42);
      fedc_partition pt;
      assert_int_equal(fedc_partition_make(ds, &p, &pt), 0);
      assert_int_equal(pt.n_clients, clients[i]);
      assert_covers_once(&pt, ds->n);
      fedc_partition_free(&pt);
    }
  }
  fedc_log_set_level(old);
  assert_int_equal(fedc_alloc_live(), live);
}

/* As many clients as rows: iid gives one row each; shards with one shard
 * per client likewise; dirichlet cannot satisfy min_rows = 1 everywhere
 * within 100 draws for 300 clients and must still return a full partition. */
static void test_one_row_per_client(void **state) {
  int64_t live = fedc_alloc_live();
  fedc_dataset small;
  build_dataset(&small, 300, 3);
  fedc_partition pt;
  fedc_partition_params p = params(FEDC_PARTITION_IID, 300, 1.0, 1, 7);
  assert_int_equal(fedc_partition_make(&small, &p, &pt), 0);
  assert_covers_once(&pt, small.n);
  for (int32_t k = 0; k < 300; k++)
    assert_int_equal(pt.offsets[k + 1] - pt.offsets[k], 1);
  fedc_partition_free(&pt);

  p.kind = FEDC_PARTITION_SHARDS;
  assert_int_equal(fedc_partition_make(&small, &p, &pt), 0);
  assert_covers_once(&pt, small.n);
  for (int32_t k = 0; k < 300; k++)
    assert_int_equal(pt.offsets[k + 1] - pt.offsets[k], 1);
  fedc_partition_free(&pt);

  fedc_log_level old = fedc_log_get_level();
  fedc_log_set_level(FEDC_LOG_ERROR); /* the give-up warning is expected */
  p.kind = FEDC_PARTITION_DIRICHLET;
  p.alpha = 0.1;
  assert_int_equal(fedc_partition_make(&small, &p, &pt), 0);
  fedc_log_set_level(old);
  assert_covers_once(&pt, small.n);
  fedc_partition_free(&pt);
  free_dataset(&small);
  assert_int_equal(fedc_alloc_live(), live);
}

static void test_same_seed_same_partition_each_kind(void **state) {
  const fedc_dataset *ds = *state;
  int64_t live = fedc_alloc_live();
  for (int kind = 0; kind < 3; kind++) {
    fedc_partition_params p = params(kind, 20, 0.3, 2, 2024);
    fedc_partition a, b, c;
    assert_int_equal(fedc_partition_make(ds, &p, &a), 0);
    assert_int_equal(fedc_partition_make(ds, &p, &b), 0);
    p.seed = 2025;
    assert_int_equal(fedc_partition_make(ds, &p, &c), 0);
    assert_true(partitions_equal(&a, &b));
    assert_false(partitions_equal(&a, &c));
    fedc_partition_free(&a);
    fedc_partition_free(&b);
    fedc_partition_free(&c);
  }
  assert_int_equal(fedc_alloc_live(), live);
}

static void test_iid_sizes_differ_by_at_most_one(void **state) {
  const fedc_dataset *ds = *state;
  int64_t live = fedc_alloc_live();
  const int32_t clients[] = {3, 7, 64, 9999};
  for (size_t i = 0; i < sizeof clients / sizeof clients[0]; i++) {
    fedc_partition_params p = params(FEDC_PARTITION_IID, clients[i], 0, 0, 1);
    fedc_partition pt;
    assert_int_equal(fedc_partition_make(ds, &p, &pt), 0);
    int64_t lo = INT64_MAX, hi = 0;
    for (int32_t k = 0; k < pt.n_clients; k++) {
      int64_t s = pt.offsets[k + 1] - pt.offsets[k];
      if (s < lo) lo = s;
      if (s > hi) hi = s;
    }
    assert_true(hi - lo <= 1);
    assert_int_equal(lo, ds->n / clients[i]);
    fedc_partition_free(&pt);
  }
  assert_int_equal(fedc_alloc_live(), live);
}

/* Position of each row in the label order the shards are cut from (stable:
 * ties by row index). pos must hold n entries. */
static void sorted_positions(const fedc_dataset *ds, int64_t *pos) {
  int64_t start[65] = {0};
  for (int64_t i = 0; i < ds->n; i++) start[(int)ds->y[i] + 1]++;
  for (int c = 0; c < ds->n_classes; c++) start[c + 1] += start[c];
  for (int64_t i = 0; i < ds->n; i++) pos[i] = start[(int)ds->y[i]]++;
}

/* Number of maximal runs of consecutive sorted positions in client k. */
static int client_runs(const fedc_partition *pt, int32_t k, const int64_t *pos,
                       unsigned char *mark, int64_t n) {
  memset(mark, 0, (size_t)n);
  for (int64_t i = pt->offsets[k]; i < pt->offsets[k + 1]; i++)
    mark[pos[pt->index[i]]] = 1;
  int runs = 0;
  for (int64_t q = 0; q < n; q++)
    if (mark[q] && (q == 0 || !mark[q - 1])) runs++;
  return runs;
}

static void test_shards_few_label_runs_per_client(void **state) {
  const fedc_dataset *ds = *state;
  int64_t live = fedc_alloc_live();
  int64_t *pos = fedc_malloc_array((size_t)ds->n, sizeof *pos);
  unsigned char *mark = fedc_malloc((size_t)ds->n);
  assert_non_null(pos);
  assert_non_null(mark);
  sorted_positions(ds, pos);

  /* 100 clients * 2 shards of 50 rows: no leftover. */
  fedc_partition_params p = params(FEDC_PARTITION_SHARDS, 100, 0, 2, 9);
  fedc_partition pt;
  assert_int_equal(fedc_partition_make(ds, &p, &pt), 0);
  assert_covers_once(&pt, ds->n);
  double labels_sum = 0.0;
  for (int32_t k = 0; k < pt.n_clients; k++) {
    assert_int_equal(pt.offsets[k + 1] - pt.offsets[k], 100);
    assert_true(client_runs(&pt, k, pos, mark, ds->n) <= 2);
    int nl;
    double share;
    label_stats(ds, &pt, k, &nl, &share);
    assert_true(nl <= 4);
    labels_sum += nl;
  }
  double avg_labels = labels_sum / pt.n_clients;
  print_message("shards 100x2: average labels per client %.2f\n", avg_labels);
  assert_true(avg_labels < 3.0);
  fedc_partition_free(&pt);

  /* 30 clients * 2 shards of 166 rows: 40 leftover rows (the end of the
   * label order) go round-robin, 2 to clients 0..9 and 1 to the rest. */
  p = params(FEDC_PARTITION_SHARDS, 30, 0, 2, 9);
  assert_int_equal(fedc_partition_make(ds, &p, &pt), 0);
  assert_covers_once(&pt, ds->n);
  for (int32_t k = 0; k < pt.n_clients; k++) {
    int64_t extra = k < 10 ? 2 : 1;
    assert_int_equal(pt.offsets[k + 1] - pt.offsets[k], 2 * 166 + extra);
    assert_true(client_runs(&pt, k, pos, mark, ds->n) <= 2 + extra);
    int64_t tail = 0;
    for (int64_t i = pt.offsets[k]; i < pt.offsets[k + 1]; i++)
      if (pos[pt.index[i]] >= 60 * 166) tail++;
    assert_int_equal(tail, extra);
  }
  fedc_partition_free(&pt);
  fedc_free(pos);
  fedc_free(mark);
  assert_int_equal(fedc_alloc_live(), live);
}

/* Average over clients of the largest class share, averaged again over ten
 * seeds so that the figure reflects alpha rather than one draw (one seed
 * alone ranges about 0.53 to 0.75 at alpha = 0.1). The data's own largest
 * class is 0.143 of the rows, the floor for a near-uniform split. */
static double dirichlet_skew(const fedc_dataset *ds, double alpha) {
  double sum = 0.0;
  for (uint64_t seed = 1; seed <= 10; seed++) {
    fedc_partition_params p = params(FEDC_PARTITION_DIRICHLET, 20, alpha, 0,
                                     seed);
    fedc_partition pt;
    assert_int_equal(fedc_partition_make(ds, &p, &pt), 0);
    assert_covers_once(&pt, ds->n);
    sum += avg_max_share(ds, &pt);
    fedc_partition_free(&pt);
  }
  return sum / 10.0;
}

static void test_dirichlet_skew_follows_alpha(void **state) {
  const fedc_dataset *ds = *state;
  int64_t live = fedc_alloc_live();
  double skewed = dirichlet_skew(ds, 0.1);
  double mid = dirichlet_skew(ds, 1.0);
  double uniform = dirichlet_skew(ds, 100.0);
  print_message("dirichlet 20 clients, 10 seeds: average largest class share "
                "%.3f at alpha=0.1, %.3f at alpha=1, %.3f at alpha=100\n",
                skewed, mid, uniform);
  assert_true(skewed > 0.6);
  assert_true(mid < skewed && uniform < mid);
  assert_true(uniform < 0.2);
  assert_int_equal(fedc_alloc_live(), live);
}

/* Where a draw with every client at min(10, n / K) rows is likely, the
 * redraw finds one (alpha = 0.1 over 50 clients takes about ten draws). */
static void test_dirichlet_every_client_has_min_rows(void **state) {
  const fedc_dataset *ds = *state;
  int64_t live = fedc_alloc_live();
  const struct {
    int32_t clients;
    double alpha;
  } cases[] = {{10, 0.05}, {20, 0.05}, {10, 0.1}, {20, 0.1}, {50, 0.1},
               {100, 0.3}, {100, 0.5}, {50, 1.0}, {200, 100.0}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    for (uint64_t seed = 1; seed <= 5; seed++) {
      fedc_partition_params p = params(FEDC_PARTITION_DIRICHLET,
                                       cases[i].clients, cases[i].alpha, 0,
                                       seed);
      fedc_partition pt;
      assert_int_equal(fedc_partition_make(ds, &p, &pt), 0);
      int64_t min_rows = ds->n / p.n_clients < 10 ? ds->n / p.n_clients : 10;
      for (int32_t k = 0; k < pt.n_clients; k++)
        if (pt.offsets[k + 1] - pt.offsets[k] < min_rows)
          fail_msg("alpha=%g clients=%d seed=%d: client %d has %d rows",
                   p.alpha, (int)p.n_clients, (int)seed, (int)k,
                   (int)(pt.offsets[k + 1] - pt.offsets[k]));
      fedc_partition_free(&pt);
    }
  }
  assert_int_equal(fedc_alloc_live(), live);
}

/* alpha = 0.05 puts each of the 10 classes on one or two clients, so 100
 * clients cannot all get 10 rows: after 100 draws the last one is returned,
 * still a complete and reproducible partition. */
static void test_dirichlet_gives_up_after_100_draws(void **state) {
  const fedc_dataset *ds = *state;
  int64_t live = fedc_alloc_live();
  fedc_log_level old = fedc_log_get_level();
  fedc_log_set_level(FEDC_LOG_ERROR); /* the give-up warning is expected */
  fedc_partition_params p = params(FEDC_PARTITION_DIRICHLET, 100, 0.05, 0, 5);
  fedc_partition a, b;
  assert_int_equal(fedc_partition_make(ds, &p, &a), 0);
  assert_int_equal(fedc_partition_make(ds, &p, &b), 0);
  fedc_log_set_level(old);
  assert_covers_once(&a, ds->n);
  assert_true(partitions_equal(&a, &b));
  int64_t smallest = INT64_MAX;
  for (int32_t k = 0; k < a.n_clients; k++)
    if (a.offsets[k + 1] - a.offsets[k] < smallest)
      smallest = a.offsets[k + 1] - a.offsets[k];
  assert_true(smallest < 10);
  fedc_partition_free(&a);
  fedc_partition_free(&b);
  assert_int_equal(fedc_alloc_live(), live);
}

/* One bad parameter set: FEDC_EINVAL, a message naming `needle`, *out
 * zeroed even though it held garbage, and nothing allocated. */
static void expect_einval(const fedc_dataset *ds, fedc_partition_params p,
                          const char *needle) {
  int64_t live = fedc_alloc_live();
  fedc_partition pt;
  memset(&pt, 0xab, sizeof pt);
  fedc_error_clear();
  assert_int_equal(fedc_partition_make(ds, &p, &pt), FEDC_EINVAL);
  if (strstr(fedc_error_msg(), needle) == NULL)
    fail_msg("message \"%s\" does not name \"%s\"", fedc_error_msg(), needle);
  assert_int_equal(pt.n_clients, 0);
  assert_null(pt.offsets);
  assert_null(pt.index);
  assert_int_equal(fedc_alloc_live(), live);
}

static void test_bad_parameters_are_einval(void **state) {
  const fedc_dataset *ds = *state;
  for (int kind = 0; kind < 3; kind++) {
    expect_einval(ds, params(kind, 0, 1.0, 2, 1), "n_clients = 0");
    expect_einval(ds, params(kind, -3, 1.0, 2, 1), "n_clients = -3");
    expect_einval(ds, params(kind, N_ROWS + 1, 1.0, 2, 1), "n_clients");
  }
  fedc_partition_kind d = FEDC_PARTITION_DIRICHLET;
  expect_einval(ds, params(d, 10, 0.0, 2, 1), "alpha = 0");
  expect_einval(ds, params(d, 10, -1.0, 2, 1), "alpha = -1");
  expect_einval(ds, params(d, 10, NAN, 2, 1), "alpha");
  expect_einval(ds, params(d, 10, INFINITY, 2, 1), "alpha");
  fedc_partition_kind s = FEDC_PARTITION_SHARDS;
  expect_einval(ds, params(s, 10, 1.0, 0, 1), "shards_per_client = 0");
  expect_einval(ds, params(s, 10, 1.0, -2, 1), "shards_per_client = -2");
  expect_einval(ds, params(s, 100, 1.0, 101, 1), "shards_per_client");
  expect_einval(ds, params((fedc_partition_kind)7, 10, 1.0, 2, 1), "kind");

  fedc_dataset empty = *ds;
  empty.n = 0;
  for (int kind = 0; kind < 3; kind++)
    expect_einval(&empty, params(kind, 1, 1.0, 1, 1), "no rows");
  fedc_partition pt;
  fedc_partition_params p = params(FEDC_PARTITION_IID, 1, 1.0, 1, 1);
  assert_int_equal(fedc_partition_make(NULL, &p, &pt), FEDC_EINVAL);
  assert_int_equal(fedc_partition_make(ds, NULL, &pt), FEDC_EINVAL);
  assert_int_equal(fedc_partition_make(ds, &p, NULL), FEDC_EINVAL);
}

/* Dirichlet and shards group by class: regression targets and labels that
 * are not class indices are refused; iid never looks at the labels. */
static void test_labels_must_be_classes(void **state) {
  int64_t live = fedc_alloc_live();
  fedc_dataset small;
  build_dataset(&small, 100, 4);
  for (int kind = 1; kind < 3; kind++) {
    fedc_partition_params p = params(kind, 5, 1.0, 2, 1);
    small.n_classes = 0;
    expect_einval(&small, p, "n_classes = 0");
    small.n_classes = 4;
    float saved = small.y[17];
    small.y[17] = 2.5f;
    expect_einval(&small, p, "row 17");
    small.y[17] = -1.0f;
    expect_einval(&small, p, "row 17");
    small.y[17] = 4.0f;
    expect_einval(&small, p, "row 17");
    small.y[17] = NAN;
    expect_einval(&small, p, "row 17");
    small.y[17] = saved;
  }
  small.n_classes = 0;
  small.y[3] = 0.25f;
  fedc_partition_params p = params(FEDC_PARTITION_IID, 5, 1.0, 2, 1);
  fedc_partition pt;
  assert_int_equal(fedc_partition_make(&small, &p, &pt), 0);
  assert_covers_once(&pt, small.n);
  fedc_partition_free(&pt);
  free_dataset(&small);
  assert_int_equal(fedc_alloc_live(), live);
}

/* Fail each allocation in turn until a run succeeds: every failure is
 * FEDC_ENOMEM with *out zeroed and nothing leaked. */
static void test_out_of_memory_is_clean(void **state) {
  const fedc_dataset *ds = *state;
  for (int kind = 0; kind < 3; kind++) {
    fedc_partition_params p = params(kind, 10, 0.5, 2, 3);
    int failures = 0;
    for (int64_t nth = 1;; nth++) {
      int64_t live = fedc_alloc_live();
      fedc_partition pt;
      fedc_alloc_fail_after(nth, 0);
      int rc = fedc_partition_make(ds, &p, &pt);
      fedc_alloc_fail_after(0, 0);
      if (rc == 0) {
        assert_covers_once(&pt, ds->n);
        fedc_partition_free(&pt);
        assert_int_equal(fedc_alloc_live(), live);
        break;
      }
      assert_int_equal(rc, FEDC_ENOMEM);
      assert_null(pt.offsets);
      assert_null(pt.index);
      assert_int_equal(fedc_alloc_live(), live);
      failures++;
      assert_true(failures < 50);
    }
    assert_true(failures >= 2);
  }
}

static void test_kind_names_round_trip(void **state) {
  for (int k = 0; k < 3; k++) {
    const char *name = fedc_partition_kind_name((fedc_partition_kind)k);
    assert_int_equal(fedc_partition_kind_parse(name), k);
  }
  assert_string_equal(fedc_partition_kind_name(FEDC_PARTITION_IID), "iid");
  assert_string_equal(fedc_partition_kind_name(FEDC_PARTITION_DIRICHLET),
                      "dirichlet");
  assert_string_equal(fedc_partition_kind_name(FEDC_PARTITION_SHARDS),
                      "shards");
  assert_string_equal(fedc_partition_kind_name((fedc_partition_kind)9),
                      "unknown");
  assert_int_equal(fedc_partition_kind_parse("IID"), -1);
  assert_int_equal(fedc_partition_kind_parse(""), -1);
  assert_int_equal(fedc_partition_kind_parse("shard"), -1);
  assert_int_equal(fedc_partition_kind_parse(NULL), -1);
}

static void test_free_is_safe_on_zeroed_and_twice(void **state) {
  const fedc_dataset *ds = *state;
  int64_t live = fedc_alloc_live();
  fedc_partition pt;
  memset(&pt, 0, sizeof pt);
  fedc_partition_free(&pt);
  fedc_partition_free(NULL);
  fedc_partition_params p = params(FEDC_PARTITION_IID, 4, 0, 0, 1);
  assert_int_equal(fedc_partition_make(ds, &p, &pt), 0);
  fedc_partition_free(&pt);
  assert_null(pt.offsets);
  assert_null(pt.index);
  fedc_partition_free(&pt);
  assert_int_equal(fedc_alloc_live(), live);
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Fashion-MNIST's size with McMahan's setting (100 clients, 200 shards of
 * 300): each kind well under a second even under sanitizers. */
static void test_60000_rows_in_milliseconds(void **state) {
  int64_t live = fedc_alloc_live();
  fedc_dataset big;
  build_dataset(&big, 60000, 10);
  for (int kind = 0; kind < 3; kind++) {
    fedc_partition_params p = params(kind, 100, 0.5, 2, 11);
    fedc_partition pt;
    double t0 = now_ms();
    assert_int_equal(fedc_partition_make(&big, &p, &pt), 0);
    double ms = now_ms() - t0;
    print_message("%-9s 60000 rows, 100 clients: %.2f ms\n",
                  fedc_partition_kind_name(kind), ms);
    assert_true(ms < 500.0);
    assert_covers_once(&pt, big.n);
    fedc_partition_free(&pt);
  }
  free_dataset(&big);
  assert_int_equal(fedc_alloc_live(), live);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_row_once_each_kind),
      cmocka_unit_test(test_one_row_per_client),
      cmocka_unit_test(test_same_seed_same_partition_each_kind),
      cmocka_unit_test(test_iid_sizes_differ_by_at_most_one),
      cmocka_unit_test(test_shards_few_label_runs_per_client),
      cmocka_unit_test(test_dirichlet_skew_follows_alpha),
      cmocka_unit_test(test_dirichlet_every_client_has_min_rows),
      cmocka_unit_test(test_dirichlet_gives_up_after_100_draws),
      cmocka_unit_test(test_bad_parameters_are_einval),
      cmocka_unit_test(test_labels_must_be_classes),
      cmocka_unit_test(test_out_of_memory_is_clean),
      cmocka_unit_test(test_kind_names_round_trip),
      cmocka_unit_test(test_free_is_safe_on_zeroed_and_twice),
      cmocka_unit_test(test_60000_rows_in_milliseconds),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
