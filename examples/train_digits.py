"""The basic training loop: shuffled mini-batches in, ``batch_map_mean`` evaluation out.

A small NumPy MLP (``batchup.demo.MLP``) learns the 8x8 digits shipped with
batchup. Each epoch iterates ``ArrayDataSource([X, y]).batch_iterator(...)``
with a seeded shuffle, takes one SGD step per batch, and then measures the
validation loss and accuracy with ``batch_map_mean``, which averages per-batch
sums over every sample. The test accuracy is measured the same way at the end.

    python examples/train_digits.py
    python examples/train_digits.py --epochs 5 --batch-size 64 --seed 1
"""

import argparse

import numpy as np

from batchup import data_source
from batchup.datasets import digits
from batchup.demo import MLP


def evaluate(model, ds, batch_size=256):
    """Mean cross-entropy and accuracy of ``model`` over every sample of ``ds``.

    Parameters
    ----------
    model : batchup.demo.MLP
        The network; its ``loss_and_errors`` returns per-batch *sums*.
    ds : batchup.data_source.ArrayDataSource
        Images and labels.
    batch_size : int
        Samples per evaluation batch (any size gives the same result).

    Returns
    -------
    tuple of float
        (mean loss, accuracy).
    """
    # batch_map_mean adds the sums of all batches and divides by the number of
    # samples, so a short last batch is weighted correctly.
    loss, error = ds.batch_map_mean(model.loss_and_errors, batch_size=batch_size)
    return float(loss), 1.0 - float(error)


def main(argv=None):
    """Train for ``--epochs`` epochs, printing losses and accuracies; return the test accuracy."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10,
                        help="passes over the training set (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=32,
                        help="samples per training batch (default: %(default)s)")
    parser.add_argument("--hidden", type=int, default=64,
                        help="units in the hidden layer (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=0.05,
                        help="SGD learning rate (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the weights and of the shuffling (default: %(default)s)")
    args = parser.parse_args(argv)

    d = digits.Digits(n_val=200)
    print(f"digits: {len(d.train_y)} training, {len(d.val_y)} validation, "
          f"{len(d.test_y)} test images of {d.train_X.shape[1:]}")
    train_ds = data_source.ArrayDataSource([d.train_X, d.train_y])
    val_ds = data_source.ArrayDataSource([d.val_X, d.val_y])
    test_ds = data_source.ArrayDataSource([d.test_X, d.test_y])

    model = MLP(64, args.hidden, 10, np.random.default_rng(args.seed))
    for epoch in range(1, args.epochs + 1):
        # An int seed alone gives the same order every time; (seed, epoch) gives each
        # epoch its own order, and a rerun with the same seed the same batches.
        batches = train_ds.batch_iterator(args.batch_size, shuffle=(args.seed, epoch))
        losses = [model.train_step(batch_X, batch_y, lr=args.lr) for batch_X, batch_y in batches]
        val_loss, val_acc = evaluate(model, val_ds)
        print(f"epoch {epoch:2d}  train loss {np.mean(losses):.4f}  "
              f"val loss {val_loss:.4f}  val accuracy {val_acc:.2%}")

    test_loss, test_acc = evaluate(model, test_ds)
    print(f"test loss {test_loss:.4f}  test accuracy {test_acc:.2%}")
    return test_acc


if __name__ == "__main__":
    main()
