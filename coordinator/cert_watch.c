/*
 * cert_watch.c - certificate expiry as the running coordinator sees it:
 * the server's own certificate ([tls] cert, read at start) and the
 * clients' certificates the store holds (the certs table, re-read with the
 * client list every few seconds). Each is warned about in the log once
 * when it is within FEDC_PKI_WARN_DAYS of expiry (or past it), and
 * exported in /metrics as seconds left (status.c).
 */
#include <math.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "base/log.h"
#include "coord_internal.h"
#include "pki.h"

static void warn_if_near(const char *who, const char *name, const char *fpr, double not_after) {
  double left = not_after - (double)time(NULL);
  if (left > FEDC_PKI_WARN_DAYS * 86400.0) return;
  if (left <= 0)
    fedc_log_warn("msg=\"%s certificate has expired\" name=\"%s\" fingerprint=%.16s days=%.1f",
                  who, name, fpr, left / 86400.0);
  else
    fedc_log_warn("msg=\"%s certificate expires soon: renew it\" name=\"%s\" fingerprint=%.16s "
                  "days=%.1f",
                  who, name, fpr, left / 86400.0);
}

void fedc__coord_certs_start(fedc_coord *c) {
  fedc__cert_info ci;
  if (c->cfg.tls_cert[0] == '\0' || fedc__cert_file_info(c->cfg.tls_cert, &ci) != 0) return;
  c->server_not_after = ci.not_after;
  warn_if_near("the coordinator's", ci.cn, ci.fingerprint, ci.not_after);
}

void fedc__coord_certs_update(fedc_coord *c, fedc__cert_row *rows, int32_t n) {
  for (int32_t i = 0; i < n; i++) {
    int seen = 0;
    for (int32_t j = 0; j < c->n_certs && !seen; j++)
      seen = strcmp(c->certs[j].fingerprint, rows[i].fingerprint) == 0;
    if (!seen) warn_if_near("a client's", rows[i].name, rows[i].fingerprint, rows[i].not_after);
  }
  fedc_free(c->certs);
  c->certs = rows;
  c->n_certs = n;
}
