/*
 * schema.c - a job's table schema (schema.h): made from the config's text
 * (feature names, or the header of a CSV the operator names; the label; the
 * excluded columns; categorical vocabularies), the names of its model
 * inputs, and its JSON form, which travels in the job object.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/alloc.h"
#include "base/error.h"
#include "data/schema.h"

/* Copy the next comma-separated (sep) item of *p, trimmed, into buf;
 * advance *p. Returns 0 at the end, 1 for an item, -1 when it is too long. */
static int next_item(const char **p, char sep, char *buf, size_t cap) {
  const char *s = *p;
  while (*s == ' ' || *s == '\t') s++;
  if (*s == '\0') return 0;
  const char *e = strchr(s, sep);
  const char *end = e ? e : s + strlen(s);
  *p = e ? e + 1 : end;
  while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' || end[-1] == '\n'))
    end--;
  if ((size_t)(end - s) >= cap) return -1;
  memcpy(buf, s, (size_t)(end - s));
  buf[end - s] = '\0';
  return 1;
}

static int find_col(const fedc_schema *s, const char *name) {
  for (int32_t i = 0; i < s->n_cols; i++)
    if (strcmp(s->col[i].name, name) == 0) return i;
  return -1;
}

static int is_excluded(const fedc_schema *s, const char *name) {
  for (int32_t i = 0; i < s->n_exclude; i++)
    if (strcmp(s->exclude[i], name) == 0) return 1;
  return 0;
}

static int add_col(fedc_schema *s, const char *name, const char *what) {
  if (name[0] == '\0') return fedc_error_set(FEDC_ECONFIG, "%s: an empty feature name", what);
  if (strcmp(name, s->label) == 0)
    return fedc_error_set(FEDC_ECONFIG, "%s: '%s' is the label, not a feature", what, name);
  if (find_col(s, name) >= 0)
    return fedc_error_set(FEDC_ECONFIG, "%s: feature '%s' named twice", what, name);
  if (s->n_cols >= FEDC_SCHEMA_MAX_COLS)
    return fedc_error_set(FEDC_ECONFIG, "%s: more than %d features", what, FEDC_SCHEMA_MAX_COLS);
  snprintf(s->col[s->n_cols++].name, FEDC_SCHEMA_NAME, "%s", name);
  return 0;
}

/* The first line of path (the header), into a fedc_malloc'd string. */
static int read_header(const char *path, char **out) {
  FILE *f = fopen(path, "re");
  if (f == NULL) return fedc_error_set(FEDC_EIO, "%s: %s", path, strerror(errno));
  size_t cap = 1 << 16, len = 0;
  char *buf = fedc_malloc(cap);
  int ch;
  while (buf && (ch = fgetc(f)) != EOF && ch != '\n') {
    if (len + 2 >= cap) {
      char *p = fedc_realloc(buf, cap * 2);
      if (p == NULL) break;
      buf = p;
      cap *= 2;
    }
    buf[len++] = (char)ch;
  }
  fclose(f);
  if (buf == NULL) return fedc_error_set(FEDC_ENOMEM, "%s: out of memory", path);
  buf[len] = '\0';
  char *s = buf;
  if (len >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) memmove(s, s + 3, len - 2);
  *out = buf;
  return 0;
}

/* Offsets of the columns' model inputs, and the width. */
static void lay_out(fedc_schema *s) {
  int32_t off = 0;
  for (int32_t i = 0; i < s->n_cols; i++) {
    s->col[i].offset = off;
    off += s->col[i].n_vocab > 0 ? s->col[i].n_vocab : 1;
  }
  s->d = off;
}

static int set_vocab(fedc_schema *s, const char *colname, const char *vocab, const char *what) {
  int c = find_col(s, colname);
  if (c < 0)
    return fedc_error_set(FEDC_ECONFIG, "%s: categorical column '%s' is not a feature", what,
                          colname);
  fedc_schema_col *col = &s->col[c];
  if (col->n_vocab > 0)
    return fedc_error_set(FEDC_ECONFIG, "%s: categorical column '%s' named twice", what,
                          colname);
  char v[FEDC_SCHEMA_NAME], seen[FEDC_SCHEMA_VOCAB] = "";
  const char *p = vocab;
  int r, n = 0;
  size_t off = 0;
  while ((r = next_item(&p, '|', v, sizeof v)) == 1) {
    if (v[0] == '\0')
      return fedc_error_set(FEDC_ECONFIG, "%s: column '%s': an empty category", what, colname);
    /* duplicate check against the values so far */
    const char *q = seen;
    char w[FEDC_SCHEMA_NAME];
    while (next_item(&q, '|', w, sizeof w) == 1)
      if (strcmp(w, v) == 0)
        return fedc_error_set(FEDC_ECONFIG, "%s: column '%s': category '%s' named twice", what,
                              colname, v);
    int k = snprintf(seen + off, sizeof seen - off, "%s%s", n ? "|" : "", v);
    if (k < 0 || (size_t)k >= sizeof seen - off)
      return fedc_error_set(FEDC_ECONFIG, "%s: column '%s': vocabulary too long", what, colname);
    off += (size_t)k;
    n++;
  }
  if (r < 0) return fedc_error_set(FEDC_ECONFIG, "%s: column '%s': a category too long", what, colname);
  if (n == 0)
    return fedc_error_set(FEDC_ECONFIG, "%s: categorical column '%s' has no categories", what,
                          colname);
  memcpy(col->vocab, seen, sizeof seen);
  col->n_vocab = n;
  return 0;
}

int fedc_schema_make(const char *features, const char *header_path, const char *label,
                     const char *exclude, const char *categorical, fedc_missing missing,
                     fedc_schema *s) {
  memset(s, 0, sizeof *s);
  s->missing = missing;
  if (label == NULL || label[0] == '\0')
    return fedc_error_set(FEDC_ECONFIG, "[data] label: empty");
  snprintf(s->label, sizeof s->label, "%s", label);
  char item[FEDC_SCHEMA_NAME];
  const char *p = exclude ? exclude : "";
  int r;
  while ((r = next_item(&p, ',', item, FEDC_SCHEMA_NAME)) == 1) {
    if (s->n_exclude >= FEDC_SCHEMA_MAX_EXCLUDE)
      return fedc_error_set(FEDC_ECONFIG, "[data] exclude: more than %d columns",
                            FEDC_SCHEMA_MAX_EXCLUDE);
    snprintf(s->exclude[s->n_exclude++], FEDC_SCHEMA_NAME, "%s", item);
  }
  if (r < 0) return fedc_error_set(FEDC_ECONFIG, "[data] exclude: a name too long");
  int rc = 0;
  if (features != NULL && features[0] != '\0') {
    p = features;
    while (rc == 0 && (r = next_item(&p, ',', item, FEDC_SCHEMA_NAME)) == 1)
      rc = add_col(s, item, "[data] features");
    if (rc == 0 && r < 0) rc = fedc_error_set(FEDC_ECONFIG, "[data] features: a name too long");
  } else if (header_path != NULL && header_path[0] != '\0') {
    char *h = NULL;
    rc = read_header(header_path, &h);
    if (rc != 0) {
      char msg[512];
      snprintf(msg, sizeof msg, "%s", fedc_error_msg());
      return fedc_error_set(FEDC_ECONFIG, "[data] schema_from: %s", msg);
    }
    char what[FEDC_SCHEMA_NAME + 1100];
    snprintf(what, sizeof what, "[data] schema_from = %.1000s", header_path);
    int label_seen = 0;
    p = h;
    while (rc == 0 && (r = next_item(&p, ',', item, FEDC_SCHEMA_NAME)) == 1) {
      if (strcmp(item, s->label) == 0) label_seen = 1;
      else if (!is_excluded(s, item)) rc = add_col(s, item, what);
    }
    if (rc == 0 && r < 0) rc = fedc_error_set(FEDC_ECONFIG, "%s: a column name too long", what);
    if (rc == 0 && !label_seen)
      rc = fedc_error_set(FEDC_ECONFIG, "%s: no label column '%s' in its header", what, s->label);
    fedc_free(h);
  } else {
    return fedc_error_set(FEDC_ECONFIG, "no schema: set [data] features or [data] schema_from");
  }
  if (rc == 0 && s->n_cols == 0) rc = fedc_error_set(FEDC_ECONFIG, "[data] features: none");
  for (int32_t i = 0; rc == 0 && i < s->n_exclude; i++)
    if (find_col(s, s->exclude[i]) >= 0 || strcmp(s->exclude[i], s->label) == 0)
      rc = fedc_error_set(FEDC_ECONFIG, "[data] exclude: '%s' is also a feature or the label",
                          s->exclude[i]);
  p = categorical ? categorical : "";
  char spec[FEDC_SCHEMA_NAME + FEDC_SCHEMA_VOCAB];
  while (rc == 0 && (r = next_item(&p, ',', spec, sizeof spec)) == 1) {
    char *colon = strchr(spec, ':');
    if (colon == NULL) {
      rc = fedc_error_set(FEDC_ECONFIG, "[data] categorical: '%s' is not col:v1|v2|...", spec);
      break;
    }
    *colon = '\0';
    char *name = spec;
    while (*name == ' ') name++;
    size_t nl = strlen(name);
    while (nl > 0 && name[nl - 1] == ' ') name[--nl] = '\0';
    rc = set_vocab(s, name, colon + 1, "[data] categorical");
  }
  if (rc == 0 && r < 0) rc = fedc_error_set(FEDC_ECONFIG, "[data] categorical: an entry too long");
  if (rc != 0) {
    memset(s, 0, sizeof *s);
    return rc;
  }
  lay_out(s);
  return 0;
}

/* "B|M" or "B,M": each value trimmed, non-empty, unique; stored "B|M". */
int fedc_schema_set_class_labels(fedc_schema *s, const char *labels) {
  char sep = strchr(labels, '|') ? '|' : ',';
  const char *p = labels;
  char v[FEDC_SCHEMA_NAME];
  size_t off = 0;
  int32_t n = 0, r;
  s->label_vocab[0] = '\0';
  s->n_label_vocab = 0;
  while ((r = next_item(&p, sep, v, sizeof v)) != 0) {
    if (r < 0 || v[0] == '\0' || strchr(v, '|'))
      return fedc_error_set(FEDC_ECONFIG, "[data] class_labels: an empty or too long value");
    if (fedc_schema_class_of(s, v) >= 0)
      return fedc_error_set(FEDC_ECONFIG, "[data] class_labels: '%s' named twice", v);
    int w = snprintf(s->label_vocab + off, sizeof s->label_vocab - off, "%s%s", n ? "|" : "", v);
    if (w < 0 || off + (size_t)w >= sizeof s->label_vocab)
      return fedc_error_set(FEDC_ECONFIG, "[data] class_labels: longer than %d bytes",
                            FEDC_SCHEMA_VOCAB - 1);
    off += (size_t)w;
    s->n_label_vocab = ++n;
  }
  if (n == 1) return fedc_error_set(FEDC_ECONFIG, "[data] class_labels: one value; a class "
                                    "needs at least two");
  return 0;
}

int fedc_schema_class_of(const fedc_schema *s, const char *v) {
  const char *p = s->label_vocab;
  char w[FEDC_SCHEMA_NAME];
  for (int k = 0; k < s->n_label_vocab && next_item(&p, '|', w, sizeof w) == 1; k++)
    if (strcmp(w, v) == 0) return k;
  return -1;
}

void fedc_schema_input_name(const fedc_schema *s, int32_t j, char *buf, size_t cap) {
  buf[0] = '\0';
  for (int32_t i = 0; i < s->n_cols; i++) {
    const fedc_schema_col *c = &s->col[i];
    int32_t w = c->n_vocab > 0 ? c->n_vocab : 1;
    if (j < c->offset || j >= c->offset + w) continue;
    if (c->n_vocab == 0) {
      snprintf(buf, cap, "%s", c->name);
      return;
    }
    const char *p = c->vocab;
    char v[FEDC_SCHEMA_NAME];
    for (int32_t k = 0; next_item(&p, '|', v, sizeof v) == 1; k++)
      if (k == j - c->offset) {
        snprintf(buf, cap, "%s=%s", c->name, v);
        return;
      }
  }
}

char *fedc_schema_to_json(const fedc_schema *s) {
  cJSON *o = cJSON_CreateObject();
  if (o == NULL) return NULL;
  cJSON *f = cJSON_AddArrayToObject(o, "features");
  cJSON *cat = cJSON_CreateObject();
  for (int32_t i = 0; f && i < s->n_cols; i++) {
    cJSON_AddItemToArray(f, cJSON_CreateString(s->col[i].name));
    if (s->col[i].n_vocab > 0 && cat) {
      cJSON *v = cJSON_AddArrayToObject(cat, s->col[i].name);
      const char *p = s->col[i].vocab;
      char w[FEDC_SCHEMA_NAME];
      while (v && next_item(&p, '|', w, sizeof w) == 1)
        cJSON_AddItemToArray(v, cJSON_CreateString(w));
    }
  }
  cJSON_AddStringToObject(o, "label", s->label);
  cJSON *ex = cJSON_AddArrayToObject(o, "exclude");
  for (int32_t i = 0; ex && i < s->n_exclude; i++)
    cJSON_AddItemToArray(ex, cJSON_CreateString(s->exclude[i]));
  if (cat) cJSON_AddItemToObject(o, "categorical", cat);
  cJSON_AddStringToObject(o, "missing", s->missing == FEDC_MISSING_MEAN ? "mean" : "refuse");
  cJSON_AddNumberToObject(o, "inputs", s->d);
  cJSON *clip = NULL;
  for (int32_t i = 0; i < s->n_cols; i++)
    if (s->col[i].has_clip && (clip || (clip = cJSON_AddObjectToObject(o, "clip")))) {
      cJSON *b = cJSON_AddArrayToObject(clip, s->col[i].name);
      cJSON_AddItemToArray(b, cJSON_CreateNumber(s->col[i].lo));
      cJSON_AddItemToArray(b, cJSON_CreateNumber(s->col[i].hi));
    }
  if (s->noise_multiplier > 0) cJSON_AddNumberToObject(o, "noise_multiplier", s->noise_multiplier);
  if (s->n_label_vocab > 0) {
    cJSON *cl = cJSON_AddArrayToObject(o, "class_labels");
    const char *p = s->label_vocab;
    char w[FEDC_SCHEMA_NAME];
    while (cl && next_item(&p, '|', w, sizeof w) == 1) cJSON_AddItemToArray(cl, cJSON_CreateString(w));
  }
  char *t = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  char *copy = t ? fedc_strdup(t) : NULL;
  cJSON_free(t);
  return copy;
}

/* JSON -> schema: rebuilt through fedc_schema_make's checks from its text. */
int fedc_schema_from_json(const char *json, fedc_schema *out) {
  memset(out, 0, sizeof *out);
  cJSON *o = cJSON_Parse(json);
  if (o == NULL) return fedc_error_set(FEDC_EFORMAT, "schema: not JSON");
  size_t cap = 1 << 16;
  char *feat = fedc_calloc(1, cap), *ex = fedc_calloc(1, 4096), *cat = fedc_calloc(1, cap);
  int rc = feat && ex && cat ? 0 : fedc_error_set(FEDC_ENOMEM, "schema: out of memory");
  const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, "features");
  const cJSON *l = cJSON_GetObjectItemCaseSensitive(o, "label");
  const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "exclude");
  const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "categorical");
  const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "missing");
  if (rc == 0 && (!cJSON_IsArray(f) || !cJSON_IsString(l) || !cJSON_IsString(m)))
    rc = fedc_error_set(FEDC_EFORMAT, "schema: features, label or missing absent or of a wrong type");
  const cJSON *it;
  size_t off = 0;
  if (rc == 0)
    cJSON_ArrayForEach(it, f) {
      if (!cJSON_IsString(it) || strchr(it->valuestring, ',')) {
        rc = fedc_error_set(FEDC_EFORMAT, "schema: a feature name is not a plain string");
        break;
      }
      off += (size_t)snprintf(feat + off, off < cap ? cap - off : 0, "%s%s", off ? "," : "",
                              it->valuestring);
    }
  off = 0;
  if (rc == 0 && cJSON_IsArray(e))
    cJSON_ArrayForEach(it, e) if (cJSON_IsString(it)) off += (size_t)snprintf(
        ex + off, off < 4096 ? 4096 - off : 0, "%s%s", off ? "," : "", it->valuestring);
  off = 0;
  if (rc == 0 && cJSON_IsObject(c))
    cJSON_ArrayForEach(it, c) {
      off += (size_t)snprintf(cat + off, off < cap ? cap - off : 0, "%s%s:", off ? "," : "",
                              it->string);
      const cJSON *v;
      int k = 0;
      cJSON_ArrayForEach(v, it) if (cJSON_IsString(v)) off += (size_t)snprintf(
          cat + off, off < cap ? cap - off : 0, "%s%s", k++ ? "|" : "", v->valuestring);
    }
  if (rc == 0) {
    fedc_missing miss = strcmp(m->valuestring, "mean") == 0 ? FEDC_MISSING_MEAN : FEDC_MISSING_REFUSE;
    rc = fedc_schema_make(feat, NULL, l->valuestring, ex, cat, miss, out);
    if (rc != 0) {
      char msg[512];
      snprintf(msg, sizeof msg, "%s", fedc_error_msg());
      rc = fedc_error_set(FEDC_EFORMAT, "schema: %s", msg);
    }
  }
  /* statistics under DP: the clip bounds and the noise multiplier */
  const cJSON *cl = cJSON_GetObjectItemCaseSensitive(o, "clip");
  if (rc == 0 && cJSON_IsObject(cl))
    cJSON_ArrayForEach(it, cl) {
      int i = find_col(out, it->string);
      const cJSON *lo = cJSON_GetArrayItem(it, 0), *hi = cJSON_GetArrayItem(it, 1);
      if (i < 0 || !cJSON_IsNumber(lo) || !cJSON_IsNumber(hi) || !(lo->valuedouble < hi->valuedouble)) {
        rc = fedc_error_set(FEDC_EFORMAT, "schema: clip '%s' is not [lo, hi] of a feature",
                            it->string ? it->string : "");
        break;
      }
      out->col[i].has_clip = 1;
      out->col[i].lo = lo->valuedouble;
      out->col[i].hi = hi->valuedouble;
    }
  const cJSON *z = cJSON_GetObjectItemCaseSensitive(o, "noise_multiplier");
  if (rc == 0 && cJSON_IsNumber(z) && z->valuedouble > 0) out->noise_multiplier = z->valuedouble;
  const cJSON *cls = cJSON_GetObjectItemCaseSensitive(o, "class_labels");
  if (rc == 0 && cJSON_IsArray(cls)) {
    char *lab = fedc_calloc(1, FEDC_SCHEMA_VOCAB);
    size_t lo = 0;
    rc = lab ? 0 : fedc_error_set(FEDC_ENOMEM, "schema: out of memory");
    cJSON_ArrayForEach(it, cls) {
      if (rc != 0) break;
      if (!cJSON_IsString(it)) rc = fedc_error_set(FEDC_EFORMAT, "schema: a class label is not a string");
      else lo += (size_t)snprintf(lab + lo, lo < FEDC_SCHEMA_VOCAB ? FEDC_SCHEMA_VOCAB - lo : 0,
                                  "%s%s", lo ? "|" : "", it->valuestring);
    }
    if (rc == 0 && fedc_schema_set_class_labels(out, lab) != 0) {
      char msg[256];
      snprintf(msg, sizeof msg, "%s", fedc_error_msg());
      rc = fedc_error_set(FEDC_EFORMAT, "schema: %s", msg);
    }
    fedc_free(lab);
  }
  if (rc != 0) memset(out, 0, sizeof *out);
  fedc_free(feat);
  fedc_free(ex);
  fedc_free(cat);
  cJSON_Delete(o);
  return rc;
}
