/*
 * enroll.c - `fedc-client enroll --name NAME --dir DIR`: make the site's
 * private key on the site (DIR/NAME.key, mode 0600, never replaced) and a
 * certificate signing request for it (DIR/NAME.csr). Only the request
 * leaves the site: the coordinator's operator signs it (`fedc-coordinator
 * pki sign NAME.csr`) and sends back the certificate and a startup kit
 * (docs/operations.md, "Provisioning").
 */
#include "enroll.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/fs.h"
#include "base/keygen.h"

static int usage(void) {
  fprintf(stderr, "usage: fedc-client enroll --name NAME [--dir DIR]\n"
                  "  makes DIR/NAME.key (the site's private key, mode 0600) and\n"
                  "  DIR/NAME.csr (the request to send to the coordinator's operator)\n");
  return 2;
}

/*
 * Make the key and the request. The key file is written first and is never
 * replaced: enrolling again under the same name in the same folder is
 * refused, so that a key in use is not lost by mistake.
 */
static int enroll(const char *name, const char *dir, char *key_path, char *csr_path, size_t n) {
  if (!fedc__pki_name_ok(name))
    return fedc_error_set(FEDC_EINVAL,
                          "--name '%s': want 1..64 of A-Z a-z 0-9 . _ - "
                          "(not starting with . or -)",
                          name);
  if (fedc__mkdirs(dir, 0700) != 0)
    return fedc_error_set(FEDC_EIO, "%s: cannot create: %s", dir, strerror(errno));
  snprintf(key_path, n, "%s/%s.key", dir, name);
  snprintf(csr_path, n, "%s/%s.csr", dir, name);
  fedc__drbg r;
  mbedtls_pk_context pk;
  int rc = fedc__drbg_init(&r, "fedc-client enroll");
  if (rc == 0) rc = fedc__keygen_p256(&pk, &r);
  else mbedtls_pk_init(&pk);
  if (rc == 0) rc = fedc__key_write_pem(&pk, key_path);
  if (rc == 0) rc = fedc__csr_write_pem(&pk, name, &r, csr_path);
  mbedtls_pk_free(&pk);
  fedc__drbg_free(&r);
  return rc;
}

int fedc__client_enroll_main(int argc, char **argv) {
  const char *name = NULL, *dir = ".";
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--name") == 0 && i + 1 < argc) name = argv[++i];
    else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) dir = argv[++i];
    else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) return usage(), 0;
    else return usage();
  }
  if (name == NULL) return usage();
  char key_path[4096], csr_path[4096];
  int rc = enroll(name, dir, key_path, csr_path, sizeof key_path);
  if (rc != 0) {
    fprintf(stderr, "fedc-client: enroll: %s\n", fedc_error_msg());
    return rc == FEDC_EINVAL || rc == FEDC_EDUPLICATE ? 2 : 1;
  }
  printf("key:     %s (mode 0600; it never leaves this site)\n"
         "request: %s\n"
         "send the request to the coordinator's operator, who runs\n"
         "  fedc-coordinator pki sign %s.csr\n"
         "and sends back a startup kit (the certificate, the CA, the URL, a site config)\n",
         key_path, csr_path, name);
  return 0;
}
