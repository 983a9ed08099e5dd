/*
 * loader_csv.c - reads a numeric CSV file with a header row into a
 * fedc_dataset.
 *
 * The dialect is deliberately small: fields separated by commas, no quoting,
 * spaces and tabs around a field ignored, "\n" or "\r\n" line ends, empty
 * lines allowed only at the end. One column, chosen by its header name, is
 * the label; every other column is a float feature, in header order. Lines
 * may be of any length: they are assembled from 64 KiB blocks into a buffer
 * that grows as needed. Every allocation goes through fedc_* so that the
 * allocation-failure tests reach every path, and every refusal names the
 * file, the line and the column, so that a person can fix the data.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "data/data.h"
#include "base/error.h"
#include "base/log.h"

#define CSV_BLOCK (64u << 10)
#define CSV_MAX_CLASS_LABEL 16777216.0 /* 2^24: floats hold it exactly */
/* FLT_MAX plus half its ulp: the doubles below it in magnitude round to a
 * finite float (FLT_MAX at most), those from it on to infinity. Comparing
 * with FLT_MAX itself refused "3.40282347e+38", the text of FLT_MAX with
 * the 9 digits that round-trip a float (found by tests/fuzz/fuzz_csv.c). */
#define CSV_FLOAT_LIMIT 0x1.ffffffp+127
#define CSV_SHOW 40                    /* bytes of a bad field quoted back */

/* Buffered line reader over a FILE. line holds the current line,
 * NUL-terminated, without its "\n" or "\r\n". */
typedef struct line_reader {
  const char *path;
  FILE *f;
  char *blk;
  size_t pos, end;
  int eof;
  char *line;
  size_t cap, len;
  int64_t lineno;
} line_reader;

/* Make room for need bytes in r->line. Errors: FEDC_ENOMEM. */
static int line_reserve(line_reader *r, size_t need) {
  if (need <= r->cap) return 0;
  size_t cap = r->cap ? r->cap : 256;
  while (cap < need) {
    if (cap > SIZE_MAX / 2) return FEDC_ENOMEM;
    cap *= 2;
  }
  char *p = fedc_realloc(r->line, cap);
  if (p == NULL) return FEDC_ENOMEM;
  r->line = p;
  r->cap = cap;
  return 0;
}

/*
 * Read the next line into r->line / r->len and count it in r->lineno.
 * Returns 1 for a line (possibly empty), 0 at end of file, or a negative
 * code: FEDC_EIO for a read error, FEDC_EFORMAT for a NUL byte in the line,
 * FEDC_ENOMEM. The message is recorded.
 */
static int line_next(line_reader *r) {
  size_t len = 0;
  int any = 0, newline = 0;
  while (!newline) {
    if (r->pos == r->end) {
      if (r->eof) break;
      size_t got = fread(r->blk, 1, CSV_BLOCK, r->f);
      if (got < CSV_BLOCK) {
        if (ferror(r->f))
          return fedc_error_set(FEDC_EIO, "%s:%" PRId64 ": %s", r->path,
                                r->lineno + 1, strerror(errno));
        r->eof = 1;
      }
      r->pos = 0;
      r->end = got;
      if (got == 0) break;
    }
    any = 1;
    const char *s = r->blk + r->pos;
    size_t avail = r->end - r->pos;
    const char *nl = memchr(s, '\n', avail);
    size_t take = nl ? (size_t)(nl - s) : avail;
    if (line_reserve(r, len + take + 1) != 0)
      return fedc_error_set(FEDC_ENOMEM, "%s:%" PRId64 ": out of memory",
                            r->path, r->lineno + 1);
    memcpy(r->line + len, s, take);
    len += take;
    r->pos += take + (nl != NULL);
    newline = nl != NULL;
  }
  if (!any) return 0;
  r->lineno++;
  if (len > 0 && r->line[len - 1] == '\r') len--;
  r->line[len] = '\0';
  r->len = len;
  if (memchr(r->line, '\0', len) != NULL)
    return fedc_error_set(FEDC_EFORMAT, "%s:%" PRId64 ": NUL byte in line",
                          r->path, r->lineno);
  return 1;
}

static int is_blank(char c) { return c == ' ' || c == '\t'; }

/* Trim spaces and tabs from both ends of the NUL-terminated s, in place. */
static char *trim(char *s) {
  while (is_blank(*s)) s++;
  size_t n = strlen(s);
  while (n > 0 && is_blank(s[n - 1])) n--;
  s[n] = '\0';
  return s;
}

static size_t count_fields(const char *s, size_t len) {
  size_t n = 1;
  for (const char *p = s; (p = memchr(p, ',', len - (size_t)(p - s))) != NULL;
       p++)
    n++;
  return n;
}

/*
 * Split the NUL-terminated line in place at commas into at most max fields.
 * Returns the number stored in fields (the caller has already counted them).
 */
static size_t split(char *line, char **fields, size_t max) {
  size_t n = 0;
  char *p = line;
  while (n < max) {
    fields[n++] = p;
    char *c = strchr(p, ',');
    if (c == NULL) break;
    *c = '\0';
    p = c + 1;
  }
  return n;
}

/*
 * Parse one field as a finite float. Returns 0, or FEDC_EFORMAT with the
 * message naming path, line, the column's number and name, and the field.
 */
static int parse_field(const char *path, int64_t lineno, size_t col,
                       const char *name, char *field, float *v) {
  char *s = trim(field);
  const char *why = NULL;
  if (*s == '\0') {
    why = "is empty";
  } else if (*s == '"' || *s == '\'') {
    why = "is quoted (quoted fields are not supported)";
  } else {
    char *end = NULL;
    double d = strtod(s, &end);
    if (end == s || *end != '\0')
      why = "is not a number";
    else if (!isfinite(d))
      why = "is not a finite number";
    else if (!(fabs(d) < CSV_FLOAT_LIMIT))
      why = "is out of the float range";
    else
      *v = (float)d;
  }
  if (why == NULL) return 0;
  return fedc_error_set(FEDC_EFORMAT,
                        "%s:%" PRId64 ": column %zu '%s': '%.*s%s' %s", path,
                        lineno, col + 1, name, CSV_SHOW, s,
                        strlen(s) > CSV_SHOW ? "..." : "", why);
}

/* Grow a float array held in *p from *cap to at least need elements.
 * Errors: FEDC_ENOMEM (*p left as it was). */
static int grow_floats(float **p, size_t *cap, size_t need) {
  if (need <= *cap) return 0;
  size_t c = *cap ? *cap : 1024;
  while (c < need) {
    if (c > SIZE_MAX / 2 / sizeof(float)) return FEDC_ENOMEM;
    c *= 2;
  }
  float *q = fedc_realloc(*p, c * sizeof(float));
  if (q == NULL) return FEDC_ENOMEM;
  *p = q;
  *cap = c;
  return 0;
}

/*
 * Load path into *out (overwritten without being freed; release with
 * fedc_dataset_free). label names the label column; the other columns become
 * features in header order. n_classes is the largest label + 1 when every
 * label is a non-negative integer below 2^24, else 0 (regression).
 *
 * Rows are parsed into growing scratch arrays and copied into the aligned
 * buffers once their number is known, so the peak is about twice the size
 * of the data set.
 *
 * Errors: FEDC_EINVAL (NULL argument), FEDC_EIO (cannot open or read),
 * FEDC_ENOTFOUND (no column named label), FEDC_EFORMAT (empty file, no
 * feature column, label column named twice, wrong field count, a field that
 * is not a finite float, an empty line before more data, no data rows),
 * FEDC_ENOMEM. On error *out is zeroed and every buffer freed.
 */
int fedc_load_csv(const char *path, const char *label, fedc_dataset *out) {
  if (out == NULL)
    return fedc_error_set(FEDC_EINVAL, "fedc_load_csv: out is NULL");
  memset(out, 0, sizeof *out);
  if (path == NULL || label == NULL)
    return fedc_error_set(FEDC_EINVAL, "fedc_load_csv: NULL argument");

  line_reader r = {0};
  r.path = path;
  char *header = NULL;
  char **names = NULL, **fields = NULL;
  float *tx = NULL, *ty = NULL, *x = NULL, *y = NULL;
  size_t xcap = 0, ycap = 0;
  int rc;

  r.f = fopen(path, "re");
  if (r.f == NULL)
    return fedc_error_set(FEDC_EIO, "%s: %s", path, strerror(errno));
  r.blk = fedc_malloc(CSV_BLOCK);
  if (r.blk == NULL) {
    rc = fedc_error_set(FEDC_ENOMEM, "%s: out of memory", path);
    goto fail;
  }

  /* Header: keep a private copy, since the line buffer is reused. */
  rc = line_next(&r);
  if (rc < 0) goto fail;
  if (rc == 0) {
    rc = fedc_error_set(FEDC_EFORMAT, "%s: empty file, expected a header row",
                        path);
    goto fail;
  }
  char *hline = r.line;
  size_t hlen = r.len;
  if (hlen >= 3 && memcmp(hline, "\xEF\xBB\xBF", 3) == 0) { /* UTF-8 BOM */
    hline += 3;
    hlen -= 3;
  }
  size_t ncols = count_fields(hline, hlen);
  header = fedc_malloc(hlen + 1);
  names = fedc_malloc_array(ncols, sizeof *names);
  fields = fedc_malloc_array(ncols, sizeof *fields);
  if (header == NULL || names == NULL || fields == NULL) {
    rc = fedc_error_set(FEDC_ENOMEM, "%s:1: out of memory", path);
    goto fail;
  }
  memcpy(header, hline, hlen + 1);
  split(header, names, ncols);
  size_t label_col = SIZE_MAX;
  for (size_t c = 0; c < ncols; c++) {
    names[c] = trim(names[c]);
    if (strcmp(names[c], label) != 0) continue;
    if (label_col != SIZE_MAX) {
      rc = fedc_error_set(FEDC_EFORMAT,
                          "%s:1: label column '%s' appears twice (columns "
                          "%zu and %zu)",
                          path, label, label_col + 1, c + 1);
      goto fail;
    }
    label_col = c;
  }
  if (label_col == SIZE_MAX) {
    rc =
        fedc_error_set(FEDC_ENOTFOUND,
                       "%s:1: no label column '%s' in the header", path, label);
    goto fail;
  }
  if (ncols < 2) {
    rc = fedc_error_set(FEDC_EFORMAT,
                        "%s:1: no feature columns besides the label '%s'", path,
                        label);
    goto fail;
  }
  size_t d = ncols - 1;

  /* Rows. */
  size_t n = 0;
  int64_t blank_line = 0; /* first empty line seen, allowed only at the end */
  int classes = 1;
  double max_label = 0;
  while ((rc = line_next(&r)) == 1) {
    char *s = r.line;
    while (is_blank(*s)) s++;
    if (*s == '\0') {
      if (blank_line == 0) blank_line = r.lineno;
      continue;
    }
    if (blank_line != 0) {
      rc = fedc_error_set(FEDC_EFORMAT,
                          "%s:%" PRId64 ": empty line before more data "
                          "(line %" PRId64 ")",
                          path, blank_line, r.lineno);
      goto fail;
    }
    size_t nf = count_fields(r.line, r.len);
    if (nf != ncols) {
      if (nf < ncols)
        rc = fedc_error_set(FEDC_EFORMAT,
                            "%s:%" PRId64 ": %zu fields, expected %zu "
                            "(column %zu '%s' is missing)",
                            path, r.lineno, nf, ncols, nf + 1, names[nf]);
      else
        rc = fedc_error_set(FEDC_EFORMAT,
                            "%s:%" PRId64 ": %zu fields, expected %zu "
                            "(extra field after column %zu '%s')",
                            path, r.lineno, nf, ncols, ncols, names[ncols - 1]);
      goto fail;
    }
    if (n >= SIZE_MAX / d || grow_floats(&tx, &xcap, (n + 1) * d) != 0 ||
        grow_floats(&ty, &ycap, n + 1) != 0) {
      rc = fedc_error_set(FEDC_ENOMEM, "%s:%" PRId64 ": out of memory", path,
                          r.lineno);
      goto fail;
    }
    split(r.line, fields, ncols);
    float *row = tx + n * d;
    for (size_t c = 0, j = 0; c < ncols; c++) {
      float v = 0;
      rc = parse_field(path, r.lineno, c, names[c], fields[c], &v);
      if (rc) goto fail;
      if (c == label_col)
        ty[n] = v;
      else
        row[j++] = v;
    }
    double lv = ty[n];
    if (!(lv >= 0 && lv < CSV_MAX_CLASS_LABEL && lv == floor(lv))) classes = 0;
    if (lv > max_label) max_label = lv;
    n++;
  }
  if (rc < 0) goto fail;
  if (n == 0) {
    rc =
        fedc_error_set(FEDC_EFORMAT, "%s: no data rows after the header", path);
    goto fail;
  }

  x = fedc_malloc_aligned(n * d * sizeof(float));
  y = fedc_malloc_aligned(n * sizeof(float));
  if (x == NULL || y == NULL) {
    rc = fedc_error_set(FEDC_ENOMEM, "%s: out of memory for %zu rows", path, n);
    goto fail;
  }
  memcpy(x, tx, n * d * sizeof(float));
  memcpy(y, ty, n * sizeof(float));

  fclose(r.f);
  fedc_free(r.blk);
  fedc_free(r.line);
  fedc_free(header);
  fedc_free(names);
  fedc_free(fields);
  fedc_free(tx);
  fedc_free(ty);
  out->n = (int64_t)n;
  out->d = (int64_t)d;
  out->x = x;
  out->y = y;
  out->n_classes = classes ? (int32_t)max_label + 1 : 0;
  fedc_log_debug("msg=\"loaded csv\" path=%s n=%zu d=%zu classes=%d", path, n,
                 d, out->n_classes);
  return 0;

fail:
  if (r.f) fclose(r.f);
  fedc_free(r.blk);
  fedc_free(r.line);
  fedc_free(header);
  fedc_free(names);
  fedc_free(fields);
  fedc_free(tx);
  fedc_free(ty);
  fedc_free_aligned(x);
  fedc_free_aligned(y);
  memset(out, 0, sizeof *out);
  return rc;
}
