/*
 * init_config.c - `fedc-coordinator init [--data FILE.csv] [--label NAME]
 * [--job] [--out FILE]`: writes a commented config for the user's own data.
 *
 * With --data it reads the CSV once: the header gives the schema ([data]
 * features, label, exclude), the values tell a numeric column from a
 * categorical one (whose values become its vocabulary) and whether any are
 * missing, and the label's values pick the model (two classes 0/1: logreg
 * with ROC AUC as the selection metric; more classes: softmax; anything
 * else: linreg). Without --data it writes the same file with placeholders.
 * --job leaves out the daemon's sections ([server], [tls], [store]), for a
 * job file submitted to a queue. The file written is loaded back and
 * checked as the coordinator would check it before init reports success.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/alloc.h"
#include "base/error.h"
#include "config/config.h"
#include "init_config.h"

#define MAX_COLS 1024
#define NAME_MAX_LEN 128
#define VOCAB_MAX 16
#define VALUE_MAX 64
#define LINE_MAX_LEN (1 << 20)

typedef struct column {
  char name[NAME_MAX_LEN];
  int64_t missing;     /* empty, NA, NaN */
  int64_t text;        /* values that are not numbers */
  int n_vocab;         /* distinct text values seen, up to VOCAB_MAX + 1 */
  char vocab[VOCAB_MAX][VALUE_MAX];
  int integer;         /* every number seen is a non-negative integer */
  double max;
  int64_t ones;        /* values equal to 1 (the positives of a 0/1 label) */
} column;

typedef struct table {
  column *cols;
  int n;
  int64_t rows;
  int label;           /* index into cols, -1 when there is no --data */
} table;

static int is_missing(const char *v) {
  return v[0] == '\0' || strcasecmp(v, "NA") == 0 || strcasecmp(v, "NaN") == 0;
}

static void strip(char *s) {
  size_t n = strlen(s);
  while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ')) s[--n] = '\0';
}

static void see_value(column *c, const char *v) {
  if (is_missing(v)) {
    c->missing++;
    return;
  }
  char *end = NULL;
  double x = strtod(v, &end);
  if (end != v && *end == '\0' && isfinite(x)) {
    if (x < 0 || x != floor(x)) c->integer = 0;
    if (x > c->max) c->max = x;
    if (x == 1.0) c->ones++;
    return;
  }
  c->text++;
  for (int i = 0; i < c->n_vocab && i < VOCAB_MAX; i++)
    if (strcmp(c->vocab[i], v) == 0) return;
  if (c->n_vocab < VOCAB_MAX) snprintf(c->vocab[c->n_vocab], VALUE_MAX, "%s", v);
  if (c->n_vocab <= VOCAB_MAX) c->n_vocab++;
}

/* The header and one pass over the rows. FEDC_EIO or FEDC_EFORMAT, naming
 * the file and the line. */
static int read_table(const char *path, table *t) {
  FILE *f = fopen(path, "r");
  if (f == NULL) return fedc_error_set(FEDC_EIO, "%s: cannot open", path);
  char *line = fedc_malloc(LINE_MAX_LEN);
  t->cols = fedc_calloc(MAX_COLS, sizeof *t->cols);
  int rc = 0;
  if (line == NULL || t->cols == NULL) rc = fedc_error_set(FEDC_ENOMEM, "out of memory");
  if (rc == 0 && fgets(line, LINE_MAX_LEN, f) == NULL)
    rc = fedc_error_set(FEDC_EFORMAT, "%s: empty file (a header row is needed)", path);
  if (rc == 0) {
    strip(line);
    char *save = NULL;
    for (char *tok = strtok_r(line, ",", &save); tok && rc == 0; tok = strtok_r(NULL, ",", &save)) {
      if (t->n == MAX_COLS || strlen(tok) >= NAME_MAX_LEN || tok[0] == '\0')
        rc = fedc_error_set(FEDC_EFORMAT, "%s:1: column %d: an empty or too long name, or more "
                            "than %d columns", path, t->n + 1, MAX_COLS);
      else {
        snprintf(t->cols[t->n].name, NAME_MAX_LEN, "%s", tok);
        t->cols[t->n].integer = 1;
        t->n++;
      }
    }
  }
  for (int64_t lineno = 2; rc == 0 && fgets(line, LINE_MAX_LEN, f) != NULL; lineno++) {
    strip(line);
    if (line[0] == '\0') continue;
    int k = 0;
    char *p = line;
    for (;;) {
      char *comma = strchr(p, ',');
      if (comma) *comma = '\0';
      if (k < t->n) see_value(&t->cols[k], p);
      k++;
      if (comma == NULL) break;
      p = comma + 1;
    }
    if (k != t->n)
      rc = fedc_error_set(FEDC_EFORMAT, "%s:%lld: %d fields, the header has %d", path,
                          (long long)lineno, k, t->n);
    t->rows++;
  }
  if (rc == 0 && t->rows == 0) rc = fedc_error_set(FEDC_EFORMAT, "%s: no rows after the header", path);
  fclose(f);
  fedc_free(line);
  return rc;
}

/* --label, else a column with a usual label name, else the last one. */
static int pick_label(table *t, const char *want) {
  static const char *const usual[] = {"label", "target", "class", "y", "outcome",
                                      "diagnosis", "is_fraud", "fraud"};
  for (int i = 0; want && i < t->n; i++)
    if (strcmp(t->cols[i].name, want) == 0) return i;
  if (want) return -1;
  for (size_t u = 0; u < sizeof usual / sizeof usual[0]; u++)
    for (int i = 0; i < t->n; i++)
      if (strcasecmp(t->cols[i].name, usual[u]) == 0) return i;
  return t->n - 1;
}

static int is_id(const column *c) {
  size_t n = strlen(c->name);
  return strcasecmp(c->name, "id") == 0 || (n > 3 && strcasecmp(c->name + n - 3, "_id") == 0) ||
         (c->text > 0 && c->n_vocab > VOCAB_MAX);
}

/* Writes the [data] schema lines from t (or placeholders). */
static void write_schema(FILE *f, const table *t) {
  if (t->cols == NULL) {
    fputs("format = csv\n"
          "label = label             ; the label column of every site's CSV\n"
          "features = age,bmi,smoker ; the schema: feature columns, in the model's order\n"
          "; exclude = id            ; columns a site's CSV may have that are not features\n"
          "; categorical = smoker:no|yes   ; text columns, one-hot in this order\n"
          "missing = refuse          ; or mean: impute with the federation's mean\n",
          f);
    return;
  }
  const column *lab = &t->cols[t->label];
  fprintf(f, "format = csv\nlabel = %s\n", lab->name);
  fputs("; the schema: the feature columns, in the model's order; each site's CSV is\n"
        "; read by these names, in any column order\nfeatures = ", f);
  int first = 1, any_missing = 0;
  for (int i = 0; i < t->n; i++)
    if (i != t->label && !is_id(&t->cols[i])) {
      fprintf(f, "%s%s", first ? "" : ",", t->cols[i].name);
      first = 0;
      any_missing |= t->cols[i].missing > 0;
    }
  fputs("\n", f);
  first = 1;
  for (int i = 0; i < t->n; i++)
    if (i != t->label && is_id(&t->cols[i])) {
      fprintf(f, "%s%s", first ? "exclude = " : ",", t->cols[i].name);
      first = 0;
    }
  if (!first) fputs("      ; identifiers and free text: never features\n", f);
  first = 1;
  for (int i = 0; i < t->n; i++) {
    const column *c = &t->cols[i];
    if (i == t->label || is_id(c) || c->text == 0) continue;
    fprintf(f, "%s%s:", first ? "categorical = " : ", ", c->name);
    for (int v = 0; v < c->n_vocab; v++) fprintf(f, "%s%s", v ? "|" : "", c->vocab[v]);
    first = 0;
  }
  if (!first)
    fputs("\n; ^ the values seen in this site's file: add any other site's values\n", f);
  fprintf(f, "missing = %s      ; %s\n", any_missing ? "mean" : "refuse",
          any_missing ? "the file has missing values: impute the federation's mean"
                      : "a missing value stops the site at start; mean imputes");
  fputs("; test = holdout.csv      ; optional: a table of the coordinator's own that each\n"
        ";                          ; committed model is scored on\n", f);
}

/* Writes the file; t->cols NULL writes placeholders. */
static int write_config(FILE *f, const table *t, const char *data, int job_only) {
  const char *type = "logreg", *select = "auc", *task = "binary (0/1)";
  int classes = 0;
  double pos = -1;
  if (t->cols) {
    const column *lab = &t->cols[t->label];
    if (lab->text > 0 || lab->missing > 0)
      return fedc_error_set(FEDC_EFORMAT, "%s: the label column %s has %s: a label is a "
                            "number (0/1, a class index, or a value to regress)", data,
                            lab->name, lab->text ? "text values" : "missing values");
    if (lab->integer && lab->max <= 1) pos = (double)lab->ones / (double)t->rows;
    else if (lab->integer && lab->max < 64) {
      type = "softmax", select = "accuracy", task = "multiclass";
      classes = (int)lab->max + 1;
    } else {
      type = "linreg", select = "r2", task = "regression";
    }
  }
  fprintf(f, "; fedc %s - written by `fedc-coordinator init%s%s`\n",
          job_only ? "job file" : "coordinator config", data ? " --data " : "", data ? data : "");
  if (t->cols)
    fprintf(f, "; read %lld rows of %s: label \"%s\", a %s task%s\n", (long long)t->rows, data,
            t->cols[t->label].name, task, pos >= 0 ? "" : "");
  if (pos >= 0) fprintf(f, "; %.1f%% of the rows are positive (label = 1)\n", 100.0 * pos);
  fputs(job_only
            ? "; Check every line, then: fedc-coordinator --config DAEMON.ini submit THIS "
              "--name NAME\n"
            : "; Check every line, then: fedc-coordinator --config THIS run\n",
        f);
  fputs("; Every key: docs/config.md. Sites keep their data; only this job's keys,\n"
        "; model weights, counts and metrics cross the wire.\n\n", f);
  fputs("[job]\n"
        "rounds = 20               ; commits until the job is finished\n"
        "clients_per_round = 3     ; updates that close a round: your number of sites\n"
        "min_clients = 2           ; fewest updates that let a round commit\n"
        "round_timeout_s = 120     ; a round closes at this deadline\n"
        "seed = 1                  ; client selection and the initial model\n\n",
        f);
  fprintf(f, "[model]\ntype = %s%s; logreg | softmax | linreg | mlp (with hidden = 32)\n", type,
          strlen(type) < 6 ? "             " : "            ");
  if (classes) fprintf(f, "classes = %d\n", classes);
  else if (!strcmp(type, "logreg")) fputs("; classes: a logreg model has one output\n", f);
  fputs("; inputs: none to set, the schema below gives them\n"
        "l2 = 0.001                ; weight decay\n\n"
        "[train]                   ; what every site runs in each round\n"
        "epochs = 1\n"
        "batch_size = 32\n"
        "lr = 0.1\n"
        "class_weight = none       ; balanced: rare classes weigh more (the federation's "
        "counts)\n\n"
        "[data]\n",
        f);
  write_schema(f, t);
  fprintf(f, "\n[eval]                    ; federated evaluation: each site scores the model\n"
             "every = 1                 ; after every committed round\n"
             "select = %s%s; the metric that picks `export best`\n"
             "; each site holds rows out: [data] validation_split = 0.2 in its own config\n\n",
          select, strlen(select) < 4 ? "              " : "          ");
  fputs("[privacy]\n"
        "; noise_multiplier = 1.0  ; central DP-FedAvg: the coordinator clips each\n"
        ";                         ; update and noises the sum; with a schema it needs\n"
        ";                         ; [data] clip = col:lo:hi,... for every numeric\n"
        ";                         ; feature (docs/data.md, docs/privacy.md)\n"
        "; secure_aggregation = true ; masked sums: the coordinator sees only the sum of\n"
        ";                           ; the sites' statistics and of their updates (no\n"
        ";                           ; minima or maxima); with noise_multiplier add\n"
        "; noise_at = sites          ; each site clips and noises its own update\n",
        f);
  if (!job_only)
    fputs("\n[server]\n"
          "listen = 0.0.0.0:8443          ; where the sites connect (mutual TLS)\n"
          "status_listen = 127.0.0.1:8080 ; the dashboard, /v1/status, /metrics (loopback)\n"
          "enroll = allowlist             ; `pki sign --store` allows each site\n"
          "\n[tls]                           ; from `fedc-coordinator pki init --dir pki`\n"
          "ca = pki/ca.pem\n"
          "cert = pki/server.pem\n"
          "key = pki/server.key\n"
          "\n[store]\n"
          "path = fedc.db\n",
          f);
  return ferror(f) ? fedc_error_set(FEDC_EIO, "write failed") : 0;
}

/* Loads what was written and checks it as the coordinator does. */
static int check_written(const char *out) {
  fedc_config *c = fedc_malloc(sizeof *c);
  if (c == NULL) return fedc_error_set(FEDC_ENOMEM, "out of memory");
  fedc_config_defaults(c);
  int rc = fedc_config_set(c, "tls.ca=ca.pem");
  if (rc == 0) rc = fedc_config_set(c, "tls.cert=server.pem");
  if (rc == 0) rc = fedc_config_set(c, "tls.key=server.key");
  if (rc == 0) rc = fedc_config_load(c, out);
  if (rc == 0) rc = fedc_config_check_role(c, FEDC_ROLE_COORDINATOR);
  fedc_free(c);
  return rc;
}

int fedc__init_main(int argc, char **argv) {
  const char *data = NULL, *out = NULL, *label = NULL;
  int job_only = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--data") && i + 1 < argc) data = argv[++i];
    else if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
    else if (!strcmp(argv[i], "--label") && i + 1 < argc) label = argv[++i];
    else if (!strcmp(argv[i], "--job")) job_only = 1;
    else {
      fprintf(stderr, "fedc-coordinator: usage: init [--data FILE.csv] [--label NAME] [--job] "
                      "[--out FILE]\n");
      return 2;
    }
  }
  table t = {NULL, 0, 0, -1};
  int rc = 0;
  if (data) {
    rc = read_table(data, &t);
    if (rc == 0 && (t.label = pick_label(&t, label)) < 0)
      rc = fedc_error_set(FEDC_EFORMAT, "%s: no column named %s (--label)", data, label);
  }
  FILE *f = NULL;
  if (rc == 0) {
    f = out ? fopen(out, "w") : stdout;
    if (f == NULL) rc = fedc_error_set(FEDC_EIO, "%s: cannot write", out);
  }
  if (rc == 0) rc = write_config(f, &t, data, job_only);
  if (f && f != stdout && fclose(f) != 0 && rc == 0) rc = fedc_error_set(FEDC_EIO, "%s: write failed", out);
  if (rc == 0 && out && data && check_written(out) != 0) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", fedc_error_msg());
    rc = fedc_error_set(FEDC_ECONFIG, "the config written does not check out (a bug): %s", msg);
  }
  fedc_free(t.cols);
  if (rc != 0) {
    fprintf(stderr, "fedc-coordinator: init: %s\n", fedc_error_msg());
    return 1;
  }
  if (out) fprintf(stderr, "fedc-coordinator: wrote %s\n", out);
  return 0;
}
