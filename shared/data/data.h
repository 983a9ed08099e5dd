/*
 * data.h - an in-memory data set and the loaders that fill it.
 *
 * A data set is n rows of d float32 features (row-major, 64-byte aligned)
 * and n float labels. For classification the labels are class indices
 * 0..n_classes-1 stored exactly as floats; for regression n_classes is 0 and
 * the label is the target value.
 *
 * Loaders never return a half-filled data set: on error *out is left zeroed
 * and the message (fedc_error_msg) names the file and, for text, the line.
 */
#ifndef FEDC_DATA_H
#define FEDC_DATA_H

#include <stdint.h>

typedef enum { FEDC_FORMAT_IDX = 0, FEDC_FORMAT_CSV = 1 } fedc_data_format;

typedef struct fedc_dataset {
  int64_t n;         /* rows */
  int64_t d;         /* features per row */
  float *x;          /* n * d features, fedc_malloc_aligned */
  float *y;          /* n labels, fedc_malloc_aligned */
  int32_t n_classes; /* classes, or 0 when the labels are not all
                        non-negative integers (regression target) */
  uint8_t *x_u8;     /* NULL, or the features as bytes, x = x_u8 / 255.0f
                        exactly (fedc_dataset_pack_u8), fedc_malloc_aligned */
} fedc_dataset;

/* Free x and y and zero *ds; safe on a zeroed struct and on NULL. */
void fedc_dataset_free(fedc_dataset *ds);

/*
 * Keep a byte copy of the features when every one of them is b / 255.0f
 * for a byte b (the IDX loader's pixels): ds->x_u8, a quarter of x's
 * memory, which the CPU backend reads for the same products (backend.h's
 * gemm_u8). Returns 1 when made (or already there), 0 when some feature
 * is not such a value (nothing is made), FEDC_ENOMEM. x must not change
 * afterwards (fedc_dataset_standardize and _permute drop the copy).
 */
int fedc_dataset_pack_u8(fedc_dataset *ds);

/*
 * IDX files (LeCun's format; gzipped or not, detected from the bytes):
 * images are magic 0x00000803 with dims n, rows, cols of unsigned bytes, scaled
 * to [0, 1] as byte / 255.0f (d = rows * cols); labels are magic 0x00000801
 * with dim n, each at most 254. The counts must agree; n_classes is the
 * largest label + 1. *out is overwritten, not freed.
 * Errors: FEDC_EINVAL (NULL argument), FEDC_EIO (missing or unreadable),
 * FEDC_EFORMAT (wrong magic, wrong type byte or dimension count, no images,
 * truncated or corrupt gzip, trailing bytes, count mismatch, label > 254),
 * FEDC_ENOMEM.
 */
int fedc_load_idx(const char *images_path, const char *labels_path,
                  fedc_dataset *out);

/*
 * CSV with a header row. label names the label column; every other column
 * is a numeric feature, in header order. Empty lines at the end are allowed;
 * a row with the wrong number of fields or a field that is not a finite
 * number is an error naming the file, the line and the column. Fields may
 * not be quoted; spaces around them and "\r\n" line ends are fine. Numbers
 * are read with strtod, so the C locale's decimal point is assumed.
 * n_classes is the largest label + 1 when every label is a non-negative
 * integer below 2^24, else 0. *out is overwritten, not freed.
 * Errors: FEDC_EINVAL (NULL argument), FEDC_EIO (missing or unreadable),
 * FEDC_ENOTFOUND (no column named label), FEDC_EFORMAT (everything else
 * wrong with the contents, including an empty file or no data rows),
 * FEDC_ENOMEM.
 */
int fedc_load_csv(const char *path, const char *label, fedc_dataset *out);

/*
 * Standardize features to zero mean and unit variance using the statistics
 * of train (population variance, accumulated in double; a column with zero
 * variance is only centred); applies the same transform to test when test
 * is not NULL. Errors: FEDC_EINVAL (train empty), FEDC_ESHAPE (test->d !=
 * train->d), FEDC_ENOMEM; on error neither set is changed.
 */
int fedc_dataset_standardize(fedc_dataset *train, fedc_dataset *test);

/*
 * Reorder the rows in place: row i becomes the old row order[i] (order is a
 * permutation of 0..n-1, checked before any row moves: FEDC_EINVAL). The
 * simulator uses it to make each client's rows
 * contiguous in memory.
 */
int fedc_dataset_permute(fedc_dataset *ds, const int64_t *order);

#endif
