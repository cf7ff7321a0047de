"""Fetch the public real data sets (CDNOW, UCI Online Retail) in the form the shipped mappings read.

- ``cdnow``: Bruce Hardie's ``CDNOW_master.zip`` and ``CDNOW_sample.zip``, written as
  ``CDNOW_master.txt`` (with the header line the Lifetimes package added, which the ``cdnow``
  mapping reads) and ``CDNOW_sample.txt`` (no header, as published; mapping ``cdnow_sample``).
- ``online_retail``: UCI dataset 352 (``online+retail.zip`` holding ``Online Retail.xlsx``),
  written as ``online_retail.csv.gz`` (UTF-8 CSV, the mapping ``online_retail`` reads). Reading
  the ``.xlsx`` needs ``openpyxl`` (the ``data`` extra).

Each file is checked against its published row count before it is moved into place (written
to a temporary file in the output folder, then renamed), so a truncated download never leaves
a file behind. A machine that cannot reach the source fails with one line saying how to fetch
the archive by hand and pass its folder as ``mirror``. Nothing is downloaded on import.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


class DatasetError(RuntimeError):
    """A data set that cannot be fetched, read or verified; the message is one line."""


@dataclass(frozen=True)
class DataFile:
    """One published archive and the file made from it."""

    archive: str
    """Archive name at the source (appended to the base URL or the mirror folder)."""
    member: str
    """File inside the archive."""
    output: str
    """File written into the output folder."""
    rows: int
    """Published number of data rows (header excluded)."""
    sha256: str
    """sha256 of the reference copy in the team's shared data (reported, not required)."""
    convert: Callable[[bytes], bytes]
    """Archive member bytes -> output file bytes."""


@dataclass(frozen=True)
class FetchedFile:
    """What :func:`fetch_dataset` wrote for one file."""

    path: Path
    rows: int
    sha256: str
    matches_reference: bool
    """Whether the bytes equal the reference copy the READMEs describe."""


_CDNOW_HEADER = " customer_id  date number_of_cds  dollar_value"


def _cdnow_master(data: bytes) -> bytes:
    """Add the Lifetimes header line to Hardie's headerless master file (kept when present)."""
    if data.lstrip().lower().startswith(b"customer_id"):
        return data
    newline = b"\r\n" if b"\r\n" in data[:200] else b"\n"
    return _CDNOW_HEADER.encode("ascii") + newline + data


def _unchanged(data: bytes) -> bytes:
    """Return the member as published."""
    return data


def _online_retail(data: bytes) -> bytes:
    """Convert UCI's ``Online Retail.xlsx`` to gzip CSV as the shared README describes."""
    import pandas as pd

    try:
        frame = pd.read_excel(
            io.BytesIO(data), dtype={"InvoiceNo": str, "StockCode": str}, engine="openpyxl"
        )
    except ImportError as exc:
        raise DatasetError(
            "reading Online Retail.xlsx needs openpyxl: install the `data` extra "
            "(pip install 'customer-lifecycle[data]' or pip install openpyxl)"
        ) from exc
    except (ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"Online Retail.xlsx cannot be read: {exc}") from exc
    expected = [
        "InvoiceNo",
        "StockCode",
        "Description",
        "Quantity",
        "InvoiceDate",
        "UnitPrice",
        "CustomerID",
        "Country",
    ]
    if list(frame.columns) != expected:
        raise DatasetError(f"Online Retail.xlsx has columns {list(frame.columns)}, not {expected}")
    frame["Quantity"] = frame["Quantity"].astype("int64")
    frame["CustomerID"] = frame["CustomerID"].astype("Int64")
    frame["InvoiceDate"] = pd.to_datetime(frame["InvoiceDate"])
    text = frame.to_csv(index=False, date_format="%Y-%m-%d %H:%M:%S", lineterminator="\n")
    buffer = io.BytesIO()
    # A fixed name and mtime keep the bytes reproducible.
    with gzip.GzipFile(
        filename="online_retail.csv", mode="wb", fileobj=buffer, compresslevel=9, mtime=0
    ) as handle:
        handle.write(text.encode("utf-8"))
    return buffer.getvalue()


BASE_URLS: dict[str, str] = {
    "cdnow": "https://www.brucehardie.com/datasets/",
    "online_retail": "https://archive.ics.uci.edu/static/public/352/",
}
"""Canonical download folders (Bruce Hardie's dataset page; the UCI repository)."""

DATASETS: dict[str, tuple[DataFile, ...]] = {
    "cdnow": (
        DataFile(
            "CDNOW_master.zip",
            "CDNOW_master.txt",
            "CDNOW_master.txt",
            69_659,
            "eff6889ed364c5199d6eacbbeb7a6d559971df4406ac876f322c373f00a072ef",
            _cdnow_master,
        ),
        DataFile(
            "CDNOW_sample.zip",
            "CDNOW_sample.txt",
            "CDNOW_sample.txt",
            6_919,
            "6fae10155c0b0ba363c2c386e30f77990d22328220efd862a5edd1443420d94a",
            _unchanged,
        ),
    ),
    "online_retail": (
        DataFile(
            "online+retail.zip",
            "Online Retail.xlsx",
            "online_retail.csv.gz",
            541_909,
            "0d6f2c5b983be426401d8a11606d9f29daccb1cdc3f02049d92f95c48121d74d",
            _online_retail,
        ),
    ),
}
"""The files of each data set, with their published row counts."""


def _location(base: str | Path, archive: str) -> str:
    """Join a base URL or folder and an archive name into a URL (local folders: ``file://``)."""
    text = str(base)
    if "://" in text:
        return text.rstrip("/") + "/" + urllib.parse.quote(archive)
    return (Path(text).expanduser().resolve() / archive).as_uri()


def _download(url: str, timeout: float) -> bytes:
    """Return the bytes at ``url``; any network or file error becomes one DatasetError line."""
    if not url.startswith(("https://", "http://", "file://")):
        raise DatasetError(f"{url}: only https://, http:// and file:// sources are fetched")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - checked
            return bytes(response.read())
    except urllib.error.HTTPError as exc:
        raise DatasetError(f"cannot fetch {url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DatasetError(f"cannot reach {url} ({reason})") from exc


def _member(archive: bytes, wanted: str, where: str) -> bytes:
    """Return the archive member named ``wanted`` (any folder, any case)."""
    try:
        with zipfile.ZipFile(io.BytesIO(archive)) as zipped:
            names = [n for n in zipped.namelist() if not n.endswith("/")]
            matches = [n for n in names if n.rsplit("/", 1)[-1].lower() == wanted.lower()]
            if not matches:
                raise DatasetError(f"{where}: no {wanted} in the archive (it holds {names})")
            return zipped.read(matches[0])
    except zipfile.BadZipFile as exc:
        raise DatasetError(f"{where}: not a zip archive ({exc})") from exc


def _data_rows(data: bytes, output: str) -> int:
    """Count data rows: non-blank lines, less the header where the file has one."""
    text = gzip.decompress(data) if output.endswith(".gz") else data
    lines = [line for line in text.splitlines() if line.strip()]
    has_header = output != "CDNOW_sample.txt"
    return max(len(lines) - (1 if has_header else 0), 0)


def _write_atomic(data: bytes, path: Path) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place."""
    handle = tempfile.NamedTemporaryFile(
        dir=path.parent, prefix=f".{path.name}.", suffix=".part", delete=False
    )
    try:
        with handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        Path(handle.name).replace(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            Path(handle.name).unlink()
        raise


def fetch_dataset(
    name: str,
    out_dir: str | Path,
    *,
    mirror: str | Path | None = None,
    check_rows: bool = True,
    timeout: float = 60.0,
) -> list[FetchedFile]:
    """Download a public data set and write it in the form the shipped mappings read.

    Parameters
    ----------
    name
        ``"cdnow"`` or ``"online_retail"`` (see :data:`DATASETS`).
    out_dir
        Folder for the files; created when missing.
    mirror
        A folder or base URL holding the same archive names (``CDNOW_master.zip``, ...), e.g.
        archives downloaded by hand; default: the canonical source in :data:`BASE_URLS`.
    check_rows
        Refuse a file whose data rows differ from the published count (nothing is written).
    timeout
        Seconds to wait for the network.

    Returns
    -------
    list of FetchedFile
        One per file written, with its rows and sha256.

    Raises
    ------
    DatasetError
        Unknown name, unreachable source, a bad archive or a wrong row count; one line.

    Examples
    --------
    >>> sorted(DATASETS)
    ['cdnow', 'online_retail']
    """
    if name not in DATASETS:
        raise DatasetError(f"unknown data set {name!r}; choose one of {sorted(DATASETS)}")
    folder = Path(out_dir)
    base = mirror if mirror is not None else BASE_URLS[name]
    prepared: list[tuple[DataFile, bytes]] = []
    for spec in DATASETS[name]:
        url = _location(base, spec.archive)
        try:
            archive = _download(url, timeout)
        except DatasetError as exc:
            raise DatasetError(
                f"{exc}; download {BASE_URLS[name]}{spec.archive} by hand and pass its folder "
                "as --mirror"
            ) from exc
        data = spec.convert(_member(archive, spec.member, url))
        rows = _data_rows(data, spec.output)
        if check_rows and rows != spec.rows:
            raise DatasetError(
                f"{url}: {spec.output} has {rows:,} data rows, the published data set "
                f"{spec.rows:,}; nothing was written"
            )
        prepared.append((spec, data))
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for spec, data in prepared:
        path = folder / spec.output
        _write_atomic(data, path)
        digest = hashlib.sha256(data).hexdigest()
        written.append(
            FetchedFile(path, _data_rows(data, spec.output), digest, digest == spec.sha256)
        )
    return written


__all__ = ["BASE_URLS", "DATASETS", "DataFile", "DatasetError", "FetchedFile", "fetch_dataset"]
