"""Class imbalance: plain shuffling against a class-balancing ``WeightedSampler``.

The training digits are made imbalanced by keeping only ``--keep`` (10%) of
the images of classes 5-9. The same network, from the same initial weights,
is then trained twice for the same number of steps:

* with plain shuffled epochs, where the rare classes are seen rarely;
* with ``sampling.WeightedSampler.class_balancing_sampler(y, n_classes)``,
  which draws samples with replacement so that every class is drawn equally
  often. Its iteration never ends, so each "epoch" is cut to the plain run's
  number of batches with ``itertools.islice``.

The script prints how often each class was actually drawn in each run and the
balanced accuracy (the mean of the per-class accuracies) on the untouched test
set, which counts every class alike however rare it was in training.

    python examples/class_imbalance.py
    python examples/class_imbalance.py --keep 0.05 --epochs 20
"""

import argparse
import itertools

import numpy as np

from batchup import data_source, sampling
from batchup.datasets import digits
from batchup.demo import MLP

N_CLASSES = 10
RARE = np.arange(5, 10)  # the classes made rare


def make_imbalanced(X, y, keep, rng):
    """Keep every sample of classes 0-4 and a fraction ``keep`` of those of classes 5-9.

    Parameters
    ----------
    X, y : numpy.ndarray
        Images and labels.
    keep : float
        Fraction of each rare class kept, chosen at random.
    rng : numpy.random.Generator
        Chooses the samples kept.

    Returns
    -------
    tuple of numpy.ndarray
        The kept images and labels, in their original order.
    """
    kept = ~np.isin(y, RARE) | (rng.random(len(y)) < keep)
    return X[kept], y[kept]


def per_class_accuracy(pred, y):
    """The fraction of each class's samples predicted correctly (the per-class recall).

    Their mean is the balanced accuracy, which counts every class alike
    however many samples it has.
    """
    correct = np.bincount(y, weights=pred == y, minlength=N_CLASSES)
    return correct / np.bincount(y, minlength=N_CLASSES)


def train(epochs, make_epoch, args):
    """Train a fresh MLP on the batches ``make_epoch(epoch)`` gives for each epoch.

    Returns
    -------
    model : batchup.demo.MLP
    drawn : numpy.ndarray
        How many samples of each class were trained on.
    """
    # The same seed for both runs: they differ only in which samples they draw.
    model = MLP(64, args.hidden, N_CLASSES, np.random.default_rng(args.seed))
    drawn = np.zeros(N_CLASSES, dtype=np.int64)
    for epoch in range(epochs):
        for batch_X, batch_y in make_epoch(epoch):
            model.train_step(batch_X, batch_y, lr=args.lr)
            drawn += np.bincount(batch_y, minlength=N_CLASSES)
    return model, drawn


def main(argv=None):
    """Train with and without class balancing and compare the two runs.

    Returns
    -------
    dict
        For ``"plain"`` and ``"balanced"``: a dict with the test ``accuracy``,
        ``balanced_accuracy`` and ``per_class_accuracy``, and the fraction of
        the trained-on samples drawn from each class (``sampled_frequency``).
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=float, default=0.1,
                        help="fraction of classes 5-9 kept for training (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=10,
                        help="epochs of the imbalanced training set (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=32,
                        help="samples per training batch (default: %(default)s)")
    parser.add_argument("--hidden", type=int, default=64,
                        help="units in the hidden layer (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=0.05,
                        help="SGD learning rate (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the subset, the weights and the sampling "
                             "(default: %(default)s)")
    args = parser.parse_args(argv)

    d = digits.Digits(n_val=0)
    X, y = make_imbalanced(d.train_X, d.train_y, args.keep, np.random.default_rng(args.seed))
    counts = np.bincount(y, minlength=N_CLASSES)
    print(f"imbalanced training set: {len(y)} of {len(d.train_y)} images; "
          f"samples per class {counts.tolist()}")
    test_ds = data_source.ArrayDataSource([d.test_X])
    plain_ds = data_source.ArrayDataSource([X, y])
    sampler = sampling.WeightedSampler.class_balancing_sampler(y, n_classes=N_CLASSES)
    balanced_ds = data_source.ArrayDataSource([X, y], sampler=sampler)
    batches_per_epoch = plain_ds.num_batches(args.batch_size)

    # Weighted sampling draws with replacement and never stops: one endless
    # iterator, cut into epochs of the plain run's length.
    endless = balanced_ds.batch_iterator(args.batch_size, shuffle=args.seed)
    runs = {
        "plain": lambda epoch: plain_ds.batch_iterator(args.batch_size,
                                                       shuffle=(args.seed, epoch)),
        "balanced": lambda epoch: itertools.islice(endless, batches_per_epoch),
    }
    result = {}
    for name, make_epoch in runs.items():
        model, drawn = train(args.epochs, make_epoch, args)
        (proba,) = test_ds.batch_map_concat(model.predict_proba, batch_size=256)
        pred = proba.argmax(axis=1)
        recall = per_class_accuracy(pred, d.test_y)
        result[name] = {"balanced_accuracy": float(recall.mean()),
                        "accuracy": float((pred == d.test_y).mean()),
                        "per_class_accuracy": recall,
                        "sampled_frequency": drawn / drawn.sum()}

    print(f"{batches_per_epoch} batches of {args.batch_size} per epoch, {args.epochs} epochs")
    print("class  in data  drawn (plain)  drawn (balanced)  test acc. (plain)  (balanced)")
    freq = counts / counts.sum()
    plain, balanced = result["plain"], result["balanced"]
    for c in range(N_CLASSES):
        print(f"{c:5d}  {freq[c]:7.1%}  {plain['sampled_frequency'][c]:13.1%}  "
              f"{balanced['sampled_frequency'][c]:16.1%}  "
              f"{plain['per_class_accuracy'][c]:17.1%}  {balanced['per_class_accuracy'][c]:10.1%}")
    rare = np.isin(np.arange(N_CLASSES), RARE)
    for name, r in result.items():
        print(f"{name:>8}: test accuracy {r['accuracy']:.2%}, "
              f"balanced accuracy {r['balanced_accuracy']:.2%} "
              f"(classes 0-4: {r['per_class_accuracy'][~rare].mean():.2%}, "
              f"rare classes 5-9: {r['per_class_accuracy'][rare].mean():.2%})")
    return result


if __name__ == "__main__":
    main()
