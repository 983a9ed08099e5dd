/*
 * update_meta.h - the metadata of an update (POST /v1/update), read and
 * checked in one pure function so that the coordinator's plain and secure
 * paths and the fuzz target apply the same rules (docs/protocol.md):
 *
 *   round        decimal digits only, 1 .. 2^31-1
 *   num_samples  decimal digits only, 1 .. 2^40
 *   train_loss   a number strtod reads whole (no leading space), finite
 *   sha256       optional; the decoder has already checked it
 *
 *     fedc_update_meta m;
 *     if (fedc_update_meta_parse(file, &m) != 0) ... 400 bad_metadata,
 *         fedc_error_msg() names the key ...
 */
#ifndef FEDC_UPDATE_META_H
#define FEDC_UPDATE_META_H

#include <stdint.h>

#include "wire/safetensors.h"

#define FEDC_UPDATE_MAX_SAMPLES ((int64_t)1 << 40)

typedef struct fedc_update_meta {
  int32_t round;       /* >= 1 */
  int64_t num_samples; /* 1 .. FEDC_UPDATE_MAX_SAMPLES */
  double train_loss;   /* finite */
  const char *sha256;  /* the container's "sha256", or NULL; points into f */
} fedc_update_meta;

/*
 * Read round, num_samples and train_loss (and sha256 when present) from a
 * decoded container. On success *out is filled; on error it is zeroed.
 * Errors: FEDC_EFORMAT with a message naming the key and what is wrong,
 * FEDC_EINVAL for NULL arguments.
 */
int fedc_update_meta_parse(const fedc_st_file *f, fedc_update_meta *out);

#endif
