/*
 * fedc/fedc.h - everything of fedc's public API in one include.
 *
 * A minimal, complete program: make a model's initial weights, save them
 * as safetensors, read them back and check them.
 *
 *     #include <fedc/fedc.h>
 *     #include <stdio.h>
 *
 *     int main(void) {
 *       fedc_model_spec spec;
 *       fedc_model_spec_init(&spec, FEDC_MODEL_SOFTMAX, 4, 3);
 *       size_t n = fedc_model_n_params(&spec);
 *       float *w = fedc_malloc_array(n, sizeof *w);
 *       if (w == NULL) return 1;
 *       fedc_model_init(&spec, 42, w);
 *
 *       fedc_st_tensor t[2 * FEDC_MODEL_MAX_LAYERS];
 *       size_t nt = fedc_model_tensors(&spec, w, t, 2 * FEDC_MODEL_MAX_LAYERS);
 *       fedc_st_meta meta = {"model", fedc_model_type_name(spec.type)};
 *       fedc_st_file *f = NULL;
 *       int rc = fedc_st_write_file("model.safetensors", t, nt, &meta, 1);
 *       if (rc == 0) rc = fedc_st_read_file("model.safetensors", &f);
 *       if (rc == 0) rc = fedc_model_from_tensors(&spec, f, w);
 *       if (rc != 0)
 *         fprintf(stderr, "%s: %s\n", fedc_err_name(rc), fedc_error_msg());
 *       else
 *         printf("fedc %s: %zu parameters in %zu tensors\n", fedc_version(),
 *                n, fedc_st_count(f));
 *       fedc_st_free(f);
 *       fedc_free(w);
 *       return rc == 0 ? 0 : 1;
 *     }
 *
 * Build it against an installed fedc with
 *     cc prog.c $(pkg-config --cflags --libs fedc)
 *
 * Conventions throughout: functions return 0 or a negative FEDC_E* code
 * (<fedc/error.h>) and leave a message for the calling thread; all memory
 * fedc hands out is freed with the matching _free function or fedc_free();
 * objects are opaque handles with a user_data pointer; parameter structs
 * are set up by their _init function before a program fills them in.
 */
#ifndef FEDC_PUBLIC_FEDC_H
#define FEDC_PUBLIC_FEDC_H

#include <fedc/version.h>
#include <fedc/error.h>
#include <fedc/alloc.h>
#include <fedc/tensors.h>
#include <fedc/model.h>

/* ---- added when the layers above merge (lead): keep this order ---------
 * #include <fedc/engine.h>
 * #include <fedc/strategy.h>
 * #include <fedc/client.h>
 * #include <fedc/coordinator.h>
 * #include <fedc/sim.h>
 * #include <fedc/settings.h>
 * ---------------------------------------------------------------------- */

#endif
