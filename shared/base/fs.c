/*
 * fs.c - file-system helpers: fedc__mkdirs, so that `pki init --dir
 * coord/pki` or `enroll --dir /etc/fedc/site` works when the parent folder
 * does not exist yet.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "base/fs.h"

/* Walks the path once, making each prefix that ends at a '/', then the
 * whole path; EEXIST on the way is fine as long as the last one is a
 * folder. */
int fedc__mkdirs(const char *path, mode_t mode) {
  char buf[4096];
  size_t n = strlen(path);
  if (n == 0 || n >= sizeof buf) {
    errno = n == 0 ? ENOENT : ENAMETOOLONG;
    return -1;
  }
  memcpy(buf, path, n + 1);
  for (size_t i = 1; i < n; i++) {
    if (buf[i] != '/') continue;
    buf[i] = '\0';
    if (mkdir(buf, mode) != 0 && errno != EEXIST) return -1;
    buf[i] = '/';
  }
  if (mkdir(buf, mode) != 0) {
    struct stat st;
    if (errno != EEXIST) return -1;
    if (stat(buf, &st) != 0) return -1;
    if (!S_ISDIR(st.st_mode)) {
      errno = ENOTDIR;
      return -1;
    }
  }
  return 0;
}
