/*
 * model_rebuild.h - a model file rebuilt from the model file a client
 * holds and a delta file (docs/protocol.md, "Model deltas"), in slices:
 * the base, the delta and the new model are never whole in memory
 * (wire/model_delta_stream.h). Used by resumable downloads into
 * [client] state_dir (model_download.h) for models of 16 MiB and more.
 *
 *     rc = fedc__model_rebuild(base, delta, out, max, base_round, round, &len);
 *
 * One thread; any thread.
 */
#ifndef FEDC_CLIENT_MODEL_REBUILD_H
#define FEDC_CLIENT_MODEL_REBUILD_H

#include <stdint.h>

/*
 * Rebuild into the file `out` (created or emptied, fsync'd) the model that
 * the delta file names, from the base file. The delta must go from round
 * base_round to round, and its base SHA-256 and the rebuilt body's must be
 * those it names. 0 with *len; FEDC_EFORMAT or FEDC_ECHECKSUM (the delta is
 * not usable: fetch the whole model), FEDC_ETOOBIG (over max), FEDC_EIO,
 * FEDC_ENOMEM; on any error `out` is removed.
 */
int fedc__model_rebuild(const char *base, const char *delta, const char *out, uint64_t max,
                        int32_t base_round, int32_t round, uint64_t *len);

#endif
