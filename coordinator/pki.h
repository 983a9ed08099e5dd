/*
 * pki.h - the coordinator's side of provisioning: `fedc-coordinator pki
 * init` (the CA and the server certificate with the names the sites use)
 * and `pki sign` (a site's request becomes a certificate, a startup kit and
 * an allowed fingerprint), with mbedTLS only; and what the rest of the
 * coordinator asks of a certificate: its fingerprint, name, expiry and
 * whether it is an admin certificate.
 *
 * An admin certificate is one this CA issued with OU=fedc-admin in its
 * subject (`pki sign --admin`). The CA writes the subject itself, so a
 * site cannot ask for the OU in its request. Code that guards an admin
 * endpoint calls fedc__cert_is_admin on the verified peer certificate, or
 * asks the store (fedc__certs_is_admin in certs.h) by fingerprint.
 */
#ifndef FEDC_COORD_PKI_H
#define FEDC_COORD_PKI_H

#include <mbedtls/x509_crt.h>

#include "config/config.h"

#define FEDC_PKI_ADMIN_OU "fedc-admin"
/* days ahead a certificate's expiry is warned about */
#define FEDC_PKI_WARN_DAYS 30

typedef struct fedc__cert_info {
  char fingerprint[65]; /* SHA-256 of the DER, lowercase hex */
  char cn[65];          /* the subject's CN ("" if none or too long) */
  double not_after;     /* unix seconds */
  int admin;            /* OU=fedc-admin in the subject */
} fedc__cert_info;

/* 1 when crt's subject has OU=fedc-admin, else 0. */
int fedc__cert_is_admin(const mbedtls_x509_crt *crt);
int fedc__cert_info_of(const mbedtls_x509_crt *crt, fedc__cert_info *out);
/* The first certificate of a PEM file. FEDC_EINVAL naming the file. */
int fedc__cert_file_info(const char *path, fedc__cert_info *out);

/* `fedc-coordinator pki ...`: argv[0] is "pki"; returns the exit code. */
int fedc__pki_main(const fedc_config *cfg, int argc, char **argv);

#endif
