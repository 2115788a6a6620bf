"""Semi-supervised learning on the shipped digits with ``CompositeDataSource``.

Only ``--labelled`` training images keep their labels. Every step draws a
batch from the small labelled set (repeating forever) and one from the large
unlabelled set (one pass per epoch); the network learns from the labels and
from its own confident predictions on the unlabelled batch (pseudo-labels).

    python examples/semi_supervised_digits.py --labelled 100 --epochs 20
"""

import argparse

import numpy as np

from batchup import data_source
from batchup.datasets import digits
from batchup.demo import MLP


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labelled", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--threshold", type=float, default=0.95,
                        help="confidence needed to use a pseudo-label")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    d = digits.Digits(n_val=0)
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(d.train_y))
    lab, unlab = order[:args.labelled], order[args.labelled:]

    ds_lab = data_source.ArrayDataSource([d.train_X, d.train_y], indices=lab, repeats=-1)
    ds_unlab = data_source.ArrayDataSource([d.train_X], indices=unlab)
    ds = data_source.CompositeDataSource([ds_lab, ds_unlab])
    test_ds = data_source.ArrayDataSource([d.test_X])

    model = MLP(64, 128, 10, rng)
    for epoch in range(1, args.epochs + 1):
        n_pseudo = 0
        for lab_X, lab_y, unlab_X in ds.batch_iterator(batch_size=32, shuffle=rng):
            model.train_step(lab_X, lab_y, lr=0.05)
            p = model.predict_proba(unlab_X)
            confident = p.max(axis=1) >= args.threshold
            if epoch > 5 and confident.any():
                model.train_step(unlab_X[confident], p[confident].argmax(axis=1), lr=0.02)
                n_pseudo += int(confident.sum())
        (probs,) = test_ds.batch_map_concat(model.predict_proba, batch_size=256)
        acc = (probs.argmax(axis=1) == d.test_y).mean()
        print(f"epoch {epoch:2d}  pseudo-labels used {n_pseudo:5d}  test accuracy {acc:.2%}")
    return float(acc)


if __name__ == "__main__":
    main()
