/*
 * train.c - forward and backward passes of the dense-layer models, local
 * minibatch SGD and evaluation, written against the backend interface only.
 *
 * Shapes for a batch of B rows, layer l with in_l inputs and out_l outputs:
 *   A_0 = X (B x in_0);  Z_l = A_l W_l^T + b_l;  A_{l+1} = relu(Z_l)
 *   dW_l = dZ_l^T A_l;   db_l = colsum(dZ_l);   dA_l = dZ_l W_l;
 *   dZ_{l-1} = dA_l * (A_l > 0)
 * Hidden activations are stored after the ReLU; A > 0 exactly where Z > 0,
 * so the pre-activations need not be kept.
 */
#include "ml/train.h"

#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"

int fedc_data_view_open(fedc_backend *be, const float *x, const float *y,
                        int64_t n, int64_t d, fedc_data_view *v) {
  *v = (fedc_data_view){x, y, n, d, NULL};
  if (be->device == FEDC_DEVICE_CPU) return 0;
  float *dx = fedc_buf_alloc(be, (size_t)n * (size_t)d);
  float *dy = fedc_buf_alloc(be, (size_t)n);
  int rc = dx && dy ? 0 : fedc_error_set(FEDC_ENOMEM, "data: out of %s memory", be->name);
  if (rc == 0) rc = fedc_buf_upload(be, dx, x, (size_t)n * (size_t)d);
  if (rc == 0) rc = fedc_buf_upload(be, dy, y, (size_t)n);
  if (rc != 0) {
    fedc_buf_free(be, dx);
    fedc_buf_free(be, dy);
    return rc;
  }
  v->x = dx;
  v->y = dy;
  return 0;
}

void fedc_data_view_close(fedc_backend *be, fedc_data_view *v) {
  if (be->device != FEDC_DEVICE_CPU) {
    fedc_buf_free(be, (float *)v->x);
    fedc_buf_free(be, (float *)v->y);
  }
  *v = (fedc_data_view){0};
}

struct fedc_trainer {
  fedc_backend *be;
  fedc_model_spec spec;
  int32_t n_layers;
  fedc_layer_layout layers[FEDC_MODEL_MAX_LAYERS];
  size_t n_params;
  int32_t max_batch;
  int32_t max_width;
  float *w, *g, *v, *w0;             /* n_params each, backend memory */
  float *corr;                       /* SCAFFOLD's correction, made on first use */
  float *xb, *yb;                    /* gathered batch */
  float *acts[FEDC_MODEL_MAX_LAYERS]; /* acts[l], l >= 1: B x in_l */
  float *out;                        /* B x n_out */
  float *d1, *d2;                    /* B x max_width, backward ping-pong */
  int64_t *order;                    /* host: shuffled rows of an epoch */
  int64_t order_cap;
  float *host_dz, *host_y;           /* host: class weighting, B x n_out and B */
  float *host_out;                   /* host: a batch's outputs, B x n_out */
};

static void trainer_release(fedc_trainer *t) {
  fedc_backend *be = t->be;
  fedc_buf_free(be, t->w);
  fedc_buf_free(be, t->g);
  fedc_buf_free(be, t->v);
  fedc_buf_free(be, t->w0);
  fedc_buf_free(be, t->corr);
  fedc_buf_free(be, t->xb);
  fedc_buf_free(be, t->yb);
  for (int32_t l = 1; l < t->n_layers; l++) fedc_buf_free(be, t->acts[l]);
  fedc_buf_free(be, t->out);
  fedc_buf_free(be, t->d1);
  fedc_buf_free(be, t->d2);
  fedc_free(t->order);
  fedc_free(t->host_dz);
  fedc_free(t->host_y);
  fedc_free(t->host_out);
}

int fedc_trainer_new(fedc_backend *be, const fedc_model_spec *spec,
                     int32_t max_batch, fedc_trainer **out) {
  *out = NULL;
  if (max_batch < 1)
    return fedc_error_set(FEDC_EINVAL, "trainer: max_batch must be >= 1");
  fedc_trainer *t = fedc_calloc(1, sizeof *t);
  if (t == NULL) return fedc_error_set(FEDC_ENOMEM, "trainer: out of memory");
  t->be = be;
  t->spec = *spec;
  t->n_layers = fedc_model_n_layers(spec);
  t->n_params = fedc_model_n_params(spec);
  t->max_batch = max_batch;
  t->max_width = spec->n_in;
  for (int32_t l = 0; l < t->n_layers; l++) {
    fedc_model_layout(spec, l, &t->layers[l]);
    if (t->layers[l].out > t->max_width) t->max_width = t->layers[l].out;
  }
  size_t B = (size_t)max_batch, np = t->n_params;
  int ok = (t->w = fedc_buf_alloc(be, np)) && (t->g = fedc_buf_alloc(be, np)) &&
           (t->v = fedc_buf_alloc(be, np)) && (t->w0 = fedc_buf_alloc(be, np)) &&
           (t->xb = fedc_buf_alloc(be, B * (size_t)spec->n_in)) &&
           (t->yb = fedc_buf_alloc(be, B)) &&
           (t->out = fedc_buf_alloc(be, B * (size_t)spec->n_out)) &&
           (t->d1 = fedc_buf_alloc(be, B * (size_t)t->max_width)) &&
           (t->d2 = fedc_buf_alloc(be, B * (size_t)t->max_width));
  for (int32_t l = 1; ok && l < t->n_layers; l++)
    ok = (t->acts[l] = fedc_buf_alloc(be, B * (size_t)t->layers[l].in)) != NULL;
  if (!ok) {
    trainer_release(t);
    fedc_free(t);
    return fedc_error_set(FEDC_ENOMEM, "trainer: out of %s memory", be->name);
  }
  *out = t;
  return 0;
}

void fedc_trainer_free(fedc_trainer *t) {
  if (t == NULL) return;
  trainer_release(t);
  fedc_free(t);
}

const fedc_model_spec *fedc_trainer_spec(const fedc_trainer *t) {
  return &t->spec;
}

/* The first layer of rows kept as bytes (x8, B x n_in, fedc_data_view's
 * x_u8) into z: the backend's gemm_u8 reads the bytes, or they are
 * unpacked into t->xb and multiplied. 1 when done, 0 when the backend has
 * neither op (the caller uses the floats). */
static int first_layer_u8(fedc_trainer *t, const uint8_t *x8, int32_t B, float *z, int *rc) {
  fedc_backend *be = t->be;
  const fedc_layer_layout *ly = &t->layers[0];
  if (be->gemm_u8 && ly->in <= be->gemm_u8_max_k) {
    *rc = be->gemm_u8(be, B, ly->out, ly->in, 1.0f, x8, ly->in, t->w + ly->w_off, ly->in,
                      0.0f, z, ly->out);
    return 1;
  }
  if (be->unpack_u8 == NULL) return 0;
  *rc = be->unpack_u8(be, t->xb, x8, ly->in, B);
  if (*rc == 0)
    *rc = be->gemm(be, 0, 1, B, ly->out, ly->in, 1.0f, t->xb, ly->in, t->w + ly->w_off,
                   ly->in, 0.0f, z, ly->out);
  return 1;
}

/* Forward B rows of x (backend memory, B x n_in) through t->w into t->out;
 * with rows, row i is x's row rows[i], read in place (be->gemm_rows); with
 * x8 (NULL or the same rows as bytes), the first layer reads the bytes
 * where the backend can. */
static int forward(fedc_trainer *t, const float *x, const uint8_t *x8, const int64_t *rows,
                   int32_t B) {
  fedc_backend *be = t->be;
  const float *a = x;
  int rc = 0;
  for (int32_t l = 0; l < t->n_layers && rc == 0; l++) {
    const fedc_layer_layout *ly = &t->layers[l];
    int last = l == t->n_layers - 1;
    float *z = last ? t->out : t->acts[l + 1];
    if (l == 0 && x8 && first_layer_u8(t, x8, B, z, &rc)) {
      /* the bytes read */
    } else if (l == 0 && rows) {
      rc = be->gemm_rows(be, 0, 1, B, ly->out, ly->in, 1.0f, a, ly->in,
                         t->w + ly->w_off, ly->in, rows, 0.0f, z, ly->out);
    } else {
      rc = be->gemm(be, 0, 1, B, ly->out, ly->in, 1.0f, a, ly->in,
                    t->w + ly->w_off, ly->in, 0.0f, z, ly->out);
    }
    if (rc == 0) rc = be->add_bias(be, z, t->w + ly->b_off, B, ly->out);
    if (rc == 0 && !last) rc = be->relu(be, z, z, (size_t)B * (size_t)ly->out);
    a = z;
  }
  return rc;
}

/* Backward pass: t->d1 holds dZ of the last layer (B x n_out); fills t->g.
 * x and rows as forward's. */
static int backward(fedc_trainer *t, const float *x, const int64_t *rows, int32_t B) {
  fedc_backend *be = t->be;
  float *dz = t->d1, *da = t->d2;
  int rc = 0;
  for (int32_t l = t->n_layers - 1; l >= 0 && rc == 0; l--) {
    const fedc_layer_layout *ly = &t->layers[l];
    const float *a = l == 0 ? x : t->acts[l];
    if (l == 0 && rows)
      rc = be->gemm_rows(be, 1, 0, ly->out, ly->in, B, 1.0f, dz, ly->out, a, ly->in,
                         rows, 0.0f, t->g + ly->w_off, ly->in);
    else
      rc = be->gemm(be, 1, 0, ly->out, ly->in, B, 1.0f, dz, ly->out, a, ly->in,
                    0.0f, t->g + ly->w_off, ly->in);
    if (rc == 0) rc = be->col_sum(be, t->g + ly->b_off, dz, B, ly->out);
    if (rc == 0 && l > 0) {
      rc = be->gemm(be, 0, 0, B, ly->in, ly->out, 1.0f, dz, ly->out,
                    t->w + ly->w_off, ly->in, 0.0f, da, ly->in);
      if (rc == 0)
        rc = be->relu_backward(be, da, da, a, (size_t)B * (size_t)ly->in);
      float *tmp = dz;
      dz = da;
      da = tmp;
    }
  }
  return rc;
}

/* One SGD step per layer: weights regularized, biases not. */
static int step(fedc_trainer *t, const fedc_sgd_params *base, int use_w0) {
  fedc_backend *be = t->be;
  fedc_sgd_params pb = *base;
  pb.l1 = pb.l2 = 0.0f;
  if (base->l1 == 0.0f && base->l2 == 0.0f)
    return be->sgd_step(be, t->w, t->g, t->v, use_w0 ? t->w0 : NULL,
                        t->n_params, base);
  int rc = 0;
  for (int32_t l = 0; l < t->n_layers && rc == 0; l++) {
    const fedc_layer_layout *ly = &t->layers[l];
    size_t nw = (size_t)ly->in * (size_t)ly->out;
    rc = be->sgd_step(be, t->w + ly->w_off, t->g + ly->w_off, t->v + ly->w_off,
                      use_w0 ? t->w0 + ly->w_off : NULL, nw, base);
    if (rc == 0)
      rc = be->sgd_step(be, t->w + ly->b_off, t->g + ly->b_off,
                        t->v + ly->b_off, use_w0 ? t->w0 + ly->b_off : NULL,
                        (size_t)ly->out, &pb);
  }
  return rc;
}

/*
 * Scale each row of the loss gradient t->d1 (B x n_out) by its class's
 * weight. Done on a host copy so that every backend can do it with the ops
 * it has (download, upload); B x n_out floats is small next to the gemms.
 */
static int weight_rows(fedc_trainer *t, const fedc_train_params *p, int32_t B) {
  fedc_backend *be = t->be;
  size_t cols = (size_t)t->spec.n_out;
  if (t->host_dz == NULL) {
    t->host_dz = fedc_malloc_array((size_t)t->max_batch * cols, sizeof(float));
    t->host_y = fedc_malloc_array((size_t)t->max_batch, sizeof(float));
    if (t->host_dz == NULL || t->host_y == NULL)
      return fedc_error_set(FEDC_ENOMEM, "train: out of memory");
  }
  int rc = be->download(be, t->host_y, t->yb, (size_t)B);
  if (rc == 0) rc = be->download(be, t->host_dz, t->d1, (size_t)B * cols);
  for (int32_t i = 0; i < B && rc == 0; i++) {
    int32_t k = (int32_t)t->host_y[i];
    float wk = k >= 0 && k < p->n_class_weight ? p->class_weight[k] : 1.0f;
    for (size_t j = 0; j < cols; j++) t->host_dz[(size_t)i * cols + j] *= wk;
  }
  if (rc == 0) rc = be->upload(be, t->d1, t->host_dz, (size_t)B * cols);
  return rc;
}

/* Ask for the next minibatch's rows (bytes, host memory) while this one
 * is computed: they lie anywhere in the data set, and reading them cold
 * cost more than the products of a small model. */
static void prefetch_rows(const fedc_data_view *data, const int64_t *rows, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    const uint8_t *r = data->x_u8 + (size_t)rows[i] * (size_t)data->d;
    for (int64_t off = 0; off < data->d; off += 64) __builtin_prefetch(r + off, 0, 2);
    __builtin_prefetch(r + data->d - 1, 0, 2);
  }
}

int fedc_train_local(fedc_trainer *t, const fedc_train_params *p,
                     const fedc_data_view *data, const int64_t *rows,
                     int64_t n_rows, fedc_rng *rng, float *w,
                     fedc_train_stats *stats) {
  fedc_backend *be = t->be;
  if (p->batch_size < 1 || p->batch_size > t->max_batch)
    return fedc_error_set(FEDC_EINVAL, "train: batch_size %d outside 1..%d",
                          (int)p->batch_size, (int)t->max_batch);
  if (n_rows < 1) return fedc_error_set(FEDC_EINVAL, "train: client has no rows");
  if (data->d != t->spec.n_in)
    return fedc_error_set(FEDC_ESHAPE, "train: data has %lld features, model %d",
                          (long long)data->d, (int)t->spec.n_in);
  if (n_rows > t->order_cap) {
    int64_t *o = fedc_realloc(t->order, (size_t)n_rows * sizeof *o);
    if (o == NULL) return fedc_error_set(FEDC_ENOMEM, "train: out of memory");
    t->order = o;
    t->order_cap = n_rows;
  }
  size_t np = t->n_params;
  int rc = be->upload(be, t->w, w, np);
  if (rc == 0 && p->prox_mu != 0.0f) rc = be->upload(be, t->w0, w, np);
  if (rc == 0 && p->correction != NULL) {
    if (t->corr == NULL && (t->corr = fedc_buf_alloc(be, np)) == NULL)
      rc = fedc_error_set(FEDC_ENOMEM, "train: out of %s memory", be->name);
    if (rc == 0) rc = be->upload(be, t->corr, p->correction, np);
  }
  /* a fresh momentum buffer per local run: each run is a new client optimizer */
  if (rc == 0 && p->momentum != 0.0f) rc = be->zero(be, t->v, np);
  if (rc != 0) return rc;
  fedc_sgd_params sp = {.lr = p->lr, .momentum = p->momentum,
                        .l1 = t->spec.l1, .l2 = t->spec.l2,
                        .prox_mu = p->prox_mu};
  fedc_loss_kind kind = fedc_model_loss_kind(&t->spec);
  /* the first layer's products read the minibatch where it lies when the
   * backend can (the same bits); otherwise its rows are gathered first */
  int in_place = be->gemm_rows != NULL && t->layers[0].out <= be->gemm_rows_max;
  /* rows kept as bytes are gathered and unpacked in one pass, reading a
   * quarter of the memory (the same floats, so the same bits) */
  int bytes = data->x_u8 != NULL && be->unpack_u8 != NULL;
  if (bytes) in_place = 0;
  for (int32_t e = 0; e < p->epochs && rc == 0; e++) {
    memcpy(t->order, rows, (size_t)n_rows * sizeof *rows);
    fedc_rng_shuffle_i64(rng, t->order, n_rows);
    for (int64_t s = 0; s < n_rows && rc == 0; s += p->batch_size) {
      int32_t B = (int32_t)(n_rows - s < p->batch_size ? n_rows - s : p->batch_size);
      double loss = 0.0;
      int64_t correct = 0;
      const float *x = in_place ? data->x : t->xb;
      const int64_t *xrows = in_place ? t->order + s : NULL;
      if (bytes) {
        for (int32_t i = 0; i < B && rc == 0; i++)
          rc = be->unpack_u8(be, t->xb + (size_t)i * (size_t)data->d,
                             data->x_u8 + (size_t)t->order[s + i] * (size_t)data->d, data->d, 1);
        prefetch_rows(data, t->order + s + B, n_rows - s - B < B ? n_rows - s - B : B);
      }
      else if (!in_place)
        rc = be->gather_rows(be, t->xb, data->x, data->d, t->order + s, B);
      if (rc == 0) rc = be->gather(be, t->yb, data->y, t->order + s, B);
      if (rc == 0) rc = forward(t, x, NULL, xrows, B);
      if (rc == 0)
        rc = be->loss(be, kind, t->d1, t->out, t->yb, B, t->spec.n_out,
                      1.0f / (float)B, &loss, &correct, NULL);
      if (rc == 0 && !isfinite(loss))
        rc = fedc_error_set(FEDC_ENONFINITE,
                            "train: loss became %g at step %lld (lr too high?)",
                            loss, (long long)stats->steps);
      if (rc == 0 && p->class_weight != NULL) rc = weight_rows(t, p, B);
      if (rc == 0) rc = backward(t, x, xrows, B);
      /* g += c - c_i, exactly (reg_grad with l2 = 1 adds 1 * corr) */
      if (rc == 0 && p->correction != NULL)
        rc = be->reg_grad(be, t->g, t->corr, NULL, np, 0.0f, 1.0f, 0.0f);
      if (rc == 0) rc = step(t, &sp, p->prox_mu != 0.0f);
      stats->loss_sum += loss;
      stats->correct += correct;
      stats->seen += B;
      stats->steps++;
    }
  }
  if (rc == 0) rc = be->download(be, w, t->w, np);
  return rc;
}

/* Row s of a data view's byte copy, or NULL when it has none. */
static const uint8_t *rows_u8(const fedc_data_view *data, int64_t s) {
  return data->x_u8 ? data->x_u8 + (size_t)s * (size_t)data->d : NULL;
}

int fedc_evaluate(fedc_trainer *t, const float *w, const fedc_data_view *data,
                  int64_t begin, int64_t end, fedc_eval_sums *sums,
                  float *scores) {
  fedc_backend *be = t->be;
  if (data->d != t->spec.n_in)
    return fedc_error_set(FEDC_ESHAPE, "evaluate: data has %lld features, model %d",
                          (long long)data->d, (int)t->spec.n_in);
  int rc = be->upload(be, t->w, w, t->n_params);
  fedc_loss_kind kind = fedc_model_loss_kind(&t->spec);
  for (int64_t s = begin; s < end && rc == 0; s += t->max_batch) {
    int32_t B = (int32_t)(end - s < t->max_batch ? end - s : t->max_batch);
    rc = forward(t, data->x + (size_t)s * (size_t)data->d, rows_u8(data, s), NULL, B);
    if (rc == 0)
      rc = be->loss(be, kind, NULL, t->out, data->y + s, B, t->spec.n_out, 1.0f,
                    &sums->loss_sum, &sums->correct,
                    scores ? scores + (s - begin) : NULL);
    sums->n += B;
  }
  return rc;
}

/*
 * One pass of fedc_evaluate's batches; after each batch's loss the outputs
 * go to fn, from the trainer's own buffer on the CPU backend and through a
 * host copy (made on first use) on the others. With sums NULL the loss is
 * left to fn (which then computes it from the same outputs).
 */
int fedc_evaluate_each(fedc_trainer *t, const float *w, const fedc_data_view *data,
                       int64_t begin, int64_t end, fedc_eval_sums *sums,
                       fedc_eval_batch_fn fn, void *ctx) {
  fedc_backend *be = t->be;
  if (data->d != t->spec.n_in)
    return fedc_error_set(FEDC_ESHAPE, "evaluate: data has %lld features, model %d",
                          (long long)data->d, (int)t->spec.n_in);
  size_t cols = (size_t)t->spec.n_out;
  int host = be->device == FEDC_DEVICE_CPU;
  if (!host && t->host_out == NULL &&
      (t->host_out = fedc_malloc_array((size_t)t->max_batch * cols, sizeof(float))) == NULL)
    return fedc_error_set(FEDC_ENOMEM, "evaluate: out of memory");
  int rc = be->upload(be, t->w, w, t->n_params);
  fedc_loss_kind kind = fedc_model_loss_kind(&t->spec);
  for (int64_t s = begin; s < end && rc == 0; s += t->max_batch) {
    int32_t B = (int32_t)(end - s < t->max_batch ? end - s : t->max_batch);
    rc = forward(t, data->x + (size_t)s * (size_t)data->d, rows_u8(data, s), NULL, B);
    if (rc == 0 && sums != NULL)
      rc = be->loss(be, kind, NULL, t->out, data->y + s, B, t->spec.n_out, 1.0f,
                    &sums->loss_sum, &sums->correct, NULL);
    if (sums != NULL) sums->n += B;
    if (rc == 0 && !host) rc = be->download(be, t->host_out, t->out, (size_t)B * cols);
    if (rc == 0 && fn) rc = fn(ctx, host ? t->out : t->host_out, s, B);
  }
  return rc;
}

int fedc_predict(fedc_trainer *t, const float *w, const fedc_data_view *data, int64_t begin,
                 int64_t end, float *out) {
  fedc_backend *be = t->be;
  if (data->d != t->spec.n_in)
    return fedc_error_set(FEDC_ESHAPE, "predict: data has %lld features, model %d",
                          (long long)data->d, (int)t->spec.n_in);
  int rc = be->upload(be, t->w, w, t->n_params);
  size_t cols = (size_t)t->spec.n_out;
  for (int64_t s = begin; s < end && rc == 0; s += t->max_batch) {
    int32_t B = (int32_t)(end - s < t->max_batch ? end - s : t->max_batch);
    rc = forward(t, data->x + (size_t)s * (size_t)data->d, rows_u8(data, s), NULL, B);
    if (rc == 0) rc = be->download(be, out + (size_t)(s - begin) * cols, t->out, (size_t)B * cols);
  }
  return rc;
}

int fedc_model_loss_grad(fedc_trainer *t, const float *w, const float *w0,
                         float mu, const fedc_data_view *data,
                         const int64_t *rows, int32_t n_rows, double *loss,
                         float *grad) {
  fedc_backend *be = t->be;
  if (n_rows < 1 || n_rows > t->max_batch)
    return fedc_error_set(FEDC_EINVAL, "loss_grad: %d rows outside 1..%d",
                          (int)n_rows, (int)t->max_batch);
  size_t np = t->n_params;
  double data_loss = 0.0;
  int rc = be->upload(be, t->w, w, np);
  if (rc == 0 && mu != 0.0f) rc = be->upload(be, t->w0, w0, np);
  if (rc == 0) rc = be->gather_rows(be, t->xb, data->x, data->d, rows, n_rows);
  if (rc == 0) rc = be->gather(be, t->yb, data->y, rows, n_rows);
  if (rc == 0) rc = forward(t, t->xb, NULL, NULL, n_rows);
  if (rc == 0)
    rc = be->loss(be, fedc_model_loss_kind(&t->spec), t->d1, t->out, t->yb,
                  n_rows, t->spec.n_out, 1.0f / (float)n_rows, &data_loss, NULL,
                  NULL);
  if (rc == 0) rc = backward(t, t->xb, NULL, n_rows);
  double reg = 0.0;
  for (int32_t l = 0; l < t->n_layers && rc == 0; l++) {
    const fedc_layer_layout *ly = &t->layers[l];
    size_t nw = (size_t)ly->in * (size_t)ly->out;
    double ss = 0.0, sa = 0.0;
    rc = be->sumsq(be, t->w + ly->w_off, nw, &ss);
    if (rc == 0) rc = be->sum_abs(be, t->w + ly->w_off, nw, &sa);
    reg += 0.5 * t->spec.l2 * ss + t->spec.l1 * sa;
    if (rc == 0)
      rc = be->reg_grad(be, t->g + ly->w_off, t->w + ly->w_off, NULL, nw,
                        t->spec.l1, t->spec.l2, 0.0f);
  }
  if (rc == 0 && mu != 0.0f) {
    /* prox term on the host: it is only used by tests and small checks */
    for (size_t i = 0; i < np; i++) {
      double dlt = (double)w[i] - (double)w0[i];
      reg += 0.5 * mu * dlt * dlt;
    }
    rc = be->reg_grad(be, t->g, t->w, t->w0, np, 0.0f, 0.0f, mu);
  }
  if (rc == 0) rc = be->download(be, grad, t->g, np);
  if (rc == 0) *loss = data_loss / n_rows + reg;
  return rc;
}
