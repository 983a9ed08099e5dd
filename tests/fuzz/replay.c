/*
 * replay.c - runs a fuzz target's LLVMFuzzerTestOneInput over saved inputs
 * without libFuzzer, so that `make test` (gcc, optionally under
 * SANITIZE=address,undefined) replays every seed of the corpus and every
 * crash ever found.
 *
 *     replay_csv tests/fuzz/corpus/csv tests/fuzz/crashes/csv
 *
 * Each argument is a file or a directory (its files, in name order; names
 * starting with '.' such as .gitkeep are skipped, as are subdirectories).
 * An input that breaks an invariant aborts the process, which is the
 * failure; otherwise it prints how many inputs ran and exits 0. Exit 2:
 * an argument cannot be read.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Read a whole file into a malloc'd block of exactly its size (a target
 * that reads past the end then reads past the block). */
static int read_all(const char *path, uint8_t **out, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return -1;
  size_t cap = 4096, n = 0;
  uint8_t *buf = malloc(cap);
  while (buf != NULL) {
    size_t k = fread(buf + n, 1, cap - n, f);
    n += k;
    if (n < cap) break;
    uint8_t *nb = realloc(buf, cap * 2);
    if (nb == NULL) {
      free(buf);
      buf = NULL;
      break;
    }
    buf = nb;
    cap *= 2;
  }
  int bad = buf == NULL || ferror(f);
  fclose(f);
  if (bad) {
    free(buf);
    return -1;
  }
  /* an exact-size copy; malloc(0) may be NULL, so keep one byte then */
  uint8_t *exact = malloc(n ? n : 1);
  if (exact == NULL) {
    free(buf);
    return -1;
  }
  memcpy(exact, buf, n);
  free(buf);
  *out = exact;
  *len = n;
  return 0;
}

static int run_file(const char *path) {
  uint8_t *data;
  size_t len;
  if (read_all(path, &data, &len) != 0) {
    fprintf(stderr, "replay: cannot read %s: %s\n", path, strerror(errno));
    return -1;
  }
  LLVMFuzzerTestOneInput(data, len);
  free(data);
  return 0;
}

static int by_name(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every regular file of dir, in name order; returns the count or -1. */
static long run_dir(const char *dir) {
  DIR *d = opendir(dir);
  if (d == NULL) {
    fprintf(stderr, "replay: cannot open %s: %s\n", dir, strerror(errno));
    return -1;
  }
  char **names = NULL;
  size_t n = 0, cap = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    if (n == cap) {
      cap = cap ? cap * 2 : 64;
      char **nn = realloc(names, cap * sizeof *nn);
      if (nn == NULL) abort();
      names = nn;
    }
    size_t len = strlen(dir) + strlen(e->d_name) + 2;
    names[n] = malloc(len);
    if (names[n] == NULL) abort();
    snprintf(names[n], len, "%s/%s", dir, e->d_name);
    n++;
  }
  closedir(d);
  if (n > 1) qsort(names, n, sizeof *names, by_name);
  long ran = 0;
  for (size_t i = 0; i < n; i++) {
    struct stat st;
    if (stat(names[i], &st) == 0 && S_ISREG(st.st_mode)) {
      if (getenv("FEDC_REPLAY_VERBOSE")) fprintf(stderr, "  %s\n", names[i]);
      if (run_file(names[i]) != 0) ran = -1;
      if (ran >= 0) ran++;
    }
    free(names[i]);
  }
  free(names);
  return ran;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
    return 2;
  }
  int status = 0;
  for (int i = 1; i < argc; i++) {
    struct stat st;
    long ran;
    if (stat(argv[i], &st) != 0) {
      fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
      status = 2;
      continue;
    }
    if (S_ISDIR(st.st_mode))
      ran = run_dir(argv[i]);
    else
      ran = run_file(argv[i]) == 0 ? 1 : -1;
    if (ran < 0) {
      status = 2;
      continue;
    }
    printf("replay: %ld input%s from %s\n", ran, ran == 1 ? "" : "s", argv[i]);
  }
  return status;
}
