#!/usr/bin/env python3
"""summarize.py - turn bench/run.sh's raw JSON output into the table.

Standard library only (it runs where torch is missing too).

  summarize.py --dir DIR --settings softmax:100,mlp:20 [--torch]
               [--mlp-layers 784,200,200,10] [--test-samples 10000]

DIR holds one file per run, SETTING.IMPL.REP.json (IMPL fedc or torch), each
the stdout of `fedc-sim --json` or `pytorch_fedavg.py --json`: per-round lines
and a final line with "final":true. A run that failed leaves no final line and
shows as n/a.
"""
import argparse
import glob
import json
import os
import statistics


def read_run(path):
    """(final line dict or None, samples per round or None)."""
    final, samples = None, None
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line.startswith("{"):
                    continue
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue
                if obj.get("final"):
                    final = obj
                elif "samples" in obj:
                    samples = obj["samples"]
    except OSError:
        pass
    return final, samples


def collect(d, setting, impl):
    finals, samples = [], None
    for path in sorted(glob.glob(os.path.join(d, "%s.%s.*.json" % (setting, impl)))):
        final, s = read_run(path)
        if final is not None:
            finals.append(final)
            samples = s if s is not None else samples
    return finals, samples


def median_of(finals, key):
    vals = [f[key] for f in finals if isinstance(f.get(key), (int, float))]
    return statistics.median(vals) if vals else None


def fmt(v, spec, width, unit=""):
    return ("%" + str(width) + "s") % ("n/a" if v is None else format(v, spec) + unit)


def mlp_flop_per_round(layers, train_samples, test_samples):
    """FLOP of one round: training forward + backward on train_samples, and
    the evaluation forward pass on test_samples. A multiply-add is 2 FLOP.

    forward          2 * MACs                 (all layers)
    backward dW      2 * MACs                 (all layers)
    backward dX      2 * MACs                 (all layers but the first: no
                                               gradient for the input pixels)
    Biases, activations and the softmax are O(width), left out."""
    macs = [a * b for a, b in zip(layers[:-1], layers[1:])]
    fwd = 2 * sum(macs)
    bwd = 2 * sum(macs) + 2 * sum(macs[1:])
    train = (fwd + bwd) * train_samples
    evaluate = fwd * test_samples
    return macs, fwd, bwd, train, evaluate


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--settings", required=True, help="name:rounds,...")
    ap.add_argument("--torch", action="store_true", help="torch runs were made")
    ap.add_argument("--mlp-layers", default="784,200,200,10")
    ap.add_argument("--test-samples", type=int, default=10000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()

    settings = []
    for item in a.settings.split(","):
        name, rounds = item.split(":")
        settings.append((name, int(rounds)))

    head = "%-16s %13s %13s %9s %9s %9s %10s %10s" % (
        "setting", "fedc s/round", "torch s/round", "speed-up", "fedc acc",
        "torch acc", "fedc RSS", "torch RSS")
    if not a.torch:
        print("(PyTorch not available: torch columns are n/a)")
    print(head)
    print("-" * len(head))
    results = {}
    for name, rounds in settings:
        fedc, samples = collect(a.dir, name, "fedc")
        torch, _ = collect(a.dir, name, "torch") if a.torch else ([], None)
        f_spr, t_spr = median_of(fedc, "sec_per_round"), median_of(torch, "sec_per_round")
        ratio = t_spr / f_spr if f_spr and t_spr else None
        results[name] = (f_spr, t_spr, samples)
        print("%-16s %13s %13s %9s %9s %9s %10s %10s" % (
            "%s, %d rnd" % (name, rounds),
            fmt(f_spr, ".4f", 13), fmt(t_spr, ".4f", 13),
            fmt(ratio, ".1f", 8) + ("x" if ratio is not None else " "),
            fmt(median_of(fedc, "test_acc"), ".4f", 9),
            fmt(median_of(torch, "test_acc"), ".4f", 9),
            fmt(median_of(fedc, "peak_rss_mb"), ".0f", 10, " MB"),
            fmt(median_of(torch, "peak_rss_mb"), ".0f", 10, " MB")))
        if len(fedc) < a.reps or (a.torch and len(torch) < a.reps):
            print("  (%s: only %d fedc and %d torch runs of %d finished; see the "
                  "errors above)" % (name, len(fedc), len(torch), a.reps))
    print()
    print("s/round: median over %d runs of the run's seconds per round (training, "
          "aggregation and test-set evaluation;\n  data loading excluded). "
          "speed-up = torch s/round / fedc s/round. acc: test accuracy after the "
          "last round.\n  RSS: peak resident set size (peak_rss_mb). %d threads "
          "each." % (a.reps, a.threads))

    if "mlp" in results:
        f_spr, t_spr, samples = results["mlp"]
        layers = [int(x) for x in a.mlp_layers.split(",")]
        train_samples = samples or 6000
        macs, fwd, bwd, train, evaluate = mlp_flop_per_round(
            layers, train_samples, a.test_samples)
        total = train + evaluate
        print()
        print("MLP arithmetic (%s):" % "-".join(str(x) for x in layers))
        print("  MACs per sample, forward:  %s = %d" % (
            " + ".join("%dx%d" % (i, o) for i, o in zip(layers[:-1], layers[1:])),
            sum(macs)))
        print("  FLOP per sample: forward 2*MACs = %d; backward 2*MACs (weights) "
              "+ 2*%d (activations, no input layer) = %d" % (fwd, sum(macs[1:]), bwd))
        print("  training:   %d samples x %d FLOP = %.3f GFLOP" % (
            train_samples, fwd + bwd, train / 1e9))
        print("  evaluation: %d samples x %d FLOP = %.3f GFLOP" % (
            a.test_samples, fwd, evaluate / 1e9))
        print("  per round:  %.3f GFLOP" % (total / 1e9))
        if f_spr:
            print("  fedc:  %.3f GFLOP / %.4f s = %.1f GFLOP/s" % (
                total / 1e9, f_spr, total / 1e9 / f_spr))
        if t_spr:
            print("  torch: %.3f GFLOP / %.4f s = %.1f GFLOP/s" % (
                total / 1e9, t_spr, total / 1e9 / t_spr))


if __name__ == "__main__":
    main()
