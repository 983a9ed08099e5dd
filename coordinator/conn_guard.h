/*
 * conn_guard.h - who may open a connection, and for how long a handshake
 * may last: the coordinator's defence against slow and flooding peers at
 * the transport level, before any crypto is spent.
 *
 * A guard belongs to one TLS transport. Every accepted socket asks it for
 * admission (fedc_conn_guard_admit) with the peer's address; the answer is
 * decided from counters only (no allocation but the source's table entry,
 * no crypto), so refusing is cheap:
 *
 *   - per source (an IPv4 address, or an IPv6 /64): at most
 *     max_conns_per_source connections open, and new handshakes limited by
 *     a token bucket (handshake_rate per second, handshake_burst at once);
 *   - overall: at most `slots` connections (derived from RLIMIT_NOFILE);
 *     the last reserved_share of them only for preferred sources, those
 *     that completed a handshake with a certificate verified against the CA
 *     in the last 10 minutes (enrolled clients keep being served while
 *     unauthenticated peers are turned away);
 *   - a connection whose handshake is not done handshake_timeout_s after it
 *     was accepted is expired through its callback, whatever bytes it sent.
 *
 * Refusals, expiries, aborted and failed handshakes are counted (for
 * /metrics) and logged at most once per source per 10 s, with the counts
 * since the last line (and the last failure's reason). Everything runs on the loop thread.
 */
#ifndef FEDC_CONN_GUARD_H
#define FEDC_CONN_GUARD_H

#include <stdint.h>
#include <uv.h>

typedef struct fedc_conn_guard fedc_conn_guard;
typedef struct fedc_conn_guard_slot fedc_conn_guard_slot;

/* Limits; 0 turns one off (handshake_timeout_s 0: no deadline). */
typedef struct fedc_conn_limits {
  double handshake_timeout_s;
  int32_t max_conns_per_source;
  double handshake_rate;   /* new handshakes per second and source */
  int32_t handshake_burst; /* bucket size */
  int32_t slots;           /* connections in all; 0: from RLIMIT_NOFILE */
  double reserved_share;   /* of slots, kept for preferred sources */
} fedc_conn_limits;

/* Counters since start, and gauges. */
typedef struct fedc_conn_guard_stats {
  uint64_t refused_per_source; /* over max_conns_per_source */
  uint64_t refused_rate;       /* handshake bucket empty */
  uint64_t refused_overload;   /* no slot left (for this source) */
  uint64_t handshake_timeouts; /* expired by the deadline */
  uint64_t handshakes_aborted; /* peer left before the handshake ended */
  uint64_t handshakes_done;
  uint64_t handshakes_resumed; /* of those, by session ticket */
  int32_t connections;         /* admitted and open now */
  int32_t pending;             /* of those, handshake not done */
  int32_t slots;
  int32_t sources; /* source entries tracked */
} fedc_conn_guard_stats;

/* expire: close the connection now (its handshake deadline passed); ud is
 * the pointer given to admit. */
typedef void (*fedc_conn_guard_expire_cb)(void *ud);

/* A guard on loop (NULL: no deadline, limits still apply). FEDC_ENOMEM. */
int fedc_conn_guard_new(uv_loop_t *loop, const fedc_conn_limits *lim,
                        fedc_conn_guard **out);
/* Free once every slot is released; the timer's close finishes it. */
void fedc_conn_guard_free(fedc_conn_guard *g);

/*
 * Admit a connection from remote ("1.2.3.4:5", "[::1]:5"). 0 and a slot,
 * or FEDC_EREFUSED (counted, logged later; the caller closes the socket
 * without a word). The slot stays pending until fedc_conn_guard_done.
 */
int fedc_conn_guard_admit(fedc_conn_guard *g, const char *remote,
                          fedc_conn_guard_expire_cb expire, void *ud,
                          fedc_conn_guard_slot **out);
/* The handshake completed; verified: with a certificate that chains to the
 * CA (the source becomes preferred); resumed: by session ticket. */
void fedc_conn_guard_done(fedc_conn_guard_slot *s, int verified, int resumed);
/* The handshake failed (a bad certificate, garbage): counted for the
 * source's next log line, with why (the last reason is shown). */
void fedc_conn_guard_failed(fedc_conn_guard_slot *s, const char *why);
/* The connection is gone (failed: it ended on a handshake error, already
 * counted by its owner; otherwise a pending one counts as aborted). */
void fedc_conn_guard_release(fedc_conn_guard_slot *s, int failed);
void fedc_conn_guard_stats_get(const fedc_conn_guard *g,
                               fedc_conn_guard_stats *out);

/* The connection budget RLIMIT_NOFILE allows: the soft limit less a margin
 * for the store, logs and the status port (at least 16). */
int32_t fedc_conn_guard_fd_slots(void);
/* Log a warning when RLIMIT_NOFILE is below what lim needs (or below 4096
 * when lim derives its slots from the limit). */
void fedc_conn_guard_fd_warn(const fedc_conn_limits *lim);

#endif
