"""UCI Adult and German credit, as numeric matrices with sensitive attributes.

Where the files come from
-------------------------
``load_adult(path)`` / ``load_german(path)`` read the original files from the
folder ``path``. Without a path they are taken from a cache folder (by default
``$INVPPL_CACHE/uci``, with ``INVPPL_CACHE`` defaulting to
``~/.cache/invppl``) and, if missing there, downloaded once from the UCI
Machine Learning Repository (CC BY 4.0). A download goes to a temporary file
in the cache folder, is checked against the SHA-256 in :data:`SHA256`, and only
then renamed into place, so a failed or corrupted download leaves nothing
behind. Files read from the cache are checked against the same checksums on
every load. Files read from a user ``path`` are not required to match the
checksums (a subset is fine) but are parsed strictly: a malformed or truncated
line raises a :class:`ValueError` naming the file and line.

What comes out
--------------
Categorical columns are one-hot encoded over the categories listed in the
data sets' documentation (a category absent from the data gives a column of
zeros); continuous columns are standardised with the *training* split's mean
and standard deviation. The columns that carry a sensitive attribute are left
out of the features unless ``include_sensitive=True``.

Adult (Becker & Kohavi 1996): 32,561 training rows (``adult.data``) and 16,281
test rows (``adult.test``, whose first line ``|1x3 Cross validator`` is
skipped and whose labels end in a period). Rows with a missing value (``?``)
are dropped, leaving 30,162 and 15,060; the counts are reported in
``dropped``. ``fnlwgt``, a census sampling weight rather than an attribute of
the person, is not used. y = 1 for income >50K. Sensitive attribute ``sex``
(1 male, 0 female).

German credit (Hofmann 1994): 1,000 rows of ``german.data``, space separated
with coded categories (A11, ...), no missing values, split into train and test
by a seeded permutation. y = 1 for good credit (code 1), 0 for bad (code 2).
Sensitive attributes ``sex`` (1 male, 0 female), read from column 9
(A91 male divorced/separated, A92 female divorced/separated/married, A93 male
single, A94 male married/widowed, A95 female single), and ``age_over_25``
(1 if age > 25). Column 9 also holds marital status; it is left out of the
features with ``age`` unless ``include_sensitive=True``.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from invppl.datasets._checks import check_finite_scalar, check_seed

__all__ = [
    "ADULT_URL",
    "GERMAN_URL",
    "SHA256",
    "ChecksumError",
    "DownloadError",
    "TabularData",
    "TabularSplit",
    "default_cache_dir",
    "fetch",
    "load_adult",
    "load_german",
    "sha256_of",
]

ADULT_URL = "https://archive.ics.uci.edu/ml/machine-learning-databases/adult/"
"""Folder URL of the Adult files (``adult.data``, ``adult.test``)."""

GERMAN_URL = "https://archive.ics.uci.edu/ml/machine-learning-databases/statlog/german/"
"""Folder URL of the German credit file (``german.data``)."""

SHA256: dict[str, str] = {
    "adult.data": "5b00264637dbfec36bdeaab5676b0b309ff9eb788d63554ca0a249491c86603d",
    "adult.test": "a2a9044bc167a35b2361efbabec64e89d69ce82d9790d2980119aac5fd7e9c05",
    "german.data": "b21f3d81db8071257d5ff1deaeba1fd4303b62712e6fcc9715c7a86202cb5871",
}
"""SHA-256 of each file as distributed by UCI."""

_CHUNK = 1 << 16


class ChecksumError(ValueError):
    """A file's SHA-256 is not the one expected."""


class DownloadError(OSError):
    """A download failed (HTTP error, refused or dropped connection)."""


@dataclass(frozen=True)
class TabularSplit:
    """One split of a tabular data set.

    Attributes
    ----------
    x
        Shape ``(n, n_features)``, float32 features.
    y
        Shape ``(n,)``, int32 binary targets.
    sensitive
        Mapping attribute name → shape ``(n,)`` int32 binary attribute.
    """

    x: np.ndarray
    y: np.ndarray
    sensitive: Mapping[str, np.ndarray]


@dataclass(frozen=True)
class TabularData:
    """A tabular data set with a train/test split.

    Attributes
    ----------
    train, test
        The two :class:`TabularSplit`.
    feature_names
        ``n_features`` column names: a continuous column's own name, or
        ``"column=category"`` for a one-hot column.
    continuous
        Names of the standardised continuous columns.
    mean, std
        Shape ``(len(continuous),)``, float64 training means and standard
        deviations used to standardise them (a zero deviation is replaced by 1).
    dropped
        Rows dropped for missing values, per split (``"train"``, ``"test"``).
    source
        The folder the files were read from.
    """

    train: TabularSplit
    test: TabularSplit
    feature_names: tuple[str, ...]
    continuous: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    dropped: Mapping[str, int]
    source: str


# --------------------------------------------------------------------------- files


def default_cache_dir() -> Path:
    """``$INVPPL_CACHE/uci``, with ``INVPPL_CACHE`` defaulting to ``~/.cache/invppl``."""
    root = os.environ.get("INVPPL_CACHE") or "~/.cache/invppl"
    return Path(root).expanduser() / "uci"


def sha256_of(path: str | os.PathLike[str]) -> str:
    """The hexadecimal SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _download(source: str, target: Path, expected: str, timeout: float) -> None:
    """Downloads ``source`` to a temporary file beside ``target``, checks it, renames it."""
    handle, temporary = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=".part", dir=target.parent
    )
    try:
        digest = hashlib.sha256()
        received = 0
        with os.fdopen(handle, "wb") as out:
            try:
                response = urllib.request.urlopen(source, timeout=timeout)
            except urllib.error.HTTPError as error:
                error.close()
                raise DownloadError(
                    f"downloading {source} failed: HTTP {error.code} {error.reason}"
                ) from None
            except (urllib.error.URLError, OSError) as error:
                reason = getattr(error, "reason", error)
                raise DownloadError(f"downloading {source} failed: {reason}") from error
            with response:
                declared = response.headers.get("Content-Length")
                try:
                    while chunk := response.read(_CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        received += len(chunk)
                except (OSError, http.client.HTTPException) as error:
                    raise DownloadError(
                        f"downloading {source} failed after {received} bytes: {error!r}"
                    ) from error
        if declared is not None and declared.isdigit() and received != int(declared):
            raise DownloadError(
                f"downloading {source} failed: the connection closed after {received} of "
                f"{declared} bytes; nothing was cached"
            )
        got = digest.hexdigest()
        if got != expected:
            raise ChecksumError(
                f"downloaded {target.name} from {source} has the wrong checksum: expected "
                f"sha256 {expected}, got {got} ({received} bytes); nothing was cached"
            )
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def fetch(
    filename: str,
    *,
    url: str,
    cache_dir: str | os.PathLike[str] | None = None,
    sha256: str | None = None,
    download: bool = True,
    timeout: float = 60.0,
) -> Path:
    """The path of a checksummed file in the cache, downloading it first if needed.

    Parameters
    ----------
    filename
        The file's name, both in the cache and at ``url``.
    url
        The folder URL to download from (``http``, ``https`` or ``file``);
        the file is fetched from ``url`` + ``filename``.
    cache_dir
        The cache folder; default :func:`default_cache_dir`.
    sha256
        The expected hexadecimal SHA-256; default ``SHA256[filename]``.
    download
        If false, a file missing from the cache raises instead of downloading.
    timeout
        Seconds to wait on the connection.

    Returns
    -------
    pathlib.Path
        The cached file, its checksum verified.

    Raises
    ------
    ChecksumError
        If the cached or downloaded file's checksum differs (a bad download is
        removed; a bad cached file is left for you to inspect and delete).
    DownloadError
        If the server answers with an error or the connection fails or drops.
    FileNotFoundError
        If the file is not cached and ``download`` is false.
    """
    if sha256 is None:
        if filename not in SHA256:
            raise ValueError(f"no known checksum for {filename!r}; pass sha256=")
        sha256 = SHA256[filename]
    if Path(filename).name != filename or filename in ("", ".", ".."):
        raise ValueError(f"filename must be a plain file name, got {filename!r}")
    directory = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    target = directory / filename
    if target.is_file():
        got = sha256_of(target)
        if got != sha256:
            raise ChecksumError(
                f"cached file {target} has the wrong checksum: expected sha256 {sha256}, got "
                f"{got}; delete it to download it again"
            )
        return target
    if not download:
        raise FileNotFoundError(f"{target} is not in the cache and download=False")
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("http", "https", "file"):
        raise ValueError(f"url must be an http, https or file URL, got {url!r}")
    timeout = check_finite_scalar(timeout, "timeout")
    source = url.rstrip("/") + "/" + urllib.parse.quote(filename)
    directory.mkdir(parents=True, exist_ok=True)
    _download(source, target, sha256, timeout)
    return target


def _locate(
    filenames: Sequence[str],
    path: str | os.PathLike[str] | None,
    cache_dir: str | os.PathLike[str] | None,
    url: str,
    download: bool,
) -> dict[str, Path]:
    if path is not None:
        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise FileNotFoundError(f"data folder not found: {folder}")
        found = {}
        for name in filenames:
            if not (folder / name).is_file():
                raise FileNotFoundError(f"{name} not found in {folder}: expected {folder / name}")
            found[name] = folder / name
        return found
    return {
        name: fetch(name, url=url, cache_dir=cache_dir, download=download) for name in filenames
    }


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="ascii").splitlines()
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not an ASCII text file ({error})") from None


# --------------------------------------------------------------------------- parsing

Column = tuple[str, tuple[str, ...] | None]  # name, categories (None: continuous)


def _parse_field(path: Path, number: int, column: Column, field: str) -> str | float:
    name, categories = column
    if categories is None:
        try:
            return float(field)
        except ValueError:
            raise ValueError(
                f"{path}, line {number}: column {name!r} should be a number, got {field!r}"
            ) from None
    if field not in categories:
        raise ValueError(
            f"{path}, line {number}: column {name!r} has unknown value {field!r}; "
            f"expected one of {list(categories)}"
        )
    return field


@dataclass(frozen=True)
class _Table:
    rows: list[list[str | float]]
    labels: np.ndarray
    missing: int


def _encode(
    columns: Sequence[Column],
    used: Sequence[str],
    train: _Table,
    tables: Sequence[_Table],
) -> tuple[list[np.ndarray], tuple[str, ...], tuple[str, ...], np.ndarray, np.ndarray]:
    """One-hot/standardise the ``used`` columns of each table with train statistics."""
    index = {name: i for i, (name, _) in enumerate(columns)}
    continuous = tuple(name for name, cats in columns if cats is None and name in used)
    train_values = np.array(
        [[row[index[name]] for name in continuous] for row in train.rows], dtype=np.float64
    ).reshape(len(train.rows), len(continuous))
    mean = train_values.mean(axis=0)
    std = train_values.std(axis=0)
    std = np.where(std > 0, std, 1.0)

    names: list[str] = []
    for name, categories in columns:
        if name not in used:
            continue
        if categories is None:
            names.append(name)
        else:
            names.extend(f"{name}={category}" for category in categories)

    matrices = []
    for table in tables:
        blocks = []
        for name, categories in columns:
            if name not in used:
                continue
            values = [row[index[name]] for row in table.rows]
            if categories is None:
                column = (np.asarray(values, dtype=np.float64) - mean[continuous.index(name)]) / (
                    std[continuous.index(name)]
                )
                blocks.append(column[:, None])
            else:
                lookup = {category: k for k, category in enumerate(categories)}
                codes = np.asarray([lookup[v] for v in values], dtype=np.int64)  # type: ignore[index]
                blocks.append(np.eye(len(categories))[codes])
        matrix = np.concatenate(blocks, axis=1) if blocks else np.zeros((len(table.rows), 0))
        matrices.append(matrix.astype(np.float32))
    return matrices, tuple(names), continuous, mean, std


ADULT_COLUMNS: tuple[Column, ...] = (
    ("age", None),
    (
        "workclass",
        (
            "Private",
            "Self-emp-not-inc",
            "Self-emp-inc",
            "Federal-gov",
            "Local-gov",
            "State-gov",
            "Without-pay",
            "Never-worked",
        ),
    ),
    ("fnlwgt", None),
    (
        "education",
        (
            "Bachelors",
            "Some-college",
            "11th",
            "HS-grad",
            "Prof-school",
            "Assoc-acdm",
            "Assoc-voc",
            "9th",
            "7th-8th",
            "12th",
            "Masters",
            "1st-4th",
            "10th",
            "Doctorate",
            "5th-6th",
            "Preschool",
        ),
    ),
    ("education-num", None),
    (
        "marital-status",
        (
            "Married-civ-spouse",
            "Divorced",
            "Never-married",
            "Separated",
            "Widowed",
            "Married-spouse-absent",
            "Married-AF-spouse",
        ),
    ),
    (
        "occupation",
        (
            "Tech-support",
            "Craft-repair",
            "Other-service",
            "Sales",
            "Exec-managerial",
            "Prof-specialty",
            "Handlers-cleaners",
            "Machine-op-inspct",
            "Adm-clerical",
            "Farming-fishing",
            "Transport-moving",
            "Priv-house-serv",
            "Protective-serv",
            "Armed-Forces",
        ),
    ),
    (
        "relationship",
        ("Wife", "Own-child", "Husband", "Not-in-family", "Other-relative", "Unmarried"),
    ),
    ("race", ("White", "Asian-Pac-Islander", "Amer-Indian-Eskimo", "Other", "Black")),
    ("sex", ("Female", "Male")),
    ("capital-gain", None),
    ("capital-loss", None),
    ("hours-per-week", None),
    (
        "native-country",
        (
            "United-States",
            "Cambodia",
            "England",
            "Puerto-Rico",
            "Canada",
            "Germany",
            "Outlying-US(Guam-USVI-etc)",
            "India",
            "Japan",
            "Greece",
            "South",
            "China",
            "Cuba",
            "Iran",
            "Honduras",
            "Philippines",
            "Italy",
            "Poland",
            "Jamaica",
            "Vietnam",
            "Mexico",
            "Portugal",
            "Ireland",
            "France",
            "Dominican-Republic",
            "Laos",
            "Ecuador",
            "Taiwan",
            "Haiti",
            "Columbia",
            "Hungary",
            "Guatemala",
            "Nicaragua",
            "Scotland",
            "Thailand",
            "Yugoslavia",
            "El-Salvador",
            "Trinadad&Tobago",
            "Peru",
            "Hong",
            "Holand-Netherlands",
        ),
    ),
)
"""Adult's 14 attribute columns with their documented categories (adult.names)."""


def _parse_adult(path: Path) -> _Table:
    rows: list[list[str | float]] = []
    labels: list[int] = []
    missing = 0
    for number, line in enumerate(_read_lines(path), start=1):
        text = line.strip()
        if not text or text.startswith("|"):
            continue
        fields = [field.strip() for field in text.split(",")]
        if len(fields) != len(ADULT_COLUMNS) + 1:
            raise ValueError(
                f"{path}, line {number}: expected {len(ADULT_COLUMNS) + 1} comma-separated "
                f"fields, got {len(fields)} (truncated or corrupt file?)"
            )
        label = fields[-1].removesuffix(".")
        if label not in ("<=50K", ">50K"):
            raise ValueError(
                f"{path}, line {number}: income should be '<=50K' or '>50K', got {fields[-1]!r}"
            )
        if "?" in fields:
            missing += 1
            continue
        rows.append(
            [
                _parse_field(path, number, column, field)
                for column, field in zip(ADULT_COLUMNS, fields, strict=False)
            ]
        )
        labels.append(int(label == ">50K"))
    if not rows:
        raise ValueError(f"{path}: no complete data rows found")
    return _Table(rows, np.asarray(labels, dtype=np.int32), missing)


def _tabular(
    columns: Sequence[Column],
    excluded: set[str],
    train: _Table,
    test: _Table,
    split: Callable[[_Table, np.ndarray], TabularSplit],
    source: Path,
) -> TabularData:
    """The data set: the columns not ``excluded`` encoded with train statistics, then split.

    ``split(table, x)`` builds a :class:`TabularSplit` (targets and sensitive
    attributes) from a table and its encoded features ``(n, n_features)``.
    """
    used = [name for name, _ in columns if name not in excluded]
    (x_train, x_test), names, continuous, mean, std = _encode(columns, used, train, (train, test))
    return TabularData(
        train=split(train, x_train),
        test=split(test, x_test),
        feature_names=names,
        continuous=continuous,
        mean=mean,
        std=std,
        dropped={"train": train.missing, "test": test.missing},
        source=str(source),
    )


def _adult_split(table: _Table, x: np.ndarray) -> TabularSplit:
    sex = ADULT_COLUMNS.index(("sex", ("Female", "Male")))
    male = np.asarray([row[sex] == "Male" for row in table.rows], dtype=np.int32)
    return TabularSplit(x=x, y=table.labels, sensitive={"sex": male})


def load_adult(
    path: str | os.PathLike[str] | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    url: str | None = None,
    download: bool = True,
    include_sensitive: bool = False,
) -> TabularData:
    """Loads UCI Adult (census income); see the module docstring for the encoding.

    Parameters
    ----------
    path
        A folder holding ``adult.data`` and ``adult.test``. If omitted, the
        cache is used (and filled from ``url`` if needed).
    cache_dir
        The cache folder; default ``$INVPPL_CACHE/uci`` (``~/.cache/invppl/uci``).
    url
        Folder URL to download from; default :data:`ADULT_URL`.
    download
        If false, files missing from the cache raise instead of downloading.
    include_sensitive
        Keep the ``sex`` column among the features too.

    Returns
    -------
    TabularData
        Train (30,162 rows) and test (15,060 rows) splits after dropping rows
        with missing values; with ``include_sensitive=False``, 102 features
        (5 standardised continuous, 97 one-hot).

    Raises
    ------
    FileNotFoundError
        If ``path`` or a file in it is missing.
    ValueError
        If a file cannot be parsed (the message names file and line);
        :class:`ChecksumError` if a cached or downloaded file is corrupt.
    DownloadError
        If a needed download fails.
    """
    files = _locate(("adult.data", "adult.test"), path, cache_dir, url or ADULT_URL, download)
    train = _parse_adult(files["adult.data"])
    test = _parse_adult(files["adult.test"])
    excluded = {"fnlwgt"} | (set() if include_sensitive else {"sex"})
    return _tabular(ADULT_COLUMNS, excluded, train, test, _adult_split, files["adult.data"].parent)


def _codes(prefix: str, first: int, last: int) -> tuple[str, ...]:
    return tuple(f"{prefix}{k}" for k in range(first, last + 1))


GERMAN_COLUMNS: tuple[Column, ...] = (
    ("checking_status", _codes("A1", 1, 4)),
    ("duration_months", None),
    ("credit_history", _codes("A3", 0, 4)),
    ("purpose", (*_codes("A4", 0, 9), "A410")),
    ("credit_amount", None),
    ("savings", _codes("A6", 1, 5)),
    ("employment_since", _codes("A7", 1, 5)),
    ("installment_rate", None),
    ("personal_status_sex", _codes("A9", 1, 5)),
    ("other_debtors", _codes("A10", 1, 3)),
    ("residence_since", None),
    ("property", _codes("A12", 1, 4)),
    ("age", None),
    ("other_installment_plans", _codes("A14", 1, 3)),
    ("housing", _codes("A15", 1, 3)),
    ("existing_credits", None),
    ("job", _codes("A17", 1, 4)),
    ("people_liable", None),
    ("telephone", _codes("A19", 1, 2)),
    ("foreign_worker", _codes("A20", 1, 2)),
)
"""German credit's 20 attribute columns with their documented codes (german.doc)."""

_GERMAN_MALE = frozenset({"A91", "A93", "A94"})


def _parse_german(path: Path) -> _Table:
    rows: list[list[str | float]] = []
    labels: list[int] = []
    for number, line in enumerate(_read_lines(path), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != len(GERMAN_COLUMNS) + 1:
            raise ValueError(
                f"{path}, line {number}: expected {len(GERMAN_COLUMNS) + 1} space-separated "
                f"fields, got {len(fields)} (truncated or corrupt file?)"
            )
        if fields[-1] not in ("1", "2"):
            raise ValueError(
                f"{path}, line {number}: the credit label should be 1 (good) or 2 (bad), "
                f"got {fields[-1]!r}"
            )
        rows.append(
            [
                _parse_field(path, number, column, field)
                for column, field in zip(GERMAN_COLUMNS, fields, strict=False)
            ]
        )
        labels.append(int(fields[-1] == "1"))
    if not rows:
        raise ValueError(f"{path}: no data rows found")
    return _Table(rows, np.asarray(labels, dtype=np.int32), 0)


def _random_split(table: _Table, test_fraction: float, seed: int) -> tuple[_Table, _Table]:
    """``(train, test)``: a ``default_rng(seed)`` permutation's first ``test_fraction`` is test.

    Each split keeps the rows in file order.

    Raises:
        ValueError: the fraction leaves a split empty.
    """
    n = len(table.rows)
    n_test = round(test_fraction * n)
    if not 0 < n_test < n:
        raise ValueError(
            f"test_fraction {test_fraction} of {n} rows leaves an empty split ({n_test} test rows)"
        )
    order = np.random.default_rng(seed).permutation(n)
    test_rows, train_rows = np.sort(order[:n_test]), np.sort(order[n_test:])

    def subset(rows: np.ndarray) -> _Table:
        return _Table([table.rows[i] for i in rows], table.labels[rows], 0)

    return subset(train_rows), subset(test_rows)


_GERMAN_STATUS = [name for name, _ in GERMAN_COLUMNS].index("personal_status_sex")
_GERMAN_AGE = [name for name, _ in GERMAN_COLUMNS].index("age")


def _german_split(table: _Table, x: np.ndarray) -> TabularSplit:
    """German credit's split with its sensitive ``sex`` and ``age_over_25``, each ``(n,)`` int32."""
    sex = np.asarray([row[_GERMAN_STATUS] in _GERMAN_MALE for row in table.rows], dtype=np.int32)
    older = np.asarray([float(row[_GERMAN_AGE]) > 25 for row in table.rows], dtype=np.int32)
    return TabularSplit(x=x, y=table.labels, sensitive={"sex": sex, "age_over_25": older})


def load_german(
    path: str | os.PathLike[str] | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    url: str | None = None,
    download: bool = True,
    include_sensitive: bool = False,
    test_fraction: float = 0.3,
    seed: int = 0,
) -> TabularData:
    """Loads UCI German credit (Statlog); see the module docstring for the encoding.

    Parameters
    ----------
    path
        A folder holding ``german.data``. If omitted, the cache is used (and
        filled from ``url`` if needed).
    cache_dir
        The cache folder; default ``$INVPPL_CACHE/uci`` (``~/.cache/invppl/uci``).
    url
        Folder URL to download from; default :data:`GERMAN_URL`.
    download
        If false, a file missing from the cache raises instead of downloading.
    include_sensitive
        Keep the ``personal_status_sex`` and ``age`` columns among the features.
    test_fraction
        Fraction of rows in the test split, strictly between 0 and 1.
    seed
        Seed of the ``numpy.random.default_rng`` permutation that splits the rows.

    Returns
    -------
    TabularData
        Train and test splits (700 and 300 rows by default); with
        ``include_sensitive=False``, 57 features (6 standardised continuous,
        51 one-hot). ``dropped`` is zero: the file has no missing values.

    Raises
    ------
    FileNotFoundError
        If ``path`` or ``german.data`` in it is missing.
    ValueError
        If ``test_fraction`` leaves a split empty, or the file cannot be
        parsed (the message names file and line); :class:`ChecksumError` if a
        cached or downloaded file is corrupt.
    DownloadError
        If a needed download fails.
    """
    test_fraction = check_finite_scalar(test_fraction, "test_fraction")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}")
    seed = check_seed(seed)
    files = _locate(("german.data",), path, cache_dir, url or GERMAN_URL, download)
    train, test = _random_split(_parse_german(files["german.data"]), test_fraction, seed)
    excluded = set() if include_sensitive else {"personal_status_sex", "age"}
    return _tabular(
        GERMAN_COLUMNS, excluded, train, test, _german_split, files["german.data"].parent
    )
