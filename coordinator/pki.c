/*
 * pki.c - `fedc-coordinator pki init` and `pki sign`, and the certificate
 * questions the coordinator asks (pki.h). mbedTLS only: no openssl at run
 * time.
 *
 *   pki init --dir D --san DNS:fl.example.org --san IP:10.0.0.5 ...
 *            [--url https://fl.example.org:8443] [--days N]
 *     D/ca.key, D/ca.pem: the consortium's CA (EC P-256, 10 years; one
 *     already in D is kept, which is how the server's certificate is
 *     renewed: move server.* away and run init again);
 *     D/server.key, D/server.pem: the coordinator's certificate for those
 *     names (serverAuth; --days, default 825); D/url: the URL the sites
 *     will use (--url, default https://<first SAN>:8443). Keys mode 0600,
 *     never replaced.
 *
 *   pki sign REQ.csr --dir D [--store S] [--admin] [--name N] [--days N]
 *            [--kit DIR]
 *     checks the request's signature, issues a clientAuth certificate
 *     for CN=<the request's CN, or --name> (OU=fedc-admin with --admin),
 *     allows its fingerprint in the store under that name, records its
 *     expiry, and writes the startup kit DIR (default D/kits/NAME): the
 *     certificate, ca.pem, url and a commented site.ini. The kit holds no
 *     private key: the site's stays where `fedc-client enroll` made it.
 *
 * Certificates are written with mbedtls_x509write_crt; the subject
 * alternative names and extended key usage are written here as DER
 * extensions (mbedTLS 2.28 has no setter for either).
 */
#include "pki.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/asn1write.h>
#include <mbedtls/bignum.h>
#include <mbedtls/oid.h>
#include <mbedtls/x509_csr.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/fs.h"
#include "base/keygen.h"
#include "base/mbedtls_compat.h"
#include "certs.h"
#include "job_queue.h"
#include "store.h"
#include <fedc/coordinator.h>

#define CA_DN "CN=fedc CA,O=fedc"
#define CA_DAYS 3650
#define CERT_DAYS 825
#define MAX_SANS 16
#define PEM_MAX 4096

static int tls_error(int rc, const char *what) {
  char msg[128];
  snprintf(msg, sizeof msg, "-0x%04x", (unsigned)-rc);
  return fedc_error_set(FEDC_EBACKEND, "%s: mbedTLS error %s", what, msg);
}

/* ---- what the coordinator asks of a certificate ------------------------ */

int fedc__cert_is_admin(const mbedtls_x509_crt *crt) {
  for (const mbedtls_x509_name *n = &crt->subject; n != NULL; n = n->next) {
    if (n->oid.p == NULL || MBEDTLS_OID_CMP(MBEDTLS_OID_AT_ORG_UNIT, &n->oid) != 0) continue;
    size_t k = sizeof FEDC_PKI_ADMIN_OU - 1;
    if (n->val.len == k && memcmp(n->val.p, FEDC_PKI_ADMIN_OU, k) == 0) return 1;
  }
  return 0;
}

static double x509_time_unix(const mbedtls_x509_time *t) {
  struct tm tm = {0};
  tm.tm_year = t->year - 1900;
  tm.tm_mon = t->mon - 1;
  tm.tm_mday = t->day;
  tm.tm_hour = t->hour;
  tm.tm_min = t->min;
  tm.tm_sec = t->sec;
  return (double)timegm(&tm);
}

int fedc__cert_info_of(const mbedtls_x509_crt *crt, fedc__cert_info *out) {
  memset(out, 0, sizeof *out);
  int rc = fedc__sha256_hex(crt->raw.p, crt->raw.len, out->fingerprint);
  if (rc != 0) return rc;
  for (const mbedtls_x509_name *n = &crt->subject; n != NULL; n = n->next) {
    if (n->oid.p == NULL || MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &n->oid) != 0) continue;
    if (n->val.len < sizeof out->cn) {
      memcpy(out->cn, n->val.p, n->val.len);
      out->cn[n->val.len] = '\0';
    }
  }
  out->not_after = x509_time_unix(&crt->valid_to);
  out->admin = fedc__cert_is_admin(crt);
  return 0;
}

int fedc__cert_file_info(const char *path, fedc__cert_info *out) {
  mbedtls_x509_crt crt;
  mbedtls_x509_crt_init(&crt);
  int rc = mbedtls_x509_crt_parse_file(&crt, path);
  if (rc != 0) {
    mbedtls_x509_crt_free(&crt);
    return fedc_error_set(FEDC_EINVAL, "%s: not a readable PEM certificate (mbedTLS -0x%04x)",
                          path, (unsigned)-rc);
  }
  rc = fedc__cert_info_of(&crt, out);
  mbedtls_x509_crt_free(&crt);
  return rc;
}

/* ---- writing certificates ---------------------------------------------- */

typedef struct san {
  int ip; /* 0 DNS name, 1 IP address */
  unsigned char bytes[256];
  size_t len;
} san;

/* "DNS:name" or "IP:address" (IPv4 or IPv6). */
static int san_parse(const char *arg, san *out) {
  memset(out, 0, sizeof *out);
  if (strncmp(arg, "DNS:", 4) == 0 && arg[4] != '\0' && strlen(arg + 4) < sizeof out->bytes) {
    out->len = strlen(arg + 4);
    memcpy(out->bytes, arg + 4, out->len);
    return 0;
  }
  if (strncmp(arg, "IP:", 3) == 0) {
    out->ip = 1;
    if (inet_pton(AF_INET, arg + 3, out->bytes) == 1) {
      out->len = 4;
      return 0;
    }
    if (inet_pton(AF_INET6, arg + 3, out->bytes) == 1) {
      out->len = 16;
      return 0;
    }
  }
  return fedc_error_set(FEDC_EINVAL, "--san %s: want DNS:name or IP:address", arg);
}

/* SubjectAltName ::= SEQUENCE OF GeneralName, dNSName [2] / iPAddress [7],
 * written backwards at the end of buf; *out points at it. */
static int san_der(const san *sans, int n, unsigned char *buf, size_t size, unsigned char **out,
                   size_t *len) {
  unsigned char *p = buf + size;
  size_t total = 0;
  for (int i = n - 1; i >= 0; i--) {
    int r1 = mbedtls_asn1_write_raw_buffer(&p, buf, sans[i].bytes, sans[i].len);
    if (r1 < 0) return r1;
    int r2 = mbedtls_asn1_write_len(&p, buf, sans[i].len);
    if (r2 < 0) return r2;
    int r3 = mbedtls_asn1_write_tag(&p, buf, MBEDTLS_ASN1_CONTEXT_SPECIFIC | (sans[i].ip ? 7 : 2));
    if (r3 < 0) return r3;
    total += (size_t)(r1 + r2 + r3);
  }
  int r = mbedtls_asn1_write_len(&p, buf, total);
  if (r < 0) return r;
  total += (size_t)r;
  if ((r = mbedtls_asn1_write_tag(&p, buf, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE)) < 0)
    return r;
  *out = p;
  *len = total + (size_t)r;
  return 0;
}

/* ExtKeyUsageSyntax ::= SEQUENCE OF KeyPurposeId (one). */
static int eku_der(int server, unsigned char *buf, size_t size, unsigned char **out, size_t *len) {
  unsigned char *p = buf + size;
  const char *oid = server ? MBEDTLS_OID_SERVER_AUTH : MBEDTLS_OID_CLIENT_AUTH;
  size_t oid_len = server ? MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)
                          : MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH);
  int r1 = mbedtls_asn1_write_oid(&p, buf, oid, oid_len);
  if (r1 < 0) return r1;
  int r2 = mbedtls_asn1_write_len(&p, buf, (size_t)r1);
  if (r2 < 0) return r2;
  int r3 = mbedtls_asn1_write_tag(&p, buf, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE);
  if (r3 < 0) return r3;
  *out = p;
  *len = (size_t)(r1 + r2 + r3);
  return 0;
}

typedef struct cert_spec {
  mbedtls_pk_context *subject_key, *issuer_key;
  const char *subject, *issuer; /* mbedTLS DN strings */
  int days;
  int ca;     /* a CA certificate (else an end entity) */
  int server; /* serverAuth (else clientAuth); end entities only */
  const san *sans;
  int n_sans;
} cert_spec;

/* "YYYYMMDDhhmmss" (UTC) for now + secs. */
static void x509_stamp(double secs, char out[16]) {
  time_t t = time(NULL) + (time_t)secs;
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(out, 16, "%Y%m%d%H%M%S", &tm);
}

/*
 * Issue the certificate described by q into pem (PEM_MAX bytes): X.509 v3,
 * a 127-bit random serial, valid from a minute ago (clock skew) for
 * q->days, SHA-256 with ECDSA, with the subject and authority key ids.
 */
static int write_cert(const cert_spec *q, fedc__drbg *r, unsigned char *pem) {
  mbedtls_x509write_cert w;
  mbedtls_mpi serial;
  mbedtls_x509write_crt_init(&w);
  mbedtls_mpi_init(&serial);
  unsigned char sb[16];
  char from[16], to[16];
  x509_stamp(-60, from);
  x509_stamp((double)q->days * 86400.0, to);
  int rc = mbedtls_ctr_drbg_random(&r->ctr, sb, sizeof sb);
  sb[0] &= 0x7f;
  sb[0] |= 0x01; /* positive, and not shortened by leading zeros */
  if (rc == 0) rc = mbedtls_mpi_read_binary(&serial, sb, sizeof sb);
  mbedtls_x509write_crt_set_version(&w, MBEDTLS_X509_CRT_VERSION_3);
  mbedtls_x509write_crt_set_md_alg(&w, MBEDTLS_MD_SHA256);
  mbedtls_x509write_crt_set_subject_key(&w, q->subject_key);
  mbedtls_x509write_crt_set_issuer_key(&w, q->issuer_key);
  if (rc == 0) rc = mbedtls_x509write_crt_set_serial(&w, &serial);
  if (rc == 0) rc = mbedtls_x509write_crt_set_validity(&w, from, to);
  if (rc == 0) rc = mbedtls_x509write_crt_set_subject_name(&w, q->subject);
  if (rc == 0) rc = mbedtls_x509write_crt_set_issuer_name(&w, q->issuer);
  if (rc == 0) rc = mbedtls_x509write_crt_set_basic_constraints(&w, q->ca, q->ca ? 0 : -1);
  if (rc == 0)
    rc = mbedtls_x509write_crt_set_key_usage(
        &w, q->ca ? MBEDTLS_X509_KU_KEY_CERT_SIGN | MBEDTLS_X509_KU_CRL_SIGN
                  : MBEDTLS_X509_KU_DIGITAL_SIGNATURE);
  if (rc == 0) rc = mbedtls_x509write_crt_set_subject_key_identifier(&w);
  if (rc == 0) rc = mbedtls_x509write_crt_set_authority_key_identifier(&w);
  unsigned char eku[64], sanbuf[MAX_SANS * 272 + 8];
  unsigned char *d = NULL;
  size_t dlen = 0;
  if (rc == 0 && !q->ca) {
    rc = eku_der(q->server, eku, sizeof eku, &d, &dlen);
    if (rc == 0)
      rc = mbedtls_x509write_crt_set_extension(&w, MBEDTLS_OID_EXTENDED_KEY_USAGE,
                                               MBEDTLS_OID_SIZE(MBEDTLS_OID_EXTENDED_KEY_USAGE),
                                               0, d, dlen);
  }
  if (rc == 0 && q->n_sans > 0) {
    rc = san_der(q->sans, q->n_sans, sanbuf, sizeof sanbuf, &d, &dlen);
    if (rc == 0)
      rc = mbedtls_x509write_crt_set_extension(&w, MBEDTLS_OID_SUBJECT_ALT_NAME,
                                               MBEDTLS_OID_SIZE(MBEDTLS_OID_SUBJECT_ALT_NAME), 0,
                                               d, dlen);
  }
  if (rc == 0) rc = mbedtls_x509write_crt_pem(&w, pem, PEM_MAX, mbedtls_ctr_drbg_random, &r->ctr);
  mbedtls_mpi_free(&serial);
  mbedtls_x509write_crt_free(&w);
  return rc ? tls_error(rc, "writing a certificate") : 0;
}

/* ---- pki init ------------------------------------------------------------ */

/* dir/file into out; a path too long for out comes out empty (and then
 * fails to open, naming nothing worse). */
static void join(char *out, size_t n, const char *dir, const char *file) {
  int k = snprintf(out, n, "%s/%s", dir, file);
  if (k < 0 || (size_t)k >= n) out[0] = '\0';
}

static int write_text(const char *path, const char *text, unsigned mode) {
  return fedc__file_write_new(path, text, strlen(text), mode, 1);
}

/* A new key into path (0600) and pk. */
static int new_key(const char *path, mbedtls_pk_context *pk, fedc__drbg *r) {
  int rc = fedc__keygen_p256(pk, r);
  return rc ? rc : fedc__key_write_pem(pk, path);
}

static int pki_init(const char *dir, const san *sans, int n_sans, const char *url, int days) {
  if (n_sans == 0)
    return fedc_error_set(FEDC_EINVAL,
                          "pki init: give the names the sites will use: --san DNS:host "
                          "and/or --san IP:address");
  if (fedc__mkdirs(dir, 0700) != 0)
    return fedc_error_set(FEDC_EIO, "%s: cannot create: %s", dir, strerror(errno));
  char p_cakey[4096], p_ca[4096], p_key[4096], p_crt[4096], p_url[4096];
  join(p_cakey, sizeof p_cakey, dir, "ca.key");
  join(p_ca, sizeof p_ca, dir, "ca.pem");
  join(p_key, sizeof p_key, dir, "server.key");
  join(p_crt, sizeof p_crt, dir, "server.pem");
  join(p_url, sizeof p_url, dir, "url");
  fedc__drbg r;
  mbedtls_pk_context ca, srv;
  mbedtls_pk_init(&ca);
  mbedtls_pk_init(&srv);
  unsigned char pem[PEM_MAX];
  int rc = fedc__drbg_init(&r, "fedc-coordinator pki init");
  /* a CA already there is kept: this renews the server's certificate */
  int have_ca = access(p_cakey, R_OK) == 0 && access(p_ca, R_OK) == 0;
  if (rc == 0 && have_ca) {
    int k = fedc__pk_parse_keyfile(&ca, p_cakey, NULL, mbedtls_ctr_drbg_random, &r.ctr);
    if (k != 0) rc = fedc_error_set(FEDC_EIO, "%s: cannot read the CA key (mbedTLS -0x%04x)",
                                    p_cakey, (unsigned)-k);
  } else if (rc == 0) {
    rc = new_key(p_cakey, &ca, &r);
    cert_spec q = {.subject_key = &ca, .issuer_key = &ca, .subject = CA_DN, .issuer = CA_DN,
                   .days = CA_DAYS, .ca = 1};
    if (rc == 0) rc = write_cert(&q, &r, pem);
    if (rc == 0) rc = write_text(p_ca, (const char *)pem, 0644);
  }
  if (rc == 0) rc = new_key(p_key, &srv, &r);
  /* the server's CN: its first name, for people; clients check the SANs */
  char cn[300] = "fedc coordinator";
  if (!sans[0].ip) snprintf(cn, sizeof cn, "%.*s", (int)sans[0].len, (const char *)sans[0].bytes);
  char subject[400];
  snprintf(subject, sizeof subject, "CN=%s,O=fedc", cn);
  cert_spec s = {.subject_key = &srv, .issuer_key = &ca, .subject = subject, .issuer = CA_DN,
                 .days = days, .server = 1, .sans = sans, .n_sans = n_sans};
  if (rc == 0) rc = write_cert(&s, &r, pem);
  if (rc == 0) rc = write_text(p_crt, (const char *)pem, 0644);
  char u[600];
  if (url == NULL) {
    char host[300];
    if (!sans[0].ip) snprintf(host, sizeof host, "%.*s", (int)sans[0].len, (const char *)sans[0].bytes);
    else if (sans[0].len == 4) inet_ntop(AF_INET, sans[0].bytes, host, sizeof host);
    else {
      char a6[INET6_ADDRSTRLEN];
      inet_ntop(AF_INET6, sans[0].bytes, a6, sizeof a6);
      snprintf(host, sizeof host, "[%s]", a6);
    }
    snprintf(u, sizeof u, "https://%s:8443\n", host);
  } else {
    snprintf(u, sizeof u, "%s\n", url);
  }
  if (rc == 0) rc = fedc__file_write_new(p_url, u, strlen(u), 0644, 0);
  mbedtls_pk_free(&ca);
  mbedtls_pk_free(&srv);
  fedc__drbg_free(&r);
  if (rc == 0)
    printf("CA:          %s (key %s, mode 0600: keep it offline)%s\n"
           "coordinator: %s (key %s, mode 0600)\n"
           "sites' URL:  %s"
           "[tls] ca = %s, cert = %s, key = %s in the coordinator's config\n",
           p_ca, p_cakey, have_ca ? " (kept)" : "", p_crt, p_key, u, p_ca, p_crt, p_key);
  return rc;
}

/* ---- pki sign ------------------------------------------------------------ */

/* A CSR whose signature checks against its own public key. */
static int read_csr(const char *path, mbedtls_x509_csr *csr) {
  int rc = mbedtls_x509_csr_parse_file(csr, path);
  if (rc != 0)
    return fedc_error_set(FEDC_EINVAL, "%s: not a readable certificate request (mbedTLS -0x%04x)",
                          path, (unsigned)-rc);
  const mbedtls_md_info_t *md = mbedtls_md_info_from_type(csr->sig_md);
  unsigned char hash[64];
  if (md == NULL || mbedtls_md(md, csr->cri.p, csr->cri.len, hash) != 0)
    return fedc_error_set(FEDC_EINVAL, "%s: unsupported signature hash", path);
  rc = mbedtls_pk_verify(&csr->pk, csr->sig_md, hash, mbedtls_md_get_size(md), csr->sig.p,
                         csr->sig.len);
  if (rc != 0)
    return fedc_error_set(FEDC_EINVAL,
                          "%s: the request's signature does not verify (mbedTLS -0x%04x)", path,
                          (unsigned)-rc);
  return 0;
}

static int csr_cn(const mbedtls_x509_csr *csr, char *out, size_t n) {
  out[0] = '\0';
  for (const mbedtls_x509_name *nm = &csr->subject; nm != NULL; nm = nm->next) {
    if (nm->oid.p == NULL || MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &nm->oid) != 0) continue;
    if (nm->val.len >= n) return -1;
    memcpy(out, nm->val.p, nm->val.len);
    out[nm->val.len] = '\0';
  }
  return 0;
}

/* The startup kit: the certificate, the CA, the URL and a site config. */
static int write_kit(const char *kit, const char *name, const char *cert_pem, const char *ca_path,
                     const char *url) {
  if (fedc__mkdirs(kit, 0755) != 0)
    return fedc_error_set(FEDC_EIO, "%s: cannot create: %s", kit, strerror(errno));
  char path[4096], file[200];
  FILE *f = fopen(ca_path, "rb");
  char ca[PEM_MAX * 2];
  size_t ca_len = f ? fread(ca, 1, sizeof ca - 1, f) : 0;
  if (f) fclose(f);
  if (ca_len == 0) return fedc_error_set(FEDC_EIO, "%s: cannot read", ca_path);
  ca[ca_len] = '\0';
  snprintf(file, sizeof file, "%s.pem", name);
  join(path, sizeof path, kit, file);
  int rc = fedc__file_write_new(path, cert_pem, strlen(cert_pem), 0644, 0);
  join(path, sizeof path, kit, "ca.pem");
  if (rc == 0) rc = fedc__file_write_new(path, ca, ca_len, 0644, 0);
  join(path, sizeof path, kit, "url");
  char u[600];
  snprintf(u, sizeof u, "%s\n", url);
  if (rc == 0) rc = fedc__file_write_new(path, u, strlen(u), 0644, 0);
  char ini[4096];
  snprintf(ini, sizeof ini,
           "; fedc site config from the startup kit of '%s' (docs/operations.md).\n"
           "; Put this kit's files beside the key that `fedc-client enroll` made\n"
           "; (%s.key: it never left this site), fill in [data] and [policy], then\n"
           "; install the site service (systemd/fedc-client.service) or run\n"
           ";   fedc-client --config site.ini --serve\n"
           "\n"
           "[server]\n"
           "url = %s            ; the coordinator\n"
           "\n"
           "[tls]\n"
           "ca = ca.pem                 ; the consortium's CA: the coordinator must chain to it\n"
           "cert = %s.pem        ; this site's certificate (valid %d days; renew before)\n"
           "key = %s.key         ; this site's private key, made here, mode 0600\n"
           "\n"
           "[client]\n"
           "name = %s\n"
           "; serve = true               ; a site service, job after job (as --serve)\n"
           "; keep_updates = updates     ; keep a copy of every update sent (for audits)\n"
           "\n"
           "; which jobs this site takes part in (a key left out: any)\n"
           "[policy]\n"
           "; model_types = softmax, mlp\n"
           "; trainers = builtin\n"
           "; max_rounds = 200\n"
           "; max_epochs = 5\n"
           "; min_noise_multiplier = 0.8\n"
           "; require_secagg = false\n"
           "; datasets = default\n"
           "\n"
           "[data]\n"
           "; format = csv\n"
           "; train = /path/to/local/train.csv\n"
           "; label = label\n",
           name, name, url, name, CERT_DAYS, name, name);
  join(path, sizeof path, kit, "site.ini");
  if (rc == 0) rc = fedc__file_write_new(path, ini, strlen(ini), 0644, 0);
  return rc;
}

static int read_url(const char *dir, char *out, size_t n) {
  char path[4096];
  join(path, sizeof path, dir, "url");
  FILE *f = fopen(path, "r");
  if (f == NULL) return fedc_error_set(FEDC_EIO, "%s: cannot read (run pki init, or give --url)", path);
  if (fgets(out, (int)n, f) == NULL) out[0] = '\0';
  fclose(f);
  out[strcspn(out, "\r\n")] = '\0';
  return 0;
}

typedef struct sign_opts {
  const char *csr, *dir, *store, *name, *kit, *url;
  int admin, days;
} sign_opts;

/*
 * Sign: check the request, issue, then allow in the store and record the
 * certificate's details, then write the kit. The subject is the CA's
 * choice: CN from the request (or --name), O=fedc, and OU=fedc-admin only
 * with --admin; whatever else the request asks for is ignored.
 */
static int pki_sign(const sign_opts *o) {
  char p_ca[4096], p_cakey[4096], url[512], name[80], subject[200], kit[4096];
  join(p_ca, sizeof p_ca, o->dir, "ca.pem");
  join(p_cakey, sizeof p_cakey, o->dir, "ca.key");
  mbedtls_x509_csr csr;
  mbedtls_x509_csr_init(&csr);
  mbedtls_pk_context cakey;
  mbedtls_pk_init(&cakey);
  fedc__drbg r;
  unsigned char pem[PEM_MAX];
  fedc_store *st = NULL;
  int rc = fedc__drbg_init(&r, "fedc-coordinator pki sign");
  if (rc == 0 && o->url) snprintf(url, sizeof url, "%s", o->url);
  else if (rc == 0) rc = read_url(o->dir, url, sizeof url);
  if (rc == 0) rc = read_csr(o->csr, &csr);
  if (rc == 0) {
    if (o->name) snprintf(name, sizeof name, "%s", o->name);
    else if (csr_cn(&csr, name, sizeof name) != 0) name[0] = '\0';
    if (!fedc__pki_name_ok(name))
      rc = fedc_error_set(FEDC_EINVAL,
                          "%s: the request's CN '%s' is not a site name (1..64 of A-Z a-z 0-9 "
                          ". _ -); give --name",
                          o->csr, name);
  }
  if (rc == 0) {
    int k = fedc__pk_parse_keyfile(&cakey, p_cakey, NULL, mbedtls_ctr_drbg_random, &r.ctr);
    if (k != 0) rc = fedc_error_set(FEDC_EIO, "%s: cannot read the CA key (mbedTLS -0x%04x)",
                                    p_cakey, (unsigned)-k);
  }
  if (rc == 0) {
    snprintf(subject, sizeof subject, "CN=%s,O=fedc%s", name,
             o->admin ? ",OU=" FEDC_PKI_ADMIN_OU : "");
    cert_spec q = {.subject_key = &csr.pk, .issuer_key = &cakey, .subject = subject,
                   .issuer = CA_DN, .days = o->days};
    rc = write_cert(&q, &r, pem);
  }
  fedc__cert_info ci;
  if (rc == 0) {
    mbedtls_x509_crt crt;
    mbedtls_x509_crt_init(&crt);
    int k = mbedtls_x509_crt_parse(&crt, pem, strlen((const char *)pem) + 1);
    rc = k ? tls_error(k, "reading the new certificate") : fedc__cert_info_of(&crt, &ci);
    mbedtls_x509_crt_free(&crt);
  }
  int32_t id = 0;
  if (rc == 0 && o->store) {
    rc = fedc_store_open(o->store, &st);
    if (rc == 0) rc = fedc_store_client_allow(st, ci.fingerprint, name, &id);
    if (rc == 0) rc = fedc__certs_put(st, &ci, (const char *)pem);
    /* a queue daemon's store: the running job's allow list gets it now */
    char jobs[4200];
    snprintf(jobs, sizeof jobs, "%s.jobs", o->store);
    if (rc == 0 && access(jobs, F_OK) == 0) rc = fedc__jobq_sync_all(o->store);
  }
  if (rc == 0) {
    if (o->kit) snprintf(kit, sizeof kit, "%s", o->kit);
    else {
      char kits[4096];
      join(kits, sizeof kits, o->dir, "kits");
      if (fedc__mkdirs(kits, 0755) != 0)
        rc = fedc_error_set(FEDC_EIO, "%s: cannot create: %s", kits, strerror(errno));
      join(kit, sizeof kit, kits, name);
    }
  }
  if (rc == 0) rc = write_kit(kit, name, (const char *)pem, p_ca, url);
  if (rc == 0) {
    char until[32];
    time_t t = (time_t)ci.not_after;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(until, sizeof until, "%Y-%m-%d", &tm);
    printf("signed %s%s: fingerprint %s, valid until %s\n", name, o->admin ? " (admin)" : "",
           ci.fingerprint, until);
    if (o->store) printf("allowed as client %d in %s\n", (int)id, o->store);
    else printf("not allowed anywhere yet (no --store): fedc-coordinator allow %s/%s.pem\n", kit, name);
    printf("startup kit: %s (send it to the site; it holds no private key)\n", kit);
  }
  fedc_store_close(st);
  mbedtls_pk_free(&cakey);
  mbedtls_x509_csr_free(&csr);
  fedc__drbg_free(&r);
  return rc;
}

/* ---- the command line ------------------------------------------------------ */

static int usage(void) {
  fprintf(stderr,
          "usage: fedc-coordinator pki init --dir DIR --san DNS:NAME|IP:ADDR... [--url URL] "
          "[--days N]\n"
          "       fedc-coordinator pki sign REQ.csr --dir DIR [--store FILE] [--admin]\n"
          "                                 [--name NAME] [--days N] [--kit DIR] [--url URL]\n");
  return FEDC_COORD_EXIT_USAGE;
}

int fedc__pki_main(const fedc_config *cfg, int argc, char **argv) {
  if (argc < 2) return usage();
  const char *sub = argv[1];
  san sans[MAX_SANS];
  int n_sans = 0, store_given = 0;
  sign_opts o = {.dir = ".", .days = CERT_DAYS};
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--admin") == 0) o.admin = 1;
    else if (v == NULL && a[0] == '-') return usage();
    else if (strcmp(a, "--dir") == 0) o.dir = argv[++i];
    else if (strcmp(a, "--store") == 0) o.store = argv[++i], store_given = 1;
    else if (strcmp(a, "--name") == 0) o.name = argv[++i];
    else if (strcmp(a, "--kit") == 0) o.kit = argv[++i];
    else if (strcmp(a, "--url") == 0) o.url = argv[++i];
    else if (strcmp(a, "--days") == 0) {
      o.days = (int)strtol(argv[++i], NULL, 10);
      if (o.days < 1 || o.days > 3650) return usage();
    } else if (strcmp(a, "--san") == 0) {
      if (n_sans == MAX_SANS || san_parse(argv[++i], &sans[n_sans]) != 0) {
        fprintf(stderr, "fedc-coordinator: pki: %s\n",
                n_sans == MAX_SANS ? "too many --san" : fedc_error_msg());
        return FEDC_COORD_EXIT_USAGE;
      }
      n_sans++;
    } else if (a[0] != '-' && o.csr == NULL) o.csr = a;
    else return usage();
  }
  int rc;
  if (strcmp(sub, "init") == 0) {
    rc = pki_init(o.dir, sans, n_sans, o.url, o.days);
  } else if (strcmp(sub, "sign") == 0 && o.csr != NULL) {
    (void)store_given; /* only a store named with --store is written */
    rc = pki_sign(&o);
  } else {
    return usage();
  }
  if (rc != 0) {
    fprintf(stderr, "fedc-coordinator: pki %s: %s\n", sub, fedc_error_msg());
    return rc == FEDC_EINVAL || rc == FEDC_EDUPLICATE ? FEDC_COORD_EXIT_USAGE
           : rc == FEDC_EIO                           ? FEDC_COORD_EXIT_STORE
                                                      : FEDC_COORD_EXIT_RUNTIME;
  }
  return FEDC_COORD_EXIT_OK;
}
