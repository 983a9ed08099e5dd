/*
 * faults.c - fault-injection test hooks of fedc-coordinator (faults.h,
 * docs/hardening.md). Tests make the daemon's Nth allocation, or its Nth
 * write to the store, fail while it serves a job, then check that it
 * answered with a clean error or stopped with exit code 4, leaked nothing,
 * and left a store that passes PRAGMA integrity_check and resumes.
 *
 * Allocation failures come from the allocator's own hook
 * (fedc_alloc_fail_after); a thin counting layer installed under it with
 * fedc_alloc_set tells the test how many allocations a run made, so that a
 * sweep knows how far N goes. Store failures come from a sqlite VFS that
 * wraps the default one and fails the Nth xWrite, xSync or xTruncate on any
 * of the store's files (the database, its WAL, a journal) with the error a
 * real disk would give: SQLITE_FULL, or SQLITE_IOERR_WRITE / _FSYNC /
 * _TRUNCATE. sqlite then runs its real error paths (statement and
 * transaction rollback, WAL recovery on the next open).
 *
 * A commit failure (FEDC_FAIL_COMMIT_AFTER) makes the Nth commit attempt
 * (counting those that got past the engine's prepare) fail before its
 * durable write, as an out-of-memory while encoding would: the coordinator
 * must abort the prepare, leaving the engine (its DP ledger included) as it
 * was, and retry the round.
 *
 * The library reads no environment: fedc-coordinator's main.c reads the
 * FEDC_FAIL_* variables and passes their values in (fedc_coordinator_params);
 * nothing here is active unless one is given. The counters are atomic
 * because the store and most allocations are used on libuv's worker
 * threads.
 */
#include "faults.h"

#include <sqlite3.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/log.h"

#define ALLOC_VAR "FEDC_FAIL_ALLOC_AFTER"
#define STORE_VAR "FEDC_FAIL_STORE_AFTER"
#define COMMIT_VAR "FEDC_FAIL_COMMIT_AFTER"

typedef struct hook {
  int on;         /* the variable is set */
  int64_t n;      /* fail the nth operation after arming; 0 = count only */
  int sticky;     /* and every one after it */
  int full;       /* store: SQLITE_FULL rather than an I/O error */
} hook;

static hook alloc_hook, store_hook, commit_hook;
static _Atomic int armed;
static _Atomic int64_t allocs, store_ops, store_failures, commits;

/*
 * "N[,word]..." with N a decimal integer >= 0; each word "sticky", or
 * "full" or "ioerr" where `words` (the usage the error shows) names them.
 * FEDC_ECONFIG naming the variable otherwise.
 */
static int parse(const char *var, const char *v, const char *words, hook *h) {
  char *end;
  long long n = strtoll(v, &end, 10);
  if (end == v || n < 0) goto bad;
  h->n = n;
  while (*end == ',') {
    const char *w = end + 1;
    size_t len = strcspn(w, ",");
    if (len == 6 && strncmp(w, "sticky", 6) == 0) h->sticky = 1;
    else if (len == 4 && strncmp(w, "full", 4) == 0 && strstr(words, "full")) h->full = 1;
    else if (len == 5 && strncmp(w, "ioerr", 5) == 0 && strstr(words, "ioerr")) h->full = 0;
    else goto bad;
    end = (char *)w + len;
  }
  if (*end != '\0') goto bad;
  h->on = 1;
  return 0;
bad:
  return fedc_error_set(FEDC_ECONFIG, "%s=%s: want N[,%s] with N >= 0", var, v, words);
}

/* ---- allocations: counted under the allocator's own failure hook ---------- */

static void *count_malloc(size_t size) {
  if (atomic_load(&armed)) atomic_fetch_add(&allocs, 1);
  return malloc(size);
}

static void *count_calloc(size_t count, size_t size) {
  if (atomic_load(&armed)) atomic_fetch_add(&allocs, 1);
  return calloc(count, size);
}

static void *count_realloc(void *p, size_t size) {
  if (atomic_load(&armed)) atomic_fetch_add(&allocs, 1);
  return realloc(p, size);
}

/* ---- the store: a VFS whose Nth write fails --------------------------------- */

typedef struct fault_file {
  sqlite3_file base;
  sqlite3_file *real; /* the wrapped VFS's file, right after this struct */
} fault_file;

static sqlite3_vfs *real_vfs;
static sqlite3_vfs fault_vfs;

/* 1 when this write-like operation must fail (counts it when armed). */
static int store_fails(void) {
  if (!atomic_load(&armed)) return 0;
  int64_t k = atomic_fetch_add(&store_ops, 1) + 1;
  int64_t n = store_hook.n;
  if (n > 0 && (k == n || (store_hook.sticky && k > n))) {
    atomic_fetch_add(&store_failures, 1);
    return 1;
  }
  return 0;
}

#define REAL(f) (((fault_file *)(f))->real)

static int f_close(sqlite3_file *f) { return REAL(f)->pMethods->xClose(REAL(f)); }

static int f_read(sqlite3_file *f, void *buf, int n, sqlite3_int64 off) {
  return REAL(f)->pMethods->xRead(REAL(f), buf, n, off);
}

static int f_write(sqlite3_file *f, const void *buf, int n, sqlite3_int64 off) {
  if (store_fails()) return store_hook.full ? SQLITE_FULL : SQLITE_IOERR_WRITE;
  return REAL(f)->pMethods->xWrite(REAL(f), buf, n, off);
}

static int f_truncate(sqlite3_file *f, sqlite3_int64 size) {
  if (store_fails()) return SQLITE_IOERR_TRUNCATE;
  return REAL(f)->pMethods->xTruncate(REAL(f), size);
}

static int f_sync(sqlite3_file *f, int flags) {
  if (store_fails()) return SQLITE_IOERR_FSYNC;
  return REAL(f)->pMethods->xSync(REAL(f), flags);
}

static int f_file_size(sqlite3_file *f, sqlite3_int64 *size) {
  return REAL(f)->pMethods->xFileSize(REAL(f), size);
}

static int f_lock(sqlite3_file *f, int lock) { return REAL(f)->pMethods->xLock(REAL(f), lock); }

static int f_unlock(sqlite3_file *f, int lock) {
  return REAL(f)->pMethods->xUnlock(REAL(f), lock);
}

static int f_check_reserved(sqlite3_file *f, int *out) {
  return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

static int f_file_control(sqlite3_file *f, int op, void *arg) {
  return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}

static int f_sector_size(sqlite3_file *f) { return REAL(f)->pMethods->xSectorSize(REAL(f)); }

static int f_device(sqlite3_file *f) {
  return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

static int f_shm_map(sqlite3_file *f, int page, int size, int extend, void volatile **out) {
  return REAL(f)->pMethods->xShmMap(REAL(f), page, size, extend, out);
}

static int f_shm_lock(sqlite3_file *f, int off, int n, int flags) {
  return REAL(f)->pMethods->xShmLock(REAL(f), off, n, flags);
}

static void f_shm_barrier(sqlite3_file *f) { REAL(f)->pMethods->xShmBarrier(REAL(f)); }

static int f_shm_unmap(sqlite3_file *f, int del) {
  return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}

static int f_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **out) {
  return REAL(f)->pMethods->xFetch(REAL(f), off, n, out);
}

static int f_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p) {
  return REAL(f)->pMethods->xUnfetch(REAL(f), off, p);
}

/* The same methods as version 3 (WAL's shared memory, mmap) and version 1,
 * to match what the wrapped file offers. */
static const sqlite3_io_methods methods_v3 = {
    3,          f_close,         f_read,          f_write,       f_truncate,
    f_sync,     f_file_size,     f_lock,          f_unlock,      f_check_reserved,
    f_file_control, f_sector_size, f_device,      f_shm_map,     f_shm_lock,
    f_shm_barrier, f_shm_unmap,  f_fetch,         f_unfetch};
static const sqlite3_io_methods methods_v1 = {
    1,          f_close,         f_read,          f_write,       f_truncate,
    f_sync,     f_file_size,     f_lock,          f_unlock,      f_check_reserved,
    f_file_control, f_sector_size, f_device,      NULL,          NULL,
    NULL,       NULL,            NULL,            NULL};

/* sqlite calls xClose whenever pMethods is set, even after a failed open:
 * mirror the wrapped file's state exactly. */
static int f_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags,
                  int *out_flags) {
  (void)vfs;
  fault_file *f = (fault_file *)file;
  f->real = (sqlite3_file *)(f + 1);
  f->real->pMethods = NULL;
  int rc = real_vfs->xOpen(real_vfs, name, f->real, flags, out_flags);
  const sqlite3_io_methods *m = f->real->pMethods;
  f->base.pMethods = m == NULL ? NULL : m->iVersion >= 3 ? &methods_v3 : &methods_v1;
  return rc;
}

/* Every other VFS method is the wrapped one's, called with its pAppData. */
static int install_vfs(void) {
  real_vfs = sqlite3_vfs_find(NULL);
  if (real_vfs == NULL) return fedc_error_set(FEDC_EIO, "%s: sqlite has no VFS", STORE_VAR);
  fault_vfs = *real_vfs;
  fault_vfs.pNext = NULL;
  fault_vfs.zName = "fedc-faults";
  fault_vfs.szOsFile = (int)sizeof(fault_file) + real_vfs->szOsFile;
  fault_vfs.xOpen = f_open;
  if (sqlite3_vfs_register(&fault_vfs, 1) != SQLITE_OK)
    return fedc_error_set(FEDC_EIO, "%s: cannot register the VFS", STORE_VAR);
  return 0;
}

/* ---- the hooks' lifecycle --------------------------------------------------- */

int fedc__faults_init(const char *a, const char *s, const char *k) {
  int rc = 0;
  if (a && *a && (rc = parse(ALLOC_VAR, a, "sticky", &alloc_hook)) != 0) return rc;
  if (s && *s && (rc = parse(STORE_VAR, s, "ioerr|full][,sticky", &store_hook)) != 0) return rc;
  if (k && *k && (rc = parse(COMMIT_VAR, k, "sticky", &commit_hook)) != 0) return rc;
  if (alloc_hook.on) {
    /* the C library's functions, counted: blocks from before stay valid */
    fedc_allocator counting = {count_malloc, count_calloc, count_realloc, free};
    fedc_alloc_set(&counting);
  }
  if (store_hook.on && real_vfs == NULL) rc = install_vfs();
  return rc;
}

int fedc__faults_commit(void) {
  if (!commit_hook.on || !atomic_load(&armed)) return 0;
  int64_t k = atomic_fetch_add(&commits, 1) + 1;
  if (commit_hook.n > 0 && (k == commit_hook.n || (commit_hook.sticky && k > commit_hook.n)))
    return fedc_error_set(FEDC_ENOMEM, "%s: commit %lld fails (out of memory, injected)",
                          COMMIT_VAR, (long long)k);
  return 0;
}

void fedc__faults_arm(void) {
  if (!alloc_hook.on && !store_hook.on && !commit_hook.on) return;
  atomic_store(&allocs, 0);
  atomic_store(&commits, 0);
  atomic_store(&store_ops, 0);
  atomic_store(&store_failures, 0);
  atomic_store(&armed, 1);
  if (alloc_hook.on) fedc_alloc_fail_after(alloc_hook.n, alloc_hook.sticky);
  fedc_log_warn("msg=\"test hook armed\" alloc_fail_at=%lld%s store_fail_at=%lld%s%s",
                (long long)alloc_hook.n, alloc_hook.sticky ? ",sticky" : "",
                (long long)store_hook.n, store_hook.full ? ",full" : "",
                store_hook.sticky ? ",sticky" : "");
}

void fedc__faults_report(void) {
  if (!atomic_load(&armed)) return;
  atomic_store(&armed, 0);
  if (alloc_hook.on) fedc_alloc_fail_after(0, 0);
  fedc_log_warn("msg=\"test hook report\" allocs=%lld store_ops=%lld store_failures=%lld "
                "live_blocks=%lld",
                (long long)atomic_load(&allocs), (long long)atomic_load(&store_ops),
                (long long)atomic_load(&store_failures), (long long)fedc_alloc_live());
}
