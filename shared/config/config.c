/*
 * config.c - the job configuration. One table of keys drives the defaults,
 * the INI and --set parsers, the range checks, the dump and the docs, so a
 * key added to the table is parsed, checked, written and documented at once.
 *
 * Files are read with inih, through our own line reader, for three reasons:
 * the handler of Debian's inih gets no line number (the reader counts the
 * lines it hands over, one per call); inih takes an indented line as the
 * continuation of the previous value (the reader strips indentation, so
 * indentation means nothing and there are no continuation lines); and inih's
 * line buffer holds 200 bytes (a longer line reaches inih cut short, and the
 * handler takes the value again from the whole line). inih's process-wide
 * settings are left alone.
 *
 * A file is parsed into a copy of the caller's config that replaces it only
 * when the whole file was good; a --set is parsed completely before it is
 * stored. Either way a failed call leaves the config as it was.
 */
#include "config/config.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agg/agg.h"
#include "base/alloc.h"
#include "base/error.h"
#include "data/partition.h"
#include "ml/class_weight.h"
#include "ml/eval_report.h"
#include "wire/compress.h"

typedef enum {
  T_INT32,   /* int32_t member */
  T_UINT64,  /* uint64_t member */
  T_DOUBLE,  /* double member, always finite */
  T_BOOL,    /* int32_t member, 0 or 1 */
  T_STRING,  /* char[size] member */
  T_ENUM,    /* int32_t-sized member holding the index into names */
  T_CHOICE,  /* char[size] member holding a registered strategy's name
              * (the registry, <fedc/strategy.h>, is the one list) */
  T_INTLIST  /* int32_t[size / 4] member, count in the int32_t at aux */
} key_type;

/* AS_FLOAT: training takes the value as a float (fedc_train_params, the
 * model spec), so it must keep its bounds once rounded to one: lr = 1e-50
 * would train with 0, momentum = 0.99999999999 with 1. Such keys have a
 * maximum no larger than FLT_MAX, so the rounding is always defined. */
enum { HAS_MIN = 1, HAS_MAX = 2, MIN_OPEN = 4, MAX_OPEN = 8, AS_FLOAT = 16 };

typedef struct key_def {
  const char *section;
  const char *key;
  key_type type;
  size_t offset;            /* of the member in fedc_config */
  size_t size;              /* of the member, in bytes */
  size_t aux;               /* T_INTLIST: offset of the int32_t count */
  double min, max;          /* numeric bounds (T_INTLIST: of each entry) */
  unsigned flags;           /* HAS_MIN, HAS_MAX, MIN_OPEN, MAX_OPEN */
  const char *const *names; /* T_ENUM, T_CHOICE: NULL-terminated */
  const char *def;          /* the default, written as in a file */
  const char *desc;
} key_def;

static const char *const model_names[] = {
    [FEDC_MODEL_LOGREG] = "logreg", [FEDC_MODEL_SOFTMAX] = "softmax",
    [FEDC_MODEL_LINREG] = "linreg", [FEDC_MODEL_MLP] = "mlp",
    [FEDC_MODEL_TENSORS] = "tensors", NULL};
static const char *const device_names[] = {
    [FEDC_DEVICE_CPU] = "cpu", [FEDC_DEVICE_CUDA] = "cuda", NULL};
static const char *const format_names[] = {
    [FEDC_FORMAT_IDX] = "idx", [FEDC_FORMAT_CSV] = "csv", NULL};
static const char *const partition_names[] = {
    [FEDC_PARTITION_IID] = "iid", [FEDC_PARTITION_DIRICHLET] = "dirichlet",
    [FEDC_PARTITION_SHARDS] = "shards", NULL};
static const char *const agg_device_names[] = {"cpu", "cuda", "auto", NULL};
/* in fedc_codec's order (wire/compress.h) */
static const char *const compression_names[] = {"none", "f16", "bf16", "int8", "topk",
                                                 "topk_bf16", NULL};
static const char *const norm_action_names[] = {
    [FEDC_NORM_CLIP] = "clip", [FEDC_NORM_REFUSE] = "refuse", NULL};
static const char *const attack_names[] = {
    [FEDC_ATTACK_NONE] = "none", [FEDC_ATTACK_SIGN_FLIP] = "sign_flip",
    [FEDC_ATTACK_NOISE] = "noise", [FEDC_ATTACK_LABEL_FLIP] = "label_flip", NULL};
static const char *const missing_names[] = {"refuse", "mean", NULL};
static const char *const noise_at_names[] = {
    [FEDC_NOISE_AT_COORDINATOR] = "coordinator", [FEDC_NOISE_AT_SITES] = "sites", NULL};
static const char *const enroll_names[] = {
    [FEDC_ENROLL_ALLOWLIST] = "allowlist", [FEDC_ENROLL_OPEN] = "open", NULL};

_Static_assert(sizeof(fedc_model_type) == sizeof(int32_t), "enum size");
_Static_assert(sizeof(fedc_device) == sizeof(int32_t), "enum size");
_Static_assert(sizeof(fedc_data_format) == sizeof(int32_t), "enum size");
_Static_assert(sizeof(fedc_enroll) == sizeof(int32_t), "enum size");
_Static_assert(sizeof(fedc_norm_action) == sizeof(int32_t), "enum size");
_Static_assert(sizeof(fedc_attack) == sizeof(int32_t), "enum size");

#define M(member) \
  offsetof(fedc_config, member), sizeof(((fedc_config *)0)->member), 0
#define LIST(member, count) \
  offsetof(fedc_config, member), sizeof(((fedc_config *)0)->member), \
      offsetof(fedc_config, count)
#define FMNIST "/usr/share/datasets/fashion-mnist/"
#define MIN_ONLY (HAS_MIN)
#define MINMAX (HAS_MIN | HAS_MAX)

static const key_def keys[] = {
    {"job", "rounds", T_INT32, M(rounds), 1, 1e6, MINMAX, NULL, "100",
     "Federated rounds to run."},
    {"job", "clients_per_round", T_INT32, M(clients_per_round), 1, 0, MIN_ONLY,
     NULL, "10", "Clients asked to train in each round (at most sim.clients)."},
    {"job", "min_clients", T_INT32, M(min_clients), 1, 0, MIN_ONLY, NULL, "1",
     "Fewest updates that let a round commit (at most clients_per_round)."},
    {"job", "round_timeout_s", T_DOUBLE, M(round_timeout_s), 0, 86400,
     MINMAX | MIN_OPEN, NULL, "60",
     "Seconds a round waits for updates before it closes."},
    {"job", "seed", T_UINT64, M(seed), 0, 0, 0, NULL, "1",
     "Seed for client sampling, partitioning and initialisation."},

    {"model", "type", T_ENUM, M(model_type), 0, 0, 0, model_names, "softmax",
     "Model: logreg (binary), softmax, linreg (squared error), mlp, or tensors "
     "(any named tensors from [model] init, trained by the sites' [trainer] "
     "command; docs/tensor-jobs.md)."},
    {"model", "hidden", T_INTLIST, LIST(hidden, n_hidden), 1, 65536, MINMAX,
     NULL, "",
     "Hidden layer sizes of an mlp, comma-separated (200,200); empty for "
     "other models."},
    {"model", "inputs", T_INT32, M(inputs), 0, 1e8, MINMAX, NULL, "0",
     "Input features; 0 = from the data (the coordinator, which has no "
     "training data, needs it set)."},
    {"model", "classes", T_INT32, M(classes), 0, 1e6, MINMAX, NULL, "0",
     "Classes of a softmax or mlp model; 0 = from the data (the coordinator "
     "needs it set)."},
    {"model", "l1", T_DOUBLE, M(l1), 0, 1e30, MINMAX | AS_FLOAT, NULL, "0",
     "L1 penalty on the weights."},
    {"model", "l2", T_DOUBLE, M(l2), 0, 1e30, MINMAX | AS_FLOAT, NULL, "0",
     "L2 penalty on the weights."},
    {"model", "init", T_STRING, M(model_init), 0, 0, 0, NULL, "",
     "type = tensors (coordinator): the initial global model, a safetensors "
     "file whose tensor names, shapes and dtypes (F32, F16, BF16, integers) "
     "define the job."},
    {"model", "integer_rule", T_STRING, M(integer_rule), 0, 0, 0, NULL, "",
     "type = tensors: what each integer tensor becomes at a commit, as "
     "PATTERN=RULE, ... with RULE keep (the global model's value) or max "
     "(the largest in the round's updates); fnmatch patterns on tensor "
     "names, the first match wins, unmatched tensors keep."},

    {"train", "epochs", T_INT32, M(epochs), 1, 10000, MINMAX, NULL, "1",
     "Local epochs each client runs per round."},
    {"train", "batch_size", T_INT32, M(batch_size), 1, 1e6, MINMAX, NULL, "32",
     "Minibatch size of local training."},
    {"train", "lr", T_DOUBLE, M(lr), 0, 100, MINMAX | MIN_OPEN | AS_FLOAT,
     NULL, "0.05", "Learning rate of local SGD."},
    {"train", "momentum", T_DOUBLE, M(momentum), 0, 1,
     MINMAX | MAX_OPEN | AS_FLOAT, NULL, "0",
     "Momentum of local SGD; 0 turns it off."},
    {"train", "prox_mu", T_DOUBLE, M(prox_mu), 0, 1e30, MINMAX | AS_FLOAT,
     NULL, "0", "FedProx proximal term weight; 0 turns it off."},
    {"train", "device", T_ENUM, M(device), 0, 0, 0, device_names, "cpu",
     "Compute backend for training."},
    {"train", "threads", T_INT32, M(threads), 1, 1024, MINMAX, NULL, "2",
     "Worker threads that train simulated clients."},
    {"train", "class_weight", T_STRING, M(class_weight), 0, 0, 0, NULL, "none",
     "Loss weight per class: none, balanced (n / (K n_c), from the label "
     "counts) or w0,w1,... (one per class)."},
    {"train", "pos_weight", T_DOUBLE, M(pos_weight), 0, 1e6,
     MINMAX | MIN_OPEN | AS_FLOAT, NULL, "1",
     "logreg: extra weight of the positive class (times class_weight)."},

    {"strategy", "name", T_CHOICE, M(strategy), 0, 0, 0, NULL,
     "fedavg",
     "Aggregation: fedavg; server optimizers fedavgm, fedadam, fedyogi, "
     "fedadagrad; robust median, trimmed_mean, krum, multikrum; asynchronous "
     "fedbuff; control variates scaffold (docs/strategies.md)."},
    {"strategy", "server_lr", T_DOUBLE, M(server_lr), 0, 100, MINMAX | MIN_OPEN,
     NULL, "1", "Server learning rate of fedavgm/fedadam/fedyogi/fedadagrad, scaffold "
     "and fedbuff."},
    {"strategy", "server_momentum", T_DOUBLE, M(server_momentum), 0, 1,
     MINMAX | MAX_OPEN, NULL, "0.9", "fedavgm: momentum of the server step."},
    {"strategy", "beta1", T_DOUBLE, M(beta1), 0, 1, MINMAX | MAX_OPEN, NULL,
     "0.9", "fedadam/fedyogi: first-moment decay."},
    {"strategy", "beta2", T_DOUBLE, M(beta2), 0, 1, MINMAX | MAX_OPEN, NULL,
     "0.99", "fedadam/fedyogi: second-moment decay."},
    {"strategy", "tau", T_DOUBLE, M(tau), 0, 1, MINMAX | MIN_OPEN, NULL, "0.001",
     "fedadam/fedyogi/fedadagrad: adaptivity (added to sqrt(v))."},
    {"strategy", "trim_beta", T_DOUBLE, M(trim_beta), 0, 0.5, MINMAX | MAX_OPEN,
     NULL, "0.1",
     "trimmed_mean: fraction of updates cut at each end, per coordinate."},
    {"strategy", "krum_f", T_INT32, M(krum_f), 0, 1e6, MINMAX, NULL, "1",
     "krum/multikrum: number of byzantine updates to tolerate."},
    {"strategy", "multikrum_m", T_INT32, M(multikrum_m), 0, 1e6, MINMAX, NULL,
     "0", "multikrum: updates averaged; 0 = all but krum_f."},
    {"strategy", "norm_bound", T_DOUBLE, M(norm_bound), 0, 0, MIN_ONLY, NULL,
     "0", "L2 bound on an update's difference from the global model; 0 = off."},
    {"strategy", "norm_action", T_ENUM, M(norm_action), 0, 0, 0,
     norm_action_names, "clip",
     "What an update over norm_bound gets: clip (scaled to the bound) or "
     "refuse."},
    {"strategy", "buffer_k", T_INT32, M(buffer_k), 1, 1e6, MINMAX, NULL, "10",
     "fedbuff: the server steps every buffer_k updates."},
    {"strategy", "max_client_share", T_DOUBLE, M(max_client_share), 0, 1, MINMAX,
     NULL, "0.5",
     "FedAvg: no client's weight exceeds this share of a round's total "
     "(larger sample counts are cut to the water level; docs/strategies.md); "
     "0 or 1 = off. The simulators' in-process clients report true counts: "
     "fedc-sim applies it only when set, fedc-sim-mpi refuses it."},
    {"strategy", "max_weight_delta", T_DOUBLE, M(max_weight_delta), 0, 0,
     MIN_ONLY, NULL, "1e4",
     "An update with a weight further than this from the global model's is "
     "refused (an honest round moves no weight this far); 0 = off."},
    {"strategy", "device", T_ENUM, M(agg_device), 0, 0, 0, agg_device_names, "cpu",
     "Where updates are aggregated: cpu; cuda (the GPU: fedavg and the strategies that "
     "aggregate with it, median, trimmed_mean; refused at start without the CUDA module "
     "and a GPU); auto (the GPU when present, else the CPU, logged). docs/cuda.md."},
    {"strategy", "variate_samples", T_DOUBLE, M(variate_samples), 0, 1e18, MINMAX, NULL,
     "0",
     "scaffold: the training samples of all the federation's clients, which "
     "weigh the server control variate's update (c += sum n_i dc_i / this); "
     "0 = fedc-sim's own row count. The coordinator needs it set."},
    {"strategy", "compression", T_ENUM, M(compression), 0, 0, 0, compression_names, "none",
     "How clients send their update's delta from the global model: none (float32), f16, bf16, "
     "int8 (per-block scales, stochastic rounding), topk (the topk_fraction largest, error "
     "feedback kept in [client] state_dir) or topk_bf16 (the same as a bitmap and bfloat16 "
     "values). Not with secure aggregation, relays, scaffold or fedbuff; a tensor job's "
     "tensors must all be F32 (docs/compression.md)."},
    {"strategy", "topk_fraction", T_DOUBLE, M(topk_fraction), 0, 1, MINMAX | MIN_OPEN, NULL,
     "0.05", "compression = topk or topk_bf16: the share of the weights each update sends."},

    {"privacy", "noise_multiplier", T_DOUBLE, M(dp_noise_multiplier), 0, 1000,
     MINMAX, NULL, "0",
     "Differential privacy (DP-FedAvg): noise z; sigma = z * clip_norm / m. "
     "0 = off."},
    {"privacy", "clip_norm", T_DOUBLE, M(dp_clip_norm), 0, 1e6,
     MINMAX | MIN_OPEN, NULL, "1",
     "DP: each update's difference from the global model is clipped to this "
     "L2 norm (the initial norm with adaptive_clip)."},
    {"privacy", "adaptive_clip", T_BOOL, M(dp_adaptive_clip), 0, 0, 0, NULL,
     "false", "DP: adapt clip_norm to a quantile of update norms (Andrew et "
     "al. 2021)."},
    {"privacy", "clip_quantile", T_DOUBLE, M(dp_clip_quantile), 0, 1,
     MINMAX | MIN_OPEN | MAX_OPEN, NULL, "0.5",
     "DP adaptive clipping: target fraction of unclipped updates."},
    {"privacy", "clip_lr", T_DOUBLE, M(dp_clip_lr), 0, 10, MINMAX | MIN_OPEN,
     NULL, "0.2", "DP adaptive clipping: geometric step size."},
    {"privacy", "delta", T_DOUBLE, M(dp_delta), 0, 1, MINMAX | MIN_OPEN | MAX_OPEN,
     NULL, "0.00001", "DP: the delta of the (epsilon, delta) guarantee."},
    {"privacy", "epsilon_budget", T_DOUBLE, M(dp_epsilon_budget), 0, 0, MIN_ONLY,
     NULL, "0",
     "DP: stop the job before a round would take epsilon past this; 0 = no "
     "budget."},
    {"privacy", "secure_aggregation", T_BOOL, M(secagg), 0, 0, 0, NULL, "false",
     "Secure aggregation: the coordinator learns only the sum of the masked "
     "updates (and, in a job with a schema, of the sites' statistics; no minima or "
     "maxima). Not with norm_bound, nor with noise_multiplier unless noise_at = sites."},
    {"privacy", "secagg_threshold", T_DOUBLE, M(secagg_threshold), 0, 1,
     MINMAX | MIN_OPEN, NULL, "0.6",
     "Secure aggregation: fraction of a client's neighbours needed to "
     "reconstruct its secrets (Shamir threshold)."},
    {"privacy", "secagg_neighbors", T_INT32, M(secagg_neighbors), 0, 1e6,
     MINMAX, NULL, "0",
     "Secure aggregation: neighbours per client (SecAgg+ sparse graph); 0 = "
     "all."},
    {"privacy", "noise_at", T_ENUM, M(dp_noise_at), 0, 0, 0, noise_at_names, "coordinator",
     "Who adds DP's noise: coordinator (central DP-FedAvg: it clips each update) or sites "
     "(distributed DP: each site clips its delta and adds z * clip_norm / sqrt(m_min) "
     "noise before masking; needs secure_aggregation = true and noise_multiplier > 0, "
     "not adaptive_clip)."},

    {"data", "train", T_STRING, M(train), 0, 0, 0, NULL,
     FMNIST "train-images-idx3-ubyte.gz",
     "Training images (idx) or table (csv). The default is fedc-sim's, with "
     "format = idx only; a site must set it (unset: \"[data] train is "
     "missing\")."},
    {"data", "train_labels", T_STRING, M(train_labels), 0, 0, 0, NULL,
     FMNIST "train-labels-idx1-ubyte.gz", "Training labels (idx only)."},
    {"data", "test", T_STRING, M(test), 0, 0, 0, NULL,
     FMNIST "t10k-images-idx3-ubyte.gz",
     "Test images (idx) or table (csv). The default is fedc-sim's, with "
     "format = idx only; the coordinator and sites evaluate on a test set "
     "only when it is set."},
    {"data", "test_labels", T_STRING, M(test_labels), 0, 0, 0, NULL,
     FMNIST "t10k-labels-idx1-ubyte.gz", "Test labels (idx only)."},
    {"data", "format", T_ENUM, M(format), 0, 0, 0, format_names, "idx",
     "File format of the data set."},
    {"data", "label", T_STRING, M(label), 0, 0, 0, NULL, "label",
     "Name of the label column (csv only)."},
    {"data", "standardize", T_BOOL, M(standardize), 0, 0, 0, NULL, "false",
     "Scale each feature to mean 0 and variance 1 (the site's own statistics; "
     "refused in a federation with a schema, which standardizes with the "
     "federation's)."},
    {"data", "features", T_STRING, M(features), 0, 0, 0, NULL, "",
     "Schema: the feature columns, names in order (a,b,c); sites map their "
     "CSV columns by name. Turns on the statistics phase and the "
     "federation's standardization."},
    {"data", "schema_from", T_STRING, M(schema_from), 0, 0, 0, NULL, "",
     "Schema: a CSV file whose header names the features (every column but "
     "the label and [data] exclude)."},
    {"data", "exclude", T_STRING, M(exclude), 0, 0, 0, NULL, "",
     "Schema: columns a site's CSV may have that are not features (id,...)."},
    {"data", "categorical", T_STRING, M(categorical), 0, 0, 0, NULL, "",
     "Schema: categorical features and their vocabulary, one-hot encoded "
     "(col:v1 then v2, v3... separated by vertical bars; columns by commas)."},
    {"data", "missing", T_ENUM, M(missing), 0, 0, 0, missing_names, "refuse",
     "Schema: a missing value is refused, or imputed with the federation's "
     "mean."},
    {"data", "validation", T_STRING, M(validation), 0, 0, 0, NULL, "",
     "Client: validation table (csv) or images (idx, labels in "
     "validation_labels) for federated evaluation."},
    {"data", "validation_labels", T_STRING, M(validation_labels), 0, 0, 0,
     NULL, "", "Validation labels (idx only)."},
    {"data", "validation_split", T_DOUBLE, M(validation_split), 0, 0.9,
     MINMAX, NULL, "0",
     "Without [data] validation: fraction of the training rows held out "
     "(chosen with the job's seed) for federated evaluation."},
    {"data", "set", T_STRING, M(data_set), 0, 0, 0, NULL, "",
     "Job: the named data set the sites train on (one of their [data] sets); "
     "empty = each site's default [data] train."},
    {"data", "sets", T_STRING, M(data_sets), 0, 0, 0, NULL, "",
     "Site: named data sets a job may ask for with [data] set, as "
     "NAME:TRAIN[:TRAIN_LABELS], comma-separated (same format as [data] "
     "train); the site's [data] train is the set named \"default\"."},
    {"data", "clip", T_STRING, M(data_clip), 0, 0, 0, NULL, "",
     "Schema: bounds of the numeric features (col:lo:hi, comma-separated) that "
     "values are clipped to for the statistics under differential privacy "
     "(needed for every numeric feature when [privacy] noise_multiplier > 0)."},
    {"data", "class_labels", T_STRING, M(class_labels), 0, 0, 0, NULL, "",
     "Schema: the label column's values when they are strings (B then M, "
     "separated by vertical bars), classes 0, 1, ... in that order; carried in "
     "the model's metadata and printed by fedc-predict."},

    {"server", "listen", T_STRING, M(server_listen), 0, 0, 0, NULL,
     "127.0.0.1:8443", "Coordinator: address and port to listen on."},
    {"server", "status_listen", T_STRING, M(server_status_listen), 0, 0, 0,
     NULL, "",
     "Coordinator: if set (e.g. 127.0.0.1:8080), also serve the read-only "
     "GET /, /v1/status and /metrics over plain HTTP there; keep it on "
     "loopback."},
    {"server", "url", T_STRING, M(server_url), 0, 0, 0, NULL,
     "https://127.0.0.1:8443", "Client: the coordinator's base URL."},
    {"server", "enroll", T_ENUM, M(server_enroll), 0, 0, 0, enroll_names,
     "allowlist",
     "Coordinator: allowlist = only certificates added with `fedc-coordinator "
     "allow`; open = any certificate signed by the CA joins."},
    {"server", "max_body_mb", T_DOUBLE, M(server_max_body_mb), 0, 4096,
     MINMAX | MIN_OPEN, NULL, "64",
     "Coordinator: largest body of an ordinary request, in MiB. An update "
     "larger than that goes in chunks (POST /v1/upload, docs/protocol.md), "
     "bounded by what the job's model dictates: its float32 size (twice "
     "with SCAFFOLD) plus 1 MiB."},
    {"server", "idle_timeout_s", T_DOUBLE, M(server_idle_timeout_s), 0, 3600,
     MINMAX | MIN_OPEN, NULL, "30",
     "Coordinator: a connection that makes no progress for this long is "
     "closed."},
    {"server", "poll_s", T_DOUBLE, M(server_poll_s), 0, 300, MINMAX | MIN_OPEN,
     NULL, "20", "Longest wait of a GET /v1/task long-poll."},
    {"server", "over_select", T_DOUBLE, M(server_over_select), 1, 10, MINMAX,
     NULL, "1.3",
     "Coordinator: select this many times clients_per_round, so that a few "
     "dropouts do not stall a round; the first clients_per_round updates "
     "close it."},
    {"server", "header_timeout_s", T_DOUBLE, M(server_header_timeout_s), 0,
     3600, MINMAX, NULL, "10",
     "Coordinator: a request's line and headers must be in within this many "
     "seconds of its first byte, else 408 and the connection is closed; 0 "
     "turns it off."},
    {"server", "request_timeout_s", T_DOUBLE, M(server_request_timeout_s), 0,
     86400, MINMAX, NULL, "300",
     "Coordinator: a whole request, body included, must be in within this "
     "many seconds of its first byte, else 408 and close; 0 turns it off."},
    {"server", "min_rate_bytes_s", T_DOUBLE, M(server_min_rate_bytes_s), 0,
     1e9, MINMAX, NULL, "1024",
     "Coordinator: a request body arriving, or an answer read by the "
     "client, slower than this many bytes per second over rate_window_s "
     "closes the connection (408 for a body); 0 turns it off."},
    {"server", "rate_window_s", T_DOUBLE, M(server_rate_window_s), 0, 3600,
     MINMAX | MIN_OPEN, NULL, "10",
     "Coordinator: the window over which min_rate_bytes_s is averaged."},
    {"server", "max_samples", T_UINT64, M(server_max_samples), 0, 0,
     0, NULL, "1000000000",
     "An update claiming more training samples than this is refused; "
     "0 = off (fedavg's own limit, 2^40, still holds)."},
    {"server", "handshake_timeout_s", T_DOUBLE, M(server_handshake_timeout_s),
     0, 600, MINMAX | MIN_OPEN, NULL, "10",
     "Coordinator: a connection whose TLS handshake is not done this long "
     "after it was accepted is closed, whatever it sent meanwhile."},
    {"server", "max_conns_per_source", T_INT32, M(server_max_conns_per_source),
     0, 1e6, MINMAX, NULL, "256",
     "Coordinator: connections open at once from one address (IPv6: one "
     "/64); 0 = no limit."},
    {"server", "handshake_rate", T_DOUBLE, M(server_handshake_rate), 0, 1e6,
     MINMAX, NULL, "50",
     "Coordinator: new TLS handshakes per second from one address (a token "
     "bucket of handshake_burst); 0 = no limit."},
    {"server", "handshake_burst", T_INT32, M(server_handshake_burst), 1, 1e6,
     MINMAX, NULL, "200",
     "Coordinator: handshakes one address may start at once before "
     "handshake_rate applies."},
    {"server", "max_connections", T_INT32, M(server_max_connections), 0, 1e7,
     MINMAX, NULL, "0",
     "Coordinator: TLS connections open at once; 0 = what the descriptor "
     "limit (RLIMIT_NOFILE) allows, less 64."},
    {"server", "reserved_share", T_DOUBLE, M(server_reserved_share), 0, 0.9,
     MINMAX, NULL, "0.25",
     "Coordinator: share of max_connections kept for addresses that "
     "completed a handshake with a CA-signed certificate in the last 10 "
     "minutes (enrolled clients), refused to others."},
    {"server", "queue", T_BOOL, M(server_queue), 0, 0, 0, NULL, "false",
     "Coordinator: run the job queue of the store (jobs added with "
     "`fedc-coordinator submit`) one job after another, instead of the one "
     "job of this config."},
    {"server", "admin_listen", T_STRING, M(server_admin_listen), 0, 0, 0, NULL,
     "", "Coordinator (queue): if set, serve the admin endpoint (/v1/admin/...) "
     "over mutual TLS there, to the certificates in [server] admins only."},
    {"server", "admins", T_STRING, M(server_admins), 0, 0, 0, NULL, "",
     "Coordinator (queue): SHA-256 fingerprints (64 hex, comma-separated) of "
     "the certificates that may use the admin endpoint."},
    {"server", "spill_above_mb", T_DOUBLE, M(server_spill_above_mb), 0, 1e9, MINMAX, NULL,
     "128",
     "Coordinator: a model of more float values than this many MiB (4 bytes each) runs in "
     "large-model mode: FedAvg's 128-bit sums and the share cap's held updates live in "
     "files beside the store (<store>.acc, <store>.acc.held), read and written a slice at "
     "a time, so the coordinator's memory stays a few times the model's size (plain FedAvg "
     "only: see docs/tensor-jobs.md). 0 = never."},
    {"server", "model_deltas", T_BOOL, M(server_model_deltas), 0, 0, 0, NULL, "true",
     "Coordinator: when it commits a round, also encode the new model as a lossless delta "
     "from the previous one and send it to a client that asks GET /v1/model/<r>?base=<r-1> "
     "(docs/compression.md, \"Model downloads as deltas\"); off in large-model mode."},

    {"tls", "ca", T_STRING, M(tls_ca), 0, 0, 0, NULL, "",
     "CA certificate (PEM) that signs the coordinator and client "
     "certificates."},
    {"tls", "cert", T_STRING, M(tls_cert), 0, 0, 0, NULL, "",
     "This party's certificate (PEM)."},
    {"tls", "key", T_STRING, M(tls_key), 0, 0, 0, NULL, "",
     "This party's private key (PEM)."},
    {"tls", "require_client_cert", T_BOOL, M(tls_require_client_cert), 0, 0, 0,
     NULL, "true",
     "Coordinator: refuse clients without a certificate from the CA (mutual "
     "TLS)."},

    {"store", "path", T_STRING, M(store_path), 0, 0, 0, NULL, "fedc.db",
     "Coordinator: the sqlite file holding the job's state."},

    {"client", "name", T_STRING, M(client_name), 0, 0, 0, NULL, "",
     "Client: a display name sent when joining (the identity is the "
     "certificate)."},
    {"client", "keep_updates", T_STRING, M(client_keep_updates), 0, 0, 0, NULL,
     "", "Client: if set, a folder where a copy of every update sent is kept."},
    {"client", "backoff_max_s", T_DOUBLE, M(client_backoff_max_s), 0, 3600,
     MINMAX | MIN_OPEN, NULL, "30",
     "Client: longest wait between retries when the coordinator is away."},
    {"client", "give_up_s", T_DOUBLE, M(client_give_up_s), 0, 0, MIN_ONLY, NULL,
     "600",
     "Client: exit with an error after this long without reaching the "
     "coordinator; 0 = never."},
    {"client", "state_dir", T_STRING, M(client_state_dir), 0, 0, 0, NULL, "",
     "Client: a folder for state kept between runs (SCAFFOLD's client control "
     "variate, topk's residual; a scaffold or topk job needs it), for model "
     "downloads, which resume there after a cut, and for an update being "
     "uploaded in chunks, so that a restarted client resumes it (docs/protocol.md)."},
    {"client", "serve", T_BOOL, M(client_serve), 0, 0, 0, NULL, "false",
     "Client: run as a site service: after a job ends, wait for the next "
     "one and take part in each job that [policy] allows (same as --serve)."},

    {"sim", "clients", T_INT32, M(clients), 1, 1e7, MINMAX, NULL, "100",
     "Simulated clients the training set is split among."},
    {"sim", "partition", T_ENUM, M(partition), 0, 0, 0, partition_names, "iid",
     "How the training set is split among the clients."},
    {"sim", "alpha", T_DOUBLE, M(alpha), 0, 0, MIN_ONLY | MIN_OPEN, NULL, "0.5",
     "Dirichlet concentration (partition = dirichlet); smaller is more "
     "skewed."},
    {"sim", "shards_per_client", T_INT32, M(shards_per_client), 1, 0, MIN_ONLY,
     NULL, "2", "Label-sorted shards each client gets (partition = shards)."},
    {"sim", "attack", T_ENUM, M(attack), 0, 0, 0, attack_names, "none",
     "Poisoning by a fraction of the clients: none, sign_flip (w = x - "
     "scale (w - x)), noise (w = x + N(0, scale^2)), label_flip."},
    {"sim", "attack_fraction", T_DOUBLE, M(attack_fraction), 0, 1, MINMAX,
     NULL, "0.2", "Fraction of the clients that attack (chosen with the seed)."},
    {"sim", "attack_scale", T_DOUBLE, M(attack_scale), 0, 1e6, MINMAX, NULL,
     "10", "Scale of sign_flip and noise attacks."},
    {"sim", "speed_skew", T_DOUBLE, M(speed_skew), 0, 100, MINMAX, NULL, "0",
     "fedbuff: clients' speeds vary as exp(N(0, speed_skew^2)); 0 = equal."},
    {"sim", "eval_every", T_INT32, M(eval_every), 1, 0, MIN_ONLY, NULL, "1",
     "Evaluate on the test set every N rounds."},

    {"eval", "every", T_INT32, M(eval_rounds), 0, 1e6, MINMAX, NULL, "0",
     "Federated evaluation: clients evaluate the committed global model on "
     "their validation data every N rounds and after the last; 0 = off."},
    {"eval", "fraction", T_DOUBLE, M(eval_fraction), 0, 1,
     MINMAX | MIN_OPEN, NULL, "1",
     "Fraction of the joined clients asked to evaluate (1 = all)."},
    {"eval", "threshold", T_DOUBLE, M(eval_threshold), 0, 1,
     MINMAX | MIN_OPEN | MAX_OPEN, NULL, "0.5",
     "Binary models: a score >= threshold predicts the positive class."},
    {"eval", "select", T_STRING, M(eval_select), 0, 0, 0, NULL, "",
     "Metric that marks the best round: auc, pr_auc, f1, precision, recall, "
     "brier, accuracy, macro_f1, log_loss, mse, mae, r2; '-' before it when "
     "lower is better; empty = auc, accuracy or -mse by the model."},
    {"eval", "per_site", T_BOOL, M(eval_per_site), 0, 0, 0, NULL, "false",
     "Show each site's evaluation in /v1/status (else the aggregate only)."},
    {"eval", "deadline_s", T_DOUBLE, M(eval_deadline_s), 0, 86400,
     MINMAX | MIN_OPEN, NULL, "30",
     "Seconds an evaluation waits for reports; it closes then (or at the "
     "next round's commit, if sooner) and later reports are dropped."},
    {"trainer", "command", T_STRING, M(trainer_command), 0, 0, 0, NULL, "",
     "Client: an external trainer, run through /bin/sh -c for each round "
     "instead of the built-in one (docs/trainers.md: the FEDC_* "
     "environment, the checks); [data] is then not read."},
    {"trainer", "evaluate", T_STRING, M(trainer_evaluate), 0, 0, 0, NULL, "",
     "Client: an external command that evaluates each round's global model "
     "before training (needs [trainer] command)."},
    {"trainer", "timeout_s", T_DOUBLE, M(trainer_timeout_s), 0, 1e7,
     MINMAX | MIN_OPEN, NULL, "3600",
     "Client: an external trainer or evaluate command still running after "
     "this long is killed with its process group and the round reported as "
     "failed."},
    {"relay", "parent", T_STRING, M(relay_parent), 0, 0, 0, NULL, "",
     "Relay (fedc-coordinator relay): the parent coordinator's URL, "
     "https://host:port (docs/relays.md)."},
    {"relay", "cert", T_STRING, M(relay_cert), 0, 0, 0, NULL, "",
     "Relay: the client certificate (PEM) it presents to its parent; the "
     "parent's CA is [tls] ca."},
    {"relay", "key", T_STRING, M(relay_key), 0, 0, 0, NULL, "",
     "Relay: the private key (PEM) of [relay] cert."},
    {"relay", "sites", T_INT32, M(relay_sites), 1, 1e6, MINMAX, NULL, "1",
     "Relay: the sites (clients or relays) below it; a round is forwarded "
     "once all have reported, or at the parent's deadline."},

    {"policy", "model_types", T_STRING, M(policy_model_types), 0, 0, 0, NULL, "",
     "Site: model types a job may use (comma-separated: logreg, softmax, "
     "linreg, mlp, tensors); empty = any."},
    {"policy", "trainers", T_STRING, M(policy_trainers), 0, 0, 0, NULL,
     "builtin,external",
     "Site: trainers a job may run here: builtin (fedc's own) and/or "
     "external (a [trainer] command, as tensor jobs need)."},
    {"policy", "max_rounds", T_INT32, M(policy_max_rounds), 0, 1e6, MINMAX, NULL,
     "0", "Site: decline a job of more rounds than this; 0 = no limit."},
    {"policy", "max_epochs", T_INT32, M(policy_max_epochs), 0, 1e4, MINMAX, NULL,
     "0", "Site: decline a job of more local epochs than this; 0 = no limit."},
    {"policy", "min_noise_multiplier", T_DOUBLE, M(policy_min_noise), 0, 1e6,
     MINMAX, NULL, "0",
     "Site: decline a job whose DP noise multiplier ([privacy] "
     "noise_multiplier) is below this; 0 = no minimum."},
    {"policy", "require_secagg", T_BOOL, M(policy_require_secagg), 0, 0, 0, NULL,
     "false", "Site: decline a job without secure aggregation."},
    {"policy", "datasets", T_STRING, M(policy_datasets), 0, 0, 0, NULL, "",
     "Site: names of the data sets ([data] sets, or \"default\") a job may "
     "use; empty = any the site holds."},
};

#define N_KEYS (sizeof keys / sizeof keys[0])
_Static_assert(N_KEYS <= FEDC_CONFIG_MAX_KEYS, "grow FEDC_CONFIG_MAX_KEYS");

/* Values longer than this are cut short in messages. */
#define SHOW_MAX 60
/* Room for a value written out as text: the longest string member. */
#define TEXT_MAX (FEDC_CONFIG_PATH_MAX + 32)
/* A config file larger than this is not a config file. */
#define FILE_MAX (16u << 20)

/* ---- small helpers ------------------------------------------------------ */

static const key_def *find_key(const char *section, const char *key) {
  for (size_t i = 0; i < N_KEYS; i++)
    if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].key, key) == 0)
      return &keys[i];
  return NULL;
}

static int section_known_n(const char *s, size_t n) {
  for (size_t i = 0; i < N_KEYS; i++)
    if (strlen(keys[i].section) == n && memcmp(keys[i].section, s, n) == 0)
      return 1;
  return 0;
}

static int name_index(const char *const *names, const char *s) {
  for (int i = 0; names[i] != NULL; i++)
    if (strcmp(names[i], s) == 0) return i;
  return -1;
}

static int only_spaces(const char *s) {
  while (isspace((unsigned char)*s)) s++;
  return *s == '\0';
}

static char *trim(char *s) {
  while (isspace((unsigned char)*s)) s++;
  size_t n = strlen(s);
  while (n > 0 && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
  return s;
}

/* A value for a message: "(empty)", or the value cut to SHOW_MAX chars.
 * Used as "%.*s%s" with show_len(v), v, show_tail(v). */
static int show_len(const char *v) {
  size_t n = strlen(v);
  return n > SHOW_MAX ? SHOW_MAX - 3 : (int)n;
}
static const char *show_str(const char *v) { return *v ? v : "(empty)"; }
static const char *show_tail(const char *v) {
  return strlen(v) > SHOW_MAX ? "..." : "";
}
#define SHOW(v) (*(v) ? show_len(v) : 7), show_str(v), show_tail(v)

/* Writes v so that strtod reads back exactly v: integers below 1e15 as
 * integers, anything else with the fewest significant digits that round-trip.
 * Used by the dump, the messages and the docs alike. */
static void fmt_num(double v, char *buf, size_t n) {
  if (v == floor(v) && fabs(v) < 1e15) {
    snprintf(buf, n, "%.0f", v);
    return;
  }
  for (int prec = 1; prec <= 17; prec++) {
    snprintf(buf, n, "%.*g", prec, v);
    if (strtod(buf, NULL) == v) return;
  }
}

static void choices_text(const char *const *names, char *buf, size_t n) {
  size_t used = 0;
  buf[0] = '\0';
  for (int i = 0; names[i] != NULL && used < n; i++) {
    int w = snprintf(buf + used, n - used, "%s%s", i ? ", " : "", names[i]);
    if (w < 0) break;
    used += (size_t)w;
  }
}

/* T_CHOICE: the strategy registry's names, in its order. */
static int choice_known(const char *s) {
  return fedc_strategy_lookup(s) != NULL;
}

static void choice_text(char *buf, size_t n) {
  size_t used = 0, count = fedc_strategy_count();
  buf[0] = '\0';
  for (size_t i = 0; i < count && used < n; i++) {
    int w = snprintf(buf + used, n - used, "%s%s", i ? ", " : "", fedc_strategy_at(i)->name);
    if (w < 0) break;
    used += (size_t)w;
  }
}

/* Records in c where key idx was set: "what" alone (line 0) or "what:line".
 * A name too long for the slot keeps its tail, which says the most. */
static void set_origin(fedc_config *c, size_t idx, const char *what,
                       int line) {
  char suffix[16] = "";
  if (line > 0) snprintf(suffix, sizeof suffix, ":%d", line);
  size_t room = FEDC_CONFIG_ORIGIN_MAX - 1, wlen = strlen(what),
         slen = strlen(suffix);
  char *o = c->origin[idx];
  if (wlen + slen <= room) {
    memcpy(o, what, wlen);
    memcpy(o + wlen, suffix, slen + 1);
  } else {
    size_t keep = room - 3 - slen;
    memcpy(o, "...", 3);
    memcpy(o + 3, what + wlen - keep, keep);
    memcpy(o + 3 + keep, suffix, slen + 1);
  }
}

/* ---- checking and parsing one value ------------------------------------ */

/* 0 if v lies within k's bounds; else -1 with "<what>must be >= 1" in why
 * (and "(as a float: 0)" when only its float rounding falls outside). */
static int check_number(const key_def *k, double v, const char *what,
                        char *why, size_t wn) {
  char b[40], f[64] = "";
  if (!isfinite(v)) {
    snprintf(why, wn, "%smust be a finite number", what);
    return -1;
  }
  double x = v;
  for (int pass = 0; pass < ((k->flags & AS_FLOAT) ? 2 : 1); pass++) {
    if (pass == 1) { /* the bounds checked above keep v within FLT_MAX */
      x = (double)(float)v;
      fmt_num(x, b, sizeof b);
      snprintf(f, sizeof f, " (as a float: %s)", b);
    }
    if ((k->flags & HAS_MIN) &&
        ((k->flags & MIN_OPEN) ? !(x > k->min) : !(x >= k->min))) {
      fmt_num(k->min, b, sizeof b);
      snprintf(why, wn, "%smust be %s %s%s", what,
               (k->flags & MIN_OPEN) ? ">" : ">=", b, f);
      return -1;
    }
    if ((k->flags & HAS_MAX) &&
        ((k->flags & MAX_OPEN) ? !(x < k->max) : !(x <= k->max))) {
      fmt_num(k->max, b, sizeof b);
      snprintf(why, wn, "%smust be %s %s%s", what,
               (k->flags & MAX_OPEN) ? "<" : "<=", b, f);
      return -1;
    }
  }
  return 0;
}

/* Parses a whole base-10 integer that must fit an int32_t and k's bounds. */
static int parse_int32(const key_def *k, const char *v, const char *what,
                       int32_t *out, char *why, size_t wn) {
  char *end;
  errno = 0;
  long long x = strtoll(v, &end, 10);
  if (end == v || !only_spaces(end)) {
    snprintf(why, wn, "%snot an integer", what);
    return -1;
  }
  /* On overflow x is clamped to LLONG_MIN/MAX, which the bounds below
   * reject with the message that says which way it is out. */
  if (check_number(k, (double)x, what, why, wn)) return -1;
  if (x > INT32_MAX || x < INT32_MIN) {
    snprintf(why, wn, "%smust be %s %ld", what, x > 0 ? "<=" : ">=",
             x > 0 ? (long)INT32_MAX : (long)INT32_MIN);
    return -1;
  }
  *out = (int32_t)x;
  return 0;
}

static int parse_uint64(const char *v, uint64_t *out, char *why, size_t wn) {
  char *end;
  if (*v == '-') {
    snprintf(why, wn, "must be >= 0");
    return -1;
  }
  errno = 0;
  unsigned long long x = strtoull(v, &end, 10);
  if (end == v || !only_spaces(end)) {
    snprintf(why, wn, "not an integer");
    return -1;
  }
  if (errno == ERANGE) {
    snprintf(why, wn, "must be <= %llu", (unsigned long long)UINT64_MAX);
    return -1;
  }
  *out = (uint64_t)x;
  return 0;
}

static int parse_double(const key_def *k, const char *v, double *out,
                        char *why, size_t wn) {
  char *end;
  errno = 0;
  double x = strtod(v, &end);
  if (end == v || !only_spaces(end)) {
    snprintf(why, wn, "not a number");
    return -1;
  }
  /* ERANGE on underflow still gives the nearest double (maybe 0), which
   * the bounds judge; only overflow is refused here. */
  if (errno == ERANGE && fabs(x) == HUGE_VAL) {
    snprintf(why, wn, "out of the range of a double");
    return -1;
  }
  if (check_number(k, x, "", why, wn)) return -1;
  *out = x;
  return 0;
}

static int parse_bool(const char *v, int32_t *out) {
  static const char *const yes[] = {"true", "yes", "1"};
  static const char *const no[] = {"false", "no", "0"};
  for (int i = 0; i < 3; i++) {
    if (strcasecmp(v, yes[i]) == 0) return *out = 1, 0;
    if (strcasecmp(v, no[i]) == 0) return *out = 0, 0;
  }
  return -1;
}

/* A string value must fit its member and survive being written to an INI
 * file and read back: no control characters, no leading or trailing space,
 * and no ';' that inih would take for the start of a comment. */
static int check_string(const key_def *k, const char *v, size_t len,
                        char *why, size_t wn) {
  if (len >= k->size) {
    snprintf(why, wn, "too long (at most %zu characters)", k->size - 1);
    return -1;
  }
  for (size_t i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)v[i];
    if (ch < 0x20 || ch == 0x7f) {
      snprintf(why, wn, "contains a control character");
      return -1;
    }
    if (ch == ';' && (i == 0 || v[i - 1] == ' ' || v[i - 1] == '\t')) {
      snprintf(why, wn, "';' at the start or after a space starts a comment "
                        "in an INI file");
      return -1;
    }
  }
  if (len > 0 && (v[0] == ' ' || v[len - 1] == ' ')) {
    snprintf(why, wn, "has leading or trailing spaces");
    return -1;
  }
  return 0;
}

/* Parses "200, 200" (or "" for no entries) into out[0..*n). */
static int parse_intlist(const key_def *k, const char *v, int32_t *out,
                         int32_t *n, char *why, size_t wn) {
  size_t cap = k->size / sizeof(int32_t);
  const char *p = v;
  *n = 0;
  if (only_spaces(p)) return 0;
  for (;;) {
    char *end;
    while (isspace((unsigned char)*p)) p++;
    if (*p == ',' || *p == '\0') {
      snprintf(why, wn, "empty entry in the list");
      return -1;
    }
    if ((size_t)*n == cap) {
      snprintf(why, wn, "at most %zu entries", cap);
      return -1;
    }
    errno = 0;
    long long x = strtoll(p, &end, 10);
    if (end == p) {
      snprintf(why, wn, "not a comma-separated list of integers");
      return -1;
    }
    if (check_number(k, (double)x, "each entry ", why, wn)) return -1;
    out[(*n)++] = (int32_t)x; /* the bounds keep it inside int32_t */
    p = end;
    while (isspace((unsigned char)*p)) p++;
    if (*p == '\0') return 0;
    if (*p != ',') {
      snprintf(why, wn, "not a comma-separated list of integers");
      return -1;
    }
    p++;
  }
}

/*
 * Parses the text v for key k and stores it in c. The value is parsed and
 * checked completely before anything is stored, so on failure (-1, with the
 * reason in why) c is unchanged. Touches no origin.
 */
static int apply_value(fedc_config *c, const key_def *k, const char *v,
                       char *why, size_t wn) {
  unsigned char *field = (unsigned char *)c + k->offset;
  switch (k->type) {
  case T_INT32: {
    int32_t x;
    if (parse_int32(k, v, "", &x, why, wn)) return -1;
    memcpy(field, &x, sizeof x);
    return 0;
  }
  case T_UINT64: {
    uint64_t x;
    if (parse_uint64(v, &x, why, wn)) return -1;
    memcpy(field, &x, sizeof x);
    return 0;
  }
  case T_DOUBLE: {
    double x;
    if (parse_double(k, v, &x, why, wn)) return -1;
    memcpy(field, &x, sizeof x);
    return 0;
  }
  case T_BOOL: {
    int32_t x;
    if (parse_bool(v, &x)) {
      snprintf(why, wn, "must be true or false (or yes/no, 1/0)");
      return -1;
    }
    memcpy(field, &x, sizeof x);
    return 0;
  }
  case T_ENUM: {
    char list[128];
    int32_t x = name_index(k->names, v);
    if (x < 0) {
      choices_text(k->names, list, sizeof list);
      snprintf(why, wn, "must be one of %s", list);
      return -1;
    }
    memcpy(field, &x, sizeof x);
    return 0;
  }
  case T_CHOICE:
  case T_STRING: {
    char list[512];
    size_t len = strlen(v);
    if (k->type == T_CHOICE && !choice_known(v)) {
      choice_text(list, sizeof list);
      snprintf(why, wn, "must be one of %s", list);
      return -1;
    }
    if (check_string(k, v, len, why, wn)) return -1;
    memset(field, 0, k->size);
    memcpy(field, v, len);
    return 0;
  }
  case T_INTLIST: {
    int32_t list[FEDC_CONFIG_MAX_HIDDEN * 4] = {0}, n;
    assert(k->size <= sizeof list);
    if (parse_intlist(k, v, list, &n, why, wn)) return -1;
    memcpy(field, list, k->size);
    memcpy((unsigned char *)c + k->aux, &n, sizeof n);
    return 0;
  }
  }
  snprintf(why, wn, "internal error: unknown key type");
  return -1;
}

/*
 * Checks the value c holds for k as apply_value would have checked its text:
 * the struct may have been filled in by code. 0, or -1 with the reason.
 */
static int check_field(const fedc_config *c, const key_def *k, char *why,
                       size_t wn) {
  const unsigned char *field = (const unsigned char *)c + k->offset;
  int32_t i32;
  double d;
  switch (k->type) {
  case T_INT32:
    memcpy(&i32, field, sizeof i32);
    return check_number(k, i32, "", why, wn);
  case T_UINT64:
    return 0;
  case T_DOUBLE:
    memcpy(&d, field, sizeof d);
    return check_number(k, d, "", why, wn);
  case T_BOOL:
    memcpy(&i32, field, sizeof i32);
    if (i32 == 0 || i32 == 1) return 0;
    snprintf(why, wn, "must be true or false");
    return -1;
  case T_ENUM: {
    int n = 0;
    memcpy(&i32, field, sizeof i32);
    while (k->names[n] != NULL) n++;
    if (i32 >= 0 && i32 < n) return 0;
    snprintf(why, wn, "not a known value (%ld)", (long)i32);
    return -1;
  }
  case T_CHOICE:
  case T_STRING: {
    const char *s = (const char *)field;
    size_t len = strnlen(s, k->size);
    if (len == k->size) {
      snprintf(why, wn, "not NUL-terminated");
      return -1;
    }
    if (k->type == T_CHOICE && !choice_known(s)) {
      snprintf(why, wn, "not a known name");
      return -1;
    }
    return check_string(k, s, len, why, wn);
  }
  case T_INTLIST: {
    int32_t n, x;
    memcpy(&n, (const unsigned char *)c + k->aux, sizeof n);
    if (n < 0 || (size_t)n > k->size / sizeof(int32_t)) {
      snprintf(why, wn, "bad entry count %ld", (long)n);
      return -1;
    }
    for (int32_t j = 0; j < n; j++) {
      memcpy(&x, field + (size_t)j * sizeof x, sizeof x);
      if (check_number(k, x, "each entry ", why, wn)) return -1;
    }
    return 0;
  }
  }
  snprintf(why, wn, "internal error: unknown key type");
  return -1;
}

/* Writes the value c holds for k as it would appear in a file. Safe on any
 * struct: a value check_field would reject still stays within its member. */
static void value_text(const fedc_config *c, const key_def *k, char *buf,
                       size_t n) {
  const unsigned char *field = (const unsigned char *)c + k->offset;
  int32_t i32;
  uint64_t u64;
  double d;
  buf[0] = '\0';
  switch (k->type) {
  case T_INT32:
    memcpy(&i32, field, sizeof i32);
    snprintf(buf, n, "%ld", (long)i32);
    break;
  case T_UINT64:
    memcpy(&u64, field, sizeof u64);
    snprintf(buf, n, "%llu", (unsigned long long)u64);
    break;
  case T_DOUBLE:
    memcpy(&d, field, sizeof d);
    fmt_num(d, buf, n);
    break;
  case T_BOOL:
    memcpy(&i32, field, sizeof i32);
    snprintf(buf, n, "%s", i32 ? "true" : "false");
    break;
  case T_ENUM: {
    int count = 0;
    memcpy(&i32, field, sizeof i32);
    while (k->names[count] != NULL) count++;
    if (i32 >= 0 && i32 < count)
      snprintf(buf, n, "%s", k->names[i32]);
    else
      snprintf(buf, n, "%ld", (long)i32);
    break;
  }
  case T_CHOICE:
  case T_STRING:
    snprintf(buf, n, "%.*s", (int)strnlen((const char *)field, k->size),
             (const char *)field);
    break;
  case T_INTLIST: {
    int32_t cnt;
    size_t used = 0;
    memcpy(&cnt, (const unsigned char *)c + k->aux, sizeof cnt);
    if (cnt < 0) cnt = 0;
    if ((size_t)cnt > k->size / sizeof i32) cnt = (int32_t)(k->size / sizeof i32);
    for (int32_t j = 0; j < cnt && used < n; j++) {
      memcpy(&i32, field + (size_t)j * sizeof i32, sizeof i32);
      int w = snprintf(buf + used, n - used, "%s%ld", j ? "," : "", (long)i32);
      if (w < 0) break;
      used += (size_t)w;
    }
    break;
  }
  }
}

/* ---- public API: defaults, names, origins ------------------------------- */

/* Every default is text parsed by apply_value, so the defaults obey the same
 * rules as a file; the unit tests check that each one parses. */
void fedc_config_defaults(fedc_config *c) {
  memset(c, 0, sizeof *c);
  for (size_t i = 0; i < N_KEYS; i++) {
    char why[192];
    int rc = apply_value(c, &keys[i], keys[i].def, why, sizeof why);
    assert(rc == 0 && "a default in the key table does not parse");
    (void)rc;
    set_origin(c, i, "default", 0);
  }
}

const char *fedc_config_origin(const fedc_config *c, const char *section,
                               const char *key) {
  const key_def *k = find_key(section, key);
  return k ? c->origin[k - keys] : NULL;
}

/* ---- loading a file ----------------------------------------------------- */

typedef struct load_state {
  const char *path;
  fedc_config *work; /* the copy being filled in */
  char *buf;         /* the whole file, NUL-terminated */
  size_t len, pos;
  int lineno;        /* of the line last handed to inih */
  char *line;        /* that line, indentation stripped, NUL-terminated */
  int truncated;     /* it did not fit inih's buffer */
  int err;           /* first error found by the reader or the handler */
  int err_line;
  int seen[N_KEYS];  /* line where each key was set in this file */
} load_state;

/* Reads the whole file into a NUL-terminated fedc_malloc'd buffer. */
static int read_file(const char *path, char **out, size_t *out_len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return fedc_error_set(FEDC_EIO, "%s: cannot open: %s", path,
                          strerror(errno));
  size_t cap = 4096, len = 0;
  char *buf = fedc_malloc(cap);
  int rc = 0;
  if (buf == NULL) {
    rc = fedc_error_set(FEDC_ENOMEM, "%s: out of memory", path);
    goto done;
  }
  for (;;) {
    if (len + 1 == cap) {
      if (cap >= FILE_MAX) {
        rc = fedc_error_set(FEDC_ECONFIG, "%s: larger than %u bytes, not a "
                            "config file", path, FILE_MAX);
        goto done;
      }
      char *nb = fedc_realloc(buf, cap * 2);
      if (nb == NULL) {
        rc = fedc_error_set(FEDC_ENOMEM, "%s: out of memory", path);
        goto done;
      }
      buf = nb;
      cap *= 2;
    }
    size_t got = fread(buf + len, 1, cap - 1 - len, f);
    len += got;
    if (got == 0) break;
  }
  if (ferror(f))
    rc = fedc_error_set(FEDC_EIO, "%s: read error: %s", path, strerror(errno));
done:
  fclose(f);
  if (rc) {
    fedc_free(buf);
    return rc;
  }
  buf[len] = '\0';
  *out = buf;
  *out_len = len;
  return 0;
}

static void load_fail(load_state *st, int line) {
  st->err = FEDC_ECONFIG;
  st->err_line = line;
}

/*
 * inih's fgets-style reader: hands inih one line of the file per call, so
 * inih's line count and ours agree. Strips the indentation (so inih never
 * sees a continuation line) and a UTF-8 BOM; a line longer than inih's
 * buffer goes in cut short and is flagged for the handler. Also catches what
 * inih would let through: a NUL byte, and a section header that names no
 * known section even when no key follows it. Returns NULL at the end of the
 * file or once an error is recorded, which stops inih.
 */
static char *read_line(char *out, int num, void *stream) {
  load_state *st = stream;
  if (st->err || st->pos >= st->len || num < 2) return NULL;
  char *p = st->buf + st->pos;
  char *nl = memchr(p, '\n', st->len - st->pos);
  size_t n = nl ? (size_t)(nl - p) : st->len - st->pos;
  st->pos += n + (nl != NULL);
  st->lineno++;
  p[n] = '\0'; /* the '\n' or the buffer's own terminator */
  if (strlen(p) != n) {
    load_fail(st, st->lineno);
    fedc_error_set(FEDC_ECONFIG, "%s:%d: line contains a NUL byte", st->path,
                   st->lineno);
    return NULL;
  }
  if (st->lineno == 1 && n >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
    p += 3, n -= 3;
  while (n > 0 && isspace((unsigned char)*p)) p++, n--;
  if (*p == '[') {
    /* inih's rule: the name ends at ']', unless a comment comes first. */
    size_t e = 1;
    while (e < n && p[e] != ']' &&
           !(p[e] == ';' && isspace((unsigned char)p[e - 1])))
      e++;
    if (e < n && p[e] == ']' && !section_known_n(p + 1, e - 1)) {
      load_fail(st, st->lineno);
      fedc_error_set(FEDC_ECONFIG, "%s:%d: unknown section [%.*s]", st->path,
                     st->lineno, (int)(e - 1 > 64 ? 64 : e - 1), p + 1);
      return NULL;
    }
  }
  st->line = p;
  st->truncated = n > (size_t)num - 1;
  size_t copy = st->truncated ? (size_t)num - 1 : n;
  memcpy(out, p, copy);
  out[copy] = '\0';
  return out;
}

/* The value of the current line, found the way inih finds it: after the
 * first '=' or ':', up to an inline ';' comment, trimmed. For lines inih
 * only saw the start of. */
static const char *whole_value(load_state *st) {
  char *v = st->line + strcspn(st->line, "=:");
  if (*v) v++;
  for (char *s = v; *s; s++) {
    if (*s == ';' && s > v && isspace((unsigned char)s[-1])) {
      *s = '\0';
      break;
    }
  }
  return trim(v);
}

/* inih's handler: one key = value. Returns 0 (which inih counts as an error
 * at this line) after recording the first error; later calls are ignored. */
static int on_key(void *user, const char *section, const char *name,
                  const char *value) {
  load_state *st = user;
  int line = st->lineno;
  char why[192];
  if (st->err) return 0;
  if (st->truncated) value = whole_value(st);
  if (section[0] == '\0') {
    load_fail(st, line);
    fedc_error_set(FEDC_ECONFIG, "%s:%d: key '%s' comes before any [section]",
                   st->path, line, name);
    return 0;
  }
  const key_def *k = find_key(section, name);
  if (k == NULL) {
    load_fail(st, line);
    if (!section_known_n(section, strlen(section)))
      fedc_error_set(FEDC_ECONFIG, "%s:%d: unknown section [%s]", st->path,
                     line, section);
    else
      fedc_error_set(FEDC_ECONFIG, "%s:%d: unknown key '%s' in [%s]",
                     st->path, line, name, section);
    return 0;
  }
  size_t idx = (size_t)(k - keys);
  if (st->seen[idx]) {
    load_fail(st, line);
    fedc_error_set(FEDC_ECONFIG,
                   "%s:%d: [%s] %s = %.*s%s: duplicate key, first set at "
                   "line %d",
                   st->path, line, section, name, SHOW(value), st->seen[idx]);
    return 0;
  }
  if (apply_value(st->work, k, value, why, sizeof why)) {
    load_fail(st, line);
    fedc_error_set(FEDC_ECONFIG, "%s:%d: [%s] %s = %.*s%s: %s", st->path,
                   line, section, name, SHOW(value), why);
    return 0;
  }
  st->seen[idx] = line;
  set_origin(st->work, idx, st->path, line);
  return 1;
}

/*
 * Reads path over c: keys the file sets replace c's values, the others stay.
 * The file is parsed into a copy, which replaces c only if every line was
 * good. Errors: FEDC_EIO (cannot open or read), FEDC_ECONFIG (the first bad
 * line, as "path:line: ..."), FEDC_ENOMEM, FEDC_EINVAL.
 */
int fedc_config_load(fedc_config *c, const char *path) {
  if (c == NULL || path == NULL)
    return fedc_error_set(FEDC_EINVAL, "fedc_config_load: NULL argument");
  int rc;
  load_state *st = fedc_calloc(1, sizeof *st);
  if (st == NULL) return fedc_error_set(FEDC_ENOMEM, "%s: out of memory", path);
  st->path = path;
  st->work = fedc_malloc(sizeof *st->work);
  if (st->work == NULL) {
    rc = fedc_error_set(FEDC_ENOMEM, "%s: out of memory", path);
    goto done;
  }
  memcpy(st->work, c, sizeof *c);
  rc = read_file(path, &st->buf, &st->len);
  if (rc) goto done;

  int bad = ini_parse_stream(read_line, st, on_key, st);
  if (bad > 0 && (!st->err || bad < st->err_line)) {
    /* inih found a line that is neither a section, a key nor a comment. */
    rc = fedc_error_set(FEDC_ECONFIG,
                        "%s:%d: syntax error: expected [section], "
                        "key = value or a ; comment",
                        path, bad);
  } else if (st->err) {
    rc = st->err; /* the message is already set */
  } else if (bad < 0) {
    rc = fedc_error_set(FEDC_ENOMEM, "%s: inih could not allocate", path);
  } else {
    memcpy(c, st->work, sizeof *c);
  }
done:
  fedc_free(st->buf);
  fedc_free(st->work);
  fedc_free(st);
  return rc;
}

/* ---- --set -------------------------------------------------------------- */

/*
 * Applies "section.key=value" (spaces around the parts are ignored). The
 * value is parsed and checked in full before it is stored, so on error c is
 * unchanged. Errors: FEDC_ECONFIG ("--set: ..."), FEDC_ENOMEM, FEDC_EINVAL.
 */
int fedc_config_set(fedc_config *c, const char *assignment) {
  if (c == NULL || assignment == NULL)
    return fedc_error_set(FEDC_EINVAL, "fedc_config_set: NULL argument");
  char why[192];
  int rc = 0;
  char *copy = fedc_strdup(assignment);
  if (copy == NULL) return fedc_error_set(FEDC_ENOMEM, "--set: out of memory");
  char *eq = strchr(copy, '=');
  char *dot = eq ? memchr(copy, '.', (size_t)(eq - copy)) : NULL;
  if (dot == NULL) {
    rc = fedc_error_set(FEDC_ECONFIG,
                        "--set: '%.*s%s': expected section.key=value",
                        SHOW(assignment));
    goto done;
  }
  *eq = '\0';
  *dot = '\0';
  char *section = trim(copy), *key = trim(dot + 1), *value = trim(eq + 1);
  if (*section == '\0' || *key == '\0') {
    rc = fedc_error_set(FEDC_ECONFIG,
                        "--set: '%.*s%s': expected section.key=value",
                        SHOW(assignment));
    goto done;
  }
  const key_def *k = find_key(section, key);
  if (k == NULL) {
    if (!section_known_n(section, strlen(section)))
      rc = fedc_error_set(FEDC_ECONFIG, "--set: unknown section [%.*s%s]",
                          SHOW(section));
    else
      rc = fedc_error_set(FEDC_ECONFIG, "--set: unknown key '%.*s%s' in [%s]",
                          SHOW(key), section);
    goto done;
  }
  if (apply_value(c, k, value, why, sizeof why)) {
    rc = fedc_error_set(FEDC_ECONFIG, "--set: [%s] %s = %.*s%s: %s",
                        k->section, k->key, SHOW(value), why);
    goto done;
  }
  set_origin(c, (size_t)(k - keys), "--set", 0);
done:
  fedc_free(copy);
  return rc;
}

/* ---- checks across keys ------------------------------------------------- */

static const char *origin_of(const fedc_config *c, const char *section,
                             const char *key) {
  const char *o = fedc_config_origin(c, section, key);
  return o && o[0] ? o : "(unknown)";
}

/*
 * Checks every key against its own range again (c may have been filled in
 * by code), then the keys against each other. The message starts with where
 * the offending key was set and says where the other one was set.
 */
int fedc_config_check(const fedc_config *c) {
  return fedc_config_check_role(c, FEDC_ROLE_SIM);
}

/*
 * The [data] paths default to Fashion-MNIST's files, which fedc-sim reads in
 * the examples. Anywhere else a path left at that default surprises: a
 * coordinator evaluating a 784-feature test set against a 30-input model, a
 * CSV site reading an idx image file. So a path is given when a file or
 * --set named it, when code filled in another value, or for fedc-sim with
 * [data] format = idx; otherwise the key counts as missing.
 */
int fedc__config_data_given(const fedc_config *c, const char *key, fedc_config_role role) {
  const key_def *k = find_key("data", key);
  if (c == NULL || k == NULL || k->type != T_STRING) return 0;
  const char *v = (const char *)c + k->offset;
  if (v[0] == '\0') return 0;
  if (role == FEDC_ROLE_SIM && c->format == FEDC_FORMAT_IDX) return 1;
  return strcmp(origin_of(c, "data", key), "default") != 0 || strcmp(v, k->def) != 0;
}

/* Keys a role cannot run without: "key = (empty): must be set for ROLE";
 * a [data] path left at its Fashion-MNIST default "is missing". */
static int need_string(const fedc_config *c, const char *section,
                       const char *key, const char *role) {
  const key_def *k = find_key(section, key);
  const char *v = (const char *)c + k->offset;
  if (strcmp(section, "data") == 0 && v[0] != '\0' &&
      !fedc__config_data_given(c, key, FEDC_ROLE_CLIENT))
    return fedc_error_set(FEDC_ECONFIG,
                          "[%s] %s is missing: must be set for %s (no data set is assumed; "
                          "`fedc-coordinator init --data FILE.csv` writes a config for your own)",
                          section, key, role);
  if (v[0] != '\0') return 0;
  return fedc_error_set(FEDC_ECONFIG, "%s: [%s] %s = (empty): must be set for %s",
                        origin_of(c, section, key), section, key, role);
}

/*
 * The strategy's capabilities against what the config asks ([privacy]
 * secure_aggregation, noise_multiplier, [strategy] norm_bound) and what
 * the driver can do. The asks are added one at a time, so that a refusal
 * names the key that asked for the missing capability, with where it was
 * set, and where [strategy] name was set.
 */
int fedc_config_check_strategy(const fedc_config *c, const fedc_strategy_needs *driver) {
  const fedc_strategy_info *info = fedc_strategy_lookup(c->strategy);
  const char *by = origin_of(c, "strategy", "name");
  char why[512];
  if (info == NULL)
    return fedc_error_set(FEDC_ECONFIG, "%s: [strategy] name = %s: not a registered strategy",
                          by, c->strategy);
  fedc_strategy_needs n = *driver;
  n.secagg = n.dp = n.norm_bound = 0;
  if (fedc_strategy_check(info, &n) != 0) {
    snprintf(why, sizeof why, "%s", fedc_error_msg());
    return fedc_error_set(FEDC_ECONFIG, "%s: [strategy] name = %s: %s", by, c->strategy, why);
  }
  n.dp = c->dp_noise_multiplier > 0.0;
  if (n.dp && fedc_strategy_check(info, &n) != 0) {
    snprintf(why, sizeof why, "%s", fedc_error_msg());
    return fedc_error_set(FEDC_ECONFIG,
                          "%s: [privacy] noise_multiplier = %g: %s ([strategy] name set at %s)",
                          origin_of(c, "privacy", "noise_multiplier"), c->dp_noise_multiplier,
                          why, by);
  }
  n.secagg = c->secagg != 0;
  n.norm_bound = c->norm_bound > 0.0;
  /* with noise at the sites the coordinator neither clips nor noises a
   * single update: secure aggregation sees only a sum (config_noise_at.c) */
  if (c->dp_noise_at == FEDC_NOISE_AT_SITES) n.dp = 0;
  if (n.secagg && fedc_strategy_check(info, &n) != 0) {
    snprintf(why, sizeof why, "%s", fedc_error_msg());
    return fedc_error_set(FEDC_ECONFIG,
                          "%s: [privacy] secure_aggregation = true: %s ([strategy] name = %s "
                          "set at %s)",
                          origin_of(c, "privacy", "secure_aggregation"), why, c->strategy, by);
  }
  if (c->agg_device == FEDC_AGG_DEVICE_CUDA && fedc__strategy_gpu_kind(info) < 0)
    return fedc_error_set(FEDC_ECONFIG,
                          "%s: [strategy] device = cuda: strategy %s has no GPU form (set at "
                          "%s); the GPU aggregates fedavg, fedavgm, fedadam, fedyogi, "
                          "fedadagrad, fedbuff, median and trimmed_mean: use one of them, or "
                          "device = cpu or auto",
                          origin_of(c, "strategy", "device"), c->strategy, by);
  return 0;
}

/*
 * [strategy] compression (docs/compression.md): a codec acts on one
 * client's float32 delta, which the coordinator decodes and folds as any
 * update. Refused where that is not what happens: secure aggregation
 * (masks need the full fixed-point vector, so nothing would be saved),
 * a relay (it forwards exact partial sums and takes its codec from its
 * parent, which relays refuse to join with one), scaffold (its control variates ride in the
 * same body) and fedbuff (updates against older models than the
 * coordinator's). A tensor job is checked where its [model] init is read
 * (coordinator/tensor_job.c: F32 tensors only). Central DP is not refused:
 * it clips the decoded delta at the coordinator, so the bound holds for
 * every codec.
 */
static int check_compression(const fedc_config *c) {
  if (c->compression == FEDC_CODEC_NONE) return 0;
  const char *name = fedc_codec_name((fedc_codec)c->compression);
  const char *at = origin_of(c, "strategy", "compression");
  const fedc_strategy_info *si = fedc_strategy_lookup(c->strategy);
  const char *why = NULL, *other = NULL, *key = NULL;
  if (c->secagg) {
    key = "[privacy] secure_aggregation = true";
    why = "secure aggregation masks the full fixed-point vector, so a compressed update would "
          "be decoded before masking and save nothing; choose one";
    other = origin_of(c, "privacy", "secure_aggregation");
  } else if (c->relay_parent[0]) {
    key = "[relay] parent";
    why = "a relay forwards exact partial sums and takes its job's codec from its parent "
          "(relays refuse a job with compression); leave it at none";
    other = origin_of(c, "relay", "parent");
  } else if (si && (si->caps & FEDC_STRATEGY_VARIATES)) {
    key = "[strategy] name = scaffold";
    why = "scaffold sends control-variate deltas in the same body, which the codecs do not "
          "carry";
    other = origin_of(c, "strategy", "name");
  } else if (si && (si->caps & FEDC_STRATEGY_ASYNC)) {
    key = "[strategy] name = fedbuff";
    why = "fedbuff folds updates trained from older models than the current one, and a "
          "delta is decoded against the current one";
    other = origin_of(c, "strategy", "name");
  }
  if (why)
    return fedc_error_set(FEDC_ECONFIG,
                          "%s: [strategy] compression = %s: not with %s (set at %s): %s "
                          "(docs/compression.md)",
                          at, name, key, other, why);
  return 0;
}

/*
 * Tensor jobs ([model] type = tensors, docs/tensor-jobs.md): the model is
 * the coordinator's [model] init file, trained only by the sites' external
 * trainers. The keys that describe a built-in model do not apply, the
 * coordinator runs no model code (no [data] test), the simulator has no
 * trainer for it; init and integer_rule mean nothing for a built-in model.
 * The rules' syntax and the file itself are checked when the coordinator
 * starts (it reads the file).
 */
static int check_tensors(const fedc_config *c, fedc_config_role role) {
  int tensors = c->model_type == FEDC_MODEL_TENSORS;
  if (!tensors) {
    const char *k = c->model_init[0] ? "init" : c->integer_rule[0] ? "integer_rule" : NULL;
    if (k)
      return fedc_error_set(FEDC_ECONFIG,
                            "%s: [model] %s is set: it applies only to [model] type = "
                            "tensors, and type = %s (set at %s)",
                            origin_of(c, "model", k), k, fedc_model_type_name(c->model_type),
                            origin_of(c, "model", "type"));
    return 0;
  }
  if (role == FEDC_ROLE_SIM)
    return fedc_error_set(FEDC_ECONFIG,
                          "%s: [model] type = tensors: the simulator has no trainer for an "
                          "arbitrary model; run a tensor job with fedc-coordinator and "
                          "fedc-client's [trainer] command (docs/tensor-jobs.md)",
                          origin_of(c, "model", "type"));
  if (role != FEDC_ROLE_COORDINATOR) return 0;
  if (c->model_init[0] == '\0')
    return fedc_error_set(FEDC_ECONFIG,
                          "%s: [model] type = tensors needs [model] init, the initial "
                          "model as a safetensors file (its tensors define the job)",
                          origin_of(c, "model", "type"));
  static const char *const builtin[] = {"inputs", "classes"};
  for (int i = 0; i < 2; i++) {
    int32_t v = i ? c->classes : c->inputs;
    if (v != 0)
      return fedc_error_set(FEDC_ECONFIG,
                            "%s: [model] %s = %ld: a tensor job's shapes come from [model] "
                            "init; leave %s at 0 with [model] type = tensors (set at %s)",
                            origin_of(c, "model", builtin[i]), builtin[i], (long)v,
                            builtin[i], origin_of(c, "model", "type"));
  }
  /* the default test set is simply not loaded; one the operator named is refused */
  if (c->test[0] && strcmp(origin_of(c, "data", "test"), "default") != 0)
    return fedc_error_set(FEDC_ECONFIG,
                          "%s: [data] test is set: the coordinator never runs a tensor "
                          "job's model; it is evaluated only by its clients. Leave [data] "
                          "test empty with [model] type = tensors (set at %s)",
                          origin_of(c, "data", "test"), origin_of(c, "model", "type"));
  return 0;
}

/* The coordinator has no training data: the model's shape comes from
 * [model] inputs and classes, which must then fit the model type. */
static int check_coordinator(const fedc_config *c) {
  int schema = c->features[0] != '\0' || c->schema_from[0] != '\0';
  if (c->standardize)
    return fedc_error_set(FEDC_ECONFIG,
                          "%s: [data] standardize = true: the coordinator has no training data "
                          "to standardize; declare a schema ([data] features or schema_from) and "
                          "every site standardizes with the federation's statistics",
                          origin_of(c, "data", "standardize"));
  if (c->model_type == FEDC_MODEL_TENSORS) goto common; /* check_tensors */
  if (c->inputs < 1 && !schema)
    return fedc_error_set(FEDC_ECONFIG,
                          "%s: [model] inputs = %ld: must be >= 1 for the "
                          "coordinator (it has no data to infer it from)",
                          origin_of(c, "model", "inputs"), (long)c->inputs);
  int multi = c->model_type == FEDC_MODEL_SOFTMAX || c->model_type == FEDC_MODEL_MLP;
  if (multi && c->classes < 2)
    return fedc_error_set(FEDC_ECONFIG,
                          "%s: [model] classes = %ld: must be >= 2 for the "
                          "coordinator with [model] type = %s",
                          origin_of(c, "model", "classes"), (long)c->classes,
                          fedc_model_type_name(c->model_type));
  if (!multi && c->classes != 0 && !(c->model_type == FEDC_MODEL_LOGREG && c->classes == 2))
    return fedc_error_set(FEDC_ECONFIG,
                          "%s: [model] classes = %ld: a %s model has one "
                          "output; leave classes at 0",
                          origin_of(c, "model", "classes"), (long)c->classes,
                          fedc_model_type_name(c->model_type));
common:;
  const fedc_strategy_info *si = fedc_strategy_lookup(c->strategy);
  if (si && (si->caps & FEDC_STRATEGY_VARIATES) && !(c->variate_samples >= 1.0))
    return fedc_error_set(FEDC_ECONFIG,
                          "%s: [strategy] variate_samples = %g: strategy %s (set at %s) weighs "
                          "each client's control-variate delta by its samples out of the "
                          "federation's; the coordinator cannot count them: set it to the "
                          "total training samples of all clients",
                          origin_of(c, "strategy", "variate_samples"), c->variate_samples,
                          c->strategy, origin_of(c, "strategy", "name"));
  int rc = need_string(c, "store", "path", "the coordinator");
  if (rc == 0) rc = need_string(c, "server", "listen", "the coordinator");
  if (rc == 0) rc = need_string(c, "tls", "cert", "the coordinator");
  if (rc == 0) rc = need_string(c, "tls", "key", "the coordinator");
  if (rc == 0 && c->tls_require_client_cert)
    rc = need_string(c, "tls", "ca", "the coordinator with require_client_cert");
  return rc;
}

static int check_client(const fedc_config *c) {
  if (c->standardize)
    return fedc_error_set(FEDC_ECONFIG,
                          "%s: [data] standardize = true: inside a federation each site would "
                          "scale its features by its own statistics and the global model would "
                          "fit none of them; declare a schema in the job ([data] features at "
                          "the coordinator) and every site standardizes with the federation's "
                          "statistics",
                          origin_of(c, "data", "standardize"));
  int rc = need_string(c, "server", "url", "the client");
  if (rc == 0) rc = need_string(c, "tls", "ca", "the client");
  if (rc == 0) rc = need_string(c, "tls", "cert", "the client");
  if (rc == 0) rc = need_string(c, "tls", "key", "the client");
  if (rc == 0 && c->trainer_command[0] == '\0')
    rc = need_string(c, "data", "train", "the built-in trainer (or set [trainer] command)");
  if (rc == 0 && c->trainer_evaluate[0] != '\0' && c->trainer_command[0] == '\0')
    rc = fedc_error_set(FEDC_ECONFIG,
                        "%s: [trainer] evaluate is set but [trainer] command is not: an "
                        "evaluate command comes with an external trainer",
                        origin_of(c, "trainer", "evaluate"));
  return rc;
}

/* [eval] select names a metric of the model's task; [train] class_weight
 * parses, and pos_weight is for a binary model. */
static int check_eval(const fedc_config *c) {
  fedc_eval_task task = c->model_type == FEDC_MODEL_LOGREG   ? FEDC_EVAL_BINARY
                        : c->model_type == FEDC_MODEL_LINREG ? FEDC_EVAL_REGRESSION
                                                             : FEDC_EVAL_MULTICLASS;
  int index, sign;
  if (c->eval_select[0] != '\0' &&
      (fedc_eval_select_parse(c->eval_select, &index, &sign) != 0 ||
       !fedc_eval_metric_applies(index, task)))
    return fedc_error_set(FEDC_ECONFIG,
                          "%s: [eval] select = %s: not a metric of a %s model ([model] type = %s "
                          "set at %s); one of auc, pr_auc, f1, precision, recall, brier (binary), "
                          "accuracy, macro_f1, log_loss (classification), mse, mae, r2 "
                          "(regression), '-' before it for lower is better",
                          origin_of(c, "eval", "select"), c->eval_select,
                          fedc_eval_task_name(task), fedc_model_type_name(c->model_type),
                          origin_of(c, "model", "type"));
  fedc_class_weight cw;
  if (fedc_class_weight_parse(c->class_weight, &cw) != 0) {
    char why[192];
    snprintf(why, sizeof why, "%s", fedc_error_msg());
    return fedc_error_set(FEDC_ECONFIG, "%s: [train] class_weight = %.60s: %s",
                          origin_of(c, "train", "class_weight"), c->class_weight, why);
  }
  if (task == FEDC_EVAL_REGRESSION && cw.mode != FEDC_CLASS_WEIGHT_NONE)
    return fedc_error_set(FEDC_ECONFIG,
                          "%s: [train] class_weight = %.60s: a linreg model has no classes "
                          "([model] type set at %s)",
                          origin_of(c, "train", "class_weight"), c->class_weight,
                          origin_of(c, "model", "type"));
  if (task != FEDC_EVAL_BINARY && c->pos_weight != 1.0)
    return fedc_error_set(FEDC_ECONFIG,
                          "%s: [train] pos_weight = %g: only a logreg model has a positive "
                          "class ([model] type = %s set at %s)",
                          origin_of(c, "train", "pos_weight"), c->pos_weight,
                          fedc_model_type_name(c->model_type), origin_of(c, "model", "type"));
  int32_t k = task == FEDC_EVAL_BINARY ? 2 : c->classes;
  if (cw.mode == FEDC_CLASS_WEIGHT_GIVEN && k > 0 && cw.n != k)
    return fedc_error_set(FEDC_ECONFIG,
                          "%s: [train] class_weight = %.60s: %d weights for %d classes",
                          origin_of(c, "train", "class_weight"), c->class_weight, (int)cw.n,
                          (int)k);
  return 0;
}

int fedc_config_check_role(const fedc_config *c, fedc_config_role role) {
  if (c == NULL)
    return fedc_error_set(FEDC_EINVAL, "fedc_config_check: NULL argument");
  char why[192];
  for (size_t i = 0; i < N_KEYS; i++) {
    const key_def *k = &keys[i];
    if (check_field(c, k, why, sizeof why)) {
      char text[TEXT_MAX];
      value_text(c, k, text, sizeof text);
      return fedc_error_set(FEDC_ECONFIG, "%s: [%s] %s = %.*s%s: %s",
                            origin_of(c, k->section, k->key), k->section,
                            k->key, SHOW(text), why);
    }
  }
  if (role == FEDC_ROLE_SIM && c->clients_per_round > c->clients)
    return fedc_error_set(
        FEDC_ECONFIG,
        "%s: [job] clients_per_round = %ld: must be <= [sim] clients = %ld "
        "(set at %s)",
        origin_of(c, "job", "clients_per_round"), (long)c->clients_per_round,
        (long)c->clients, origin_of(c, "sim", "clients"));
  if (c->min_clients > c->clients_per_round)
    return fedc_error_set(
        FEDC_ECONFIG,
        "%s: [job] min_clients = %ld: must be <= [job] clients_per_round = %ld "
        "(set at %s)",
        origin_of(c, "job", "min_clients"), (long)c->min_clients,
        (long)c->clients_per_round, origin_of(c, "job", "clients_per_round"));
  if (c->model_type == FEDC_MODEL_MLP && c->n_hidden == 0)
    return fedc_error_set(
        FEDC_ECONFIG,
        "%s: [model] type = mlp: needs at least one size in [model] hidden "
        "(e.g. hidden = 200,200), which is empty (set at %s)",
        origin_of(c, "model", "type"), origin_of(c, "model", "hidden"));
  if (c->model_type != FEDC_MODEL_MLP && c->n_hidden > 0) {
    char text[TEXT_MAX];
    value_text(c, find_key("model", "hidden"), text, sizeof text);
    return fedc_error_set(
        FEDC_ECONFIG,
        "%s: [model] hidden = %s: only an mlp has hidden layers, but "
        "[model] type = %s (set at %s)",
        origin_of(c, "model", "hidden"), text,
        fedc_model_type_name(c->model_type), origin_of(c, "model", "type"));
  }
  {
    int rc = check_eval(c);
    if (rc != 0) return rc;
  }
  {
    /* what each program can do with a strategy; fedc-sim-mpi adds its
     * split when it starts (fedc_sim_new_share) */
    fedc_strategy_needs drv;
    fedc_strategy_needs_init(&drv);
    drv.can_secagg = role != FEDC_ROLE_SIM;
    drv.can_async = 1; /* the coordinator's in coordinator/async_rounds.c */
    drv.can_variates = 1;
    drv.driver = role == FEDC_ROLE_COORDINATOR ? "the coordinator"
                 : role == FEDC_ROLE_SIM      ? "the simulator"
                                              : "the client";
    int rc = fedc__config_check_noise_at(c, role == FEDC_ROLE_SIM);
    if (rc != 0) return rc;
    rc = fedc_config_check_strategy(c, &drv);
    if (rc != 0) return rc;
  }
  {
    int rc = check_tensors(c, role);
    if (rc == 0 && role != FEDC_ROLE_CLIENT) rc = check_compression(c);
    if (rc != 0) return rc;
  }
  if (role == FEDC_ROLE_COORDINATOR) {
    int rc = check_coordinator(c);
    if (rc != 0) return rc;
  }
  if (role == FEDC_ROLE_CLIENT) {
    int rc = check_client(c);
    if (rc != 0) return rc;
  }
  if (c->format == FEDC_FORMAT_IDX) {
    /* labels are needed beside each images file in use: the simulator uses
     * both sets, the client its training set and the coordinator only an
     * optional test set */
    static const char *const need[] = {"train_labels", "test_labels"};
    static const char *const imgs[] = {"train", "test"};
    for (int i = 0; i < 2; i++) {
      const key_def *k = find_key("data", need[i]);
      const key_def *ki = find_key("data", imgs[i]);
      int used = role == FEDC_ROLE_SIM ||
                 ((const char *)c + ki->offset)[0] != '\0';
      if (role == FEDC_ROLE_COORDINATOR && i == 0) used = 0;
      if (used && ((const char *)c + k->offset)[0] == '\0')
        return fedc_error_set(
            FEDC_ECONFIG,
            "%s: [data] %s = (empty): must be set when [data] format = idx "
            "(set at %s)",
            origin_of(c, "data", need[i]), need[i],
            origin_of(c, "data", "format"));
    }
  }
  if (role == FEDC_ROLE_SIM && c->format == FEDC_FORMAT_CSV) {
    static const char *const sets[] = {"train", "test"};
    for (int i = 0; i < 2; i++)
      if (!fedc__config_data_given(c, sets[i], role))
        return fedc_error_set(FEDC_ECONFIG,
                              "[data] %s is missing: fedc-sim with [data] format = csv (set at "
                              "%s) reads a train and a test table; only idx defaults to "
                              "Fashion-MNIST",
                              sets[i], origin_of(c, "data", "format"));
  }
  if (c->format == FEDC_FORMAT_CSV && c->label[0] == '\0')
    return fedc_error_set(
        FEDC_ECONFIG,
        "%s: [data] label = (empty): must name the label column when [data] "
        "format = csv (set at %s)",
        origin_of(c, "data", "label"), origin_of(c, "data", "format"));
  return 0;
}

/* ---- writing: dump and docs --------------------------------------------- */

int fedc_config_value(const fedc_config *c, const char *section, const char *key, char *buf,
                      size_t size) {
  const key_def *k = find_key(section, key);
  if (k == NULL) return fedc_error_set(FEDC_ENOTFOUND, "[%s] %s: no such key", section, key);
  char text[TEXT_MAX];
  value_text(c, k, text, sizeof text);
  size_t len = strlen(text);
  if (len + 1 > size)
    return fedc_error_set(FEDC_ERANGE, "[%s] %s: the value needs %zu bytes", section, key, len + 1);
  memcpy(buf, text, len + 1);
  return 0;
}

/*
 * Writes every key, section by section in table order. All values are
 * checked before the first byte is written, so FEDC_ECONFIG writes nothing;
 * FEDC_EIO (a write failed) may leave part of the file behind.
 */
int fedc_config_dump(const fedc_config *c, FILE *f) {
  if (c == NULL || f == NULL)
    return fedc_error_set(FEDC_EINVAL, "fedc_config_dump: NULL argument");
  char why[192], text[TEXT_MAX];
  for (size_t i = 0; i < N_KEYS; i++) {
    const key_def *k = &keys[i];
    if (check_field(c, k, why, sizeof why))
      return fedc_error_set(FEDC_ECONFIG,
                            "%s: [%s] %s: cannot be written: %s",
                            origin_of(c, k->section, k->key), k->section,
                            k->key, why);
  }
  fprintf(f, "; fedc configuration, every key (fedc_config_dump)\n");
  for (size_t i = 0; i < N_KEYS; i++) {
    const key_def *k = &keys[i];
    if (i == 0 || strcmp(k->section, keys[i - 1].section) != 0)
      fprintf(f, "\n[%s]\n", k->section);
    value_text(c, k, text, sizeof text);
    fprintf(f, "%s = %s\n", k->key, text);
  }
  if (fflush(f) != 0 || ferror(f))
    return fedc_error_set(FEDC_EIO, "writing the configuration failed: %s",
                          strerror(errno));
  return 0;
}

static const char *type_text(const key_def *k) {
  switch (k->type) {
  case T_INT32: return "integer";
  case T_UINT64: return "unsigned 64-bit integer";
  case T_DOUBLE: return "number";
  case T_BOOL: return "bool";
  case T_STRING: return "string";
  case T_ENUM: return "choice";
  case T_CHOICE: return "name";
  case T_INTLIST: return "list of integers";
  }
  return "?";
}

/* The allowed values of k in words: ">= 1 and <= 1000000", "cpu, cuda". */
static void range_text(const key_def *k, char *buf, size_t n) {
  char lo[40], hi[40], b[128];
  fmt_num(k->min, lo, sizeof lo);
  fmt_num(k->max, hi, sizeof hi);
  const char *lop = (k->flags & MIN_OPEN) ? ">" : ">=",
             *hip = (k->flags & MAX_OPEN) ? "<" : "<=";
  b[0] = '\0';
  if ((k->flags & HAS_MIN) && (k->flags & HAS_MAX))
    snprintf(b, sizeof b, "%s %s and %s %s", lop, lo, hip, hi);
  else if (k->flags & HAS_MIN)
    snprintf(b, sizeof b, "%s %s", lop, lo);
  else if (k->flags & HAS_MAX)
    snprintf(b, sizeof b, "%s %s", hip, hi);
  switch (k->type) {
  case T_INT32:
    snprintf(buf, n, "%s", (k->flags & HAS_MAX) ? b : b[0] ? b : "any");
    break;
  case T_UINT64:
    snprintf(buf, n, "0 to %llu", (unsigned long long)UINT64_MAX);
    break;
  case T_DOUBLE:
    snprintf(buf, n, "%s%sfinite", b, b[0] ? ", " : "");
    break;
  case T_BOOL:
    snprintf(buf, n, "true, false (yes/no, 1/0)");
    break;
  case T_STRING:
    snprintf(buf, n, "at most %zu characters", k->size - 1);
    break;
  case T_ENUM:
    choices_text(k->names, buf, n);
    break;
  case T_CHOICE:
    choice_text(buf, n);
    break;
  case T_INTLIST:
    snprintf(buf, n, "at most %zu entries, each %s",
             k->size / sizeof(int32_t), b);
    break;
  }
}

int fedc_config_write_doc(FILE *f) {
  if (f == NULL)
    return fedc_error_set(FEDC_EINVAL, "fedc_config_write_doc: NULL argument");
  char range[256];
  fprintf(f, "| Key | Type | Default | Allowed | Description |\n");
  fprintf(f, "|---|---|---|---|---|\n");
  for (size_t i = 0; i < N_KEYS; i++) {
    const key_def *k = &keys[i];
    range_text(k, range, sizeof range);
    fprintf(f, "| `%s.%s` | %s | %s%s%s | %s | %s |\n", k->section, k->key,
            type_text(k), k->def[0] ? "`" : "", k->def[0] ? k->def : "(empty)",
            k->def[0] ? "`" : "", range, k->desc);
  }
  if (fflush(f) != 0 || ferror(f))
    return fedc_error_set(FEDC_EIO, "writing the key table failed: %s",
                          strerror(errno));
  return 0;
}
