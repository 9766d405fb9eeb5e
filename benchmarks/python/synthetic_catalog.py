"""A synthetic catalog in MovieLens-100K's file format (u.data, u.item) for benchmarks/scaling.sh.

Each user's items are drawn without replacement from softmax(p_u . q_i + 0.6 log popularity) with Gaussian
latent factors (8 dimensions) and Zipf popularity, so the data has the structure a recommender learns; each user
gets 40-280 interactions with increasing timestamps. Seeded: the same arguments write the same files.

    /usr/bin/python3 benchmarks/python/synthetic_catalog.py OUT_DIR --users 3400 --items 3800 [--seed 7]
"""
import argparse
import os

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--users", type=int, default=3400)
    ap.add_argument("--items", type=int, default=3800)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    U, I, K = a.users, a.items, 8
    pu, qi = rng.normal(size=(U, K)), rng.normal(size=(I, K))
    pop = rng.zipf(1.3, I).clip(1, 500)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "u.data"), "w") as f:
        for u in range(U):
            n = min(I, int(rng.integers(40, 280)))
            s = pu[u] @ qi.T + 0.6 * np.log(pop)
            p = np.exp(s - s.max())
            p /= p.sum()
            for t, i in enumerate(rng.choice(I, size=n, replace=False, p=p)):
                f.write("%d\t%d\t%d\t%d\n" % (u + 1, i + 1, rng.integers(1, 6), 880000000 + t * 60 + u))
    with open(os.path.join(a.out, "u.item"), "w", encoding="latin-1") as f:
        for i in range(I):
            f.write("%d|Synthetic item %d (1998)|01-Jan-1998||http://x%s\n" % (i + 1, i + 1, "|0" * 19))


if __name__ == "__main__":
    main()
