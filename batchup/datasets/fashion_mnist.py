"""Fashion-MNIST (Zalando's 28x28 clothing images, MNIST layout).

Converted once to ``<data>/fashion-mnist.h5`` (HDF5 group ``/mnist``).

Examples
--------
>>> from batchup.datasets import fashion_mnist
>>> ds = fashion_mnist.FashionMNIST(n_val=10000)  # doctest: +SKIP
>>> ds.class_names[0]  # doctest: +SKIP
'T-shirt/top'
"""

from __future__ import annotations

from batchup.datasets import dataset, mnist

H5_FILENAME = "fashion-mnist.h5"
CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot"]


@dataset.fetch_and_convert_dataset(mnist._sources("fashion_mnist"), H5_FILENAME, mnist.NODES)
def fetch_fashion_mnist(source_paths, target_path):
    """Return the path of ``fashion-mnist.h5``, downloading and converting if needed.

    Examples
    --------
    >>> fetch_fashion_mnist()  # doctest: +SKIP
    """
    return mnist._convert_mnist("Fashion MNIST", target_path, *source_paths)


def delete_cache() -> list[str]:
    """Delete the converted Fashion-MNIST file.

    Examples
    --------
    >>> delete_cache()  # doctest: +SKIP
    """
    return dataset.delete_dataset_cache(H5_FILENAME)


class FashionMNIST(mnist.MNISTBase):
    """The Fashion-MNIST dataset; same attributes as :class:`~batchup.datasets.mnist.MNIST`.

    Also ``class_names`` (10 names, index = label).

    Examples
    --------
    >>> with FashionMNIST(n_val=0) as ds:  # doctest: +SKIP
    ...     ds.train_X.shape
    (60000, 1, 28, 28)
    """

    def __init__(self, n_val: int | None = 10000, val_lower: float = 0.0,
                 val_upper: float = 1.0):
        dataset.check_n_val(n_val)
        path = dataset.fetch_or_raise(fetch_fashion_mnist, "Could not load Fashion MNIST dataset")
        super().__init__(path, n_val, val_lower, val_upper)
        self.class_names = list(CLASS_NAMES)
