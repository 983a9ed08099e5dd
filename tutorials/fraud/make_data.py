#!/usr/bin/python3
"""make_data.py - synthetic card transactions for the fraud-consortium tutorial
(docs/tutorials/fraud-consortium.md): four banks' CSVs and a held-out test CSV.

No public fraud data set can be fetched here, so this draws one, numpy only and
seeded (the same --seed writes the same bytes). One row is one card
transaction:

  tx_id          an identifier (excluded from the model)
  amount         in EUR, log-normal around the merchant category's typical ticket
  hour           local time of day, 0.00 .. 23.99
  merchant       grocery | fuel | restaurant | travel | online | electronics | atm
  card_present   1 chip/contactless at a terminal, 0 card-not-present
  distance_km    from the cardholder's home
  tx_24h         the card's transactions in the 24 hours before this one
  amount_ratio   amount / the card's 30-day mean amount
  new_merchant   1 if the card never paid this merchant before
  is_fraud       the label: 1 fraud, 0 genuine

How fraud differs (each a tendency, none a rule, so no feature alone finds it):
more often at night (0-5 h), card-not-present, online / electronics / travel /
atm, far from home, at a new merchant, in bursts (higher tx_24h), for an
amount several times the card's usual one. About a third of the frauds are
"quiet" (daytime, card present, usual amounts) and look like genuine use.

The banks differ in size, fraud rate (0.5-2%) and mix:
  bank-a  a large retail bank: groceries and fuel, 0.6% fraud
  bank-b  an online-first bank: mostly card-not-present, 1.8% fraud
  bank-c  a regional savings bank: older customers, 1.0% fraud
  bank-d  a travel card issuer: travel and abroad, 1.4% fraud
Each bank's file has its columns in its own order (the job's schema reads
them by name). test.csv holds 8000 new transactions drawn from the four
banks' mixes (2000 each), for scoring exported models. bank-c-broken.csv is
bank C's transactions as a botched export would deliver them: the same rows
with is_fraud inverted (every fraud marked genuine and every genuine
payment marked fraud), for the robust-aggregation part of the tutorial.

    make_data.py OUTDIR [--seed 2026] [--scale 1.0]
"""
import argparse
import os

import numpy as np

MERCHANTS = ["grocery", "fuel", "restaurant", "travel", "online", "electronics", "atm"]
TICKET = np.array([35.0, 55.0, 40.0, 320.0, 60.0, 250.0, 120.0])  # typical amount, EUR
FRAUD_MIX = np.array([0.05, 0.04, 0.04, 0.17, 0.35, 0.20, 0.15])   # where fraud happens

# name, rows, fraud rate, merchant mix, card-not-present share, home radius (km), column order
BANKS = [
    ("bank-a", 24000, 0.006, [0.38, 0.20, 0.16, 0.03, 0.12, 0.04, 0.07], 0.15, 8.0,
     ["tx_id", "amount", "hour", "merchant", "card_present", "distance_km", "tx_24h",
      "amount_ratio", "new_merchant", "is_fraud"]),
    ("bank-b", 16000, 0.018, [0.15, 0.06, 0.14, 0.07, 0.45, 0.09, 0.04], 0.55, 12.0,
     ["is_fraud", "merchant", "amount", "amount_ratio", "hour", "tx_24h", "card_present",
      "new_merchant", "distance_km", "tx_id"]),
    ("bank-c", 12000, 0.010, [0.42, 0.18, 0.18, 0.02, 0.06, 0.03, 0.11], 0.08, 6.0,
     ["tx_id", "is_fraud", "hour", "amount", "distance_km", "merchant", "new_merchant",
      "card_present", "tx_24h", "amount_ratio"]),
    ("bank-d", 10000, 0.014, [0.12, 0.08, 0.22, 0.30, 0.14, 0.06, 0.08], 0.35, 40.0,
     ["amount", "merchant", "hour", "card_present", "distance_km", "tx_24h", "amount_ratio",
      "new_merchant", "tx_id", "is_fraud"]),
]


def draw(rng, n, rate, mix, cnp, radius, first_id):
    """n transactions of one bank; returns a dict of columns."""
    y = (rng.random(n) < rate).astype(np.int64)
    quiet = (rng.random(n) < 0.35) & (y == 1)        # frauds that look genuine
    loud = (y == 1) & ~quiet
    m = np.where(loud, rng.choice(7, n, p=FRAUD_MIX), rng.choice(7, n, p=np.array(mix)))
    # time of day: genuine use peaks at midday and evening; loud fraud at night
    day = np.clip(rng.normal(14.0, 4.5, n), 0, 23.99)
    night = rng.uniform(0, 6, n)
    hour = np.where(loud & (rng.random(n) < 0.6), night, day)
    card_present = (rng.random(n) >= np.where(loud, 0.85, cnp)).astype(np.int64)
    card_present[m == 4] = 0                         # online is never card-present
    dist = rng.exponential(radius, n)
    dist = np.where(loud & (rng.random(n) < 0.5), dist + rng.exponential(400.0, n), dist)
    tx24 = rng.poisson(np.where(loud, 5.0, 2.0), n)
    card_mean = TICKET[m] * rng.lognormal(0.0, 0.4, n)
    ratio = rng.lognormal(np.where(loud, 1.0, 0.0), 0.6, n)
    amount = np.round(card_mean * ratio, 2) + 0.5
    new_merchant = (rng.random(n) < np.where(loud, 0.7, 0.2)).astype(np.int64)
    return {
        "tx_id": np.arange(first_id, first_id + n),
        "amount": amount, "hour": np.round(hour, 2),
        "merchant": np.array(MERCHANTS)[m], "card_present": card_present,
        "distance_km": np.round(dist, 1), "tx_24h": tx24,
        "amount_ratio": np.round(amount / card_mean, 3), "new_merchant": new_merchant,
        "is_fraud": y,
    }


def write(path, cols, order):
    n = len(cols["is_fraud"])
    with open(path, "w") as f:
        f.write(",".join(order) + "\n")
        text = [cols[c].astype(str) if cols[c].dtype.kind != "f" else
                np.char.mod("%.2f" if c != "amount_ratio" else "%.3f", cols[c])
                for c in order]
        for i in range(n):
            f.write(",".join(t[i] for t in text) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every bank's rows")
    a = ap.parse_args()
    os.makedirs(a.outdir, exist_ok=True)
    rng = np.random.default_rng(a.seed)
    first = 1
    tests = []
    for name, rows, rate, mix, cnp, radius, order in BANKS:
        n = max(200, int(rows * a.scale))
        cols = draw(rng, n, rate, mix, cnp, radius, first)
        first += n
        write(os.path.join(a.outdir, name + ".csv"), cols, order)
        if name == "bank-c":
            write(os.path.join(a.outdir, "bank-c-broken.csv"),
                  dict(cols, is_fraud=1 - cols["is_fraud"]), order)
        print(f"{name}.csv  {n:6d} transactions  {int(cols['is_fraud'].sum()):4d} fraud "
              f"({100 * cols['is_fraud'].mean():.2f}%)")
        tests.append(draw(rng, 2000, rate, mix, cnp, radius, 10_000_000 + first))
    test = {c: np.concatenate([t[c] for t in tests]) for c in tests[0]}
    write(os.path.join(a.outdir, "test.csv"), test, BANKS[0][6])
    print(f"test.csv    {len(test['is_fraud']):6d} transactions  "
          f"{int(test['is_fraud'].sum()):4d} fraud ({100 * test['is_fraud'].mean():.2f}%)")


if __name__ == "__main__":
    main()
