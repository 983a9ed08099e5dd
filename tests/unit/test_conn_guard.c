/*
 * test_conn_guard.c - the connection guard (coordinator/conn_guard.c) on
 * its own: per-source limits with IPv6 /64 grouping, the token bucket, the
 * reserved share for preferred sources, the handshake deadline on a real
 * libuv loop, aborted handshakes counted, and nothing left allocated.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <uv.h>

#include "base/alloc.h"
#include "base/error.h"
#include "conn_guard.h"

static int64_t live_at_start;

static int setup(void **state) {
  (void)state;
  live_at_start = fedc_alloc_live();
  return 0;
}

static void no_expire(void *ud) { (void)ud; }

/* Five per source; an IPv6 /64 is one source, an IPv4-mapped address is
 * its IPv4 address. */
static void test_per_source(void **state) {
  (void)state;
  fedc_conn_limits lim = {.max_conns_per_source = 5, .slots = 1000};
  fedc_conn_guard *g;
  assert_int_equal(fedc_conn_guard_new(NULL, &lim, &g), 0);
  fedc_conn_guard_slot *s[16];
  for (int i = 0; i < 5; i++)
    assert_int_equal(fedc_conn_guard_admit(g, "[2001:db8:1:2::7]:4000", no_expire, NULL, &s[i]), 0);
  /* another host in the same /64 */
  fedc_conn_guard_slot *x;
  assert_int_equal(fedc_conn_guard_admit(g, "[2001:db8:1:2:ffff::1]:1", no_expire, NULL, &x),
                   FEDC_EREFUSED);
  /* another /64 */
  assert_int_equal(fedc_conn_guard_admit(g, "[2001:db8:1:3::1]:1", no_expire, NULL, &s[5]), 0);
  for (int i = 6; i < 11; i++)
    assert_int_equal(fedc_conn_guard_admit(g, "10.0.0.1:99", no_expire, NULL, &s[i]), 0);
  assert_int_equal(fedc_conn_guard_admit(g, "[::ffff:10.0.0.1]:5", no_expire, NULL, &x),
                   FEDC_EREFUSED);
  fedc_conn_guard_stats st;
  fedc_conn_guard_stats_get(g, &st);
  assert_int_equal(st.refused_per_source, 2);
  assert_int_equal(st.connections, 11);
  assert_int_equal(st.sources, 3);
  /* one closes: one more may come */
  fedc_conn_guard_release(s[6], 0);
  assert_int_equal(fedc_conn_guard_admit(g, "10.0.0.1:100", no_expire, NULL, &s[6]), 0);
  for (int i = 0; i < 11; i++) fedc_conn_guard_release(s[i], 0);
  fedc_conn_guard_stats_get(g, &st);
  assert_int_equal(st.handshakes_aborted, 12); /* none finished its handshake */
  assert_int_equal(st.connections, 0);
  fedc_conn_guard_free(g);
  assert_int_equal(fedc_alloc_live(), live_at_start);
}

/* A bucket of 3 with no refill to speak of: the 4th is refused, and a
 * refused connection spends no token. */
static void test_bucket(void **state) {
  (void)state;
  fedc_conn_limits lim = {.handshake_rate = 0.001, .handshake_burst = 3, .slots = 1000};
  fedc_conn_guard *g;
  assert_int_equal(fedc_conn_guard_new(NULL, &lim, &g), 0);
  fedc_conn_guard_slot *s[3], *x;
  for (int i = 0; i < 3; i++) {
    assert_int_equal(fedc_conn_guard_admit(g, "192.0.2.1:1", no_expire, NULL, &s[i]), 0);
    fedc_conn_guard_done(s[i], 0, 0);
    fedc_conn_guard_release(s[i], 0);
  }
  assert_int_equal(fedc_conn_guard_admit(g, "192.0.2.1:1", no_expire, NULL, &x), FEDC_EREFUSED);
  assert_int_equal(fedc_conn_guard_admit(g, "192.0.2.2:1", no_expire, NULL, &x), 0);
  fedc_conn_guard_release(x, 1);
  fedc_conn_guard_stats st;
  fedc_conn_guard_stats_get(g, &st);
  assert_int_equal(st.refused_rate, 1);
  assert_int_equal(st.handshakes_done, 3);
  assert_int_equal(st.handshakes_aborted, 0); /* failed is not aborted */
  fedc_conn_guard_free(g);
  assert_int_equal(fedc_alloc_live(), live_at_start);
}

/* 10 slots, half reserved: others get 5; a source that completed a
 * verified handshake gets the rest. */
static void test_reserved(void **state) {
  (void)state;
  fedc_conn_limits lim = {.slots = 10, .reserved_share = 0.5};
  fedc_conn_guard *g;
  assert_int_equal(fedc_conn_guard_new(NULL, &lim, &g), 0);
  fedc_conn_guard_slot *s[10], *x;
  assert_int_equal(fedc_conn_guard_admit(g, "198.51.100.1:1", no_expire, NULL, &s[0]), 0);
  fedc_conn_guard_done(s[0], 1, 0); /* verified: preferred */
  for (int i = 1; i < 5; i++)
    assert_int_equal(fedc_conn_guard_admit(g, "203.0.113.9:1", no_expire, NULL, &s[i]), 0);
  assert_int_equal(fedc_conn_guard_admit(g, "203.0.113.9:1", no_expire, NULL, &x), FEDC_EREFUSED);
  for (int i = 5; i < 10; i++)
    assert_int_equal(fedc_conn_guard_admit(g, "198.51.100.1:2", no_expire, NULL, &s[i]), 0);
  assert_int_equal(fedc_conn_guard_admit(g, "198.51.100.1:3", no_expire, NULL, &x), FEDC_EREFUSED);
  fedc_conn_guard_stats st;
  fedc_conn_guard_stats_get(g, &st);
  assert_int_equal(st.refused_overload, 2);
  for (int i = 0; i < 10; i++) fedc_conn_guard_release(s[i], 0);
  fedc_conn_guard_free(g);
  assert_int_equal(fedc_alloc_live(), live_at_start);
}

static int expired;
/* ud is where the slot pointer lives: the owner closes, the slot goes */
static void on_expire(void *ud) {
  expired++;
  fedc_conn_guard_release(*(fedc_conn_guard_slot **)ud, 0);
}

static void stop_loop(uv_timer_t *t) { uv_stop(t->loop); }

/* The deadline fires on the loop whatever else happens, once, and not for
 * a handshake that finished; an expired slot is not counted as aborted. */
static void test_deadline(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  fedc_conn_limits lim = {.handshake_timeout_s = 0.3, .slots = 100};
  fedc_conn_guard *g;
  assert_int_equal(fedc_conn_guard_new(&loop, &lim, &g), 0);
  fedc_conn_guard_slot *a = NULL, *b = NULL;
  assert_int_equal(fedc_conn_guard_admit(g, "127.0.0.1:1", on_expire, &a, &a), 0);
  assert_int_equal(fedc_conn_guard_admit(g, "127.0.0.1:2", on_expire, &b, &b), 0);
  fedc_conn_guard_done(b, 1, 1);
  uv_timer_t keep; /* the guard's timer is unref'd: keep the loop running */
  uv_timer_init(&loop, &keep);
  uv_timer_start(&keep, stop_loop, 1000, 0);
  expired = 0;
  uv_run(&loop, UV_RUN_DEFAULT);
  fedc_conn_guard_stats st;
  fedc_conn_guard_stats_get(g, &st);
  assert_int_equal(st.handshake_timeouts, 1);
  assert_int_equal(st.handshakes_aborted, 0);
  assert_int_equal(st.handshakes_resumed, 1);
  assert_int_equal(expired, 1);
  fedc_conn_guard_release(b, 0);
  fedc_conn_guard_free(g);
  uv_close((uv_handle_t *)&keep, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  assert_int_equal(fedc_alloc_live(), live_at_start);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_per_source, setup),
      cmocka_unit_test_setup(test_bucket, setup),
      cmocka_unit_test_setup(test_reserved, setup),
      cmocka_unit_test_setup(test_deadline, setup),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
