/*
 * test_config.c - the job configuration: defaults, reading INI files and
 * --set overrides, every kind of error (with file, line and key in the
 * message, and the config left as it was), cross-key checks, dump -> load
 * round trips, allocation failures and leaks. INI files are written into a
 * mkdtemp directory that the group teardown removes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "config/config.h"
#include "base/error.h"
#include "data/partition.h"

static char dir[64];
static char ini_path[128];  /* dir/x.ini: the file most tests write */
static char dump_path[128]; /* dir/dump.ini */

static int group_setup(void **state) {
  snprintf(dir, sizeof dir, "/tmp/fedc_test_config_XXXXXX");
  if (mkdtemp(dir) == NULL) return -1;
  snprintf(ini_path, sizeof ini_path, "%s/x.ini", dir);
  snprintf(dump_path, sizeof dump_path, "%s/dump.ini", dir);
  return 0;
}

static int group_teardown(void **state) {
  unlink(ini_path);
  unlink(dump_path);
  return rmdir(dir);
}

/* Each test must free everything it allocated. */
static int64_t live_at_start;
static int test_setup(void **state) {
  fedc_error_clear();
  live_at_start = fedc_alloc_live();
  return 0;
}
static int test_teardown(void **state) {
  assert_int_equal(fedc_alloc_live(), live_at_start);
  return 0;
}

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fputs(text, f) >= 0, 1);
  assert_int_equal(fclose(f), 0);
}

static void assert_contains(const char *hay, const char *needle) {
  if (strstr(hay, needle) == NULL)
    fail_msg("message \"%s\" does not contain \"%s\"", hay, needle);
}

/* Every member except the origin bookkeeping. */
static void assert_config_equal(const fedc_config *a, const fedc_config *b) {
  assert_int_equal(a->rounds, b->rounds);
  assert_int_equal(a->clients_per_round, b->clients_per_round);
  assert_int_equal(a->min_clients, b->min_clients);
  assert_true(a->round_timeout_s == b->round_timeout_s);
  assert_true(a->seed == b->seed);
  assert_int_equal(a->model_type, b->model_type);
  assert_int_equal(a->n_hidden, b->n_hidden);
  assert_memory_equal(a->hidden, b->hidden, sizeof a->hidden);
  assert_true(a->l1 == b->l1);
  assert_true(a->l2 == b->l2);
  assert_int_equal(a->epochs, b->epochs);
  assert_int_equal(a->batch_size, b->batch_size);
  assert_true(a->lr == b->lr);
  assert_true(a->momentum == b->momentum);
  assert_true(a->prox_mu == b->prox_mu);
  assert_int_equal(a->device, b->device);
  assert_int_equal(a->threads, b->threads);
  assert_string_equal(a->strategy, b->strategy);
  assert_string_equal(a->train, b->train);
  assert_string_equal(a->train_labels, b->train_labels);
  assert_string_equal(a->test, b->test);
  assert_string_equal(a->test_labels, b->test_labels);
  assert_int_equal(a->format, b->format);
  assert_string_equal(a->label, b->label);
  assert_int_equal(a->standardize, b->standardize);
  assert_int_equal(a->clients, b->clients);
  assert_int_equal(a->partition, b->partition);
  assert_true(a->alpha == b->alpha);
  assert_int_equal(a->shards_per_client, b->shards_per_client);
  assert_int_equal(a->eval_every, b->eval_every);
}

static void test_defaults(void **state) {
  fedc_config c;
  fedc_config_defaults(&c);
  assert_int_equal(c.rounds, 100);
  assert_int_equal(c.clients_per_round, 10);
  assert_int_equal(c.min_clients, 1);
  assert_true(c.round_timeout_s == 60.0);
  assert_true(c.seed == 1);
  assert_int_equal(c.model_type, FEDC_MODEL_SOFTMAX);
  assert_int_equal(c.n_hidden, 0);
  assert_true(c.l1 == 0.0 && c.l2 == 0.0);
  assert_int_equal(c.epochs, 1);
  assert_int_equal(c.batch_size, 32);
  assert_true(c.lr == 0.05);
  assert_true(c.momentum == 0.0 && c.prox_mu == 0.0);
  assert_int_equal(c.device, FEDC_DEVICE_CPU);
  assert_int_equal(c.threads, 2);
  assert_string_equal(c.strategy, "fedavg");
  assert_string_equal(
      c.train, "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz");
  assert_string_equal(
      c.train_labels,
      "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz");
  assert_string_equal(
      c.test, "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz");
  assert_string_equal(
      c.test_labels,
      "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz");
  assert_int_equal(c.format, FEDC_FORMAT_IDX);
  assert_string_equal(c.label, "label");
  assert_int_equal(c.standardize, 0);
  assert_int_equal(c.clients, 100);
  assert_int_equal(c.partition, FEDC_PARTITION_IID);
  assert_true(c.alpha == 0.5);
  assert_int_equal(c.shards_per_client, 2);
  assert_int_equal(c.eval_every, 1);
  assert_string_equal(fedc_config_origin(&c, "train", "lr"), "default");
  assert_string_equal(fedc_config_origin(&c, "sim", "eval_every"), "default");
  assert_null(fedc_config_origin(&c, "train", "lrr"));
  assert_int_equal(fedc_config_check(&c), 0);
}

static void test_full_file(void **state) {
  char where[160];
  fedc_config c;
  fedc_config_defaults(&c);
  write_text(ini_path,
             "; every key, each type\n"                       /* 1 */
             "# hash comments too\n"                           /* 2 */
             "[job]\n"                                         /* 3 */
             "rounds = 7\n"                                    /* 4 */
             "clients_per_round=5\n"                           /* 5 */
             "  min_clients = 3   ; indented, inline comment\n" /* 6 */
             "\tround_timeout_s = 2.5\n"                       /* 7 */
             "seed = 18446744073709551615\n"                   /* 8 */
             "\n"                                              /* 9 */
             "[model]\n"                                       /* 10 */
             "type = mlp\n"                                    /* 11 */
             "hidden = 200, 100,7\n"                           /* 12 */
             "l1 = 1e-4\n"                                     /* 13 */
             "l2 = 0.001\r\n"                                  /* 14 */
             "[train]\n"                                       /* 15 */
             "epochs = 3\n"                                    /* 16 */
             "batch_size = 64\n"                               /* 17 */
             "lr = 0.1\n"                                      /* 18 */
             "momentum = 0.9\n"                                /* 19 */
             "prox_mu = 0.01\n"                                /* 20 */
             "device = cuda\n"                                 /* 21 */
             "threads = 8\n"                                   /* 22 */
             "[strategy]\n"                                    /* 23 */
             "name = fedavg\n"                                 /* 24 */
             "[data]\n"                                        /* 25 */
             "train = a/train.csv\n"                           /* 26 */
             "train_labels =\n"                                /* 27 */
             "test = a/test.csv\n"                             /* 28 */
             "test_labels = \n"                                /* 29 */
             "format = csv\n"                                  /* 30 */
             "label = y\n"                                     /* 31 */
             "standardize = Yes\n"                             /* 32 */
             "[sim]\n"                                         /* 33 */
             "clients = 50\n"                                  /* 34 */
             "partition = dirichlet\n"                         /* 35 */
             "alpha = 0.3\n"                                   /* 36 */
             "shards_per_client = 4\n"                         /* 37 */
             "eval_every = 5\n");                              /* 38 */
  assert_int_equal(fedc_config_load(&c, ini_path), 0);
  assert_int_equal(c.rounds, 7);
  assert_int_equal(c.clients_per_round, 5);
  assert_int_equal(c.min_clients, 3);
  assert_true(c.round_timeout_s == 2.5);
  assert_true(c.seed == UINT64_MAX);
  assert_int_equal(c.model_type, FEDC_MODEL_MLP);
  assert_int_equal(c.n_hidden, 3);
  assert_int_equal(c.hidden[0], 200);
  assert_int_equal(c.hidden[1], 100);
  assert_int_equal(c.hidden[2], 7);
  assert_int_equal(c.hidden[3], 0);
  assert_true(c.l1 == 1e-4 && c.l2 == 0.001);
  assert_int_equal(c.epochs, 3);
  assert_int_equal(c.batch_size, 64);
  assert_true(c.lr == 0.1 && c.momentum == 0.9 && c.prox_mu == 0.01);
  assert_int_equal(c.device, FEDC_DEVICE_CUDA);
  assert_int_equal(c.threads, 8);
  assert_string_equal(c.strategy, "fedavg");
  assert_string_equal(c.train, "a/train.csv");
  assert_string_equal(c.train_labels, "");
  assert_string_equal(c.test, "a/test.csv");
  assert_string_equal(c.test_labels, "");
  assert_int_equal(c.format, FEDC_FORMAT_CSV);
  assert_string_equal(c.label, "y");
  assert_int_equal(c.standardize, 1);
  assert_int_equal(c.clients, 50);
  assert_int_equal(c.partition, FEDC_PARTITION_DIRICHLET);
  assert_true(c.alpha == 0.3);
  assert_int_equal(c.shards_per_client, 4);
  assert_int_equal(c.eval_every, 5);
  /* Origins name the file and the line, indented lines included. */
  snprintf(where, sizeof where, "%s:6", ini_path);
  assert_string_equal(fedc_config_origin(&c, "job", "min_clients"), where);
  snprintf(where, sizeof where, "%s:38", ini_path);
  assert_string_equal(fedc_config_origin(&c, "sim", "eval_every"), where);
  assert_int_equal(fedc_config_check(&c), 0);
}

/* A file that sets only some keys leaves the others alone. */
static void test_partial_file_keeps_other_keys(void **state) {
  fedc_config c, want;
  fedc_config_defaults(&c);
  fedc_config_defaults(&want);
  want.lr = 0.5;
  write_text(ini_path, "[train]\nlr = 0.5\n[sim]\n");
  assert_int_equal(fedc_config_load(&c, ini_path), 0);
  assert_config_equal(&c, &want);
  assert_string_equal(fedc_config_origin(&c, "job", "rounds"), "default");
}

typedef struct bad_case {
  const char *text; /* the file */
  int line;         /* the line the message must name */
  const char *key;  /* and a word it must contain */
  const char *why;  /* and the reason */
} bad_case;

static const bad_case bad_cases[] = {
    {"[job]\nrounds = 5\n[foo]\nx = 1\n", 3, "[foo]", "unknown section"},
    {"[job]\nrounds = 5\n[foo]\n", 3, "[foo]", "unknown section"},
    {"[train]\nepochs = 2\nlrr = 0.1\n", 3, "'lrr'", "unknown key"},
    {"rounds = 5\n[job]\n", 1, "'rounds'", "before any [section]"},
    {"[job]\n\n\nrounds = ten\n", 4, "rounds = ten", "not an integer"},
    {"[job]\nrounds = 10x\n", 2, "rounds", "not an integer"},
    {"[job]\nrounds = 1.5\n", 2, "rounds", "not an integer"},
    {"[job]\nrounds = 0\n", 2, "rounds = 0", "must be >= 1"},
    {"[job]\nrounds = 1000001\n", 2, "rounds", "must be <= 1000000"},
    {"[job]\nrounds = 99999999999999999999999\n", 2, "rounds", "must be <="},
    {"[job]\nclients_per_round = 3000000000\n", 2, "clients_per_round",
     "must be <= 2147483647"},
    {"[job]\nround_timeout_s = 0\n", 2, "round_timeout_s", "must be > 0"},
    {"[job]\nround_timeout_s = 86401\n", 2, "round_timeout_s",
     "must be <= 86400"},
    {"[job]\nseed = -1\n", 2, "seed", "must be >= 0"},
    {"[job]\nseed = 18446744073709551616\n", 2, "seed", "must be <="},
    {"[train]\nlr = -1\n", 2, "[train] lr = -1", "must be > 0"},
    {"[train]\nlr = 0\n", 2, "lr = 0", "must be > 0"},
    {"[train]\nlr = nan\n", 2, "lr", "finite"},
    {"[train]\nlr = inf\n", 2, "lr", "finite"},
    {"[train]\nlr = fast\n", 2, "lr", "not a number"},
    {"[train]\nlr = 1e999\n", 2, "lr", "range"},
    {"[train]\nmomentum = 1\n", 2, "momentum = 1", "must be < 1"},
    {"[train]\nthreads = 1025\n", 2, "threads", "must be <= 1024"},
    {"[train]\ndevice = gpu\n", 2, "device = gpu", "one of cpu, cuda"},
    {"[sim]\nalpha = 0\n", 2, "alpha = 0", "must be > 0"},
    {"[sim]\nalpha = -0.5\n", 2, "alpha", "must be > 0"},
    {"[sim]\npartition = random\n", 2, "partition",
     "one of iid, dirichlet, shards"},
    {"[sim]\nclients = 10000001\n", 2, "clients", "must be <= 10000000"},
    {"[model]\nl2 = -0.1\n", 2, "l2 = -0.1", "must be >= 0"},
    {"[model]\ntype = cnn\n", 2, "type = cnn", "one of logreg"},
    {"[model]\nhidden = 200,0\n", 2, "hidden = 200,0", "must be >= 1"},
    {"[model]\nhidden = 65537\n", 2, "hidden", "must be <= 65536"},
    {"[model]\nhidden = 1,2,3,4,5,6,7,8,9\n", 2, "hidden", "at most 8"},
    {"[model]\nhidden = 200,,200\n", 2, "hidden", "empty entry"},
    {"[model]\nhidden = 200,\n", 2, "hidden", "empty entry"},
    {"[model]\nhidden = 200 200\n", 2, "hidden", "list of integers"},
    {"[strategy]\nname = fedprox\n", 2, "name = fedprox", "one of fedavg"},
    {"[data]\nstandardize = maybe\n", 2, "standardize", "true or false"},
    {"[data]\nformat = parquet\n", 2, "format", "one of idx, csv"},
    {"[data]\nlabel = a\tb\n", 2, "label", "control character"},
    {"[train]\nlr = 0.1\nepochs = 2\nlr = 0.2\n", 4, "lr = 0.2",
     "duplicate key, first set at line 2"},
    {"[train]\nlr = 0.1\nthis line has no equals sign\n", 3, "", "syntax"},
    {"[train\nlr = 0.1\n", 1, "", "syntax"},
    /* The first error wins, whichever part finds it. */
    {"[job]\nbroken line\nrounds = 0\n", 2, "", "syntax"},
    {"[job]\nrounds = 0\nbroken line\n", 2, "rounds", "must be >= 1"},
};

/* Each bad file: FEDC_ECONFIG, a message with file, line, key and reason,
 * and the config exactly as it was (origins included). */
static void test_bad_files(void **state) {
  for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
    const bad_case *b = &bad_cases[i];
    char where[160];
    fedc_config c, before;
    fedc_config_defaults(&c);
    assert_int_equal(fedc_config_set(&c, "job.rounds=42"), 0);
    memcpy(&before, &c, sizeof c);
    write_text(ini_path, b->text);
    int rc = fedc_config_load(&c, ini_path);
    if (rc != FEDC_ECONFIG)
      fail_msg("case %zu: rc %d (%s), want FEDC_ECONFIG", i, rc,
               fedc_error_msg());
    snprintf(where, sizeof where, "%s:%d: ", ini_path, b->line);
    assert_contains(fedc_error_msg(), where);
    assert_contains(fedc_error_msg(), b->key);
    assert_contains(fedc_error_msg(), b->why);
    assert_memory_equal(&c, &before, sizeof c);
  }
}

/* Lines longer than inih's 200-byte buffer: read whole, and the line count
 * stays right after them. */
static void test_long_lines(void **state) {
  static char text[8192];
  char path[700], line[800], big[1200];
  fedc_config c, before;
  memset(path, 'p', sizeof path - 1);
  path[0] = '/';
  path[sizeof path - 1] = '\0';
  snprintf(text, sizeof text,
           "; %s\n[data]\ntrain = %s ; comment\n   test_labels = %s\n"
           "[train]\nlr = -3\n",
           path, path, path);
  write_text(ini_path, text);
  fedc_config_defaults(&c);
  assert_int_equal(fedc_config_load(&c, ini_path), FEDC_ECONFIG);
  snprintf(line, sizeof line, "%s:6: [train] lr = -3: must be > 0", ini_path);
  assert_string_equal(fedc_error_msg(), line);

  snprintf(text, sizeof text, "; %s\n[data]\ntrain = %s ; comment\n"
                       "   test_labels = %s\n", path, path, path);
  write_text(ini_path, text);
  assert_int_equal(fedc_config_load(&c, ini_path), 0);
  assert_string_equal(c.train, path);
  assert_string_equal(c.test_labels, path);

  /* Longer than the member: an error, not a cut. */
  memset(big, 'q', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  snprintf(text, sizeof text, "[data]\ntest = %s\n", big);
  write_text(ini_path, text);
  memcpy(&before, &c, sizeof c);
  assert_int_equal(fedc_config_load(&c, ini_path), FEDC_ECONFIG);
  assert_contains(fedc_error_msg(), ":2: [data] test = qqq");
  assert_contains(fedc_error_msg(), "too long (at most 1023 characters)");
  assert_memory_equal(&c, &before, sizeof c);
}

static void test_missing_file(void **state) {
  char path[160];
  fedc_config c, before;
  fedc_config_defaults(&c);
  memcpy(&before, &c, sizeof c);
  snprintf(path, sizeof path, "%s/no-such.ini", dir);
  assert_int_equal(fedc_config_load(&c, path), FEDC_EIO);
  assert_contains(fedc_error_msg(), path);
  assert_memory_equal(&c, &before, sizeof c);
  /* A directory opens but does not read. */
  assert_int_equal(fedc_config_load(&c, dir), FEDC_EIO);
  assert_contains(fedc_error_msg(), dir);
  assert_memory_equal(&c, &before, sizeof c);
}

static void test_set(void **state) {
  fedc_config c;
  fedc_config_defaults(&c);
  write_text(ini_path, "[train]\nlr = 0.2\nepochs = 4\n");
  assert_int_equal(fedc_config_load(&c, ini_path), 0);
  assert_int_equal(fedc_config_set(&c, "train.lr=0.3"), 0);
  assert_int_equal(fedc_config_set(&c, " model.hidden = 64,32 "), 0);
  assert_int_equal(fedc_config_set(&c, "model.type=mlp"), 0);
  assert_int_equal(fedc_config_set(&c, "data.train=/x/y.z/train.csv"), 0);
  assert_true(c.lr == 0.3);
  assert_int_equal(c.epochs, 4);
  assert_int_equal(c.n_hidden, 2);
  assert_int_equal(c.hidden[1], 32);
  assert_string_equal(c.train, "/x/y.z/train.csv");
  assert_string_equal(fedc_config_origin(&c, "train", "lr"), "--set");
  /* The last --set wins; so does a file read after it. */
  assert_int_equal(fedc_config_set(&c, "train.lr=0.4"), 0);
  assert_true(c.lr == 0.4);
  assert_int_equal(fedc_config_load(&c, ini_path), 0);
  assert_true(c.lr == 0.2);
  /* An empty value for a list or a string. */
  assert_int_equal(fedc_config_set(&c, "model.hidden="), 0);
  assert_int_equal(c.n_hidden, 0);
  assert_int_equal(c.hidden[0], 0);
}

static void test_set_errors(void **state) {
  static const struct {
    const char *assignment, *want;
  } cases[] = {
      {"train.lr", "--set: 'train.lr': expected section.key=value"},
      {"lr=0.1", "--set: 'lr=0.1': expected section.key=value"},
      {".lr=0.1", "expected section.key=value"},
      {"train.=0.1", "expected section.key=value"},
      {"", "--set: '(empty)': expected section.key=value"},
      {"train.lrr=0.1", "--set: unknown key 'lrr' in [train]"},
      {"foo.lr=0.1", "--set: unknown section [foo]"},
      {"train.lr=-1", "--set: [train] lr = -1: must be > 0"},
      {"train.momentum=1", "--set: [train] momentum = 1: must be < 1"},
      {"model.hidden=8,0", "--set: [model] hidden = 8,0: each entry must be"},
      {"data.label=a ;b", "starts a comment"},
      {"data.label=;b", "starts a comment"},
      {"job.rounds=", "--set: [job] rounds = (empty): not an integer"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    fedc_config c, before;
    fedc_config_defaults(&c);
    memcpy(&before, &c, sizeof c);
    int rc = fedc_config_set(&c, cases[i].assignment);
    if (rc != FEDC_ECONFIG)
      fail_msg("case %zu: rc %d, want FEDC_ECONFIG", i, rc);
    assert_contains(fedc_error_msg(), cases[i].want);
    assert_memory_equal(&c, &before, sizeof c);
  }
}

/* The cross-key checks name the key, where it was set, and where the other
 * key was set. */
static void test_cross_checks(void **state) {
  char want[300];
  fedc_config c;

  fedc_config_defaults(&c);
  write_text(ini_path, "[job]\nrounds = 5\n\n\nclients_per_round = 200\n");
  assert_int_equal(fedc_config_load(&c, ini_path), 0);
  assert_int_equal(fedc_config_check(&c), FEDC_ECONFIG);
  snprintf(want, sizeof want,
           "%s:5: [job] clients_per_round = 200: must be <= [sim] clients = "
           "100 (set at default)",
           ini_path);
  assert_string_equal(fedc_error_msg(), want);
  assert_int_equal(fedc_config_set(&c, "sim.clients=200"), 0);
  assert_int_equal(fedc_config_check(&c), 0);

  fedc_config_defaults(&c);
  write_text(ini_path, "[job]\nmin_clients = 11\n");
  assert_int_equal(fedc_config_load(&c, ini_path), 0);
  assert_int_equal(fedc_config_check(&c), FEDC_ECONFIG);
  snprintf(want, sizeof want,
           "%s:2: [job] min_clients = 11: must be <= [job] clients_per_round "
           "= 10 (set at default)",
           ini_path);
  assert_string_equal(fedc_error_msg(), want);

  fedc_config_defaults(&c);
  write_text(ini_path, "[model]\ntype = mlp\n");
  assert_int_equal(fedc_config_load(&c, ini_path), 0);
  assert_int_equal(fedc_config_check(&c), FEDC_ECONFIG);
  snprintf(want, sizeof want, "%s:2: [model] type = mlp", ini_path);
  assert_contains(fedc_error_msg(), want);
  assert_contains(fedc_error_msg(), "[model] hidden");
  assert_int_equal(fedc_config_set(&c, "model.hidden=16"), 0);
  assert_int_equal(fedc_config_check(&c), 0);

  fedc_config_defaults(&c);
  write_text(ini_path, "[model]\nhidden = 200\n");
  assert_int_equal(fedc_config_load(&c, ini_path), 0);
  assert_int_equal(fedc_config_check(&c), FEDC_ECONFIG);
  snprintf(want, sizeof want,
           "%s:2: [model] hidden = 200: only an mlp has hidden layers, but "
           "[model] type = softmax (set at default)",
           ini_path);
  assert_string_equal(fedc_error_msg(), want);

  fedc_config_defaults(&c);
  assert_int_equal(fedc_config_set(&c, "data.test_labels="), 0);
  assert_int_equal(fedc_config_check(&c), FEDC_ECONFIG);
  assert_contains(fedc_error_msg(), "--set: [data] test_labels");
  assert_contains(fedc_error_msg(), "format = idx (set at default)");

  /* Fashion-MNIST is fedc-sim's default for idx files only: a CSV job
   * without its tables says which key is missing */
  fedc_config_defaults(&c);
  assert_int_equal(fedc_config_set(&c, "data.format=csv"), 0);
  assert_int_equal(fedc_config_check(&c), FEDC_ECONFIG);
  assert_contains(fedc_error_msg(), "[data] train is missing");
  assert_int_equal(fedc_config_set(&c, "data.train=a.csv"), 0);
  assert_int_equal(fedc_config_check(&c), FEDC_ECONFIG);
  assert_contains(fedc_error_msg(), "[data] test is missing");
  assert_int_equal(fedc_config_set(&c, "data.test=b.csv"), 0);
  assert_int_equal(fedc_config_check(&c), 0);
  assert_int_equal(fedc_config_set(&c, "data.label="), 0);
  assert_int_equal(fedc_config_check(&c), FEDC_ECONFIG);
  assert_contains(fedc_error_msg(), "--set: [data] label");

  /* A struct filled in by code is range-checked too. */
  fedc_config_defaults(&c);
  c.lr = -2;
  assert_int_equal(fedc_config_check(&c), FEDC_ECONFIG);
  assert_string_equal(fedc_error_msg(),
                      "default: [train] lr = -2: must be > 0");
  fedc_config_defaults(&c);
  c.device = (fedc_device)7;
  assert_int_equal(fedc_config_check(&c), FEDC_ECONFIG);
  assert_contains(fedc_error_msg(), "[train] device");
}

static void dump_and_reload(const fedc_config *c) {
  fedc_config back;
  FILE *f = fopen(dump_path, "w");
  assert_non_null(f);
  assert_int_equal(fedc_config_dump(c, f), 0);
  assert_int_equal(fclose(f), 0);
  /* Load over values that differ from c everywhere a key allows. */
  fedc_config_defaults(&back);
  back.rounds = 3;
  back.lr = 1.5;
  back.hidden[5] = 9;
  back.n_hidden = 6;
  back.standardize = 1;
  if (fedc_config_load(&back, dump_path) != 0) fail_msg("%s", fedc_error_msg());
  assert_config_equal(&back, c);
}

static void test_dump_round_trip(void **state) {
  char longpath[900], set[1000];
  fedc_config c;
  fedc_config_defaults(&c);
  dump_and_reload(&c);

  memset(longpath, 'L', sizeof longpath - 1);
  memcpy(longpath, "/data/", 6);
  longpath[sizeof longpath - 1] = '\0';
  snprintf(set, sizeof set, "data.test=%s", longpath);
  const char *sets[] = {
      "job.rounds=1000000",      "job.seed=18446744073709551615",
      "job.round_timeout_s=1e-300", "model.type=mlp",
      "model.hidden=1,2,3,4,5,6,7,65536", "model.l1=0.30000000000000004",
      "model.l2=1e29", "train.lr=0.1",
      "train.momentum=0.99990000000000001", "train.device=cuda",
      "data.train=a;b#c=d:e [x]",   "data.train_labels=",
      "data.format=csv",         "data.label=the label",
      "data.standardize=1",      "sim.partition=shards",
      "sim.alpha=4.9406564584124654e-324", set,
  };
  for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++)
    if (fedc_config_set(&c, sets[i]) != 0) fail_msg("%s", fedc_error_msg());
  c.lr = 0.1 + 0.2;
  c.prox_mu = 1.0 / 3.0;
  dump_and_reload(&c);
  assert_string_equal(c.test, longpath);

  /* A value no INI file can hold is refused, not written wrong. */
  c.label[0] = ';';
  FILE *f = fopen(dump_path, "w");
  assert_non_null(f);
  assert_int_equal(fedc_config_dump(&c, f), FEDC_ECONFIG);
  assert_int_equal(ftell(f), 0);
  fclose(f);
  assert_contains(fedc_error_msg(), "[data] label");
}

/* Every allocation of a load can fail: FEDC_ENOMEM, config unchanged, no
 * leak. */
static void test_alloc_failure(void **state) {
  fedc_config c, before;
  fedc_config_defaults(&c);
  memcpy(&before, &c, sizeof c);
  write_text(ini_path, "[train]\nlr = 0.25\n");
  int failed = 0;
  for (int64_t n = 1; n < 20; n++) {
    fedc_alloc_fail_after(n, 0);
    int rc = fedc_config_load(&c, ini_path);
    fedc_alloc_fail_after(0, 0);
    if (rc == 0) break;
    assert_int_equal(rc, FEDC_ENOMEM);
    assert_memory_equal(&c, &before, sizeof c);
    assert_int_equal(fedc_alloc_live(), live_at_start);
    failed++;
  }
  assert_true(failed >= 3);
  assert_true(c.lr == 0.25);
  fedc_config_defaults(&c);
  memcpy(&before, &c, sizeof c);
  fedc_alloc_fail_after(1, 0);
  assert_int_equal(fedc_config_set(&c, "train.lr=0.5"), FEDC_ENOMEM);
  fedc_alloc_fail_after(0, 0);
  assert_memory_equal(&c, &before, sizeof c);
}

static void test_write_doc(void **state) {
  static char buf[65536];
  FILE *f = fmemopen(buf, sizeof buf, "w");
  assert_non_null(f);
  assert_int_equal(fedc_config_write_doc(f), 0);
  fclose(f);
  assert_contains(buf, "| Key | Type | Default | Allowed | Description |");
  assert_contains(buf, "| `job.rounds` | integer | `100` | >= 1 and <= 1000000 |");
  assert_contains(buf, "| `train.lr` | number | `0.05` | > 0 and <= 100, finite |");
  assert_contains(buf, "| `model.type` | choice | `softmax` | logreg, softmax, linreg, mlp, tensors |");
  assert_contains(buf, "| `model.hidden` | list of integers | (empty) |");
  assert_contains(buf, "`sim.eval_every`");
  /* One row per key, plus the header and the rule. */
  int rows = 0;
  for (const char *p = buf; (p = strchr(p, '\n')) != NULL; p++) rows++;
  assert_int_equal(rows, 2 + 134);
  /* every row has exactly five cells: a vertical bar inside a description
   * would split it (the man page generator refuses such a row) */
  for (const char *line = buf; *line; ) {
    const char *end = strchr(line, '\n');
    int bars = 0;
    for (const char *p = line; p < end; p++) bars += *p == '|';
    if (bars != 6) fail_msg("a row of %d cells: %.*s", bars - 1, (int)(end - line), line);
    line = end + 1;
  }
}

/* Each binary checks the keys it needs, naming the key and the role. */
static void test_role_checks(void **state) {
  fedc_config c;
  fedc_config_defaults(&c);
  /* the coordinator has no data: it needs the model's shape and its TLS files */
  assert_int_equal(fedc_config_check_role(&c, FEDC_ROLE_COORDINATOR), FEDC_ECONFIG);
  assert_contains(fedc_error_msg(), "[model] inputs = 0");
  assert_int_equal(fedc_config_set(&c, "model.inputs=784"), 0);
  assert_int_equal(fedc_config_check_role(&c, FEDC_ROLE_COORDINATOR), FEDC_ECONFIG);
  assert_contains(fedc_error_msg(), "[model] classes = 0");
  assert_int_equal(fedc_config_set(&c, "model.classes=10"), 0);
  assert_int_equal(fedc_config_check_role(&c, FEDC_ROLE_COORDINATOR), FEDC_ECONFIG);
  assert_contains(fedc_error_msg(), "[tls] cert = (empty): must be set for the coordinator");
  assert_int_equal(fedc_config_set(&c, "tls.cert=s.pem"), 0);
  assert_int_equal(fedc_config_set(&c, "tls.key=s.key"), 0);
  assert_int_equal(fedc_config_set(&c, "tls.ca=ca.pem"), 0);
  /* clients_per_round is not bounded by [sim] clients for the coordinator */
  assert_int_equal(fedc_config_set(&c, "job.clients_per_round=500"), 0);
  assert_int_equal(fedc_config_check_role(&c, FEDC_ROLE_COORDINATOR), 0);
  assert_int_equal(fedc_config_check_role(&c, FEDC_ROLE_SIM), FEDC_ECONFIG);
  /* a client needs its TLS files and its URL */
  fedc_config_defaults(&c);
  assert_int_equal(fedc_config_check_role(&c, FEDC_ROLE_CLIENT), FEDC_ECONFIG);
  assert_contains(fedc_error_msg(), "[tls] ca = (empty): must be set for the client");
  assert_int_equal(fedc_config_set(&c, "server.over_select=0.5"), FEDC_ECONFIG);
  assert_int_equal(fedc_config_set(&c, "server.enroll=anyone"), FEDC_ECONFIG);
  assert_int_equal(fedc_config_set(&c, "server.enroll=open"), 0);
  assert_int_equal(c.server_enroll, FEDC_ENROLL_OPEN);
}

/* No Fashion-MNIST where it surprises: a client without [data] train is told
 * the key is missing; the coordinator and the client do not load a test set
 * nobody named; fedc-sim keeps its idx default; a path set in the file, by
 * --set or by code is given wherever it came from. */
static void test_data_defaults(void **state) {
  fedc_config c;
  fedc_config_defaults(&c);
  assert_int_equal(fedc_config_set(&c, "server.url=https://127.0.0.1:1"), 0);
  assert_int_equal(fedc_config_set(&c, "tls.ca=ca.pem"), 0);
  assert_int_equal(fedc_config_set(&c, "tls.cert=c.pem"), 0);
  assert_int_equal(fedc_config_set(&c, "tls.key=c.key"), 0);
  assert_int_equal(fedc_config_check_role(&c, FEDC_ROLE_CLIENT), FEDC_ECONFIG);
  assert_contains(fedc_error_msg(), "[data] train is missing: must be set for the built-in trainer");
  assert_int_equal(fedc__config_data_given(&c, "train", FEDC_ROLE_CLIENT), 0);
  assert_int_equal(fedc__config_data_given(&c, "test", FEDC_ROLE_CLIENT), 0);
  assert_int_equal(fedc__config_data_given(&c, "test", FEDC_ROLE_COORDINATOR), 0);
  assert_int_equal(fedc__config_data_given(&c, "train", FEDC_ROLE_SIM), 1);
  assert_int_equal(fedc__config_data_given(&c, "format", FEDC_ROLE_SIM), 0); /* not a path */
  assert_int_equal(fedc_config_set(&c, "data.format=csv"), 0);
  assert_int_equal(fedc__config_data_given(&c, "train", FEDC_ROLE_SIM), 0);
  assert_int_equal(fedc_config_set(&c, "data.train=site.csv"), 0);
  if (fedc_config_check_role(&c, FEDC_ROLE_CLIENT) != 0) fail_msg("%s", fedc_error_msg());
  assert_int_equal(fedc__config_data_given(&c, "train", FEDC_ROLE_CLIENT), 1);
  /* the default path named explicitly is given: the user chose it */
  const char *fm = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";
  char line[128];
  snprintf(line, sizeof line, "data.test=%s", fm);
  assert_int_equal(fedc_config_set(&c, line), 0);
  assert_int_equal(fedc__config_data_given(&c, "test", FEDC_ROLE_COORDINATOR), 1);
  /* code that fills the struct in is taken at its word */
  fedc_config_defaults(&c);
  snprintf(c.test, sizeof c.test, "mine.csv");
  assert_int_equal(fedc__config_data_given(&c, "test", FEDC_ROLE_COORDINATOR), 1);
  c.test[0] = '\0';
  assert_int_equal(fedc__config_data_given(&c, "test", FEDC_ROLE_SIM), 0);
}

/* Tensor jobs: the coordinator needs init and refuses what does not apply;
 * the simulator refuses the type; init and integer_rule need the type. */
static void test_tensor_checks(void **state) {
  fedc_config c;
  fedc_config_defaults(&c);
  assert_int_equal(fedc_config_set(&c, "tls.cert=s.pem"), 0);
  assert_int_equal(fedc_config_set(&c, "tls.key=s.key"), 0);
  assert_int_equal(fedc_config_set(&c, "tls.ca=ca.pem"), 0);
  assert_int_equal(fedc_config_set(&c, "model.integer_rule=*.n=max"), 0);
  assert_int_equal(fedc_config_check_role(&c, FEDC_ROLE_COORDINATOR), FEDC_ECONFIG);
  assert_contains(fedc_error_msg(), "[model] integer_rule is set: it applies only to [model] type = tensors");
  assert_int_equal(fedc_config_set(&c, "model.type=tensors"), 0);
  assert_int_equal(fedc_config_check_role(&c, FEDC_ROLE_COORDINATOR), FEDC_ECONFIG);
  assert_contains(fedc_error_msg(), "needs [model] init");
  assert_int_equal(fedc_config_set(&c, "model.init=m.safetensors"), 0);
  if (fedc_config_check_role(&c, FEDC_ROLE_COORDINATOR) != 0) fail_msg("%s", fedc_error_msg());
  assert_int_equal(fedc_config_check_role(&c, FEDC_ROLE_SIM), FEDC_ECONFIG);
  assert_contains(fedc_error_msg(), "the simulator has no trainer for an arbitrary model");
  assert_int_equal(fedc_config_set(&c, "model.classes=10"), 0);
  assert_int_equal(fedc_config_check_role(&c, FEDC_ROLE_COORDINATOR), FEDC_ECONFIG);
  assert_contains(fedc_error_msg(), "[model] classes = 10");
  assert_int_equal(fedc_config_set(&c, "model.classes=0"), 0);
  assert_int_equal(fedc_config_set(&c, "data.test=t.idx"), 0);
  assert_int_equal(fedc_config_check_role(&c, FEDC_ROLE_COORDINATOR), FEDC_ECONFIG);
  assert_contains(fedc_error_msg(), "never runs a tensor job's model");
}

static void test_model_type_names(void **state) {
  static const char *const names[] = {"logreg", "softmax", "linreg", "mlp"};
  for (int i = 0; i < 4; i++) {
    assert_string_equal(fedc_model_type_name((fedc_model_type)i), names[i]);
    assert_int_equal(fedc_model_type_parse(names[i]), i);
  }
  assert_int_equal(fedc_model_type_parse("cnn"), -1);
  assert_int_equal(fedc_model_type_parse("MLP"), -1);
  assert_int_equal(fedc_model_type_parse(NULL), -1);
  assert_string_equal(fedc_model_type_name((fedc_model_type)9), "unknown");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_defaults, test_setup, test_teardown),
      cmocka_unit_test_setup_teardown(test_full_file, test_setup,
                                      test_teardown),
      cmocka_unit_test_setup_teardown(test_partial_file_keeps_other_keys,
                                      test_setup, test_teardown),
      cmocka_unit_test_setup_teardown(test_bad_files, test_setup,
                                      test_teardown),
      cmocka_unit_test_setup_teardown(test_long_lines, test_setup,
                                      test_teardown),
      cmocka_unit_test_setup_teardown(test_missing_file, test_setup,
                                      test_teardown),
      cmocka_unit_test_setup_teardown(test_set, test_setup, test_teardown),
      cmocka_unit_test_setup_teardown(test_set_errors, test_setup,
                                      test_teardown),
      cmocka_unit_test_setup_teardown(test_cross_checks, test_setup,
                                      test_teardown),
      cmocka_unit_test_setup_teardown(test_dump_round_trip, test_setup,
                                      test_teardown),
      cmocka_unit_test_setup_teardown(test_alloc_failure, test_setup,
                                      test_teardown),
      cmocka_unit_test_setup_teardown(test_write_doc, test_setup,
                                      test_teardown),
      cmocka_unit_test_setup_teardown(test_role_checks, test_setup,
                                      test_teardown),
      cmocka_unit_test_setup_teardown(test_data_defaults, test_setup, test_teardown),
      cmocka_unit_test_setup_teardown(test_tensor_checks, test_setup, test_teardown),
      cmocka_unit_test_setup_teardown(test_model_type_names, test_setup,
                                      test_teardown),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
