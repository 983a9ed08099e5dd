/*
 * layout.h - a job's tensor layout: the names, dtypes and shapes of the
 * model that crosses the wire, and where each tensor's values live.
 *
 * A built-in dense model describes itself with a layout (all F32, the
 * "layers.<i>.weight/bias" of model.h); a tensor job ([model] type =
 * tensors) takes its layout from the initial model's safetensors file. The
 * coordinator encodes, decodes and checks every model through its job's
 * layout, whichever kind the job is.
 *
 * Values live in two flat vectors:
 *   float   the F32, F16 and BF16 tensors, decoded exactly to float, in the
 *           layout's order: what the round engine, every strategy, the norm
 *           bound, DP and secure aggregation work on;
 *   int64   the integer tensors (I64, I32, I16, I8, U8, U16, U32, BOOL):
 *           never averaged, clipped, noised or masked; each follows its
 *           rule, keep (the global model's value) or max (the maximum over
 *           the round's updates), chosen by [model] integer_rule.
 * A committed F16 or BF16 tensor is rounded to its dtype (nearest, ties to
 * even) in the float vector itself (fedc_layout_round), so the engine's
 * global model is exactly what is served and checkpointed.
 */
#ifndef FEDC_LAYOUT_H
#define FEDC_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include "ml/model.h"
#include "wire/safetensors.h"

typedef enum { FEDC_INT_KEEP = 0, FEDC_INT_MAX = 1 } fedc_int_rule;

typedef struct fedc_layout_tensor {
  const char *name; /* owned by the layout */
  int dtype;        /* fedc_st_dtype_code */
  int32_t ndim;
  int64_t shape[FEDC_ST_MAX_DIMS];
  size_t n;         /* elements */
  int is_int;       /* in the int64 vector; else in the float vector */
  size_t off;       /* offset in its vector, in elements */
  fedc_int_rule rule; /* integer tensors only */
} fedc_layout_tensor;

typedef struct fedc_layout {
  size_t n;                /* tensors, in the job's order */
  fedc_layout_tensor *t;
  char *names;
  size_t n_float, n_int;   /* lengths of the two vectors */
  int narrow;              /* some F16 or BF16 tensor: fedc_layout_round has work */
} fedc_layout;

/* The layout of a built-in dense model (every tensor F32). FEDC_ENOMEM. */
int fedc_layout_from_spec(const fedc_model_spec *spec, fedc_layout *out);
/*
 * The layout a decoded container defines (a tensor job's initial model),
 * its tensors in header order. FEDC_EUNSUPPORTED naming a tensor of a dtype
 * a job cannot carry (F64, U64), FEDC_EINVAL for a container without a
 * F32/F16/BF16 tensor (nothing to average), FEDC_ENOMEM.
 */
int fedc_layout_from_file(const fedc_st_file *f, fedc_layout *out);
void fedc_layout_free(fedc_layout *l);

/*
 * Set the integer tensors' rules from "PATTERN=keep|max, ..." (fnmatch
 * patterns on tensor names; the first that matches wins; a tensor no
 * pattern matches keeps). NULL or "" leaves every rule keep. FEDC_ECONFIG
 * with the reason for a malformed entry.
 */
int fedc_layout_set_rules(fedc_layout *l, const char *text);
/* 1 when some integer tensor takes the maximum. */
int fedc_layout_has_max(const fedc_layout *l);

/*
 * Copy a decoded container's tensors into wf (n_float) and wi (n_int; may
 * be NULL when n_int is 0), checking them against the layout, each error
 * naming the tensor: FEDC_ESHAPE (a tensor missing, extra, or of another
 * shape), FEDC_EUNSUPPORTED (another dtype), FEDC_ENONFINITE (a NaN or
 * infinite float, or |w| >= 2^31: what FedAvg's fixed-point sum accepts).
 * wf and wi are written only when everything is good.
 */
int fedc_layout_read(const fedc_layout *l, const fedc_st_file *f, float *wf, int64_t *wi);

/* For a container decoded with FEDC_ST_BORROW (wire/safetensors.h): *wf
 * points at its float values in place when the layout is all F32 and they
 * lie back to back in the layout's order (0); FEDC_EUNSUPPORTED when they
 * do not (fedc_layout_read then copies them), or fedc_layout_read's shape
 * and dtype errors. The values themselves are not checked. */
int fedc__layout_view(const fedc_layout *l, const fedc_st_file *f, const float **wf);

/* Encode wf and wi, each tensor in its own dtype (floats rounded to nearest
 * even), with metadata, into a new buffer freed with fedc_free. */
int fedc_layout_encode(const fedc_layout *l, const float *wf, const int64_t *wi,
                       const fedc_st_meta *meta, size_t n_meta, uint8_t **out,
                       size_t *len);
/* Decode bytes (any dtype accepted by the container) and fedc_layout_read
 * them; *file (may be NULL) gets the container for its metadata. Errors as
 * fedc_layout_read and fedc_st_decode. */
int fedc_layout_decode(const fedc_layout *l, const uint8_t *bytes, size_t len, float *wf,
                       int64_t *wi, fedc_st_file **file);

/* Round every F16 and BF16 element of wf to its dtype, saturating at the
 * largest finite value (a global model never becomes infinite). */
void fedc_layout_round(const fedc_layout *l, float *wf);

/* The integer rules over a round: acc (n_int) folds each update's wi with
 * fedc_layout_int_fold (first = 1 for the round's first update: copies);
 * fedc_layout_int_next writes next = acc for max tensors when some update
 * was folded (have), else the global value. Order does not matter. */
void fedc_layout_int_fold(const fedc_layout *l, int64_t *acc, const int64_t *wi, int first);
void fedc_layout_int_next(const fedc_layout *l, const int64_t *global, const int64_t *acc,
                          int have, int64_t *next);

#endif
