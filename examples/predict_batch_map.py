"""Prediction and evaluation in batches with ``batch_map_concat`` and ``batch_map_mean``.

A linear classifier is fitted to the shipped 8x8 digits in closed form
(ridge-regularised least squares on one-hot targets). Everything is computed
in mini-batches, as one would for data too large for memory, and then
checked against the same computation on the full arrays at once:

* ``batch_map_mean`` accumulates the normal equations (the means of
  ``A.T @ A`` and ``A.T @ T`` over the samples), from which the weights are
  solved;
* ``batch_map_concat`` gathers the test-set scores and predicted labels;
* ``batch_map_mean`` gives the mean squared error and the error rate, from
  per-batch sums, and again from per-sample values with ``sum_axis=0``.

Several batch sizes are tried, including ones that leave a short last batch.
The script prints the largest difference from the full-array results (float
rounding only) and returns it.

    python examples/predict_batch_map.py
    python examples/predict_batch_map.py --batch-sizes 1 32 397 --ridge 0.1
"""

import argparse

import numpy as np

from batchup import data_source
from batchup.datasets import digits

N_CLASSES = 10


def design(X):
    """The design matrix: flattened pixels (float64) and a constant column for the bias."""
    flat = X.reshape(len(X), -1).astype(np.float64)
    return np.hstack([flat, np.ones((len(X), 1))])


def one_hot(y):
    """Targets: 1.0 in the column of each sample's class, 0.0 elsewhere."""
    return np.eye(N_CLASSES)[y]


def normal_equation_sums(X, y):
    """Per-batch sums ``A.T @ A`` and ``A.T @ T``; ``batch_map_mean`` turns them into means."""
    A = design(X)
    return A.T @ A, A.T @ one_hot(y)


def fit(gram, cross, ridge):
    """Solve ``(gram + ridge * I) W = cross`` for the weights (the bias is regularised too)."""
    return np.linalg.solve(gram + ridge * np.eye(len(gram)), cross)


class Model:
    """A linear classifier: scores ``design(X) @ W``, predicted class = highest score."""

    def __init__(self, W):
        self.W = W

    def predict(self, X):
        """Scores and predicted labels of a batch (two arrays, for ``batch_map_concat``)."""
        scores = design(X) @ self.W
        return scores, scores.argmax(axis=1)

    def error_sums(self, X, y):
        """Summed squared error and number of misclassified samples of a batch."""
        scores, labels = self.predict(X)
        return ((scores - one_hot(y)) ** 2).sum(), (labels != y).sum()

    def per_sample_errors(self, X, y):
        """Per-sample squared error and misclassification, for ``sum_axis=0``."""
        scores, labels = self.predict(X)
        return ((scores - one_hot(y)) ** 2).sum(axis=1), (labels != y).astype(np.float64)


def main(argv=None):
    """Fit, predict and evaluate in batches; return the largest difference from full arrays."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[7, 100, 256],
                        help="batch sizes to try (default: %(default)s)")
    parser.add_argument("--ridge", type=float, default=0.01,
                        help="ridge penalty on the mean normal equations (default: %(default)s)")
    args = parser.parse_args(argv)

    d = digits.Digits(n_val=0)
    train_ds = data_source.ArrayDataSource([d.train_X, d.train_y])
    test_ds = data_source.ArrayDataSource([d.test_X, d.test_y])
    # Prediction needs no labels: a source of the images alone.
    images_ds = data_source.ArrayDataSource([d.test_X])
    print(f"{len(d.train_y)} training and {len(d.test_y)} test digits")

    # The reference: every quantity from the full arrays in one go.
    A, T = design(d.train_X), one_hot(d.train_y)
    W_full = fit(A.T @ A / len(A), A.T @ T / len(A), args.ridge)
    full = Model(W_full)
    scores_full, labels_full = full.predict(d.test_X)
    mse_full = ((scores_full - one_hot(d.test_y)) ** 2).sum(axis=1).mean()
    err_full = (labels_full != d.test_y).mean()
    train_err = (full.predict(d.train_X)[1] != d.train_y).mean()
    print(f"full arrays: training accuracy {1 - train_err:.2%}, test accuracy {1 - err_full:.2%}, "
          f"test squared error {mse_full:.4f} per sample")

    worst = 0.0
    for batch_size in args.batch_sizes:
        n_batches = test_ds.num_batches(batch_size)
        last = len(d.test_y) - (n_batches - 1) * batch_size
        # Means over samples, not over batches: a short last batch counts for what it holds.
        # (The weights even come out bit-identical: pixels are multiples of 1/16, so the
        # float64 sums are exact in any order.)
        gram, cross = train_ds.batch_map_mean(normal_equation_sums, batch_size)
        model = Model(fit(gram, cross, args.ridge))
        scores, labels = images_ds.batch_map_concat(model.predict, batch_size)
        mse, err = test_ds.batch_map_mean(model.error_sums, batch_size)
        mse_ps, err_ps = test_ds.batch_map_mean(model.per_sample_errors, batch_size, sum_axis=0)
        diffs = {
            "weights": np.abs(model.W - W_full).max(),
            "scores": np.abs(scores - scores_full).max(),
            "squared error": max(abs(mse - mse_full), abs(mse_ps - mse_full)),
            "error rate": max(abs(err - err_full), abs(err_ps - err_full)),
        }
        same_labels = bool((labels == labels_full).all())
        worst = max(worst, *diffs.values())
        print(f"batch size {batch_size:3d} ({n_batches} test batches, the last of {last}): "
              f"labels {'identical' if same_labels else 'DIFFERENT'}; largest differences "
              + ", ".join(f"{k} {v:.1e}" for k, v in diffs.items()))
        if not same_labels:
            worst = max(worst, 1.0)
    print(f"largest difference from the full-array results: {worst:.1e}")
    return float(worst)


if __name__ == "__main__":
    main()
