/*
 * engine.h - the round engine's library-internal API. The public API is
 * <fedc/engine.h> (included here: one declaration of each public thing);
 * this adds what needs internal types: splitting a round over MPI ranks as
 * 128-bit integer partials.
 */
#ifndef FEDC_ENGINE_H
#define FEDC_ENGINE_H

#include <fedc/engine.h>

#include <stddef.h>
#include <stdint.h>

#include "round/pipeline.h"

/*
 * Splitting a round over processes (the MPI simulator). Every process runs
 * an engine replica made with the same parameters and initial model, so the
 * replicas open the same rounds with the same selection; each submits only
 * the updates of the clients it trains. A replica's share of the open round,
 * its partial, is written as 128-bit integers:
 *
 *   words[0 .. n_params)                 FedAvg's fixed-point sums (agg.h)
 *   words[n_params]                      the total sample count
 *   words[n_params + 1 + 3 i + 0, 1, 2]  slot i (selection order): reported
 *                                        (0 or 1), its sample count, the
 *                                        bits of its train_loss (a double)
 *
 * Every field is an integer sum, so the partials of replicas that counted
 * disjoint clients add up, word by word (modulo 2^128, as an MPI reduction
 * adds them), to the partial of one engine that was sent all their updates.
 * Merging the other replicas' sum into a replica's open round therefore
 * closes it to the same model and metrics, bit for bit, as one engine that
 * saw every update: the number of processes cannot change the result.
 */
/* Words in the open round's partial; 0 when no round is open. */
size_t fedc_engine_partial_words(const fedc_engine *e);
/* Write the open round's partial into words (n_words of them). Errors:
 * FEDC_ESTATE (no round open), FEDC_ESHAPE (n_words is not
 * fedc_engine_partial_words), FEDC_EUNSUPPORTED (the strategy keeps no
 * additive accumulator). */
int fedc_engine_partial(const fedc_engine *e, __int128 *words, size_t n_words);
/*
 * Count the updates summed in words (other replicas' partials for round)
 * in the open round, as if each had been submitted here. Checked in full
 * before anything changes: FEDC_ESTATE (no round open), FEDC_ESTALE (round
 * is not the open round), FEDC_ESHAPE (n_words), FEDC_EUNSUPPORTED (as
 * above), FEDC_EDUPLICATE (a client counted twice: already reported here,
 * or reported by two replicas), FEDC_EINVAL (a malformed partial: a report
 * flag or sample count out of range, data in an unreported slot, or a total
 * that is not the sum of the slots' counts). The quorum is checked by
 * fedc_engine_close as usual.
 */
int fedc_engine_merge(fedc_engine *e, int32_t round, const __int128 *words,
                      size_t n_words);

/*
 * The library's drivers make their engine with the job's whole pipeline
 * (norm bounds, DP, aggregator and server optimizer: pipeline.h), copied;
 * fedc_engine_new is this with plain FedAvg or p->strategy's defaults.
 */
int fedc__engine_new_pipeline(const fedc_engine_params *p, const fedc_pipeline_params *pipeline,
                              size_t n_params, const float *w_init, fedc_engine **out);

/* The job's statistics released under DP with noise multiplier sigma: one
 * step in the privacy ledger (fedc_dp_account_release); 0 without DP. */
int fedc__engine_account_release(fedc_engine *e, double sigma);

/*
 * SCAFFOLD (a strategy with FEDC_STRATEGY_VARIATES, agg/scaffold.h): the
 * server control variate of the open or next round (n_params floats; NULL
 * for other strategies), and fedc_engine_submit with the client's variate
 * delta dc. dc is checked first (FEDC_ESHAPE, FEDC_ENONFINITE, FEDC_ERANGE;
 * FEDC_ESTATE for a strategy without variates), then the model goes
 * through fedc_engine_submit; the delta is folded, weighted by n_samples,
 * only when the model was counted (not on a refusal or FEDC_EDUPLICATE).
 * The variate is committed and restored with the optimizer state
 * (fedc_engine_opt_state_*).
 */
const float *fedc__engine_variate(const fedc_engine *e);
int fedc__engine_submit_variate(fedc_engine *e, int32_t round, int32_t client, const float *w,
                                const float *dc, size_t n, uint64_t n_samples,
                                double train_loss);

/*
 * Large models: one copy of the global model, shared with the bytes the
 * driver serves (coordinator/large_model.c). adopt_global makes global
 * (n_params floats, equal to the engine's global model) the engine's
 * global model: its own buffer is freed and global is only read from then
 * on; the caller keeps it alive and unchanged until the next commit or
 * fedc_engine_free. close_prepare_into is fedc_engine_close_prepare
 * writing the next model into the caller's next (n_params floats); after
 * fedc_engine_close_commit it is the global model, on the same terms, and
 * the one before it is no longer read. An abort leaves next unused.
 */
void fedc__engine_adopt_global(fedc_engine *e, float *global);
int fedc__engine_close_prepare_into(fedc_engine *e, float *next, fedc_round_metrics *out);

/*
 * Early folds: an update folded into the open round's sums a range of
 * weights at a time, as a chunked upload's bytes arrive
 * (coordinator/upload_fold.c), and counted once it is whole and checked.
 * early_begin: 1 with *gen the open round's generation when client may
 * still report in round and the pipeline folds weight by weight
 * (fedc__pipeline_fold_early_ok), else 0. early_live: 1 while that round
 * is open and not being committed (its sums are the ones folded into);
 * once it is not, folds made under gen are gone with the sums or must have
 * been taken out before the prepare. early_fold: fedc__pipeline_fold_early
 * against the global model. submit_folded: the update whose weights are
 * all folded is counted as fedc_engine_submit would (FEDC_ESTATE when
 * client cannot report now: take the folds out); *fd is a descriptor of a
 * file holding its n_params float values at data_off, which the engine
 * may keep (setting *fd to -1) to read them again should the share cap
 * cut the update (fedc__pipeline_add_folded; required under the cap). All
 * under the caller's lock, like every engine call.
 */
int fedc__engine_early_begin(fedc_engine *e, int32_t round, int32_t client, uint64_t n_samples,
                             uint64_t *gen);
int fedc__engine_early_live(const fedc_engine *e, uint64_t gen);
int fedc__engine_early_fold(fedc_engine *e, size_t off, const float *w, size_t len, int64_t m,
                            float *y);
int fedc__engine_submit_folded(fedc_engine *e, int32_t round, int32_t client,
                               uint64_t n_samples, double train_loss, int *fd,
                               uint64_t data_off);
/* Folds that could not be taken out: the open round's prepare fails. */
void fedc__engine_early_fail(fedc_engine *e);

#endif
