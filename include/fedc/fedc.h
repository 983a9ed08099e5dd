/*
 * fedc/fedc.h - everything of fedc's public API in one include.
 *
 * A minimal, complete program: a federated job simulated on this machine,
 * 100 clients holding shards of Fashion-MNIST, 10 of them training in each
 * round, their updates averaged by FedAvg; each committed round is printed
 * and the final model saved as safetensors.
 *
 *     #include <fedc/fedc.h>
 *     #include <stdio.h>
 *
 *     static int on_round(const fedc_round_metrics *m, void *user_data) {
 *       (void)user_data;
 *       printf("round %d: %d clients, test accuracy %.4f\n", (int)m->round,
 *              (int)m->clients, m->test_acc);
 *       return 0; // non-zero stops the job
 *     }
 *
 *     int main(void) {
 *       fedc_settings *s = NULL;
 *       fedc_sim *sim = NULL;
 *       int rc = fedc_settings_new(&s);
 *       if (rc == 0) rc = fedc_settings_load(s, "configs/sim-fashion-softmax.ini");
 *       if (rc == 0) rc = fedc_settings_set(s, "job.rounds=5");
 *       if (rc == 0) rc = fedc_sim_new(s, &sim);     // checks the settings
 *       if (rc == 0) rc = fedc_sim_run(sim, on_round, NULL);
 *       if (rc == 0) rc = fedc_sim_save(sim, "model.safetensors");
 *       if (rc != 0)
 *         fprintf(stderr, "%s: %s\n", fedc_err_name(rc), fedc_error_msg());
 *       fedc_sim_free(sim);
 *       fedc_settings_free(s);
 *       return rc == 0 ? 0 : 1;
 *     }
 *
 * The same job runs over the network with a coordinator (<fedc/coordinator.h>,
 * in the program's own libuv loop) and clients (<fedc/client.h>, with the
 * built-in trainer or the site's own); a program adds its own aggregation
 * rule with <fedc/strategy.h>. docs/api.md walks through each.
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

#include <fedc/settings.h>
#include <fedc/strategy.h>
#include <fedc/engine.h>
#include <fedc/sim.h>
#include <fedc/client.h>
#include <fedc/coordinator.h>
#include <fedc/cuda.h>

#endif
