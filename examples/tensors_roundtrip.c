/*
 * tensors_roundtrip.c - a model's weights to a safetensors file and back,
 * through the public <fedc/tensors.h> and <fedc/model.h> only.
 *
 * Builds a small MLP (4 features, one hidden layer of 5, 3 classes), gives
 * it seeded initial weights, writes its named tensors with two metadata
 * entries to a file, reads the file back, and checks that every tensor's
 * name, shape and values and the metadata came back as written. Prints
 * each tensor and exits 0, or says what differs and exits 1.
 *
 *     tensors_roundtrip [FILE]     (default: a file in a new temporary folder)
 */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */

#include <fedc/fedc.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_TENSORS (2 * FEDC_MODEL_MAX_LAYERS)

static int fail(const char *what, int rc) {
  fprintf(stderr, "tensors_roundtrip: %s: %s (%s)\n", what, fedc_err_name(rc), fedc_error_msg());
  return 1;
}

/* Compare one written tensor with the one read back; print it. */
static int check_tensor(const fedc_st_tensor *want, const fedc_st_tensor *got) {
  int same = strcmp(want->name, got->name) == 0 && want->ndim == got->ndim;
  size_t n = 1;
  for (int32_t d = 0; same && d < want->ndim; d++) {
    same = want->shape[d] == got->shape[d];
    n *= (size_t)want->shape[d];
  }
  if (!same) {
    fprintf(stderr, "tensors_roundtrip: %s: name or shape differs\n", want->name);
    return 1;
  }
  printf("%-16s [", got->name);
  for (int32_t d = 0; d < got->ndim; d++) printf("%s%lld", d ? ", " : "", (long long)got->shape[d]);
  printf("]");
  for (size_t i = 0; i < n; i++) {
    if (memcmp(&want->data[i], &got->data[i], sizeof(float)) != 0) {
      fprintf(stderr, "\ntensors_roundtrip: %s[%zu]: wrote %.9g, read %.9g\n", want->name, i,
              (double)want->data[i], (double)got->data[i]);
      return 1;
    }
    if (i < 6) printf(" %+.4f", (double)got->data[i]);
  }
  printf("%s\n", n > 6 ? " ..." : "");
  return 0;
}

int main(int argc, char **argv) {
  char dir[] = "/tmp/fedc-tensors-XXXXXX";
  char path[4096];
  int own_dir = argc < 2;
  if (own_dir) {
    if (mkdtemp(dir) == NULL) {
      perror("tensors_roundtrip: mkdtemp");
      return 1;
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
  } else {
    snprintf(path, sizeof path, "%s", argv[1]);
  }

  fedc_model_spec spec;
  fedc_model_spec_init(&spec, FEDC_MODEL_MLP, 4, 3);
  spec.n_hidden = 1;
  spec.hidden[0] = 5;
  int rc = fedc_model_spec_check(&spec);
  if (rc != 0) return fail("spec", rc);
  size_t n = fedc_model_n_params(&spec);
  float *w = fedc_malloc_array(n, sizeof *w);
  float *back = fedc_calloc(n, sizeof *back);
  if (w == NULL || back == NULL) return fail("allocate", FEDC_ENOMEM);
  fedc_model_init(&spec, 7, w);

  fedc_st_tensor t[MAX_TENSORS];
  size_t nt = fedc_model_tensors(&spec, w, t, MAX_TENSORS);
  fedc_st_meta meta[2] = {{"model", fedc_model_type_name(spec.type)}, {"fedc", fedc_version()}};
  rc = fedc_st_write_file(path, t, nt, meta, 2);
  if (rc != 0) return fail("write", rc);

  fedc_st_file *f = NULL;
  rc = fedc_st_read_file(path, &f);
  if (rc != 0) return fail("read", rc);
  int bad = fedc_st_count(f) != nt;
  if (bad) fprintf(stderr, "tensors_roundtrip: %zu tensors read, %zu written\n", fedc_st_count(f), nt);
  for (size_t i = 0; !bad && i < nt; i++) {
    fedc_st_tensor got;
    rc = fedc_st_find(f, t[i].name, &got);
    if (rc != 0) {
      bad = fail(t[i].name, rc);
      break;
    }
    bad = check_tensor(&t[i], &got);
  }
  for (size_t i = 0; !bad && i < 2; i++) {
    const char *v = fedc_st_meta_get(f, meta[i].key);
    if (v == NULL || strcmp(v, meta[i].value) != 0) {
      fprintf(stderr, "tensors_roundtrip: metadata %s: wrote \"%s\", read \"%s\"\n", meta[i].key,
              meta[i].value, v ? v : "(absent)");
      bad = 1;
    }
  }
  /* the same through the model's own mapping: the flat vector comes back */
  if (!bad) {
    rc = fedc_model_from_tensors(&spec, f, back);
    if (rc != 0) bad = fail("model_from_tensors", rc);
    else if (memcmp(w, back, n * sizeof *w) != 0) {
      fprintf(stderr, "tensors_roundtrip: the flat vector differs after the round trip\n");
      bad = 1;
    }
  }
  if (!bad)
    printf("ok: %zu parameters in %zu tensors, sha256 %.16s..., fedc %s\n", n, nt,
           fedc_st_meta_get(f, "sha256"), fedc_version());
  fedc_st_free(f);
  fedc_free(back);
  fedc_free(w);
  if (own_dir) {
    unlink(path);
    rmdir(dir);
  }
  return bad ? 1 : 0;
}
