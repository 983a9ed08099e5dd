/*
 * config.h - the job configuration shared by every binary.
 *
 * INI files (read with inih) with the sections of DESIGN.md, then
 * `--set section.key=value` overrides applied in order. Every key is typed
 * and range-checked as it is read; an unknown section or key, a value of the
 * wrong type or out of range is an error whose message names the file (or
 * "--set"), the line and the key, e.g.
 *     configs/x.ini:12: [train] lr = -1: must be > 0
 * Nothing is silently ignored or defaulted past what fedc_config_defaults()
 * sets. fedc_config_check() then checks the keys against each other
 * (clients_per_round <= clients, min_clients <= clients_per_round, ...) and
 * names the key and where it was set.
 */
#ifndef FEDC_CONFIG_H
#define FEDC_CONFIG_H

#include <fedc/strategy.h>
#include <stdint.h>
#include <stdio.h>

#include "data/data.h"
#include "ml/backend.h"
#include "ml/model.h"

#define FEDC_CONFIG_MAX_HIDDEN FEDC_MODEL_MAX_HIDDEN
#define FEDC_CONFIG_PATH_MAX 1024
/* Room in the origin bookkeeping: keys in the table, and one origin's text
 * (a long file name keeps its tail: ".../configs/x.ini:12"). */
#define FEDC_CONFIG_MAX_KEYS 192
#define FEDC_CONFIG_ORIGIN_MAX 96


typedef enum { FEDC_ENROLL_ALLOWLIST = 0, FEDC_ENROLL_OPEN = 1 } fedc_enroll;
typedef enum { FEDC_NORM_CLIP = 0, FEDC_NORM_REFUSE = 1 } fedc_norm_action;
/* [privacy] noise_at: who adds DP-FedAvg's noise (docs/privacy.md) */
enum { FEDC_NOISE_AT_COORDINATOR = 0, FEDC_NOISE_AT_SITES = 1 };
typedef enum {
  FEDC_ATTACK_NONE = 0,
  FEDC_ATTACK_SIGN_FLIP = 1,
  FEDC_ATTACK_NOISE = 2,
  FEDC_ATTACK_LABEL_FLIP = 3
} fedc_attack;

/* Which binary checks the config: the keys each one needs differ. */
typedef enum {
  FEDC_ROLE_SIM = 0,
  FEDC_ROLE_COORDINATOR = 1,
  FEDC_ROLE_CLIENT = 2
} fedc_config_role;

typedef struct fedc_config {
  /* [job] */
  int32_t rounds;            /* >= 1 */
  int32_t clients_per_round; /* >= 1, <= sim.clients */
  int32_t min_clients;       /* >= 1, <= clients_per_round */
  double round_timeout_s;    /* > 0 */
  uint64_t seed;
  /* [model] */
  fedc_model_type model_type;    /* type = softmax | logreg | linreg | mlp | tensors */
  int32_t hidden[FEDC_CONFIG_MAX_HIDDEN]; /* hidden = 200,200 (mlp only) */
  int32_t n_hidden;
  int32_t inputs;                /* 0 = from the data */
  int32_t classes;               /* 0 = from the data */
  double l1, l2;                 /* >= 0 */
  char model_init[FEDC_CONFIG_PATH_MAX]; /* init = FILE.safetensors (type = tensors) */
  char integer_rule[512];        /* integer_rule = PATTERN=keep|max, ... (tensors) */
  /* [train] */
  int32_t epochs;     /* >= 1 */
  int32_t batch_size; /* >= 1 */
  double lr;          /* > 0 */
  double momentum;    /* [0, 1) */
  double prox_mu;     /* >= 0; FedProx proximal term, 0 = off */
  fedc_device device; /* device = cpu | cuda */
  int32_t threads;    /* >= 1; simulator worker threads */
  char class_weight[1024]; /* none | balanced | w0,w1,... (ml/class_weight.h) */
  double pos_weight;       /* > 0; logreg's positive class, 1 = none */
  /* [strategy] */
  char strategy[32];  /* name = fedavg | fedavgm | ... (docs/strategies.md) */
  double server_lr, server_momentum, beta1, beta2, tau;
  double trim_beta;
  int32_t krum_f, multikrum_m;
  double norm_bound;
  fedc_norm_action norm_action;
  int32_t buffer_k;
  double max_client_share; /* 0 = off */
  double max_weight_delta; /* 0 = off */
  int32_t agg_device;      /* device = cpu | cuda | auto: a fedc_agg_device (agg/agg.h) */
  double variate_samples;  /* scaffold: the federation's samples; 0 = the sim's */
  int32_t compression;     /* none | f16 | bf16 | int8 | topk: a fedc_codec (wire/compress.h) */
  double topk_fraction;    /* topk: the share of weights sent, (0, 1] */
  /* [privacy] */
  double dp_noise_multiplier, dp_clip_norm;
  int32_t dp_adaptive_clip;
  double dp_clip_quantile, dp_clip_lr, dp_delta, dp_epsilon_budget;
  int32_t secagg;
  double secagg_threshold;
  int32_t secagg_neighbors;
  int32_t dp_noise_at; /* noise_at = coordinator (0) | sites (1): FEDC_NOISE_AT_* */
  /* [data] */
  char train[FEDC_CONFIG_PATH_MAX];        /* images (idx) or table (csv) */
  char train_labels[FEDC_CONFIG_PATH_MAX]; /* idx only */
  char test[FEDC_CONFIG_PATH_MAX];
  char test_labels[FEDC_CONFIG_PATH_MAX];  /* idx only */
  fedc_data_format format;                 /* format = idx | csv */
  char label[128];                         /* csv: label column name */
  int32_t standardize;                     /* bool */
  char features[8192];                     /* schema: feature names in order */
  char schema_from[FEDC_CONFIG_PATH_MAX];  /* schema: a CSV whose header names them */
  char exclude[1024];                      /* columns a site ignores (an id) */
  char categorical[8192];                  /* "col:v1|v2, ...": one-hot vocabularies */
  int32_t missing;                         /* fedc_missing: refuse | mean */
  char validation[FEDC_CONFIG_PATH_MAX];   /* client: validation data */
  char validation_labels[FEDC_CONFIG_PATH_MAX];
  double validation_split;                 /* [0, 0.9]: held out when no file */
  char data_set[128];                      /* job: the named set to use */
  char data_sets[FEDC_CONFIG_PATH_MAX];    /* site: NAME:TRAIN[:LABELS],... */
  char data_clip[8192];                    /* schema: "col:lo:hi, ...": DP statistics' bounds */
  char class_labels[FEDC_CONFIG_PATH_MAX]; /* schema: "B|M": string labels, class order */
  /* [server] */
  char server_listen[256];       /* coordinator: "host:port" */
  char server_status_listen[256]; /* coordinator: plain-HTTP read-only pages */
  char server_url[FEDC_CONFIG_PATH_MAX]; /* client: "https://host:port" */
  fedc_enroll server_enroll;
  double server_max_body_mb;
  double server_idle_timeout_s;
  double server_poll_s;
  double server_over_select;
  double server_header_timeout_s;  /* coordinator: headers within this of a request's first byte */
  double server_request_timeout_s; /* coordinator: a whole request within this */
  double server_min_rate_bytes_s;  /* coordinator: slowest body or answer accepted */
  double server_rate_window_s;     /* coordinator: the window that rate is averaged over */
  uint64_t server_max_samples; /* 0 = off */
  double server_handshake_timeout_s;
  int32_t server_max_conns_per_source;
  double server_handshake_rate;
  int32_t server_handshake_burst;
  int32_t server_max_connections;
  double server_reserved_share;
  int32_t server_queue;               /* bool: run the store's job queue */
  char server_admin_listen[256];      /* admin endpoint, "" = off */
  char server_admins[FEDC_CONFIG_PATH_MAX]; /* admin fingerprints */
  double server_spill_above_mb; /* large-model mode above this model size; 0 = never */
  int32_t server_model_deltas;  /* bool: serve GET /v1/model/<r>?base=<r-1> as a delta */
  /* [tls] */
  char tls_ca[FEDC_CONFIG_PATH_MAX];
  char tls_cert[FEDC_CONFIG_PATH_MAX];
  char tls_key[FEDC_CONFIG_PATH_MAX];
  int32_t tls_require_client_cert;
  /* [store] */
  char store_path[FEDC_CONFIG_PATH_MAX];
  /* [client] */
  char client_name[128];
  char client_keep_updates[FEDC_CONFIG_PATH_MAX];
  double client_backoff_max_s;
  double client_give_up_s;
  char client_state_dir[FEDC_CONFIG_PATH_MAX];
  int32_t client_serve; /* bool: a site service across jobs */
  /* [sim] */
  int32_t clients;           /* >= 1 */
  int32_t partition;         /* fedc_partition_kind */
  double alpha;              /* > 0 */
  int32_t shards_per_client; /* >= 1 */
  int32_t eval_every;        /* >= 1: evaluate on the test set every N rounds */
  fedc_attack attack;
  double attack_fraction, attack_scale;
  double speed_skew;
  /* [eval] */
  int32_t eval_rounds;     /* every: 0 = no federated evaluation */
  double eval_fraction;    /* (0, 1] */
  double eval_threshold;   /* (0, 1) */
  char eval_select[32];    /* "" = the model's default */
  int32_t eval_per_site;   /* bool */
  double eval_deadline_s;  /* > 0 */
  /* [trainer] (client only): an external trainer instead of the built-in one */
  char trainer_command[FEDC_CONFIG_PATH_MAX];  /* run through /bin/sh -c */
  char trainer_evaluate[FEDC_CONFIG_PATH_MAX]; /* optional evaluate command */
  double trainer_timeout_s;                    /* deadline of one run, > 0 */
  /* [relay] */
  char relay_parent[FEDC_CONFIG_PATH_MAX];
  char relay_cert[FEDC_CONFIG_PATH_MAX];
  char relay_key[FEDC_CONFIG_PATH_MAX];
  int32_t relay_sites;
  /* [policy]: a site's limits on the jobs it takes part in */
  char policy_model_types[256];
  char policy_trainers[64];
  int32_t policy_max_rounds, policy_max_epochs; /* 0 = no limit */
  double policy_min_noise;
  int32_t policy_require_secagg; /* bool */
  char policy_datasets[1024];

  /* Where each key was last set ("file:line" or "--set" or "default"),
   * indexed like the key table in config.c; used for cross-key messages.
   * Read it with fedc_config_origin(). */
  char origin[FEDC_CONFIG_MAX_KEYS][FEDC_CONFIG_ORIGIN_MAX];
} fedc_config;

/* Fill every key with its documented default. */
void fedc_config_defaults(fedc_config *c);
/* Read an INI file over c. FEDC_ECONFIG (message names file:line:key) or
 * FEDC_EIO (unreadable file). On error c is unchanged. */
int fedc_config_load(fedc_config *c, const char *path);
/* Apply one "section.key=value" override. FEDC_ECONFIG on error, c unchanged. */
int fedc_config_set(fedc_config *c, const char *assignment);
/* Cross-key checks; FEDC_ECONFIG naming the key and its origin.
 * fedc_config_check is the simulator's; each binary checks for its role. */
int fedc_config_check(const fedc_config *c);
int fedc_config_check_role(const fedc_config *c, fedc_config_role role);
/* The strategy's declared capabilities (<fedc/strategy.h>) against what c
 * asks (secure aggregation, DP, a norm bound) and what the driver can do
 * (driver: split, can_secagg, can_async, its name; the asks are taken from
 * c). fedc_config_check_role calls it with its role's driver; a driver
 * that can do less (fedc-sim-mpi splits rounds) calls it again. FEDC_ECONFIG
 * naming the key that asked, where it was set, and the strategy. */
int fedc_config_check_strategy(const fedc_config *c, const fedc_strategy_needs *driver);
/* [privacy] noise_at against noise_multiplier, secure_aggregation,
 * adaptive_clip and the fixed-point range (config_noise_at.c); is_sim: the
 * simulator, which has no secure aggregation. 0 or FEDC_ECONFIG. */
int fedc__config_check_noise_at(const fedc_config *c, int is_sim);

/* 1 if the [data] path `key` (train, train_labels, test, test_labels, ...)
 * is given for role: named by a file or --set, or filled in by code. A path
 * left at its Fashion-MNIST default is given only to fedc-sim reading idx
 * files; elsewhere it counts as missing (the coordinator then evaluates
 * nothing, a site has no training data). */
int fedc__config_data_given(const fedc_config *c, const char *key, fedc_config_role role);
/* Where [section] key was last set: "file:line", "--set" or "default";
 * NULL for a key that does not exist. Points into c. */
const char *fedc_config_origin(const fedc_config *c, const char *section,
                               const char *key);
/* The value of [section] key as fedc_config_dump writes it, into buf (size
 * bytes). FEDC_ENOTFOUND for an unknown key, FEDC_ERANGE if buf is small. */
int fedc_config_value(const fedc_config *c, const char *section, const char *key, char *buf,
                      size_t size);
/* Every key as a markdown table: key, type, default, range, description.
 * FEDC_EIO if writing fails. */
int fedc_config_write_doc(FILE *f);
/* The effective configuration as an INI file that fedc_config_load reads
 * back to the same values. FEDC_ECONFIG, with nothing written, if a value in
 * c is out of its range or cannot be written as INI (c filled in by code);
 * FEDC_EIO if writing fails, which may leave part of the file. */
int fedc_config_dump(const fedc_config *c, FILE *f);

#endif
