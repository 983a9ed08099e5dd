/*
 * fs.h - small file-system helpers the programs share (folders made for
 * keys, kits and stores).
 */
#ifndef FEDC_BASE_FS_H
#define FEDC_BASE_FS_H

#include <sys/types.h>

/* mkdir -p: makes path and any missing parent, each with mode (before the
 * umask); an existing folder is fine. 0, or -1 with errno set (ENAMETOOLONG
 * for a path of 4096 bytes or more). */
int fedc__mkdirs(const char *path, mode_t mode);

#endif
