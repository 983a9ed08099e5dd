/*
 * conn_guard.c - admission of connections by source and overall slots,
 * the handshake deadline, and the once-per-interval log of what was
 * refused (see conn_guard.h).
 *
 * Sources live in a chained hash table keyed by address text (an IPv6
 * address is cut to its /64, since one host usually owns a whole /64).
 * An entry holds the source's open connections, its token bucket, until
 * when it is preferred, and the refusals not yet logged; entries with
 * nothing open and nothing to say are dropped after a minute, and the
 * table holds at most MAX_SOURCES (beyond that a new source is admitted
 * on the overall limits alone). Pending handshakes sit in a list in
 * admission order, which is also deadline order: one repeating timer
 * expires the overdue ones from its head and, once a second, walks the
 * table to log and to drop stale entries.
 */
#include "conn_guard.h"

#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/log.h"

#define NBUCKETS 4096
#define MAX_SOURCES 65536
#define TICK_MS 250
#define LOG_INTERVAL_MS 10000
#define PREFER_MS (600 * 1000)
#define STALE_MS 60000
#define FD_MARGIN 64
#define FD_RECOMMENDED 4096

typedef struct source {
  struct source *next;
  char key[64];
  int32_t conns;
  double tokens;
  uint64_t refill_ms, last_ms, prefer_until_ms, last_log_ms;
  /* since the last log line */
  uint32_t r_src, r_rate, r_over, n_timeout, n_abort, n_fail;
  char last_fail[160]; /* the reason of the last failed handshake */
} source;

struct fedc_conn_guard_slot {
  fedc_conn_guard *g;
  source *src; /* NULL: untracked (table full) */
  fedc_conn_guard_expire_cb expire;
  void *ud;
  uint64_t t0_ms;
  struct fedc_conn_guard_slot *prev, *next; /* pending list */
  int pending, preferred;
};

struct fedc_conn_guard {
  fedc_conn_limits lim;
  uv_timer_t *timer; /* its own block: freed in the close callback */
  source *buckets[NBUCKETS];
  int32_t n_sources;
  fedc_conn_guard_slot *head, *tail; /* pending handshakes, oldest first */
  int32_t open, open_preferred;
  int closing;
  unsigned ticks;
  fedc_conn_guard_stats st;
};

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int32_t fedc_conn_guard_fd_slots(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
    return 1 << 20;
  long n = (long)rl.rlim_cur - FD_MARGIN;
  if (n > (1 << 20)) n = 1 << 20;
  return n < 16 ? 16 : (int32_t)n;
}

/*
 * At start: say when the descriptor limit is low for the limits asked for.
 * Below FD_RECOMMENDED the coordinator still runs, but a few hundred slow
 * peers fill its slots and enrolled clients live on the reserved share.
 */
void fedc_conn_guard_fd_warn(const fedc_conn_limits *lim) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return;
  long want = lim && lim->slots > 0 ? (long)lim->slots + FD_MARGIN : FD_RECOMMENDED;
  if ((long)rl.rlim_cur < want)
    fedc_log_warn("descriptor limit is low: RLIMIT_NOFILE=%ld (hard %ld), "
                  "%ld wanted for [server] max_connections=%d; connections "
                  "beyond %d are refused (raise LimitNOFILE= in the unit, or "
                  "ulimit -n)",
                  (long)rl.rlim_cur,
                  rl.rlim_max == RLIM_INFINITY ? -1L : (long)rl.rlim_max, want,
                  lim ? (int)lim->slots : 0, (int)fedc_conn_guard_fd_slots());
}

/* "1.2.3.4:5" -> "1.2.3.4"; "[a:b:c:d:e::1]:5" -> "a:b:c:d::/64". */
static void source_key(const char *remote, char *key, size_t n) {
  if (remote == NULL) remote = "";
  if (remote[0] == '[') {
    const char *end = strchr(remote, ']');
    size_t len = end ? (size_t)(end - remote - 1) : strlen(remote + 1);
    char a[48];
    if (len >= sizeof a) len = sizeof a - 1;
    memcpy(a, remote + 1, len);
    a[len] = '\0';
    /* an IPv4-mapped address is that IPv4 address */
    if (strncmp(a, "::ffff:", 7) == 0 && strchr(a + 7, '.')) {
      snprintf(key, n, "%s", a + 7);
      return;
    }
    unsigned char bin[16];
    if (uv_inet_pton(AF_INET6, a, bin) == 0) {
      memset(bin + 8, 0, 8);
      char t[48];
      if (uv_inet_ntop(AF_INET6, bin, t, sizeof t) == 0) {
        snprintf(key, n, "%.46s/64", t);
        return;
      }
    }
    snprintf(key, n, "%s", a);
    return;
  }
  const char *colon = strrchr(remote, ':');
  size_t len = colon ? (size_t)(colon - remote) : strlen(remote);
  if (len >= n) len = n - 1;
  memcpy(key, remote, len);
  key[len] = '\0';
}

static unsigned hash_key(const char *k) {
  unsigned h = 2166136261u;
  for (; *k; k++) h = (h ^ (unsigned char)*k) * 16777619u;
  return h % NBUCKETS;
}

static source *source_get(fedc_conn_guard *g, const char *key, uint64_t now) {
  unsigned b = hash_key(key);
  for (source *s = g->buckets[b]; s; s = s->next)
    if (strcmp(s->key, key) == 0) return s;
  if (g->n_sources >= MAX_SOURCES) return NULL;
  source *s = fedc_calloc(1, sizeof *s);
  if (s == NULL) return NULL;
  snprintf(s->key, sizeof s->key, "%s", key);
  s->tokens = g->lim.handshake_burst > 0 ? g->lim.handshake_burst : 1;
  s->refill_ms = now;
  s->next = g->buckets[b];
  g->buckets[b] = s;
  g->n_sources++;
  return s;
}

#define QUIET(s) (!((s)->r_src | (s)->r_rate | (s)->r_over | (s)->n_timeout | (s)->n_abort | (s)->n_fail))

static void source_log(source *s, uint64_t now) {
  if (QUIET(s)) return;
  if (s->last_log_ms != 0 && now - s->last_log_ms < LOG_INTERVAL_MS) return;
  fedc_log_warn("tls source=%s refused_per_source=%u refused_rate=%u "
                "refused_overload=%u handshake_timeouts=%u "
                "handshakes_aborted=%u handshakes_failed=%u open=%d%s%s%s "
                "(counts since the last line)",
                s->key, s->r_src, s->r_rate, s->r_over, s->n_timeout,
                s->n_abort, s->n_fail, (int)s->conns,
                s->n_fail ? " last_failure=\"" : "", s->n_fail ? s->last_fail : "",
                s->n_fail ? "\"" : "");
  s->r_src = s->r_rate = s->r_over = s->n_timeout = s->n_abort = s->n_fail = 0;
  s->last_log_ms = now;
}

/* Log what is due, drop stale entries. */
static void sweep_sources(fedc_conn_guard *g, uint64_t now, int all) {
  for (int b = 0; b < NBUCKETS; b++) {
    source **pp = &g->buckets[b];
    while (*pp) {
      source *s = *pp;
      if (all) s->last_log_ms = 0;
      source_log(s, now);
      int quiet = QUIET(s);
      if (all || (s->conns == 0 && quiet && now - s->last_ms > STALE_MS &&
                  now > s->prefer_until_ms)) {
        if (s->conns == 0) {
          *pp = s->next;
          fedc_free(s);
          g->n_sources--;
          continue;
        }
      }
      pp = &s->next;
    }
  }
}

static void pending_unlink(fedc_conn_guard_slot *sl) {
  fedc_conn_guard *g = sl->g;
  if (!sl->pending) return;
  if (sl->prev) sl->prev->next = sl->next;
  else g->head = sl->next;
  if (sl->next) sl->next->prev = sl->prev;
  else g->tail = sl->prev;
  sl->prev = sl->next = NULL;
  sl->pending = 0;
  g->st.pending--;
}

static void on_tick(uv_timer_t *t) {
  fedc_conn_guard *g = t->data;
  uint64_t now = now_ms();
  uint64_t limit = (uint64_t)(g->lim.handshake_timeout_s * 1000.0);
  /* oldest first: stop at the first one still in time */
  while (limit > 0 && g->head && now - g->head->t0_ms >= limit) {
    fedc_conn_guard_slot *sl = g->head;
    pending_unlink(sl);
    g->st.handshake_timeouts++;
    if (sl->src) sl->src->n_timeout++;
    sl->expire(sl->ud); /* the owner closes; release comes later */
  }
  if (++g->ticks % (1000 / TICK_MS) == 0) sweep_sources(g, now, 0);
}

static void on_timer_closed(uv_handle_t *h) {
  fedc_conn_guard *g = h->data;
  fedc_free(h);
  fedc_free(g);
}

static void guard_finish(fedc_conn_guard *g) {
  sweep_sources(g, now_ms(), 1);
  if (g->timer) {
    uv_timer_stop(g->timer);
    uv_close((uv_handle_t *)g->timer, on_timer_closed);
  } else {
    fedc_free(g);
  }
}

int fedc_conn_guard_new(uv_loop_t *loop, const fedc_conn_limits *lim,
                        fedc_conn_guard **out) {
  fedc_conn_guard *g = fedc_calloc(1, sizeof *g);
  if (g == NULL) return fedc_error_set(FEDC_ENOMEM, "out of memory");
  if (lim) g->lim = *lim;
  if (g->lim.slots <= 0) g->lim.slots = fedc_conn_guard_fd_slots();
  if (g->lim.reserved_share < 0) g->lim.reserved_share = 0;
  if (g->lim.reserved_share > 0.9) g->lim.reserved_share = 0.9;
  g->st.slots = g->lim.slots;
  if (loop) {
    g->timer = fedc_malloc(sizeof *g->timer);
    if (g->timer == NULL) {
      fedc_free(g);
      return fedc_error_set(FEDC_ENOMEM, "out of memory");
    }
    uv_timer_init(loop, g->timer);
    g->timer->data = g;
    uv_timer_start(g->timer, on_tick, TICK_MS, TICK_MS);
    uv_unref((uv_handle_t *)g->timer); /* never keeps the loop alive */
  }
  *out = g;
  return 0;
}

void fedc_conn_guard_free(fedc_conn_guard *g) {
  if (g == NULL) return;
  g->closing = 1;
  if (g->open == 0) guard_finish(g);
}

/*
 * The admission decision, in the order that costs the attacker most:
 * overall slots first (a source that is not preferred gets only the
 * unreserved share), then the source's open connections, then its
 * handshake bucket. A refused connection spends no token.
 */
int fedc_conn_guard_admit(fedc_conn_guard *g, const char *remote,
                          fedc_conn_guard_expire_cb expire, void *ud,
                          fedc_conn_guard_slot **out) {
  uint64_t now = now_ms();
  char key[64];
  source_key(remote, key, sizeof key);
  source *s = source_get(g, key, now);
  if (s) s->last_ms = now;
  int preferred = s && now < s->prefer_until_ms;
  int32_t open_cap =
      preferred ? g->lim.slots
                : (int32_t)((double)g->lim.slots * (1.0 - g->lim.reserved_share));
  if (g->open >= open_cap) {
    g->st.refused_overload++;
    if (s) s->r_over++;
    return FEDC_EREFUSED;
  }
  if (s && g->lim.max_conns_per_source > 0 &&
      s->conns >= g->lim.max_conns_per_source) {
    g->st.refused_per_source++;
    s->r_src++;
    return FEDC_EREFUSED;
  }
  if (s && g->lim.handshake_rate > 0) {
    double cap = g->lim.handshake_burst > 0 ? g->lim.handshake_burst : 1;
    s->tokens += (double)(now - s->refill_ms) / 1000.0 * g->lim.handshake_rate;
    if (s->tokens > cap) s->tokens = cap;
    s->refill_ms = now;
    if (s->tokens < 1.0) {
      g->st.refused_rate++;
      s->r_rate++;
      return FEDC_EREFUSED;
    }
    s->tokens -= 1.0;
  }
  fedc_conn_guard_slot *sl = fedc_calloc(1, sizeof *sl);
  if (sl == NULL) return fedc_error_set(FEDC_ENOMEM, "out of memory");
  sl->g = g;
  sl->src = s;
  sl->expire = expire;
  sl->ud = ud;
  sl->t0_ms = now;
  sl->pending = 1;
  sl->prev = g->tail;
  if (g->tail) g->tail->next = sl;
  else g->head = sl;
  g->tail = sl;
  g->st.pending++;
  if (s) s->conns++;
  g->open++;
  g->st.connections = g->open;
  *out = sl;
  return 0;
}

void fedc_conn_guard_done(fedc_conn_guard_slot *sl, int verified, int resumed) {
  if (sl == NULL || !sl->pending) return;
  fedc_conn_guard *g = sl->g;
  pending_unlink(sl);
  g->st.handshakes_done++;
  if (resumed) g->st.handshakes_resumed++;
  if (verified && sl->src) sl->src->prefer_until_ms = now_ms() + PREFER_MS;
}

void fedc_conn_guard_failed(fedc_conn_guard_slot *sl, const char *why) {
  if (sl == NULL || !sl->pending || sl->src == NULL) return;
  sl->src->n_fail++;
  /* quotes would end the log field */
  size_t k = 0;
  for (const char *p = why ? why : ""; *p && k + 1 < sizeof sl->src->last_fail; p++)
    sl->src->last_fail[k++] = (*p == '"' || (unsigned char)*p < 0x20) ? '\'' : *p;
  sl->src->last_fail[k] = '\0';
}

void fedc_conn_guard_release(fedc_conn_guard_slot *sl, int failed) {
  if (sl == NULL) return;
  fedc_conn_guard *g = sl->g;
  if (sl->pending) {
    pending_unlink(sl);
    if (!failed) {
      g->st.handshakes_aborted++;
      if (sl->src) sl->src->n_abort++;
    }
  }
  if (sl->src) {
    sl->src->conns--;
    sl->src->last_ms = now_ms();
  }
  g->open--;
  g->st.connections = g->open;
  fedc_free(sl);
  if (g->closing && g->open == 0) guard_finish(g);
}

void fedc_conn_guard_stats_get(const fedc_conn_guard *g,
                               fedc_conn_guard_stats *out) {
  *out = g->st;
  out->sources = g->n_sources;
}
