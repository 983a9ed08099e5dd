/*
 * codec_client.h - [strategy] compression at the site (docs/compression.md):
 * the job object's "compression" read, the round's global model kept
 * before training, the trained weights' delta encoded into the body of
 * POST /v1/update (wire/coded_update.h), and topk's error-feedback
 * residual kept in [client] state_dir across rounds and restarts.
 */
#ifndef FEDC_CLIENT_CODEC_CLIENT_H
#define FEDC_CLIENT_CODEC_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "client.h"

typedef struct fedc_client_codec fedc_client_codec;

/*
 * From the job object's text (job_json, "{}" allowed): *out NULL when the
 * job does not compress, else a codec for n weights. topk reads or starts
 * STATE_DIR/topk-<job id>.safetensors (FEDC_ECONFIG without a state_dir);
 * FEDC_EFORMAT for an unknown codec or a bad fraction, FEDC_ENOMEM.
 */
int fedc__client_codec_new(const char *job_json, const char *state_dir, const char *job_id,
                           uint64_t seed, int32_t client_id, size_t n, fedc_client_codec **out);
void fedc__client_codec_free(fedc_client_codec *cc);
/* A tensor job's weights: the elements of the model's tensors, or 0 when
 * one is not F32 (a compressed tensor job carries F32 tensors only). */
size_t fedc__client_codec_st_count(const fedc_client_st_view *model);
/* The round's start model x (n weights), before the trainer changes it. */
void fedc__client_codec_begin(fedc_client_codec *cc, int32_t round, const float *x);
/* The body for trained weights w: topk's residual is written (atomically)
 * before it returns. *out freed with fedc_free. */
int fedc__client_codec_encode(fedc_client_codec *cc, const float *w, int32_t round,
                              int64_t num_samples, double train_loss, uint8_t **out,
                              size_t *out_len);

/*
 * A round trained through train_st (a trainer that takes the model's
 * bytes) in a dense compressed job: the round's model and the trainer's
 * update (views already checked for the same layout) flattened in the
 * job's layout order (every tensor F32), begun and encoded as above. A
 * tensor job passes layout NULL: the model's header order, every tensor
 * F32 (the coordinator refuses compression otherwise). FEDC_EFORMAT when
 * a tensor is missing or not F32.
 */
int fedc__client_codec_encode_st(fedc_client_codec *cc, const fedc_client_st_view *model,
                                 const fedc_client_st_view *update,
                                 const fedc_client_tensor *layout, size_t n_layout, int32_t round,
                                 int64_t num_samples, double train_loss, uint8_t **out,
                                 size_t *out_len);

#endif
