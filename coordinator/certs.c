/*
 * certs.c - the certs table of the store (certs.h): the certificates'
 * details that `clients`, /metrics and the expiry warnings show.
 */
#include "certs.h"

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"

int fedc__certs_put(fedc_store *st, const fedc__cert_info *ci, const char *pem) {
  sqlite3 *db = fedc__store_db(st);
  sqlite3_stmt *s;
  int rc = sqlite3_prepare_v2(db,
                              "INSERT OR REPLACE INTO certs(fingerprint, name, not_after, admin, "
                              "pem) VALUES(?1, ?2, ?3, ?4, ?5)",
                              -1, &s, NULL);
  if (rc != SQLITE_OK) return fedc__store_db_error(st, rc, "record a certificate");
  sqlite3_bind_text(s, 1, ci->fingerprint, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 2, ci->cn, -1, SQLITE_STATIC);
  sqlite3_bind_double(s, 3, ci->not_after);
  sqlite3_bind_int(s, 4, ci->admin);
  sqlite3_bind_text(s, 5, pem ? pem : "", -1, SQLITE_STATIC);
  rc = sqlite3_step(s);
  int err = rc == SQLITE_DONE ? 0 : fedc__store_db_error(st, rc, "record a certificate");
  sqlite3_finalize(s);
  return err;
}

int fedc__certs_list(fedc_store *st, fedc__cert_row **out, int32_t *n) {
  *out = NULL;
  *n = 0;
  sqlite3 *db = fedc__store_db(st);
  sqlite3_stmt *s;
  int rc = sqlite3_prepare_v2(db,
                              "SELECT fingerprint, name, not_after, admin FROM certs "
                              "ORDER BY fingerprint",
                              -1, &s, NULL);
  if (rc != SQLITE_OK) return fedc__store_db_error(st, rc, "list certificates");
  int32_t cap = 0;
  int err = 0;
  while (err == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW) {
    if (*n == cap) {
      int32_t nc = cap ? 2 * cap : 16;
      fedc__cert_row *g = fedc_realloc(*out, (size_t)nc * sizeof *g);
      if (g == NULL) {
        err = fedc_error_set(FEDC_ENOMEM, "out of memory");
        break;
      }
      *out = g;
      cap = nc;
    }
    fedc__cert_row *r = &(*out)[(*n)++];
    const char *f = (const char *)sqlite3_column_text(s, 0);
    const char *nm = (const char *)sqlite3_column_text(s, 1);
    snprintf(r->fingerprint, sizeof r->fingerprint, "%s", f ? f : "");
    snprintf(r->name, sizeof r->name, "%s", nm ? nm : "");
    r->not_after = sqlite3_column_double(s, 2);
    r->admin = sqlite3_column_int(s, 3);
  }
  if (err == 0 && rc != SQLITE_DONE) err = fedc__store_db_error(st, rc, "list certificates");
  sqlite3_finalize(s);
  if (err) {
    fedc_free(*out);
    *out = NULL;
    *n = 0;
  }
  return err;
}

int fedc__certs_is_admin(fedc_store *st, const char *fingerprint, int *admin) {
  *admin = 0;
  sqlite3 *db = fedc__store_db(st);
  sqlite3_stmt *s;
  int rc = sqlite3_prepare_v2(db, "SELECT admin FROM certs WHERE fingerprint = ?1", -1, &s, NULL);
  if (rc != SQLITE_OK) return fedc__store_db_error(st, rc, "look up a certificate");
  sqlite3_bind_text(s, 1, fingerprint, -1, SQLITE_STATIC);
  rc = sqlite3_step(s);
  int err = 0;
  if (rc == SQLITE_ROW) *admin = sqlite3_column_int(s, 0) != 0;
  else if (rc != SQLITE_DONE) err = fedc__store_db_error(st, rc, "look up a certificate");
  sqlite3_finalize(s);
  return err;
}
