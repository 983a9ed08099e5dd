/*
 * schema.h - a job's table schema and the per-feature statistics of a
 * federation, in the data layer: what every site reads from its CSV and how
 * it is prepared, so that every site and the simulator compute the same
 * thing.
 *
 * A schema names the input columns in order, the label column, columns to
 * ignore (an id) and, for categorical columns, their vocabulary (one-hot
 * encoded in vocabulary order). Its width d is the number of model inputs:
 * one per numeric column, one per vocabulary entry of a categorical one.
 * A site's CSV is mapped to it by column name, in any order.
 *
 * Statistics are per model input: rows counted, sum and sum of squares (as
 * 128-bit fixed-point integers with 48 fraction bits, so that combining
 * sites is exact and does not depend on their order), min, max, missing
 * count; and label counts for classification. The federation's statistics
 * are the sum of the sites'; from them come the means and standard
 * deviations that every site standardizes with.
 */
#ifndef FEDC_DATA_SCHEMA_H
#define FEDC_DATA_SCHEMA_H

#include <stddef.h>
#include <stdint.h>

#include "base/rng.h"
#include "data/data.h"

#define FEDC_SCHEMA_MAX_COLS 1024
#define FEDC_SCHEMA_NAME 64
#define FEDC_SCHEMA_VOCAB 1024 /* bytes of a column's vocabulary "a|b|c" */
#define FEDC_SCHEMA_MAX_EXCLUDE 64
#define FEDC_STATS_MAX_CLASSES 1024
#define FEDC_STATS_FRAC_BITS 48
#define FEDC_STATS_MAX_ABS 16777216.0 /* 2^24: larger values are refused */

typedef enum { FEDC_MISSING_REFUSE = 0, FEDC_MISSING_MEAN = 1 } fedc_missing;

typedef struct fedc_schema_col {
  char name[FEDC_SCHEMA_NAME];
  char vocab[FEDC_SCHEMA_VOCAB]; /* categorical: "v1|v2|v3"; "" for numeric */
  int32_t n_vocab;               /* 0 for numeric */
  int32_t offset;                /* first model input of the column */
  int32_t has_clip;              /* numeric: [data] clip declared lo .. hi */
  double lo, hi;
} fedc_schema_col;

typedef struct fedc_schema {
  int32_t n_cols;
  fedc_schema_col col[FEDC_SCHEMA_MAX_COLS];
  char label[FEDC_SCHEMA_NAME];
  int32_t n_exclude;
  char exclude[FEDC_SCHEMA_MAX_EXCLUDE][FEDC_SCHEMA_NAME];
  fedc_missing missing;
  int32_t d; /* model inputs */
  /* the statistics under differential privacy (stats_dp.c): the noise
   * multiplier z, 0 for exact statistics */
  double noise_multiplier;
  /* class labels that are strings in the CSV ([data] class_labels): the
   * label column's values "v0|v1|..." mapped to classes 0, 1, ...; "" when
   * the labels are numbers */
  char label_vocab[FEDC_SCHEMA_VOCAB];
  int32_t n_label_vocab;
} fedc_schema;

typedef struct fedc_stats {
  int32_t d;
  int64_t rows;
  int64_t *count, *missing; /* d each: values seen, values missing */
  __int128 *sum, *sumsq;    /* d each: fixed point, FEDC_STATS_FRAC_BITS */
  double *min, *max;        /* d each (+inf / -inf when no value) */
  int32_t n_classes;        /* 0: regression, no label counts */
  int64_t label_count[FEDC_STATS_MAX_CLASSES];
  double noise_multiplier; /* > 0: released under DP with this z (stats_dp.c) */
} fedc_stats;

/*
 * Build a schema from config text: features "a,b,c" (names in order; or,
 * when features is empty, header_path's CSV header: every column but the
 * label and the excluded ones), the label's name, exclude "id,..." and
 * categorical "col:v1|v2|v3, ...". Errors: FEDC_ECONFIG with a message
 * naming the problem (a duplicate name, a categorical column that is not a
 * feature, an empty vocabulary, too many columns), FEDC_EIO (header_path).
 */
int fedc_schema_make(const char *features, const char *header_path, const char *label,
                     const char *exclude, const char *categorical, fedc_missing missing,
                     fedc_schema *out);

/*
 * Declared class labels "B|M" ([data] class_labels; commas work too): the
 * label column's values, class 0, 1, ... in that order. FEDC_ECONFIG naming
 * the problem (a duplicate, an empty value, fewer than 2, too long).
 */
int fedc_schema_set_class_labels(fedc_schema *s, const char *labels);
/* The class of label value v (its index in the declared labels), or -1. */
int fedc_schema_class_of(const fedc_schema *s, const char *v);

/* The name of model input j: "col" or "col=value" for a one-hot input. */
void fedc_schema_input_name(const fedc_schema *s, int32_t j, char *buf, size_t cap);

/*
 * Load a CSV by the schema: columns mapped by name in any order; a schema
 * column not in the header, a header column that is neither a feature, the
 * label nor excluded, a field that is not a number (or not in a
 * categorical column's vocabulary), a missing value under missing = refuse:
 * each FEDC_EFORMAT with one message naming the file, the line and the
 * column. A missing value under missing = mean is stored as NaN (every
 * input of a categorical column). label_required = 0 lets the label column
 * be absent (prediction); the labels are then 0. Errors also as
 * fedc_load_csv.
 */
int fedc_load_csv_schema(const char *path, const fedc_schema *s, int label_required,
                         fedc_dataset *out);

/* Allocate zeroed statistics for d inputs (min +inf, max -inf) and n_classes
 * label counts. Errors: FEDC_EINVAL, FEDC_ENOMEM. */
int fedc_stats_init(fedc_stats *st, int32_t d, int32_t n_classes);
void fedc_stats_free(fedc_stats *st);
/* A site's statistics of ds (NaN values counted as missing); n_classes from
 * the job (0: regression). Errors: FEDC_ERANGE (a label outside the
 * classes), FEDC_ENOMEM. */
int fedc_stats_compute(const fedc_dataset *ds, int32_t n_classes, fedc_stats *out);
/* acc += st, exactly. Errors: FEDC_ESHAPE (d or classes differ). */
int fedc_stats_add(fedc_stats *acc, const fedc_stats *st);
/* mean and standard deviation (population; 1 where it is 0 or there is no
 * value) of each input, from the exact sums. */
void fedc_stats_moments(const fedc_stats *st, double *mean, double *std);

/*
 * Text forms (JSON objects): {"rows", "count", "missing", "sum", "sumsq"
 * (decimal strings of the fixed-point integers), "min", "max" (null for an
 * input without values, or whose bounds are unknown: statistics summed
 * under secure aggregation),
 * "label_counts", "mean", "std"}. fedc_stats_to_json returns fedc_malloc'd
 * text; fedc_stats_from_json checks every member (FEDC_EFORMAT naming it).
 */
char *fedc_stats_to_json(const fedc_stats *st);
int fedc_stats_from_json(const char *json, fedc_stats *out);
/* {"features": [...], "label", "exclude": [...], "categorical": {col: [v...]},
 * "missing": "refuse"|"mean"} and back. */
char *fedc_schema_to_json(const fedc_schema *s);
int fedc_schema_from_json(const char *json, fedc_schema *out);

/*
 * Standardize ds in place with the federation's mean and std: x = (x -
 * mean) / std; a missing value (NaN) becomes 0, the mean (imputation).
 * Errors: FEDC_ESHAPE (ds->d != d).
 */
int fedc_dataset_standardize_with(fedc_dataset *ds, const double *mean, const double *std,
                                  int32_t d);

/*
 * How far a site is from the federation: the largest |site mean - fed
 * mean| / fed std over the inputs (into *z) and the input (into *which).
 */
void fedc_stats_distance(const fedc_stats *site, const fedc_stats *fed, double *z,
                         int32_t *which);

/* ---- statistics as 32-bit words, for secure aggregation (stats_words.c) ----------- */

/* 16-bit limbs of one 128-bit integer, one limb per 32-bit word: the sum of
 * up to 65,535 sites' words cannot carry out of a word. */
#define FEDC_STATS_LIMBS 8
#define FEDC_STATS_MAX_SITES 65535

/* Words of the statistics of d inputs and n_classes label counts: 8 per
 * integer, for rows, then each input's count, missing, sum and sum of
 * squares, then the label counts. */
size_t fedc_stats_n_words(int32_t d, int32_t n_classes);
/* Split each 128-bit integer v (two's complement) into limbs: w[k] = bits
 * 16k .. 16k+15 of v, k = 0..7. */
void fedc_i128_to_limbs(__int128 v, uint32_t *w);
/* sum_k w[k] 2^(16k) mod 2^128 (the carries of summed limbs propagate). */
__int128 fedc_i128_from_limbs(const uint32_t *w);
/* The integers of st (rows, counts, missing counts, sums, sums of squares,
 * label counts; not min and max) into w, fedc_stats_n_words words. */
void fedc_stats_to_words(const fedc_stats *st, uint32_t *w);
/* Back from (summed) words: statistics of d inputs and n_classes classes
 * with min and max unknown (+inf / -inf). FEDC_EFORMAT when a count or the
 * row count falls outside 0..2^53 (words that are not a sum of sites'
 * statistics), FEDC_EINVAL, FEDC_ENOMEM. */
int fedc_stats_from_words(const uint32_t *w, int32_t d, int32_t n_classes, fedc_stats *out);
/* The same for statistics released under DP (noise_multiplier > 0): a
 * negative count or sum of squares (noise) is read as 0, not refused. */
int fedc_stats_from_words_noised(const uint32_t *w, int32_t d, int32_t n_classes,
                                 fedc_stats *out);

/* ---- differential privacy (stats_dp.c) -------------------------------------------- */

/*
 * Clip bounds from config text "col:lo:hi, ..." ([data] clip): each a
 * numeric feature of s with finite lo < hi, |lo|, |hi| < 2^24. FEDC_ECONFIG
 * naming the item otherwise.
 */
int fedc_schema_set_clip(fedc_schema *s, const char *clip);
/* FEDC_ECONFIG naming the first numeric column without clip bounds (DP
 * statistics need every input bounded); 0 when all have them. */
int fedc_schema_require_clip(const fedc_schema *s);
/* The bounds of model input j: a numeric column's clip bounds (or
 * -inf/+inf), [0, 1] for a one-hot input. */
void fedc_schema_input_bounds(const fedc_schema *s, int32_t j, double *lo, double *hi);

/*
 * The standard deviations of the Gaussian noise on the three groups of a
 * site's DP statistics (counts, centred sums, centred sums of squares), for
 * noise multiplier z: sigma_g = z sqrt(3) Delta_g (stats_dp.c derives the
 * sensitivities Delta_g). FEDC_EINVAL when an input has no bounds.
 */
int fedc_stats_dp_sigmas(const fedc_schema *s, int32_t n_classes, double z, double sigma[3]);

/*
 * A site's statistics of ds released under differential privacy with
 * s->noise_multiplier z > 0: values clipped to their input's bounds, then
 * Gaussian noise of std sigma_g * scale added to every count, sum and sum
 * of squares (scale 1 at a site; sqrt(K) for a simulator that releases the
 * pooled statistics of K simulated sites at once, the same distribution as
 * the sum of K sites' noise); min and max become the public bounds. The
 * release is one Gaussian mechanism with noise multiplier z per row
 * (record-level neighbours), whatever the number of inputs. Errors as
 * fedc_stats_compute; FEDC_EINVAL (no z, an input without bounds).
 */
int fedc_stats_compute_dp(const fedc_dataset *ds, int32_t n_classes, const fedc_schema *s,
                          double scale, fedc_rng *rng, fedc_stats *out);

#endif
