/*
 * quickstart.c - the program that opens <fedc/fedc.h>, as it is there: a
 * federated job simulated on this machine (100 clients holding shards of
 * Fashion-MNIST, 10 training in each round, FedAvg), each committed round
 * printed, the final model saved as safetensors. Run it from the source
 * tree, where configs/sim-fashion-softmax.ini is; an optional argument
 * names the output file.
 */
#include <fedc/fedc.h>
#include <stdio.h>

static int on_round(const fedc_round_metrics *m, void *user_data) {
  (void)user_data;
  printf("round %d: %d clients, test accuracy %.4f\n", (int)m->round,
         (int)m->clients, m->test_acc);
  return 0; /* non-zero stops the job */
}

int main(int argc, char **argv) {
  const char *out = argc > 1 ? argv[1] : "model.safetensors";
  fedc_settings *s = NULL;
  fedc_sim *sim = NULL;
  int rc = fedc_settings_new(&s);
  if (rc == 0) rc = fedc_settings_load(s, "configs/sim-fashion-softmax.ini");
  if (rc == 0) rc = fedc_settings_set(s, "job.rounds=5");
  if (rc == 0) rc = fedc_sim_new(s, &sim); /* checks the settings */
  if (rc == 0) rc = fedc_sim_run(sim, on_round, NULL);
  if (rc == 0) rc = fedc_sim_save(sim, out);
  if (rc != 0)
    fprintf(stderr, "%s: %s\n", fedc_err_name(rc), fedc_error_msg());
  fedc_sim_free(sim);
  fedc_settings_free(s);
  return rc == 0 ? 0 : 1;
}
