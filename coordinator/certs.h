/*
 * certs.h - what the store keeps of the client certificates it has seen in
 * full (signed by `pki sign`, or allowed from a PEM file): name, expiry,
 * whether it is an admin certificate, and the PEM itself, by fingerprint.
 * A client allowed by bare fingerprint has no row: its expiry is unknown.
 * The table is certs (store_sqlite.c creates it); the allow/revoke status
 * stays in clients.
 */
#ifndef FEDC_COORD_CERTS_H
#define FEDC_COORD_CERTS_H

#include <stdint.h>

#include "pki.h"
#include "store.h"

typedef struct fedc__cert_row {
  char fingerprint[65];
  char name[65];
  double not_after; /* unix seconds */
  int admin;
} fedc__cert_row;

/* Insert or replace the row of ci (pem: the certificate's PEM text). */
int fedc__certs_put(fedc_store *st, const fedc__cert_info *ci, const char *pem);
/* Every row, by fingerprint; *out freed with fedc_free. */
int fedc__certs_list(fedc_store *st, fedc__cert_row **out, int32_t *n);
/* *admin 1 when the store holds fingerprint's certificate and it is an
 * admin certificate, else 0. */
int fedc__certs_is_admin(fedc_store *st, const char *fingerprint, int *admin);

#endif
