"""The offline demo: a NumPy MLP trained on the 8x8 digits shipped with batchup.

Run it with ``python -m batchup demo`` (``--help`` lists the options). It
shows the everyday pieces of batchup in one training loop:

* ``ArrayDataSource`` with shuffling from a seeded generator;
* ``.map(...)`` for batch-level augmentation (random shifts and pixel noise);
* an optional class-balancing ``WeightedSampler`` (``--balance``), with the
  classes of the training set made unbalanced first so that it matters;
* ``batch_map_mean`` for the validation loss/error and ``batch_map_concat``
  for test-set predictions;
* a tqdm progress bar per epoch (shown on a terminal only).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections.abc import Sequence

import numpy as np

from batchup import data_source, sampling
from batchup.datasets import digits


class MLP:
    """A one-hidden-layer perceptron with ReLU and softmax, trained by SGD with momentum."""

    def __init__(self, n_in: int, n_hidden: int, n_out: int, rng: np.random.Generator) -> None:
        self.W1 = rng.normal(0.0, np.sqrt(2.0 / n_in), (n_in, n_hidden)).astype(np.float32)
        self.b1 = np.zeros(n_hidden, np.float32)
        self.W2 = rng.normal(0.0, np.sqrt(1.0 / n_hidden), (n_hidden, n_out)).astype(np.float32)
        self.b2 = np.zeros(n_out, np.float32)
        self._velocity = [np.zeros_like(p) for p in self.params]

    @property
    def params(self) -> list[np.ndarray]:
        return [self.W1, self.b1, self.W2, self.b2]

    def _forward(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h = np.maximum(X.reshape(len(X), -1) @ self.W1 + self.b1, 0.0)
        logits = h @ self.W2 + self.b2
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        return h, p

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities for a batch of images."""
        return self._forward(X)[1]

    def loss_and_errors(self, X: np.ndarray, y: np.ndarray) -> tuple[float, int]:
        """Summed cross-entropy and number of errors over the batch (for ``batch_map_mean``)."""
        p = self.predict_proba(X)
        loss = -np.log(p[np.arange(len(y)), y] + 1e-12).sum()
        return float(loss), int((p.argmax(axis=1) != y).sum())

    def train_step(self, X: np.ndarray, y: np.ndarray, lr: float, momentum: float = 0.9) -> float:
        """One SGD step on a batch; returns the batch's mean loss."""
        x = X.reshape(len(X), -1)
        h, p = self._forward(x)
        n = len(y)
        loss = float(-np.log(p[np.arange(n), y] + 1e-12).mean())
        d_logits = p
        d_logits[np.arange(n), y] -= 1.0
        d_logits /= n
        d_h = (d_logits @ self.W2.T) * (h > 0)
        grads = [x.T @ d_h, d_h.sum(axis=0), h.T @ d_logits, d_logits.sum(axis=0)]
        for param, vel, grad in zip(self.params, self._velocity, grads, strict=True):
            vel *= momentum
            vel -= lr * grad
            param += vel
        return loss


def augmentation(rng: np.random.Generator, shift_prob: float = 0.25, noise: float = 0.25):
    """A batch augmentation: random one-pixel shifts and Gaussian pixel noise, vectorised.

    Each image is shifted by up to one pixel in each direction (zero-filled)
    with probability ``shift_prob``; every pixel gets noise of std ``noise``.
    """

    def augment(batch_X: np.ndarray, batch_y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n, _, rows, cols = batch_X.shape
        padded = np.pad(batch_X[:, 0], ((0, 0), (1, 1), (1, 1)))
        moved = rng.random(n) < shift_prob
        dy = np.where(moved, rng.integers(0, 3, size=n), 1)
        dx = np.where(moved, rng.integers(0, 3, size=n), 1)
        r = (dy[:, None] + np.arange(rows))[:, :, None]
        c = (dx[:, None] + np.arange(cols))[:, None, :]
        shifted = padded[np.arange(n)[:, None, None], r, c]
        noisy = shifted + rng.normal(0.0, noise, shifted.shape).astype(np.float32)
        return noisy[:, None], batch_y

    return augment


def _progress(iterable, total, desc, enabled):
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, leave=False, disable=None)


def run(epochs: int = 30, batch_size: int = 32, hidden: int = 128, lr: float = 0.05,
        balance: bool = False, augment: bool = True, seed: int = 0, progress: bool = True,
        out=None) -> float:
    """Train the demo network and return its test accuracy.

    Examples
    --------
    >>> import io
    >>> acc = run(epochs=2, progress=False, out=io.StringIO())
    >>> 0.5 < acc <= 1.0
    True
    """
    started = time.perf_counter()
    out = sys.stdout if out is None else out
    data = digits.Digits(n_val=200)
    train_X, train_y = data.train_X, data.train_y
    rng = np.random.default_rng(seed)
    if balance:
        # Make the training set unbalanced (keep a quarter of classes 5..9) so that
        # balancing has something to correct.
        keep = (train_y < 5) | (rng.random(len(train_y)) < 0.25)
        train_X, train_y = train_X[keep], train_y[keep]
    print(f"digits: {len(train_y)} training, {len(data.val_y)} validation, "
          f"{len(data.test_y)} test samples; class counts {np.bincount(train_y).tolist()}",
          file=out)

    if balance:
        sampler = sampling.WeightedSampler.class_balancing_sampler(train_y, n_classes=10)
        train_ds = data_source.ArrayDataSource([train_X, train_y], sampler=sampler)
    else:
        train_ds = data_source.ArrayDataSource([train_X, train_y])
    if augment:
        train_ds = train_ds.map(augmentation(rng))
    val_ds = data_source.ArrayDataSource([data.val_X, data.val_y])
    test_ds = data_source.ArrayDataSource([data.test_X])

    model = MLP(64, hidden, 10, rng)
    batches_per_epoch = sampling.num_batches(len(train_y), batch_size)
    # A weighted sampler draws forever; an epoch is then a fixed number of batches.
    endless = train_ds.batch_iterator(batch_size, shuffle=rng) if balance else None
    for epoch in range(1, epochs + 1):
        batches = (itertools.islice(endless, batches_per_epoch) if endless is not None
                   else train_ds.batch_iterator(batch_size, shuffle=rng))
        losses = [model.train_step(bx, by, lr)
                  for bx, by in _progress(batches, batches_per_epoch, f"epoch {epoch}", progress)]
        val_loss, val_err = val_ds.batch_map_mean(model.loss_and_errors, batch_size=256)
        print(f"epoch {epoch:2d}  train loss {np.mean(losses):.4f}  val loss {val_loss:.4f}  "
              f"val error {val_err:.2%}", file=out)

    (probs,) = test_ds.batch_map_concat(model.predict_proba, batch_size=256)
    accuracy = float((probs.argmax(axis=1) == data.test_y).mean())
    print(f"test accuracy {accuracy:.2%} ({len(data.test_y)} samples) "
          f"in {time.perf_counter() - started:.1f} s", file=out)
    return accuracy


DESCRIPTION = "Train a NumPy MLP on the 8x8 digits shipped with batchup (no network needed)."
EPILOG = "example: python -m batchup demo --epochs 5 --balance --seed 1"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m batchup demo``."""
    parser = argparse.ArgumentParser(prog="batchup demo", description=DESCRIPTION, epilog=EPILOG)
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))


def _positive(kind):
    """An argparse ``type`` accepting numbers of ``kind`` above zero."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the demo's options to ``parser``; each says what it does and its default.

    Examples
    --------
    >>> p = argparse.ArgumentParser()
    >>> add_arguments(p)
    >>> p.parse_args(["--lr", "0.1"]).lr
    0.1
    """
    count, rate = _positive(int), _positive(float)
    parser.add_argument("--epochs", type=count, default=30, metavar="N",
                        help="passes over the training set (default: %(default)s)")
    parser.add_argument("--batch-size", type=count, default=32, metavar="N",
                        help="samples per training batch (default: %(default)s)")
    parser.add_argument("--hidden", type=count, default=128, metavar="N",
                        help="units in the hidden layer (default: %(default)s)")
    parser.add_argument("--lr", type=rate, default=0.05, metavar="RATE",
                        help="SGD learning rate (default: %(default)s)")
    parser.add_argument("--balance", action="store_true",
                        help="make classes 5-9 rare, then sample classes evenly")
    parser.add_argument("--no-augment", action="store_true",
                        help="train without random shifts and pixel noise")
    parser.add_argument("--seed", type=int, default=0, metavar="N",
                        help="seed for every random choice (default: %(default)s)")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bars (drawn on a terminal only)")


def run_from_args(args: argparse.Namespace) -> int:
    """Run the demo with parsed arguments; exit code 0."""
    run(epochs=args.epochs, batch_size=args.batch_size, hidden=args.hidden, lr=args.lr,
        balance=args.balance, augment=not args.no_augment, seed=args.seed,
        progress=not args.no_progress)
    return 0
