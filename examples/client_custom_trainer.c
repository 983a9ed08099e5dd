/*
 * client_custom_trainer.c - a site that takes part in a fedc job with its
 * own training code, built against the installed library only
 * (<fedc/...> headers; `pkg-config --cflags --libs fedc`).
 *
 * The job is an `mlp` with one hidden layer (its tensors layers.0.weight
 * [H, D], layers.0.bias [H], layers.1.weight [C, H], layers.1.bias [C]),
 * the layout the coordinator averages. This site computes it its own way:
 * tanh hidden units instead of the built-in ReLU, trained by the plain
 * minibatch SGD below on its own IDX shard (unsigned-byte images scaled to
 * [0, 1], and labels). It prints each round's mean training loss on stdout.
 *
 *   client_custom_trainer --url https://127.0.0.1:8443 --ca ca.pem \
 *       --cert client-1.pem --key client-1.key \
 *       --images train-images.idx --labels train-labels.idx [--name site-a]
 *
 * Exit codes are fedc-client's (fedc_client_exit): 0 when the job
 * finished, 2 for bad arguments or data, 3 refused, 4 gave up, 5 stopped.
 */
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fedc/client.h>
#include <fedc/error.h>

/* ---- the site's data ----------------------------------------------------------- */

typedef struct site {
  int64_t n;      /* rows */
  int32_t d;      /* features */
  int32_t labels; /* largest label + 1 */
  float *x;       /* n x d */
  int32_t *y;
  /* from prepare: where the job's tensors lie in the flat vector */
  int32_t hidden, classes;
  size_t w0, b0, w1, b1;
  float *h, *p, *dh; /* one row's activations and gradients */
  float *grad;       /* a minibatch's gradient, one per parameter */
  size_t n_params;
  int64_t *order;
} site;

static uint32_t be32(const unsigned char *b) {
  return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* A whole unsigned-byte IDX file: its dimensions and its bytes. */
static unsigned char *read_idx(const char *path, uint32_t dims[3], int *ndim, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return NULL;
  unsigned char head[16];
  unsigned char *data = NULL;
  if (fread(head, 1, 4, f) == 4 && head[0] == 0 && head[1] == 0 && head[2] == 8 && head[3] >= 1 &&
      head[3] <= 3) {
    *ndim = head[3];
    size_t total = 1;
    int ok = fread(head + 4, 4, (size_t)*ndim, f) == (size_t)*ndim;
    for (int i = 0; ok && i < *ndim; i++) {
      dims[i] = be32(head + 4 + 4 * i);
      total *= dims[i];
    }
    if (ok && (data = malloc(total ? total : 1)) != NULL && fread(data, 1, total, f) != total) {
      free(data);
      data = NULL;
    }
    *len = total;
  }
  fclose(f);
  return data;
}

static int site_load(site *s, const char *images, const char *labels) {
  uint32_t di[3] = {0}, dl[3] = {0};
  int ni = 0, nl = 0;
  size_t li, ll;
  unsigned char *img = read_idx(images, di, &ni, &li);
  unsigned char *lab = read_idx(labels, dl, &nl, &ll);
  int ok = img && lab && ni >= 2 && nl == 1 && di[0] == dl[0] && di[0] > 0;
  if (ok) {
    s->n = di[0];
    s->d = (int32_t)(li / di[0]);
    s->x = malloc((size_t)s->n * (size_t)s->d * sizeof(float));
    s->y = malloc((size_t)s->n * sizeof(int32_t));
    s->order = malloc((size_t)s->n * sizeof(int64_t));
    ok = s->x && s->y && s->order;
  }
  for (size_t i = 0; ok && i < li; i++)
    s->x[i] = (float)img[i] / 255.0f;
  for (int64_t i = 0; ok && i < s->n; i++) {
    s->y[i] = lab[i];
    if (s->y[i] + 1 > s->labels) s->labels = s->y[i] + 1;
  }
  free(img);
  free(lab);
  if (!ok) fprintf(stderr, "client_custom_trainer: %s, %s: not an IDX images/labels pair\n", images,
                   labels);
  return ok ? 0 : -1;
}

/* ---- the trainer ------------------------------------------------------------------ */

/* The job must be the layout this code computes: an mlp with one hidden
 * layer over this site's features and labels. */
static int prepare(void *ud, const fedc_client_job *job, const fedc_client_tensor *t, size_t nt,
                   size_t n_params) {
  site *s = ud;
  if (strcmp(job->type, "mlp") != 0 || job->n_hidden != 1 || nt != 4)
    return fedc_error_set(FEDC_EUNSUPPORTED,
                          "this site trains a one-hidden-layer mlp; the job is a %s with %d "
                          "hidden layers",
                          job->type, (int)job->n_hidden);
  if (job->inputs != s->d)
    return fedc_error_set(FEDC_ESHAPE, "the data has %d features, the job's model takes %d",
                          (int)s->d, (int)job->inputs);
  if (s->labels > job->classes)
    return fedc_error_set(FEDC_ERANGE, "the data has label %d, the job has %d classes",
                          (int)s->labels - 1, (int)job->classes);
  s->hidden = job->hidden[0];
  s->classes = job->classes;
  /* find each tensor by name rather than by position */
  const char *names[4] = {"layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"};
  size_t *offs[4] = {&s->w0, &s->b0, &s->w1, &s->b1};
  for (int k = 0; k < 4; k++) {
    size_t i = 0;
    while (i < nt && strcmp(t[i].name, names[k]) != 0)
      i++;
    if (i == nt) return fedc_error_set(FEDC_EUNSUPPORTED, "the job has no tensor %s", names[k]);
    *offs[k] = t[i].offset;
  }
  free(s->h);
  free(s->p);
  free(s->dh);
  free(s->grad);
  s->h = malloc((size_t)s->hidden * sizeof(float));
  s->dh = malloc((size_t)s->hidden * sizeof(float));
  s->p = malloc((size_t)s->classes * sizeof(float));
  s->grad = malloc(n_params * sizeof(float));
  s->n_params = n_params;
  if (!s->h || !s->dh || !s->p || !s->grad) return fedc_error_set(FEDC_ENOMEM, "out of memory");
  return 0;
}

/* xorshift64*: this site's own shuffling stream, seeded by the round */
static uint64_t next_u64(uint64_t *st) {
  uint64_t x = *st;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *st = x;
  return x * 0x2545F4914F6CDD1DULL;
}

/* One row forward and backward: adds its gradient into s->grad and
 * returns its cross-entropy. */
static double row_step(site *s, const float *w, int64_t row) {
  const float *x = s->x + (size_t)row * (size_t)s->d;
  const int32_t H = s->hidden, C = s->classes, D = s->d;
  for (int32_t j = 0; j < H; j++) {
    const float *wj = w + s->w0 + (size_t)j * (size_t)D;
    float a = w[s->b0 + (size_t)j];
    for (int32_t i = 0; i < D; i++)
      a += wj[i] * x[i];
    s->h[j] = tanhf(a);
  }
  float mx = -INFINITY;
  for (int32_t c = 0; c < C; c++) {
    const float *wc = w + s->w1 + (size_t)c * (size_t)H;
    float a = w[s->b1 + (size_t)c];
    for (int32_t j = 0; j < H; j++)
      a += wc[j] * s->h[j];
    s->p[c] = a;
    if (a > mx) mx = a;
  }
  double z = 0;
  for (int32_t c = 0; c < C; c++) {
    s->p[c] = expf(s->p[c] - mx);
    z += s->p[c];
  }
  int32_t y = s->y[row];
  double loss = -log(s->p[y] / z);
  for (int32_t j = 0; j < H; j++)
    s->dh[j] = 0;
  for (int32_t c = 0; c < C; c++) {
    float g = (float)(s->p[c] / z) - (c == y ? 1.0f : 0.0f); /* dloss/dlogit */
    float *gw = s->grad + s->w1 + (size_t)c * (size_t)H;
    const float *wc = w + s->w1 + (size_t)c * (size_t)H;
    for (int32_t j = 0; j < H; j++) {
      gw[j] += g * s->h[j];
      s->dh[j] += g * wc[j];
    }
    s->grad[s->b1 + (size_t)c] += g;
  }
  for (int32_t j = 0; j < H; j++) {
    float g = s->dh[j] * (1.0f - s->h[j] * s->h[j]); /* tanh' = 1 - tanh^2 */
    float *gw = s->grad + s->w0 + (size_t)j * (size_t)D;
    for (int32_t i = 0; i < D; i++)
      gw[i] += g * x[i];
    s->grad[s->b0 + (size_t)j] += g;
  }
  return loss;
}

/* The job's epochs of minibatch SGD from the global model in w, in place. */
static int train(void *ud, const fedc_client_round *r, float *w, fedc_client_metrics *out) {
  site *s = ud;
  const fedc_client_hparams *hp = &r->job->train;
  uint64_t st = r->seed | 1;
  double loss_sum = 0;
  int64_t seen = 0;
  for (int64_t i = 0; i < s->n; i++)
    s->order[i] = i;
  for (int32_t e = 0; e < hp->epochs; e++) {
    for (int64_t i = s->n - 1; i > 0; i--) { /* Fisher-Yates */
      int64_t k = (int64_t)(next_u64(&st) % (uint64_t)(i + 1));
      int64_t tmp = s->order[i];
      s->order[i] = s->order[k];
      s->order[k] = tmp;
    }
    for (int64_t b = 0; b < s->n; b += hp->batch_size) {
      int64_t end = b + hp->batch_size < s->n ? b + hp->batch_size : s->n;
      memset(s->grad, 0, s->n_params * sizeof(float));
      for (int64_t i = b; i < end; i++)
        loss_sum += row_step(s, w, s->order[i]);
      seen += end - b;
      float step = hp->lr / (float)(end - b);
      for (size_t k = 0; k < s->n_params; k++)
        w[k] -= step * s->grad[k];
    }
  }
  out->samples = s->n;
  out->loss = loss_sum / (double)seen;
  out->accuracy = NAN;
  printf("round %d: loss %.4f samples %lld\n", (int)r->round, out->loss, (long long)s->n);
  fflush(stdout);
  return 0;
}

/* ---- the program -------------------------------------------------------------- */

static fedc_client *volatile g_client;

static void on_signal(int sig) {
  (void)sig;
  fedc_client *c = g_client;
  if (c) fedc_client_stop(c); /* async-signal-safe */
}

int main(int argc, char **argv) {
  const char *images = NULL, *labels = NULL;
  fedc_client_params p;
  fedc_client_params_init(&p);
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *k = argv[i], *v = argv[i + 1];
    if (strcmp(k, "--url") == 0) p.url = v;
    else if (strcmp(k, "--ca") == 0) p.ca = v;
    else if (strcmp(k, "--cert") == 0) p.cert = v;
    else if (strcmp(k, "--key") == 0) p.key = v;
    else if (strcmp(k, "--name") == 0) p.name = v;
    else if (strcmp(k, "--images") == 0) images = v;
    else if (strcmp(k, "--labels") == 0) labels = v;
    else if (strcmp(k, "--give-up") == 0) p.give_up_s = strtod(v, NULL);
    else {
      fprintf(stderr, "client_custom_trainer: unknown option %s\n", k);
      return FEDC_CLIENT_EXIT_BAD_INPUT;
    }
  }
  if (argc % 2 == 0 || !p.url || !p.ca || !p.cert || !p.key || !images || !labels) {
    fprintf(stderr, "usage: client_custom_trainer --url URL --ca CA --cert CERT --key KEY "
                    "--images IDX --labels IDX [--name NAME] [--give-up SECONDS]\n");
    return FEDC_CLIENT_EXIT_BAD_INPUT;
  }
  site s;
  memset(&s, 0, sizeof s);
  if (site_load(&s, images, labels) != 0) return FEDC_CLIENT_EXIT_BAD_INPUT;
  p.trainer.prepare = prepare;
  p.trainer.train = train;
  p.trainer.user_data = &s;
  p.trainer.samples = s.n;
  p.trainer.features = s.d;
  p.user_agent = "client_custom_trainer";

  fedc_client *c;
  if (fedc_client_new(&p, &c) != 0) {
    fprintf(stderr, "client_custom_trainer: %s\n", fedc_error_msg());
    return FEDC_CLIENT_EXIT_BAD_INPUT;
  }
  printf("fingerprint %s\n", fedc_client_fingerprint(c));
  fflush(stdout);
  /* the library installs no handlers: the program does */
  g_client = c;
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  signal(SIGPIPE, SIG_IGN);
  fedc_client_exit e = fedc_client_run(c);
  if (e != FEDC_CLIENT_EXIT_FINISHED)
    fprintf(stderr, "client_custom_trainer: %s (%s)\n", fedc_error_msg(),
            fedc_sub_name(fedc_error_sub()));
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  g_client = NULL;
  fedc_client_free(c);
  free(s.x);
  free(s.y);
  free(s.order);
  free(s.h);
  free(s.p);
  free(s.dh);
  free(s.grad);
  return (int)e;
}
