"""UCI Adult and German credit: parsing, encoding, and download-and-cache against 127.0.0.1."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import numpy as np
import pytest

from invppl.datasets import (
    ChecksumError,
    DownloadError,
    TabularData,
    default_cache_dir,
    fetch,
    load_adult,
    load_german,
    sha256_of,
)
from invppl.datasets.uci import SHA256
from tests.datasets.conftest import Server


@pytest.fixture(scope="module")
def adult(uci_dir: Path) -> TabularData:
    return load_adult(uci_dir)


@pytest.fixture(scope="module")
def german(uci_dir: Path) -> TabularData:
    return load_german(uci_dir)


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --------------------------------------------------------------------------- Adult


def test_shared_files_match_the_module_checksums(uci_dir: Path) -> None:
    for name, digest in SHA256.items():
        assert sha256_of(uci_dir / name) == digest


def test_adult_row_counts(adult: TabularData, uci_dir: Path) -> None:
    assert adult.train.x.shape[0] + adult.dropped["train"] == 32561
    assert adult.test.x.shape[0] + adult.dropped["test"] == 16281
    assert adult.train.x.shape == (30162, 102)
    assert adult.test.x.shape == (15060, 102)
    # independent route: count complete rows and rich ones in the raw text
    lines = [
        line for line in (uci_dir / "adult.data").read_text().splitlines() if line.count(",") == 14
    ]
    complete = [line for line in lines if "?" not in line]
    assert len(complete) == 30162
    assert adult.train.y.sum() == sum(line.rstrip().endswith(">50K") for line in complete)


def test_adult_encoding(adult: TabularData) -> None:
    for split in (adult.train, adult.test):
        assert split.x.dtype == np.float32
        assert split.y.dtype == np.int32
        assert set(np.unique(split.y)) == {0, 1}
        assert split.sensitive["sex"].dtype == np.int32
    assert adult.continuous == (
        "age",
        "education-num",
        "capital-gain",
        "capital-loss",
        "hours-per-week",
    )
    assert "fnlwgt" not in adult.feature_names
    assert not any(name.startswith("sex") for name in adult.feature_names)
    assert len(adult.feature_names) == adult.train.x.shape[1]
    continuous = [adult.feature_names.index(name) for name in adult.continuous]
    np.testing.assert_allclose(adult.train.x[:, continuous].mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(adult.train.x[:, continuous].std(axis=0), 1.0, atol=1e-4)
    one_hot = np.delete(adult.train.x, continuous, axis=1)
    np.testing.assert_array_equal(one_hot.sum(axis=1), 7)  # one category per categorical column
    assert adult.mean[0] == pytest.approx(38.44, abs=0.01)  # mean age of complete training rows


def test_adult_proportions_are_plausible(adult: TabularData) -> None:
    assert adult.train.sensitive["sex"].mean() == pytest.approx(0.676, abs=0.01)  # ~2/3 male
    assert adult.test.sensitive["sex"].mean() == pytest.approx(0.675, abs=0.01)
    assert adult.train.y.mean() == pytest.approx(0.249, abs=0.01)
    assert adult.test.y.mean() == pytest.approx(0.246, abs=0.01)


def test_adult_can_keep_the_sensitive_column(uci_dir: Path) -> None:
    data = load_adult(uci_dir, include_sensitive=True)
    male = data.feature_names.index("sex=Male")
    np.testing.assert_array_equal(data.train.x[:, male], data.train.sensitive["sex"])


# --------------------------------------------------------------------------- German


def test_german_split_and_attributes(german: TabularData, uci_dir: Path) -> None:
    assert german.train.x.shape == (700, 57)
    assert german.test.x.shape == (300, 57)
    assert german.dropped == {"train": 0, "test": 0}
    rows = [line.split() for line in (uci_dir / "german.data").read_text().splitlines()]
    female = sum(row[8] in ("A92", "A95") for row in rows)
    good = sum(row[20] == "1" for row in rows)
    over_25 = sum(int(row[12]) > 25 for row in rows)
    both = (german.train, german.test)
    assert sum(int((1 - s.sensitive["sex"]).sum()) for s in both) == female == 310
    assert sum(int(s.y.sum()) for s in both) == good == 700
    assert sum(int(s.sensitive["age_over_25"].sum()) for s in both) == over_25
    assert "age" not in german.feature_names
    assert not any(name.startswith("personal_status_sex") for name in german.feature_names)
    continuous = [german.feature_names.index(name) for name in german.continuous]
    np.testing.assert_allclose(german.train.x[:, continuous].mean(axis=0), 0.0, atol=1e-4)


def test_german_split_is_seeded(uci_dir: Path, german: TabularData) -> None:
    again = load_german(uci_dir)
    np.testing.assert_array_equal(again.train.x, german.train.x)
    other = load_german(uci_dir, seed=1, test_fraction=0.2)
    assert other.test.x.shape[0] == 200
    assert not np.array_equal(other.train.y[:50], german.train.y[:50])


def test_german_bad_fraction(uci_dir: Path) -> None:
    with pytest.raises(ValueError, match="test_fraction must lie strictly between 0 and 1"):
        load_german(uci_dir, test_fraction=1.0)
    with pytest.raises(ValueError, match="leaves an empty split"):
        load_german(uci_dir, test_fraction=0.0001)


# --------------------------------------------------------------------------- bad files


def test_missing_folder_and_file(tmp_path: Path, uci_dir: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"data folder not found: .*nowhere"):
        load_adult(tmp_path / "nowhere")
    shutil.copy(uci_dir / "adult.data", tmp_path)
    with pytest.raises(FileNotFoundError, match=r"adult\.test not found in"):
        load_adult(tmp_path)


def test_truncated_adult_names_file_and_line(tmp_path: Path, uci_dir: Path) -> None:
    raw = (uci_dir / "adult.data").read_bytes()
    (tmp_path / "adult.data").write_bytes(raw[: len(raw) // 2])
    shutil.copy(uci_dir / "adult.test", tmp_path)
    line = raw[: len(raw) // 2].count(b"\n") + 1
    with pytest.raises(ValueError, match=rf"adult\.data, line {line}: expected 15 comma-separated"):
        load_adult(tmp_path)


def test_corrupt_adult_category(tmp_path: Path, uci_dir: Path) -> None:
    text = (uci_dir / "adult.test").read_text()
    (tmp_path / "adult.test").write_text(text.replace("Machine-op-inspct", "Martian", 1))
    shutil.copy(uci_dir / "adult.data", tmp_path)
    with pytest.raises(ValueError, match=r"adult\.test, line 2: column 'occupation' .*'Martian'"):
        load_adult(tmp_path)


def test_corrupt_german_number_and_label(tmp_path: Path, uci_dir: Path) -> None:
    lines = (uci_dir / "german.data").read_text().splitlines()
    lines[4] = lines[4].replace(" 24 ", " twenty-four ", 1)
    (tmp_path / "german.data").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"german\.data, line 5: column 'duration_months' should"):
        load_german(tmp_path)
    lines = (uci_dir / "german.data").read_text().splitlines()
    lines[9] = lines[9][:-1] + "3"
    (tmp_path / "german.data").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"german\.data, line 10: the credit label should be 1"):
        load_german(tmp_path)


def test_non_text_file(tmp_path: Path) -> None:
    (tmp_path / "german.data").write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(ValueError, match=r"german\.data: not an ASCII text file"):
        load_german(tmp_path)


# --------------------------------------------------------------------------- download and cache


def test_default_cache_dir_follows_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("INVPPL_CACHE", str(tmp_path / "root"))
    assert default_cache_dir() == tmp_path / "root" / "uci"


def test_download_once_then_use_the_cache(
    serve: Callable[..., Server], uci_dir: Path, tmp_path: Path, adult: TabularData
) -> None:
    server = serve(uci_dir)
    cache = tmp_path / "cache"
    first = load_adult(cache_dir=cache, url=server.url)
    assert sorted(server.requests) == ["/adult.data", "/adult.test"]
    assert listing(cache) == ["adult.data", "adult.test"]
    assert sha256_of(cache / "adult.data") == SHA256["adult.data"]
    second = load_adult(cache_dir=cache, url=server.url)
    assert len(server.requests) == 2  # served from the cache
    np.testing.assert_array_equal(first.train.x, adult.train.x)
    np.testing.assert_array_equal(second.test.y, adult.test.y)
    assert first.source == str(cache)


def test_cache_dir_from_the_environment(
    serve: Callable[..., Server], uci_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INVPPL_CACHE", str(tmp_path / "env-cache"))
    server = serve(uci_dir)
    data = load_german(url=server.url)
    assert data.train.x.shape == (700, 57)
    assert listing(tmp_path / "env-cache" / "uci") == ["german.data"]


def test_download_false_does_not_download(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not in the cache and download=False"):
        load_german(cache_dir=tmp_path, download=False)
    assert listing(tmp_path) == []


def test_corrupt_cached_file_is_reported(tmp_path: Path, uci_dir: Path) -> None:
    data = bytearray((uci_dir / "german.data").read_bytes())
    data[100] ^= 1
    (tmp_path / "german.data").write_bytes(bytes(data))
    with pytest.raises(
        ChecksumError,
        match=rf"cached file .*german\.data .*expected sha256 {SHA256['german.data']}",
    ):
        load_german(cache_dir=tmp_path, url="http://127.0.0.1:9/")


def make_handler(body: bytes, declared: int | None = None) -> type[BaseHTTPRequestHandler]:
    """A handler that answers every GET with ``body``, claiming ``declared`` bytes."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self.server.requests.append(self.path)  # type: ignore[attr-defined]
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body) if declared is None else declared))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            self.close_connection = True

    return Handler


@pytest.mark.parametrize("damage", ["truncated", "flipped byte"])
def test_wrong_bytes_fail_the_checksum_and_leave_nothing(
    serve: Callable[..., Server], uci_dir: Path, tmp_path: Path, damage: str
) -> None:
    raw = bytearray((uci_dir / "german.data").read_bytes())
    if damage == "truncated":
        body = bytes(raw[: len(raw) // 3])
    else:
        raw[5000] ^= 0x20
        body = bytes(raw)
    server = serve(handler=make_handler(body))
    cache = tmp_path / "cache"
    with pytest.raises(
        ChecksumError,
        match=rf"german\.data .*expected sha256 {SHA256['german.data']}, got [0-9a-f]{{64}}",
    ):
        load_german(cache_dir=cache, url=server.url)
    assert listing(cache) == []


def test_dropped_connection_leaves_nothing(
    serve: Callable[..., Server], uci_dir: Path, tmp_path: Path
) -> None:
    raw = (uci_dir / "german.data").read_bytes()
    server = serve(handler=make_handler(raw[:20000], declared=len(raw)))
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError, match=rf"closed after 20000 of {len(raw)} bytes"):
        load_german(cache_dir=cache, url=server.url)
    assert listing(cache) == []


def test_http_404_is_a_clear_error(serve: Callable[..., Server], tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    server = serve(empty)
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError, match=r"german\.data failed: HTTP 404"):
        load_german(cache_dir=cache, url=server.url)
    assert server.requests == ["/german.data"]
    assert listing(cache) == []


def test_refused_connection_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(
        DownloadError, match=r"downloading http://127\.0\.0\.1:9/german\.data failed"
    ):
        fetch("german.data", url="http://127.0.0.1:9/", cache_dir=tmp_path / "cache")
    assert listing(tmp_path / "cache") == []


def test_fetch_rejects_odd_urls_and_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="http, https or file URL"):
        fetch("german.data", url="ftp://127.0.0.1/", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="plain file name"):
        fetch("../german.data", url="http://127.0.0.1:9/", cache_dir=tmp_path, sha256="0" * 64)
    with pytest.raises(ValueError, match="no known checksum"):
        fetch("other.csv", url="http://127.0.0.1:9/", cache_dir=tmp_path)


def test_file_urls_work_too(uci_dir: Path, tmp_path: Path) -> None:
    path = fetch("german.data", url=uci_dir.as_uri(), cache_dir=tmp_path)
    assert path == tmp_path / "german.data"
    assert sha256_of(path) == SHA256["german.data"]


def test_the_guard_blocks_other_addresses(tmp_path: Path) -> None:
    """The autouse fixture refuses any address but 127.0.0.1 (TEST-NET-1 here, never reached)."""
    with pytest.raises(AssertionError, match="tried to connect to"):
        load_german(cache_dir=tmp_path / "cache", url="http://192.0.2.1/")
    assert listing(tmp_path / "cache") == []
