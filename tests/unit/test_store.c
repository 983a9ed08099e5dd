/*
 * test_store.c - the coordinator's sqlite store on real files: schema and
 * job binding, the client registry, the initial model, rounds committed in
 * order and read back exactly (bytes, hashes, NAN metrics), refusal of
 * duplicate and out-of-order commits with nothing written, atomicity of a
 * round under kill -9 (a child process killed while committing as fast as
 * it can, and one killed while its uncommitted pages are already in the
 * -wal file), a read-only file and a failing write (RLIMIT_FSIZE) reported as
 * FEDC_EIO naming the path with the store left as it was, files that are
 * not fedc stores, a damaged checkpoint, and an allocation-failure loop.
 * Every test checks that it leaked no fedc block.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/mbedtls_compat.h"
#include "store.h"


static char tmpdir[64];
static int64_t live_at_start;
static uid_t euid_at_start;

static int setup(void **state) {
  live_at_start = fedc_alloc_live();
  euid_at_start = geteuid();
  fedc_error_clear();
  return 0;
}

static int teardown(void **state) {
  fedc_alloc_fail_after(0, 0);
  /* a failed assertion may have left these changed */
  if (geteuid() != euid_at_start) (void)seteuid(euid_at_start);
  signal(SIGXFSZ, SIG_DFL);
  struct rlimit rl;
  if (getrlimit(RLIMIT_FSIZE, &rl) == 0 && rl.rlim_cur != rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_FSIZE, &rl);
  }
  assert_int_equal(fedc_alloc_live(), live_at_start);
  return 0;
}

static int rm_entry(const char *p, const struct stat *sb, int flag,
                    struct FTW *ftw) {
  return remove(p);
}

static int group_setup(void **state) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/fedc-store-XXXXXX");
  if (mkdtemp(tmpdir) == NULL) return -1;
  /* traversable by the unprivileged user of the read-only test */
  return chmod(tmpdir, 0755);
}

static int group_teardown(void **state) {
  return nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh path in the test directory (any old file of that name removed). */
static void path_of(char *buf, size_t cap, const char *name) {
  snprintf(buf, cap, "%s/%s", tmpdir, name);
  char side[300];
  unlink(buf);
  snprintf(side, sizeof side, "%s-wal", buf);
  unlink(side);
  snprintf(side, sizeof side, "%s-shm", buf);
  unlink(side);
}

static void assert_msg_has(const char *needle) {
  const char *msg = fedc_error_msg();
  if (strstr(msg, needle) == NULL)
    fail_msg("error message \"%s\" does not mention \"%s\"", msg, needle);
}

/* ---- fixtures ----------------------------------------------------------- */

static void fp_of(int i, char out[65]) { snprintf(out, 65, "%064x", i); }

static void hex_sha(const uint8_t *data, size_t len, char out[65]) {
  assert_int_equal(fedc__sha256_hex(data, len, out), 0);
}

/* Deterministic model bytes for round r, so a reader can regenerate them. */
static uint8_t *model_of(int32_t r, size_t len) {
  uint8_t *m = malloc(len);
  assert_non_null(m);
  uint32_t x = 2166136261u ^ (uint32_t)r;
  for (size_t i = 0; i < len; i++) {
    x = x * 1664525u + 1013904223u;
    m[i] = (uint8_t)(x >> 24);
  }
  return m;
}

static fedc_store_update upd(int32_t client, int64_t samples, double loss,
                             int seed) {
  fedc_store_update u;
  memset(&u, 0, sizeof u);
  u.client_id = client;
  u.num_samples = samples;
  u.train_loss = loss;
  snprintf(u.sha256, sizeof u.sha256, "%064x", seed);
  u.received_at = 1.7e9 + seed;
  return u;
}

static fedc_store_round round_of(int32_t r, int32_t clients) {
  fedc_store_round x;
  memset(&x, 0, sizeof x);
  x.round = r;
  x.selected = clients + 1;
  x.clients = clients;
  x.samples = 1000 * r;
  x.train_loss = 1.0 / r;
  x.test_loss = NAN;
  x.test_acc = NAN;
  x.secs = 0.25 * r;
  return x;
}

static fedc_store *open_ok(const char *path) {
  fedc_store *st = NULL;
  int err = fedc_store_open(path, &st);
  if (err) fail_msg("open %s: %s", path, fedc_error_msg());
  return st;
}

/* A store with clients 1..n (fingerprints fp_of(1..n)) and an initial model. */
static fedc_store *make_store(const char *path, int n) {
  fedc_store *st = open_ok(path);
  for (int i = 1; i <= n; i++) {
    char fp[65];
    int32_t id;
    fp_of(i, fp);
    assert_int_equal(fedc_store_client_allow(st, fp, "c", &id), 0);
    assert_int_equal(id, i);
  }
  uint8_t *m = model_of(0, 1000);
  assert_int_equal(fedc_store_put_initial(st, m, 1000), 0);
  free(m);
  return st;
}

static void commit_ok(fedc_store *st, int32_t r, size_t len,
                      const fedc_store_update *u, int32_t n) {
  fedc_store_round x = round_of(r, n);
  uint8_t *m = model_of(r, len);
  int err = fedc_store_commit_round(st, &x, m, len, u, n);
  if (err) fail_msg("commit %d: %s", (int)r, fedc_error_msg());
  free(m);
}

static int32_t last_round(fedc_store *st) {
  int32_t r = -1;
  assert_int_equal(fedc_store_last_round(st, &r), 0);
  return r;
}

/* ---- tests -------------------------------------------------------------- */

static void test_new_store(void **state) {
  char path[256];
  path_of(path, sizeof path, "new.db");
  fedc_store *st = open_ok(path);
  assert_int_equal(last_round(st), 0);
  fedc_store_round *rs = (void *)1;
  int32_t n = -1;
  assert_int_equal(fedc_store_rounds(st, &rs, &n), 0);
  assert_int_equal(n, 0);
  assert_null(rs);
  uint8_t *m;
  size_t len;
  assert_int_equal(fedc_store_checkpoint(st, 0, &m, &len), FEDC_ENOTFOUND);
  assert_int_equal(fedc_store_integrity_check(st), 0);
  fedc_store_close(st);

  /* the file is sqlite in WAL mode (header bytes 18, 19 == 2) */
  uint8_t hdr[20];
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  assert_int_equal(fread(hdr, 1, sizeof hdr, f), sizeof hdr);
  fclose(f);
  assert_memory_equal(hdr, "SQLite format 3", 16);
  assert_int_equal(hdr[18], 2);
  assert_int_equal(hdr[19], 2);

  st = open_ok(path); /* reopens */
  assert_int_equal(last_round(st), 0);
  fedc_store_close(st);
  fedc_store_close(NULL);
}

static void test_job_bind(void **state) {
  char path[256], id[33], id2[33];
  path_of(path, sizeof path, "job.db");
  fedc_store *st = open_ok(path);
  const char *spec = "{\"model\":\"mlp\",\"rounds\":10}";
  assert_int_equal(fedc_store_job_bind(st, spec, id), 0);
  assert_int_equal(strlen(id), 32);
  assert_int_equal(strspn(id, "0123456789abcdef"), 32);
  assert_int_equal(fedc_store_job_bind(st, spec, id2), 0);
  assert_string_equal(id, id2);
  fedc_store_close(st);

  st = open_ok(path);
  memset(id2, 0, sizeof id2);
  assert_int_equal(fedc_store_job_bind(st, spec, id2), 0);
  assert_string_equal(id, id2);
  assert_int_equal(
      fedc_store_job_bind(st, "{\"model\":\"mlp\",\"rounds\":11}", id2),
      FEDC_ECONFIG);
  assert_msg_has(path);
  assert_msg_has(id);
  assert_msg_has("different spec");
  assert_string_equal(id, id2); /* untouched on error */
  assert_int_equal(fedc_store_job_bind(st, NULL, id2), FEDC_EINVAL);
  fedc_store_close(st);

  /* another store gets another id */
  path_of(path, sizeof path, "job2.db");
  st = open_ok(path);
  assert_int_equal(fedc_store_job_bind(st, spec, id2), 0);
  assert_string_not_equal(id, id2);
  fedc_store_close(st);
}

static void test_clients(void **state) {
  char path[256], fp1[65], fp2[65], fp3[65];
  path_of(path, sizeof path, "clients.db");
  fp_of(0xa11ce, fp1);
  fp_of(0xb0b, fp2);
  fp_of(0xc, fp3);
  fedc_store *st = open_ok(path);
  int32_t id1 = 0, id2 = 0, again = 0;
  double t0 = (double)time(NULL);
  assert_int_equal(fedc_store_client_allow(st, fp1, "alice", &id1), 0);
  assert_int_equal(fedc_store_client_allow(st, fp2, NULL, &id2), 0);
  assert_true(id1 > 0 && id2 > 0 && id1 != id2);

  fedc_store_client c;
  assert_int_equal(fedc_store_client_find(st, fp1, &c), 0);
  assert_int_equal(c.id, id1);
  assert_string_equal(c.fingerprint, fp1);
  assert_string_equal(c.name, "alice");
  assert_int_equal(c.status, FEDC_CLIENT_ALLOWED);
  assert_int_equal(c.updates, 0);
  assert_true(c.created_at >= t0 - 1 && c.created_at <= t0 + 60);
  assert_int_equal(fedc_store_client_find(st, fp2, &c), 0);
  assert_string_equal(c.name, "");

  assert_int_equal(fedc_store_client_revoke(st, fp1), 0);
  assert_int_equal(fedc_store_client_find(st, fp1, &c), 0);
  assert_int_equal(c.status, FEDC_CLIENT_REVOKED);
  /* re-allow keeps the id and (with no name given) the name */
  assert_int_equal(fedc_store_client_allow(st, fp1, NULL, &again), 0);
  assert_int_equal(again, id1);
  assert_int_equal(fedc_store_client_find(st, fp1, &c), 0);
  assert_int_equal(c.status, FEDC_CLIENT_ALLOWED);
  assert_string_equal(c.name, "alice");

  assert_int_equal(fedc_store_client_set_name(st, id2, "bob"), 0);
  assert_int_equal(fedc_store_client_set_name(st, 9999, "x"), FEDC_ENOTFOUND);
  assert_msg_has(path);

  char name[200];
  memset(name, 'n', sizeof name);
  name[127] = '\0';
  assert_int_equal(fedc_store_client_set_name(st, id2, name), 0);
  name[127] = 'n';
  name[128] = '\0';
  assert_int_equal(fedc_store_client_set_name(st, id2, name), FEDC_EINVAL);
  assert_int_equal(fedc_store_client_allow(st, fp3, name, NULL), FEDC_EINVAL);
  assert_int_equal(fedc_store_client_set_name(st, id2, "bob"), 0);

  /* fingerprints: exactly 64 lowercase hex digits */
  const char *bad[] = {
      "",
      "abc",
      "000000000000000000000000000000000000000000000000000000000000000",
      "00000000000000000000000000000000000000000000000000000000000000000",
      "000000000000000000000000000000000000000000000000000000000000000A",
      "000000000000000000000000000000000000000000000000000000000000000g",
      "00000000000000000000000000000000 0000000000000000000000000000000",
      NULL};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(fedc_store_client_allow(st, bad[i], "x", NULL),
                     FEDC_EINVAL);
    assert_int_equal(fedc_store_client_find(st, bad[i], &c), FEDC_EINVAL);
    assert_int_equal(fedc_store_client_revoke(st, bad[i]), FEDC_EINVAL);
  }
  assert_int_equal(fedc_store_client_revoke(st, fp3), FEDC_ENOTFOUND);
  assert_msg_has(path);
  assert_int_equal(fedc_store_client_find(st, fp3, &c), FEDC_ENOTFOUND);

  fedc_store_client *list = NULL;
  int32_t n = 0;
  assert_int_equal(fedc_store_client_list(st, &list, &n), 0);
  assert_int_equal(n, 2);
  assert_int_equal(list[0].id, id1);
  assert_int_equal(list[1].id, id2);
  assert_string_equal(list[0].name, "alice");
  assert_string_equal(list[1].name, "bob");
  assert_string_equal(list[1].fingerprint, fp2);
  fedc_free(list);
  fedc_store_close(st);

  /* it all persists */
  st = open_ok(path);
  assert_int_equal(fedc_store_client_find(st, fp2, &c), 0);
  assert_int_equal(c.id, id2);
  assert_string_equal(c.name, "bob");
  fedc_store_close(st);
}

static void test_initial(void **state) {
  char path[256];
  path_of(path, sizeof path, "initial.db");
  fedc_store *st = open_ok(path);
  uint8_t *m = model_of(0, 5000), *other = model_of(1, 5000);
  assert_int_equal(fedc_store_put_initial(st, m, 5000), 0);
  assert_int_equal(fedc_store_put_initial(st, m, 5000), 0);
  assert_int_equal(fedc_store_put_initial(st, other, 5000), FEDC_ESTATE);
  assert_msg_has(path);
  assert_int_equal(fedc_store_put_initial(st, m, 4999), FEDC_ESTATE);
  assert_int_equal(fedc_store_put_initial(st, m, 0), FEDC_EINVAL);
  uint8_t *got;
  size_t len;
  assert_int_equal(fedc_store_checkpoint(st, 0, &got, &len), 0);
  assert_int_equal(len, 5000);
  assert_memory_equal(got, m, 5000);
  fedc_free(got);
  assert_int_equal(last_round(st), 0); /* round 0 is no committed round */
  fedc_store_close(st);
  st = open_ok(path);
  assert_int_equal(fedc_store_put_initial(st, m, 5000), 0);
  fedc_store_close(st);
  free(m);
  free(other);
}

/* Everything a reader can see of a store, for before/after comparisons. */
typedef struct snapshot {
  fedc_store_round *rounds;
  int32_t n_rounds;
  fedc_store_client *clients;
  int32_t n_clients;
  char ckpt_sha[16][65];
  int32_t n_updates[16];
} snapshot;

static void snap(fedc_store *st, snapshot *s) {
  memset(s, 0, sizeof *s);
  assert_int_equal(fedc_store_rounds(st, &s->rounds, &s->n_rounds), 0);
  assert_int_equal(fedc_store_client_list(st, &s->clients, &s->n_clients), 0);
  for (int32_t r = 0; r <= s->n_rounds && r < 16; r++) {
    uint8_t *m;
    size_t len;
    assert_int_equal(fedc_store_checkpoint(st, r, &m, &len), 0);
    hex_sha(m, len, s->ckpt_sha[r]);
    fedc_free(m);
    if (r == 0) continue;
    fedc_store_update *u;
    assert_int_equal(fedc_store_round_updates(st, r, &u, &s->n_updates[r]),
                     0);
    fedc_free(u);
  }
}

static void assert_snap_equal(const snapshot *a, const snapshot *b) {
  assert_int_equal(a->n_rounds, b->n_rounds);
  assert_int_equal(a->n_clients, b->n_clients);
  if (a->n_rounds)
    assert_memory_equal(a->rounds, b->rounds,
                        (size_t)a->n_rounds * sizeof *a->rounds);
  assert_memory_equal(a->clients, b->clients,
                      (size_t)a->n_clients * sizeof *a->clients);
  assert_memory_equal(a->ckpt_sha, b->ckpt_sha, sizeof a->ckpt_sha);
  assert_memory_equal(a->n_updates, b->n_updates, sizeof a->n_updates);
}

static void snap_free(snapshot *s) {
  fedc_free(s->rounds);
  fedc_free(s->clients);
}

static void test_commit_rounds(void **state) {
  char path[256];
  path_of(path, sizeof path, "rounds.db");
  fedc_store *st = make_store(path, 3);
  const size_t lens[4] = {1000, 4096, 70000, 1};
  fedc_store_update u1[3] = {upd(1, 100, 0.5, 11), upd(2, 200, 0.25, 12),
                             upd(3, 300, NAN, 13)};
  fedc_store_update u2[2] = {upd(3, 30, 2.5, 21), upd(1, 10, 1.5, 22)};
  fedc_store_round sent[4];
  double t0 = (double)time(NULL);
  for (int32_t r = 1; r <= 3; r++) {
    sent[r] = round_of(r, r == 1 ? 3 : r == 2 ? 2 : 0);
    if (r == 1) {
      sent[r].test_loss = 0.75;
      sent[r].test_acc = 0.875;
    }
    uint8_t *m = model_of(r, lens[r]);
    const fedc_store_update *u = r == 1 ? u1 : r == 2 ? u2 : NULL;
    assert_int_equal(fedc_store_commit_round(st, &sent[r], m, lens[r], u,
                                             sent[r].clients),
                     0);
    char want[65];
    hex_sha(m, lens[r], want);
    assert_string_equal(sent[r].sha256, want);
    assert_true(sent[r].committed_at >= t0 - 1);
    free(m);
  }
  assert_int_equal(last_round(st), 3);
  fedc_store_close(st);

  /* read back after reopening: exactly what was sent */
  st = open_ok(path);
  assert_int_equal(last_round(st), 3);
  fedc_store_round *rs;
  int32_t n;
  assert_int_equal(fedc_store_rounds(st, &rs, &n), 0);
  assert_int_equal(n, 3);
  for (int32_t r = 1; r <= 3; r++) {
    const fedc_store_round *g = &rs[r - 1], *w = &sent[r];
    assert_int_equal(g->round, r);
    assert_int_equal(g->selected, w->selected);
    assert_int_equal(g->clients, w->clients);
    assert_int_equal(g->samples, w->samples);
    assert_true(g->train_loss == w->train_loss);
    assert_true(g->secs == w->secs);
    assert_true(g->committed_at == w->committed_at);
    assert_string_equal(g->sha256, w->sha256);
    if (r == 1) {
      assert_true(g->test_loss == 0.75 && g->test_acc == 0.875);
    } else {
      assert_true(isnan(g->test_loss) && isnan(g->test_acc));
    }
    uint8_t *m, *want = model_of(r, lens[r]);
    size_t len;
    assert_int_equal(fedc_store_checkpoint(st, r, &m, &len), 0);
    assert_int_equal(len, lens[r]);
    assert_memory_equal(m, want, len);
    fedc_free(m);
    free(want);
  }
  fedc_free(rs);

  fedc_store_update *u;
  assert_int_equal(fedc_store_round_updates(st, 1, &u, &n), 0);
  assert_int_equal(n, 3);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(u[i].client_id, u1[i].client_id);
    assert_int_equal(u[i].num_samples, u1[i].num_samples);
    assert_string_equal(u[i].sha256, u1[i].sha256);
    assert_true(u[i].received_at == u1[i].received_at);
  }
  assert_true(u[0].train_loss == 0.5 && isnan(u[2].train_loss));
  fedc_free(u);
  assert_int_equal(fedc_store_round_updates(st, 2, &u, &n), 0);
  assert_int_equal(n, 2); /* by client id */
  assert_int_equal(u[0].client_id, 1);
  assert_int_equal(u[1].client_id, 3);
  assert_true(u[1].train_loss == 2.5);
  fedc_free(u);
  assert_int_equal(fedc_store_round_updates(st, 3, &u, &n), 0);
  assert_int_equal(n, 0);
  assert_int_equal(fedc_store_round_updates(st, 4, &u, &n), FEDC_ENOTFOUND);
  assert_int_equal(fedc_store_round_updates(st, 0, &u, &n), FEDC_ENOTFOUND);

  fedc_store_client c;
  char fp[65];
  const int64_t counts[4] = {0, 2, 1, 2};
  for (int i = 1; i <= 3; i++) {
    fp_of(i, fp);
    assert_int_equal(fedc_store_client_find(st, fp, &c), 0);
    assert_int_equal(c.updates, counts[i]);
  }

  /* evaluation after the fact, NAN round-tripping */
  assert_int_equal(fedc_store_round_set_eval(st, 2, 0.125, 0.96875), 0);
  assert_int_equal(fedc_store_round_set_eval(st, 1, NAN, NAN), 0);
  assert_int_equal(fedc_store_round_set_eval(st, 7, 1, 1), FEDC_ENOTFOUND);
  assert_int_equal(fedc_store_rounds(st, &rs, &n), 0);
  assert_true(isnan(rs[0].test_loss) && isnan(rs[0].test_acc));
  assert_true(rs[1].test_loss == 0.125 && rs[1].test_acc == 0.96875);
  assert_true(isnan(rs[2].test_loss));
  fedc_free(rs);

  /* refused commits change nothing */
  snapshot before, after;
  snap(st, &before);
  fedc_store_round x = round_of(3, 1);
  uint8_t *m = model_of(33, 500);
  fedc_store_update one = upd(2, 5, 0.1, 99);
  assert_int_equal(fedc_store_commit_round(st, &x, m, 500, &one, 1),
                   FEDC_EDUPLICATE);
  assert_msg_has(path);
  assert_string_equal(x.sha256, ""); /* not filled on failure */
  x.round = 5;
  assert_int_equal(fedc_store_commit_round(st, &x, m, 500, &one, 1),
                   FEDC_ESTATE);
  assert_msg_has("last committed round is 3");
  x.round = 0;
  assert_int_equal(fedc_store_commit_round(st, &x, m, 500, &one, 1),
                   FEDC_EINVAL);
  x.round = 4;
  fedc_store_update dup[2] = {upd(2, 5, 0.1, 1), upd(2, 6, 0.2, 2)};
  assert_int_equal(fedc_store_commit_round(st, &x, m, 500, dup, 2),
                   FEDC_EINVAL);
  fedc_store_update stranger = upd(77, 5, 0.1, 1);
  assert_int_equal(fedc_store_commit_round(st, &x, m, 500, &stranger, 1),
                   FEDC_ENOTFOUND);
  fedc_store_update badsha = upd(2, 5, 0.1, 1);
  badsha.sha256[3] = 'X';
  assert_int_equal(fedc_store_commit_round(st, &x, m, 500, &badsha, 1),
                   FEDC_EINVAL);
  assert_int_equal(fedc_store_commit_round(st, &x, m, 0, &one, 1),
                   FEDC_EINVAL);
  snap(st, &after);
  assert_snap_equal(&before, &after);
  snap_free(&before);
  snap_free(&after);

  /* and the store takes the next round after all that */
  assert_int_equal(fedc_store_commit_round(st, &x, m, 500, &one, 1), 0);
  assert_int_equal(last_round(st), 4);
  assert_int_equal(fedc_store_integrity_check(st), 0);
  free(m);
  fedc_store_close(st);
}

/* A checkpoint whose bytes changed behind the store's back is reported. */
static void test_damaged_checkpoint(void **state) {
  char path[256];
  path_of(path, sizeof path, "damaged.db");
  fedc_store *st = make_store(path, 1);
  commit_ok(st, 1, 2000, NULL, 0);
  fedc_store_close(st);

  sqlite3 *db;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db,
                                "UPDATE checkpoints SET model = "
                                "zeroblob(2000) WHERE round = 1",
                                NULL, NULL, NULL),
                   SQLITE_OK);
  sqlite3_close(db);

  st = open_ok(path);
  uint8_t *m = (void *)1;
  size_t len;
  assert_int_equal(fedc_store_checkpoint(st, 1, &m, &len), FEDC_ECHECKSUM);
  assert_null(m);
  assert_msg_has(path);
  assert_int_equal(fedc_store_checkpoint(st, 0, &m, &len), 0);
  fedc_free(m);
  fedc_store_close(st);
}

/* ---- kill -9 in the middle of commits ----------------------------------- */

#define KILL_MODEL_BYTES (256 * 1024)
#define KILL_CLIENTS 8

/* The child: commit rounds as fast as it can, telling the parent after each
 * commit returned. Never returns. */
static void committer(const char *path, int fd) {
  fedc_store *st;
  if (fedc_store_open(path, &st)) _exit(2);
  for (int i = 1; i <= KILL_CLIENTS; i++) {
    char fp[65];
    fp_of(i, fp);
    if (fedc_store_client_allow(st, fp, "k", NULL)) _exit(3);
  }
  uint8_t *m = model_of(0, KILL_MODEL_BYTES);
  if (fedc_store_put_initial(st, m, KILL_MODEL_BYTES)) _exit(4);
  free(m);
  for (int32_t r = 1;; r++) {
    fedc_store_update u[KILL_CLIENTS];
    int32_t n = 1 + r % KILL_CLIENTS;
    for (int32_t i = 0; i < n; i++)
      u[i] = upd(i + 1, 10 * r + i, 0.5, (int)(r * 100 + i));
    fedc_store_round x = round_of(r, n);
    m = model_of(r, KILL_MODEL_BYTES);
    if (fedc_store_commit_round(st, &x, m, KILL_MODEL_BYTES, u, n)) _exit(5);
    free(m);
    if (write(fd, &r, sizeof r) != sizeof r) _exit(6);
  }
}

static void kill_once(int iter, int delay_ms) {
  char path[256], name[32];
  snprintf(name, sizeof name, "kill-%d.db", iter);
  path_of(path, sizeof path, name);
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    committer(path, fds[1]);
  }
  close(fds[1]);
  int32_t r, reported = 0;
  /* wait for round 1, then let it run and kill it mid-stride */
  assert_int_equal(read(fds[0], &r, sizeof r), sizeof r);
  reported = r;
  struct timespec ts = {0, delay_ms * 1000000L};
  nanosleep(&ts, NULL);
  kill(pid, SIGKILL);
  while (read(fds[0], &r, sizeof r) == sizeof r) reported = r;
  close(fds[0]);
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  if (!WIFSIGNALED(status))
    fail_msg("committer exited with %d instead of being killed",
             WEXITSTATUS(status));

  fedc_store *st = open_ok(path);
  assert_int_equal(fedc_store_integrity_check(st), 0);
  int32_t k = last_round(st);
  /* every commit that returned is there; at most one more finished after
   * its report was written */
  assert_true(k >= reported && k <= reported + 1);
  print_message("killed after %d ms: %d rounds reported, %d in the file\n",
                delay_ms, (int)reported, (int)k);
  fedc_store_round *rs;
  int32_t n;
  assert_int_equal(fedc_store_rounds(st, &rs, &n), 0);
  assert_int_equal(n, k);
  int64_t total = 0;
  for (int32_t i = 0; i < n; i++) {
    int32_t rr = i + 1;
    assert_int_equal(rs[i].round, rr); /* contiguous 1..k */
    uint8_t *m, *want = model_of(rr, KILL_MODEL_BYTES);
    size_t len;
    assert_int_equal(fedc_store_checkpoint(st, rr, &m, &len), 0);
    assert_int_equal(len, KILL_MODEL_BYTES);
    assert_memory_equal(m, want, len);
    fedc_free(m);
    free(want);
    fedc_store_update *u;
    int32_t nu;
    assert_int_equal(fedc_store_round_updates(st, rr, &u, &nu), 0);
    assert_int_equal(nu, rs[i].clients);
    assert_int_equal(nu, 1 + rr % KILL_CLIENTS);
    for (int32_t j = 0; j < nu; j++)
      assert_int_equal(u[j].num_samples, 10 * rr + j);
    total += nu;
    fedc_free(u);
  }
  fedc_free(rs);
  fedc_store_client *cs;
  int32_t nc;
  assert_int_equal(fedc_store_client_list(st, &cs, &nc), 0);
  int64_t counted = 0;
  for (int32_t i = 0; i < nc; i++) counted += cs[i].updates;
  fedc_free(cs);
  assert_int_equal(counted, total);
  /* and it carries on from there */
  commit_ok(st, k + 1, 100, NULL, 0);
  fedc_store_close(st);
}

static void test_kill9_atomic(void **state) {
  kill_once(0, 20);
  kill_once(1, 50);
  kill_once(2, 80);
}

/*
 * A kill that certainly lands inside a transaction: round 1 carries a model
 * much larger than sqlite's page cache, so its pages spill into the -wal
 * file before COMMIT. The parent kills the child once the -wal file holds
 * several megabytes of them; the reopened store has no trace of round 1.
 */
#define SPILL_MODEL_BYTES (24u << 20)

/* The number of chunk rows of round r (store_chunks.c) in the file at path. */
static int64_t chunk_rows(const char *path, int32_t r) {
  sqlite3 *db;
  sqlite3_stmt *s;
  assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM checkpoint_chunks "
                                          "WHERE round = ?1", -1, &s, NULL), SQLITE_OK);
  sqlite3_bind_int64(s, 1, r);
  assert_int_equal(sqlite3_step(s), SQLITE_ROW);
  int64_t n = sqlite3_column_int64(s, 0);
  sqlite3_finalize(s);
  sqlite3_close(db);
  return n;
}

static void kill_mid_transaction(const char *name) {
  char path[256], wal[300];
  path_of(path, sizeof path, name);
  snprintf(wal, sizeof wal, "%s-wal", path);
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    fedc_store *st;
    if (fedc_store_open(path, &st)) _exit(2);
    char fp[65];
    fp_of(1, fp);
    if (fedc_store_client_allow(st, fp, "s", NULL)) _exit(3);
    uint8_t *m = model_of(0, 1000);
    if (fedc_store_put_initial(st, m, 1000)) _exit(4);
    free(m);
    m = model_of(1, SPILL_MODEL_BYTES);
    char c = 'r';
    if (write(fds[1], &c, 1) != 1) _exit(5);
    fedc_store_round x = round_of(1, 1);
    fedc_store_update u = upd(1, 10, 0.5, 1);
    if (fedc_store_commit_round(st, &x, m, SPILL_MODEL_BYTES, &u, 1)) _exit(6);
    c = 'c';
    if (write(fds[1], &c, 1) != 1) _exit(7);
    pause();
    _exit(0);
  }
  close(fds[1]);
  char c;
  assert_int_equal(read(fds[0], &c, 1), 1);
  struct stat sb;
  int spilled = 0;
  for (int i = 0; i < 15000 && !spilled; i++) {
    if (stat(wal, &sb) == 0 && sb.st_size > (8 << 20)) spilled = 1;
    else {
      struct timespec ts = {0, 200000L};
      nanosleep(&ts, NULL);
    }
  }
  kill(pid, SIGKILL);
  int committed = read(fds[0], &c, 1) == 1;
  close(fds[0]);
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFSIGNALED(status));
  assert_true(spilled);
  print_message("killed with %lld bytes of round 1 in the -wal file%s\n",
                (long long)sb.st_size, committed ? " (it committed)" : "");

  fedc_store *st = open_ok(path);
  assert_int_equal(fedc_store_integrity_check(st), 0);
  int32_t k = last_round(st);
  assert_true(k == 0 || k == 1); /* 1: it finished between stat and kill */
  if (committed) assert_int_equal(k, 1);
  if (k == 0) {
    uint8_t *m;
    size_t len;
    fedc_store_update *u;
    int32_t n;
    assert_int_equal(fedc_store_checkpoint(st, 1, &m, &len), FEDC_ENOTFOUND);
    assert_int_equal(fedc_store_round_updates(st, 1, &u, &n), FEDC_ENOTFOUND);
    fedc_store_client cl;
    char fp[65];
    fp_of(1, fp);
    assert_int_equal(fedc_store_client_find(st, fp, &cl), 0);
    assert_int_equal(cl.updates, 0);
    assert_int_equal(fedc_store_checkpoint(st, 0, &m, &len), 0);
    assert_int_equal(len, 1000);
    fedc_free(m);
    assert_int_equal(chunk_rows(path, 1), 0);
  } else {
    uint8_t *m, *want = model_of(1, SPILL_MODEL_BYTES);
    size_t len;
    assert_int_equal(fedc_store_checkpoint(st, 1, &m, &len), 0);
    assert_int_equal(len, SPILL_MODEL_BYTES);
    assert_memory_equal(m, want, len);
    fedc_free(m);
    free(want);
  }
  fedc_store_close(st);
}

static void test_kill9_mid_transaction(void **state) {
  kill_mid_transaction("spill.db");
}

/*
 * Checkpoints of any size (store_chunks.c): with the chunk bound forced
 * down to 1 MiB, round 1's 24 MiB model goes in as 24 chunk rows of the
 * commit's transaction; a kill -9 in its middle leaves no chunk behind,
 * and the small rounds of kill_once, chunked at 64 KiB, are every one
 * intact after a kill at any moment.
 */
static void test_kill9_chunked(void **state) {
  setenv("FEDC_STORE_CHUNK_ABOVE", "1048576", 1);
  kill_mid_transaction("spill-chunked.db");
  setenv("FEDC_STORE_CHUNK_ABOVE", "65536", 1);
  kill_once(3, 30);
  kill_once(4, 60);
  unsetenv("FEDC_STORE_CHUNK_ABOVE");
}

/*
 * The chunked write and read: with the bound at 1000 bytes, checkpoints of
 * 5000 and 2500 bytes become 5 and 3 chunk rows beside an empty blob, one
 * of 800 stays a blob; each reads back whole, put_initial still knows the
 * same initial model (and refuses another of the same length), a damaged
 * chunk is FEDC_ECHECKSUM, and a store written with one bound reads the
 * same with the default one (old stores of single blobs keep working).
 */
static void test_chunked(void **state) {
  char path[256];
  path_of(path, sizeof path, "chunks.db");
  setenv("FEDC_STORE_CHUNK_ABOVE", "1000", 1);
  fedc_store *st = open_ok(path);
  char fp[65];
  fp_of(1, fp);
  assert_int_equal(fedc_store_client_allow(st, fp, "c", NULL), 0);
  uint8_t *m0 = model_of(0, 5000), *other = model_of(9, 5000);
  assert_int_equal(fedc_store_put_initial(st, m0, 5000), 0);
  assert_int_equal(fedc_store_put_initial(st, m0, 5000), 0);
  assert_int_equal(fedc_store_put_initial(st, other, 5000), FEDC_ESTATE);
  free(other);
  commit_ok(st, 1, 2500, NULL, 0);
  commit_ok(st, 2, 800, NULL, 0);
  assert_int_equal(chunk_rows(path, 0), 5);
  assert_int_equal(chunk_rows(path, 1), 3);
  assert_int_equal(chunk_rows(path, 2), 0);
  size_t lens[3] = {5000, 2500, 800};
  for (int pass = 0; pass < 2; pass++) {
    for (int32_t r = 0; r < 3; r++) {
      uint8_t *m, *want = model_of(r, lens[r]);
      size_t len;
      assert_int_equal(fedc_store_checkpoint(st, r, &m, &len), 0);
      assert_int_equal(len, lens[r]);
      assert_memory_equal(m, want, len);
      fedc_free(m);
      free(want);
    }
    fedc_store_close(st);
    unsetenv("FEDC_STORE_CHUNK_ABOVE");
    st = open_ok(path);
  }
  assert_int_equal(fedc_store_put_initial(st, m0, 5000), 0);
  free(m0);
  assert_int_equal(fedc_store_integrity_check(st), 0);
  fedc_store_close(st);

  sqlite3 *db;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, "UPDATE checkpoint_chunks SET bytes = "
                                    "zeroblob(1000) WHERE round = 1 AND seq = 1",
                                NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  st = open_ok(path);
  uint8_t *m;
  size_t len;
  assert_int_equal(fedc_store_checkpoint(st, 1, &m, &len), FEDC_ECHECKSUM);
  assert_msg_has("round 1");
  assert_int_equal(fedc_store_checkpoint(st, 0, &m, &len), 0);
  assert_int_equal(len, 5000);
  fedc_free(m);
  fedc_store_close(st);
}

/* ---- failing writes ----------------------------------------------------- */

/*
 * The file becomes read-only (for root, by acting as "nobody" with the file
 * mode 0444): the store opens and reads, a commit fails with FEDC_EIO naming
 * the path, and nothing is written. In a read-only directory the store
 * cannot even be opened (WAL needs its -shm file): FEDC_EIO saying so.
 */
static void test_readonly(void **state) {
  char dir[128], path[256];
  snprintf(dir, sizeof dir, "%s/ro", tmpdir);
  mkdir(dir, 0777);
  assert_int_equal(chmod(dir, 0777), 0); /* sqlite creates -wal, -shm here */
  snprintf(path, sizeof path, "%s/ro.db", dir);
  unlink(path);
  fedc_store *st = make_store(path, 1);
  commit_ok(st, 1, 3000, NULL, 0);
  fedc_store_close(st);
  assert_int_equal(chmod(path, 0444), 0);
  if (geteuid() == 0 && seteuid(65534) != 0) skip();

  st = open_ok(path);
  assert_int_equal(last_round(st), 1);
  fedc_store_round x = round_of(2, 1);
  uint8_t *m = model_of(2, 3000);
  fedc_store_update one = upd(1, 5, 0.1, 1);
  assert_int_equal(fedc_store_commit_round(st, &x, m, 3000, &one, 1),
                   FEDC_EIO);
  assert_msg_has(path);
  assert_msg_has("readonly");
  char fp[65];
  fp_of(2, fp);
  assert_int_equal(fedc_store_client_allow(st, fp, "x", NULL), FEDC_EIO);
  assert_int_equal(last_round(st), 1);
  fedc_store_close(st);
  if (euid_at_start == 0) assert_int_equal(seteuid(0), 0);

  assert_int_equal(chmod(path, 0644), 0);
  st = open_ok(path);
  assert_int_equal(last_round(st), 1);
  fedc_store_client c;
  fp_of(1, fp);
  assert_int_equal(fedc_store_client_find(st, fp, &c), 0);
  assert_int_equal(c.updates, 0);
  assert_int_equal(fedc_store_integrity_check(st), 0);
  assert_int_equal(fedc_store_commit_round(st, &x, m, 3000, &one, 1), 0);
  free(m);
  fedc_store_close(st); /* the last connection removes -wal and -shm */

  /* a read-only directory: no -shm can be made, so not even reads work */
  assert_int_equal(chmod(path, 0444), 0);
  assert_int_equal(chmod(dir, 0555), 0);
  if (euid_at_start == 0) assert_int_equal(seteuid(65534), 0);
  st = (void *)1;
  assert_int_equal(fedc_store_open(path, &st), FEDC_EIO);
  assert_null(st);
  assert_msg_has(path);
  assert_msg_has("-wal");
  if (euid_at_start == 0) assert_int_equal(seteuid(0), 0);
  assert_int_equal(chmod(dir, 0755), 0);
}

/*
 * A write that fails half way (RLIMIT_FSIZE makes write() fail with EFBIG,
 * as a full disk fails with ENOSPC): FEDC_EIO naming the path, the round is
 * not there, and once the limit is lifted the same commit goes through.
 */
static void test_write_fails(void **state) {
  char path[256];
  path_of(path, sizeof path, "fsize.db");
  fedc_store *st = make_store(path, 2);
  commit_ok(st, 1, 3000, NULL, 0);

  struct rlimit old, small;
  assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
  small = old;
  small.rlim_cur = 256 * 1024;
  signal(SIGXFSZ, SIG_IGN);
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
  const size_t big = 1024 * 1024;
  fedc_store_round x = round_of(2, 2);
  uint8_t *m = model_of(2, big);
  fedc_store_update u[2] = {upd(1, 5, 0.1, 1), upd(2, 6, 0.2, 2)};
  int err = fedc_store_commit_round(st, &x, m, big, u, 2);
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
  signal(SIGXFSZ, SIG_DFL);
  assert_int_equal(err, FEDC_EIO);
  assert_msg_has(path);
  assert_msg_has("commit round 2");
  assert_int_equal(last_round(st), 1);
  fedc_store_update *got;
  int32_t n;
  assert_int_equal(fedc_store_round_updates(st, 2, &got, &n), FEDC_ENOTFOUND);

  assert_int_equal(fedc_store_commit_round(st, &x, m, big, u, 2), 0);
  fedc_store_close(st);
  st = open_ok(path);
  assert_int_equal(last_round(st), 2);
  assert_int_equal(fedc_store_integrity_check(st), 0);
  fedc_store_client c;
  char fp[65];
  fp_of(1, fp);
  assert_int_equal(fedc_store_client_find(st, fp, &c), 0);
  assert_int_equal(c.updates, 1); /* counted once, by the commit that held */
  free(m);
  fedc_store_close(st);
}

/* ---- files that are not fedc stores ------------------------------------ */

static void raw_db(const char *path, const char *sql) {
  sqlite3 *db;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
}

static void test_not_a_store(void **state) {
  char path[256];
  fedc_store *st = (void *)1;
  path_of(path, sizeof path, "text.db");
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  for (int i = 0; i < 100; i++) fputs("this is not a database\n", f);
  fclose(f);
  assert_int_equal(fedc_store_open(path, &st), FEDC_EFORMAT);
  assert_null(st);
  assert_msg_has(path);
  assert_msg_has("not a sqlite database");

  path_of(path, sizeof path, "v7.db");
  raw_db(path, "PRAGMA application_id=1717921891; PRAGMA user_version=7;"
               "CREATE TABLE t(x);");
  assert_int_equal(fedc_store_open(path, &st), FEDC_EFORMAT);
  assert_msg_has(path);
  assert_msg_has("schema version 7");

  path_of(path, sizeof path, "foreign.db");
  raw_db(path, "CREATE TABLE photos(id INTEGER PRIMARY KEY, data BLOB);");
  assert_int_equal(fedc_store_open(path, &st), FEDC_EFORMAT);
  assert_msg_has("not a fedc store");

  path_of(path, sizeof path, "foreign1.db");
  raw_db(path, "PRAGMA user_version=1; CREATE TABLE t(x);");
  assert_int_equal(fedc_store_open(path, &st), FEDC_EFORMAT);
  assert_msg_has("not a fedc store");

  /* a directory where the file should be, and no path at all */
  assert_int_equal(fedc_store_open(tmpdir, &st), FEDC_EIO);
  assert_msg_has(tmpdir);
  assert_int_equal(fedc_store_open(NULL, &st), FEDC_EINVAL);

  /* the refused files were not modified into stores */
  path_of(path, sizeof path, "empty.db");
  f = fopen(path, "w");
  fclose(f);
  st = open_ok(path); /* an empty file is a new store */
  fedc_store_close(st);
}

/* ---- allocation failures ------------------------------------------------ */

/* Everything that allocates, once; returns the first error after cleaning
 * up what it had. */
static int alloc_sequence(const char *path) {
  fedc_store *st;
  int err = fedc_store_open(path, &st);
  if (err) return err;
  char fp[65], id[33];
  int32_t cid, n;
  uint8_t *m = model_of(1, 800);
  fedc_store_update u = upd(1, 3, 0.5, 1);
  fedc_store_round x = round_of(1, 1);
  fedc_store_client *cs = NULL, c;
  fedc_store_round *rs = NULL;
  fedc_store_update *us = NULL;
  uint8_t *ck = NULL;
  size_t len;
  fp_of(1, fp);
  if ((err = fedc_store_job_bind(st, "{}", id)) ||
      (err = fedc_store_client_allow(st, fp, "a", &cid)) ||
      (err = fedc_store_client_find(st, fp, &c)) ||
      (err = fedc_store_put_initial(st, m, 800)) ||
      (err = fedc_store_commit_round(st, &x, m, 800, &u, 1)) ||
      (err = fedc_store_checkpoint(st, 1, &ck, &len)) ||
      (err = fedc_store_rounds(st, &rs, &n)) ||
      (err = fedc_store_round_updates(st, 1, &us, &n)) ||
      (err = fedc_store_client_list(st, &cs, &n)) ||
      (err = fedc_store_integrity_check(st)))
    goto out;
out:
  fedc_free(ck);
  fedc_free(rs);
  fedc_free(us);
  fedc_free(cs);
  free(m);
  fedc_store_close(st);
  return err;
}

static void test_alloc_failures(void **state) {
  char path[256];
  int k, failures = 0;
  for (k = 1; k < 100; k++) {
    path_of(path, sizeof path, "alloc.db");
    int64_t live = fedc_alloc_live();
    fedc_alloc_fail_after(k, 1);
    int err = alloc_sequence(path);
    fedc_alloc_fail_after(0, 0);
    assert_int_equal(fedc_alloc_live(), live);
    if (err == 0) break;
    if (err != FEDC_ENOMEM)
      fail_msg("allocation %d failed as %s: %s", k, fedc_err_name(err),
               fedc_error_msg());
    assert_msg_has("out of memory");
    failures++;
    fedc_store *st = open_ok(path);
    assert_int_equal(fedc_store_integrity_check(st), 0);
    fedc_store_close(st);
  }
  assert_true(k < 100);
  print_message("%d allocation failures, each FEDC_ENOMEM\n", failures);
  assert_true(failures >= 6); /* open x2, checkpoint, three lists */
}


/* The daemon's hold: a second locker of the same file is refused at once,
 * the subcommands' unlocked opens still work beside it, and a WAL deleted
 * or replaced under the locked store fails the next write (FEDC_EIO). */
static void test_lock_and_wal_check(void **state) {
  char path[256], wal[300], fp[65];
  path_of(path, sizeof path, "locked.db");
  snprintf(wal, sizeof wal, "%s-wal", path);
  fedc_store *a, *b;
  assert_int_equal(fedc_store_open(path, &a), 0);
  assert_int_equal(fedc_store_lock(a), 0);
  assert_int_equal(fedc_store_open(path, &b), 0);
  assert_int_equal(fedc_store_lock(b), FEDC_EIO);
  assert_msg_has("in use by another coordinator");
  fp_of(1, fp);
  assert_int_equal(fedc_store_client_allow(b, fp, "x", NULL), 0); /* `allow` */
  fedc_store_close(b);
  fp_of(2, fp);
  assert_int_equal(fedc_store_client_allow(a, fp, "y", NULL), 0);
  assert_int_equal(unlink(wal), 0);
  fp_of(3, fp);
  assert_int_equal(fedc_store_client_allow(a, fp, "z", NULL), FEDC_EIO);
  assert_msg_has("was deleted");
  /* a replacement is no better */
  int fd = open(wal, O_CREAT | O_WRONLY, 0600);
  assert_true(fd >= 0);
  close(fd);
  assert_int_equal(fedc_store_client_allow(a, fp, "z", NULL), FEDC_EIO);
  assert_msg_has("was replaced");
  fedc_store_close(a);
  unlink(wal);
  /* closed: the lock is gone */
  assert_int_equal(fedc_store_open(path, &b), 0);
  assert_int_equal(fedc_store_lock(b), 0);
  fedc_store_close(b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_new_store, setup, teardown),
      cmocka_unit_test_setup_teardown(test_job_bind, setup, teardown),
      cmocka_unit_test_setup_teardown(test_clients, setup, teardown),
      cmocka_unit_test_setup_teardown(test_initial, setup, teardown),
      cmocka_unit_test_setup_teardown(test_commit_rounds, setup, teardown),
      cmocka_unit_test_setup_teardown(test_damaged_checkpoint, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_kill9_atomic, setup, teardown),
      cmocka_unit_test_setup_teardown(test_chunked, setup, teardown),
      cmocka_unit_test_setup_teardown(test_kill9_chunked, setup, teardown),
      cmocka_unit_test_setup_teardown(test_kill9_mid_transaction, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_readonly, setup, teardown),
      cmocka_unit_test_setup_teardown(test_write_fails, setup, teardown),
      cmocka_unit_test_setup_teardown(test_not_a_store, setup, teardown),
      cmocka_unit_test_setup_teardown(test_alloc_failures, setup, teardown),
      cmocka_unit_test_setup_teardown(test_lock_and_wal_check, setup, teardown),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
