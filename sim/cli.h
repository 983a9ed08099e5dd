/*
 * cli.h - the command line that fedc-sim and fedc-sim-mpi share: the
 * options, the exit codes, and what is printed (a progress line on a
 * terminal or one JSON object per round, then the final figures), so that
 * both binaries keep one contract and a script can swap one for the other.
 */
#ifndef FEDC_CLI_H
#define FEDC_CLI_H

#include <stdint.h>

#include "config/config.h"
#include "round/engine.h"

/* Exit codes, documented in README.md and docs/scaling.md; never renumbered. */
enum {
  FEDC_EXIT_OK = 0,      /* success */
  FEDC_EXIT_RUNTIME = 1, /* training diverged, out of memory, a rank failed */
  FEDC_EXIT_USAGE = 2,   /* usage, config or input data error */
  FEDC_EXIT_SAVE = 3     /* the --save file cannot be written */
};

/* fedc_cli_parse's answer when the job should run. */
#define FEDC_CLI_RUN (-1)

typedef struct fedc_cli {
  const char *prog; /* for messages: "fedc-sim" */
  fedc_config cfg;
  int json, quiet;
  const char *save; /* --save FILE, or NULL */
  int tty;          /* progress line on stderr */
  double t_rounds;  /* when the first round started */
  double last_acc, last_loss;
  char *eval_json; /* the last evaluation's metrics (fedc_cli_set_eval) */
  int eval_fresh;  /* eval_json belongs to the round about to be printed */
} fedc_cli;

/*
 * Read argv into cli: --config first wherever it stands, then every --set
 * (and --threads) in order, then the cross-key checks. Returns FEDC_CLI_RUN,
 * or the exit code once there is nothing to run: 0 after --help, --version
 * or --config-doc, FEDC_EXIT_USAGE after a usage or config error. Prints
 * those answers and errors only when speak is set (MPI ranks but 0 stay
 * silent). about is the paragraph under the usage line.
 */
int fedc_cli_parse(fedc_cli *cli, const char *prog, const char *about,
                   int argc, char **argv, int speak);
/* Before the first round: a summary line on stderr (not with --json or
 * --quiet); workers says who trains, e.g. "2 threads". */
void fedc_cli_start(fedc_cli *cli, double setup_secs, const char *workers);
/* After each round: its JSON line, or the progress line on a terminal. */
void fedc_cli_round(fedc_cli *cli, const fedc_round_metrics *m);
/* Hand the cli this round's evaluation metrics (JSON, fedc memory, may be
 * NULL): printed as "eval" in this round's line and, the last one, in the
 * final line. Call before fedc_cli_round; fedc_cli_finish frees it. */
void fedc_cli_set_eval(fedc_cli *cli, char *eval_json);
/* Free what the cli holds (after fedc_cli_finish). */
void fedc_cli_release(fedc_cli *cli);
/* After the last round: the final JSON line, with extra_json (more
 * ',"key":value' pairs, or "") before its closing brace; or the table and
 * a summary on stderr. */
void fedc_cli_finish(fedc_cli *cli, const fedc_engine *e, double setup_secs,
                     const char *extra_json);
/* "prog: message" on stderr for the last error (fedc_error_msg), ending
 * the progress line first; prefix (or NULL) goes before the message. */
void fedc_cli_fail(const fedc_cli *cli, const char *prefix);
double fedc_cli_now(void);
double fedc_cli_peak_rss_mb(void);

#endif
