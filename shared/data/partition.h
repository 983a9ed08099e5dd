/*
 * partition.h - how a simulation splits one data set among its clients.
 *
 * A partition lists, for each client k, the row indices it owns:
 * index[offsets[k] .. offsets[k+1]). Every row goes to exactly one client.
 * The same data set, kind, parameters and seed give the same partition.
 *
 *  iid        rows shuffled and dealt in near-equal contiguous parts
 *  dirichlet  label skew: for each class, proportions over the clients are
 *             drawn from Dir(alpha); see docs/data.md for the exact variant
 *  shards     McMahan et al. 2017: rows sorted by label, cut into
 *             n_clients * shards_per_client equal shards, each client gets
 *             shards_per_client random shards
 */
#ifndef FEDC_PARTITION_H
#define FEDC_PARTITION_H

#include <stdint.h>

#include "data/data.h"

typedef enum {
  FEDC_PARTITION_IID = 0,
  FEDC_PARTITION_DIRICHLET = 1,
  FEDC_PARTITION_SHARDS = 2
} fedc_partition_kind;

typedef struct fedc_partition {
  int32_t n_clients;
  int64_t *offsets; /* n_clients + 1 entries */
  int64_t *index;   /* offsets[n_clients] row indices */
} fedc_partition;

typedef struct fedc_partition_params {
  fedc_partition_kind kind;
  int32_t n_clients;
  double alpha;              /* dirichlet: > 0 */
  int32_t shards_per_client; /* shards: >= 1 */
  uint64_t seed;
} fedc_partition_params;

/* Errors: FEDC_EINVAL (n_clients < 1 or > rows, alpha <= 0, labels not
 * classes for dirichlet/shards, too few rows for the shards), FEDC_ENOMEM. */
int fedc_partition_make(const fedc_dataset *ds, const fedc_partition_params *p,
                        fedc_partition *out);
void fedc_partition_free(fedc_partition *p);
/* "iid" | "dirichlet" | "shards" -> kind; -1 if unknown. */
int fedc_partition_kind_parse(const char *s);
const char *fedc_partition_kind_name(fedc_partition_kind k);

#endif
