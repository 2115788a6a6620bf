"""Training that can be killed and resumed with the same result, to the last bit.

A softmax classifier learns the shipped 8x8 digits for two epochs
(``repeats=2``: one iterator, the second epoch gets its own order) from
batches shuffled with an int seed and augmented in a ``.map`` function with
one generator per sample (``batchup.randomness.sample_rngs``). Every
``--every`` batches a checkpoint is written: the model's parameters and the
iterator's ``get_state()``, in one file, replaced atomically.

    python examples/resume_training.py                    # prints the final checksum
    python examples/resume_training.py --kill-after 57    # dies after batch 57 (os._exit)
    python examples/resume_training.py --resume           # same checksum as the first run

The resumed run redoes the batches done after the last checkpoint (51-57
above) and sees exactly the batches, order and augmentation the uninterrupted
run saw, so it ends with the same parameters and the same checksum.
"""

import argparse
import hashlib
import json
import os
import sys

import numpy as np

from batchup import data_source, randomness
from batchup.datasets import digits


def augment(X, y):
    """Shift each image by -1, 0 or +1 pixel sideways and add a little noise.

    ``sample_rngs()`` gives one generator per sample, keyed on (seed, epoch,
    sample index): a sample gets the same augmentation after a resume, and a
    new one in the next epoch.
    """
    out = np.empty_like(X)
    for i, g in enumerate(randomness.sample_rngs()):
        shifted = np.roll(X[i], g.integers(-1, 2), axis=-1)
        out[i] = shifted + g.normal(0.0, 0.05, size=X.shape[1:]).astype(X.dtype)
    return out, y


class Softmax:
    """Multinomial logistic regression trained by plain SGD (float64)."""

    def __init__(self, n_in, n_out):
        self.W = np.zeros((n_in, n_out))
        self.b = np.zeros(n_out)

    def proba(self, X):
        logits = X.reshape(len(X), -1).astype(np.float64) @ self.W + self.b
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def step(self, X, y, lr):
        """One SGD step; returns the batch's mean cross-entropy."""
        p = self.proba(X)
        loss = -np.log(p[np.arange(len(y)), y] + 1e-12).mean()
        p[np.arange(len(y)), y] -= 1.0
        p /= len(y)
        self.W -= lr * (X.reshape(len(X), -1).astype(np.float64).T @ p)
        self.b -= lr * p.sum(axis=0)
        return loss


def save_checkpoint(path, model, it, done, digest):
    """Parameters, batches done, data digest and iterator position; atomically."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        np.savez(f, W=model.W, b=model.b, done=done, digest=digest,
                 iterator=json.dumps(it.get_state()))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)  # a kill leaves either the old checkpoint or the new one


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="resume_training.ckpt.npz")
    parser.add_argument("--every", type=int, default=10, help="checkpoint every N batches")
    parser.add_argument("--kill-after", type=int, default=0, metavar="N",
                        help="exit abruptly (os._exit) right after batch N")
    parser.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)

    d = digits.Digits(n_val=0)
    ds = data_source.ArrayDataSource([d.train_X, d.train_y], repeats=args.epochs)
    ds = ds.map(augment)
    total = ds.num_batches(args.batch_size)
    model = Softmax(64, 10)
    done, digest = 0, b""
    state = None
    if args.resume:
        if not os.path.exists(args.checkpoint):
            parser.error(f"no checkpoint at {args.checkpoint}")
        with np.load(args.checkpoint) as ckpt:
            model.W, model.b = ckpt["W"], ckpt["b"]
            done, digest = int(ckpt["done"]), bytes.fromhex(str(ckpt["digest"]))
            state = json.loads(str(ckpt["iterator"]))
        print(f"resumed after batch {done} of {total}")

    it = ds.batch_iterator(args.batch_size, shuffle=args.seed, state=state)
    losses = []
    for X, y in it:
        losses.append(model.step(X, y, lr=1.0))
        done += 1
        # A digest of every batch trained on, in order (augmented pixels included).
        digest = hashlib.sha256(digest + X.tobytes() + y.tobytes()).digest()
        if done % args.every == 0 or done == total:
            save_checkpoint(args.checkpoint, model, it, done, digest.hex())
            print(f"batch {done:3d}/{total}: mean loss {np.mean(losses):.3f}, checkpoint saved")
            losses = []
        if done == args.kill_after:
            print(f"batch {done}: exiting abruptly, without saving", flush=True)
            os._exit(1)  # no clean-up at all, as if the process had been killed

    (proba,) = data_source.ArrayDataSource([d.test_X]).batch_map_concat(model.proba, 256)
    accuracy = float((proba.argmax(axis=1) == d.test_y).mean())
    final = hashlib.sha256(digest + model.W.tobytes() + model.b.tobytes()).hexdigest()[:16]
    print(f"test accuracy {accuracy:.2%}")
    print(f"checksum {final}")
    sys.stdout.flush()
    return final


if __name__ == "__main__":
    main()
