"""`lifecycle fetch-data`: conversion from local archives, row checks, offline failure."""

from __future__ import annotations

import gzip
import hashlib
import json
import socket
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from lifecycle.cli import app
from lifecycle.features.datasets import DATASETS, DatasetError, _cdnow_master, fetch_dataset
from lifecycle.features.io import load_events
from lifecycle.features.mapping import load_mapping

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
runner = CliRunner()

MASTER_LINES = [
    " 00001 19970101  1   11.77",
    " 00002 19970112  1   12.00",
    " 00002 19970112  2   20.00",
]
SAMPLE_LINES = [" 00004 0001 19970101  2   29.33", " 00004 0001 19970118  2   29.73"]


def _zip(path: Path, member: str, data: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as zipped:
        zipped.writestr(member, data)
    return path


def cdnow_mirror(folder: Path, master_rows: int | None = None) -> Path:
    """Hardie's headerless CRLF files, zipped as published; optionally padded to a row count."""
    folder.mkdir(exist_ok=True)
    master = list(MASTER_LINES)
    if master_rows is not None:
        master += [f" {i:05d} 19970301  1   10.00" for i in range(master_rows - len(master))]
    _zip(folder / "CDNOW_master.zip", "CDNOW_master.txt", ("\r\n".join(master) + "\r\n").encode())
    sample = ("\r\n".join(SAMPLE_LINES) + "\r\n").encode()
    _zip(folder / "CDNOW_sample.zip", "CDNOW_sample.txt", sample)
    return folder


def test_fetch_cdnow_from_a_local_mirror_reads_with_the_shipped_mappings(tmp_path):
    mirror = cdnow_mirror(tmp_path / "mirror")
    files = fetch_dataset("cdnow", tmp_path / "data", mirror=mirror, check_rows=False)
    assert [(f.path.name, f.rows) for f in files] == [
        ("CDNOW_master.txt", 3),
        ("CDNOW_sample.txt", 2),
    ]
    master = (tmp_path / "data" / "CDNOW_master.txt").read_bytes()
    assert master.startswith(b" customer_id  date number_of_cds  dollar_value\r\n 00001 ")
    assert files[0].sha256 == hashlib.sha256(master).hexdigest()
    assert not files[0].matches_reference
    result = load_events(files[0].path, mapping=load_mapping("cdnow"))
    assert result.rows_in == 3 and result.events_out == 2  # 00002's two lines of one day merge
    assert result.events["revenue"].tolist() == [11.77, 32.0]
    sample = load_events(files[1].path, mapping=load_mapping("cdnow_sample"))
    assert sample.events["customer_id"].tolist() == ["00004", "00004"]
    assert not list((tmp_path / "data").glob(".*part"))  # no temporary file left


def test_fetch_cdnow_refuses_a_wrong_row_count_and_writes_nothing(tmp_path):
    mirror = cdnow_mirror(tmp_path / "mirror")
    with pytest.raises(DatasetError, match=r"has 3 data rows, the published data set 69,659"):
        fetch_dataset("cdnow", tmp_path / "data", mirror=mirror)
    assert not (tmp_path / "data").exists()


def test_cli_fetch_data_cdnow_with_the_published_row_counts(tmp_path):
    mirror = cdnow_mirror(tmp_path / "mirror", master_rows=69_659)
    sample = "\r\n".join(SAMPLE_LINES[:1] * 6_919) + "\r\n"
    _zip(mirror / "CDNOW_sample.zip", "CDNOW_sample.txt", sample.encode())
    out = tmp_path / "data"
    result = runner.invoke(
        app, ["fetch-data", "cdnow", "--out", str(out), "--mirror", str(mirror), "--json"]
    )
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["files"]["CDNOW_master.txt"]["rows"] == 69_659
    assert summary["files"]["CDNOW_sample.txt"]["rows"] == 6_919
    assert (out / "CDNOW_master.txt").exists() and (out / "CDNOW_sample.txt").exists()


def _unreachable_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again on exit: nothing listens there


def test_cli_fetch_data_offline_fails_with_one_clear_line(tmp_path):
    mirror = f"http://127.0.0.1:{_unreachable_port()}/datasets"
    result = runner.invoke(
        app, ["fetch-data", "cdnow", "--out", str(tmp_path / "d"), "--mirror", mirror]
    )
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: cannot reach http://127.0.0.1:")
    assert "brucehardie.com/datasets/CDNOW_master.zip by hand" in lines[0]
    assert not (tmp_path / "d").exists()
    missing = runner.invoke(
        app, ["fetch-data", "cdnow", "--out", str(tmp_path / "d"), "--mirror", str(tmp_path)]
    )
    assert missing.exit_code == 1 and "cannot reach file://" in missing.stderr


def test_cli_fetch_data_unknown_name_and_bad_archive(tmp_path):
    unknown = runner.invoke(app, ["fetch-data", "movielens", "--out", str(tmp_path)])
    assert unknown.exit_code == 2 and "choose one of ['cdnow', 'online_retail']" in unknown.stderr
    (tmp_path / "online+retail.zip").write_text("not a zip")
    bad = runner.invoke(
        app,
        ["fetch-data", "online_retail", "--out", str(tmp_path / "d"), "--mirror", str(tmp_path)],
    )
    assert bad.exit_code == 1 and "not a zip archive" in bad.stderr


def test_fetch_online_retail_converts_the_uci_workbook(tmp_path):
    pytest.importorskip("openpyxl", reason="the `data` extra (openpyxl) reads the UCI .xlsx")
    sheet = pd.DataFrame(
        {
            "InvoiceNo": ["536365", "536365", "C536379", "536380"],
            "StockCode": ["85123A", "71053", "D", "22728"],
            "Description": ["WHITE HANGING HEART", "WHITE METAL LANTERN", "Discount", None],
            "Quantity": [6, 6, -1, 24],
            "InvoiceDate": pd.to_datetime(
                ["2010-12-01 08:26", "2010-12-01 08:26", "2010-12-01 09:41", "2011-07-01 10:00"]
            ),
            "UnitPrice": [2.55, 3.39, 27.5, 3.75],
            "CustomerID": [17850.0, 17850.0, 14527.0, None],
            "Country": ["United Kingdom"] * 4,
        }
    )
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    workbook = tmp_path / "Online Retail.xlsx"
    sheet.to_excel(workbook, index=False, sheet_name="Online Retail")
    _zip(mirror / "online+retail.zip", "Online Retail.xlsx", workbook.read_bytes())
    files = fetch_dataset("online_retail", tmp_path / "data", mirror=mirror, check_rows=False)
    assert [(f.path.name, f.rows) for f in files] == [("online_retail.csv.gz", 4)]
    text = gzip.decompress(files[0].path.read_bytes()).decode()
    assert text.splitlines()[:2] == [
        "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country",
        "536365,85123A,WHITE HANGING HEART,6,2010-12-01 08:26:00,2.55,17850,United Kingdom",
    ]
    result = load_events(files[0].path, mapping=load_mapping("online_retail"))
    assert result.events["event_type"].tolist() == ["refund", "purchase"]  # 14527, 17850
    assert result.reasons == {"missing_customer_id": 1}  # the guest line, as in the real file


@pytest.mark.skipif(not (SHARED / "cdnow").is_dir(), reason="shared CDNOW data not present")
def test_real_cdnow_files_match_the_conversion_and_published_counts():
    master = (SHARED / "cdnow" / "CDNOW_master.txt").read_bytes()
    spec, sample_spec = DATASETS["cdnow"]
    headerless = master.split(b"\r\n", 1)[1]  # Hardie's original has no header line
    converted = _cdnow_master(headerless)
    assert hashlib.sha256(converted).hexdigest() == spec.sha256
    assert _cdnow_master(master) == master
    lines = [line for line in master.splitlines() if line.strip()]
    assert len(lines) - 1 == spec.rows
    sample = (SHARED / "cdnow" / "CDNOW_sample.txt").read_bytes()
    assert len([line for line in sample.splitlines() if line.strip()]) == sample_spec.rows


@pytest.mark.skipif(
    not (SHARED / "online_retail").is_dir(), reason="shared Online Retail data not present"
)
def test_real_online_retail_row_count_is_the_published_one():
    data = (SHARED / "online_retail" / "online_retail.csv.gz").read_bytes()
    assert hashlib.sha256(data).hexdigest() == DATASETS["online_retail"][0].sha256
    rows = len(gzip.decompress(data).splitlines()) - 1
    assert rows == DATASETS["online_retail"][0].rows
