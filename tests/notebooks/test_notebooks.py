"""The notebooks, executed top to bottom with papermill, so they never rot.

They run with their own defaults (small data: 3,000-4,000 simulated customers, 4 trials);
only ``workdir`` (and 3.0's service) is set here. 2.0 trains the world (MLflow store with
champions, events, lookup table) that 3.0 reads; 3.0 runs once against `lifecycle serve` over
HTTP and once with no service (in-process). Executed copies go to a temporary folder, or to
$NOTEBOOKS_OUT (`make notebooks`: notebooks/executed).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import nbformat
import papermill
import pytest

from ..servers import BIN, ROOT, free_port, running

NOTEBOOKS = ROOT / "notebooks"
NAMES = (
    "1.0-explore-events.ipynb",
    "2.0-train-evaluate.ipynb",
    "3.0-explanations-for-marketers.ipynb",
)
KEY = "notebook-test-key"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where executed notebooks and their world go."""
    folder = os.environ.get("NOTEBOOKS_OUT")
    if folder:
        path = Path(folder).resolve()
        shutil.rmtree(path / "work", ignore_errors=True)  # 2.0 expects a fresh MLflow store
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp("notebooks")


@pytest.fixture(scope="module", autouse=True)
def kernel_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Run the kernel of this .venv, with Jupyter's, IPython's and matplotlib's files in tmp."""
    home = tmp_path_factory.mktemp("jupyter")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PREFER_ENV_PATH", "1")
        patch.setenv("JUPYTER_RUNTIME_DIR", str(home / "runtime"))
        patch.setenv("IPYTHONDIR", str(home / "ipython"))
        patch.setenv("MPLCONFIGDIR", str(home / "matplotlib"))
        yield


def execute(name: str, target: Path, **parameters: object) -> str:
    """Run one notebook with papermill; return the text of all its outputs (errors fail)."""
    papermill.execute_notebook(
        NOTEBOOKS / name,
        target,
        parameters=parameters,
        cwd=NOTEBOOKS,
        kernel_name="python3",
        progress_bar=False,
        execution_timeout=600,
    )
    notebook = nbformat.read(target, as_version=4)
    return "\n".join(_texts(notebook))


def _texts(notebook: nbformat.NotebookNode) -> Iterator[str]:
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                yield output["text"]
            for mime in ("text/plain", "image/png"):
                if mime in output.get("data", {}):
                    yield "[image]" if mime == "image/png" else output["data"][mime]


def committed_notebooks() -> list[str]:
    """Notebooks in git (a scratch notebook saved from `make lab` is not checked)."""
    git = shutil.which("git")
    try:
        if git is None:
            raise OSError("no git")
        listed = subprocess.run(
            [git, "ls-files", "notebooks/*.ipynb"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):  # not a git checkout
        listed = [f"notebooks/{p.name}" for p in NOTEBOOKS.glob("*.ipynb")]
    return sorted(Path(p).name for p in listed)


def test_the_three_notebooks_are_stored_without_outputs():
    stored = committed_notebooks()
    assert set(NAMES) <= set(stored)
    for name in stored:
        notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
        nbformat.validate(notebook)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [], f"{name}: outputs in git (run `make strip`)"
                assert cell.execution_count is None, f"{name}: execution counts in git"
        assert "papermill" not in notebook.metadata, f"{name}: an executed copy was committed"
        parameters = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(parameters) == 1, f"{name}: one cell tagged 'parameters' for papermill"


def test_explore_events(out):
    text = execute(NAMES[0], out / NAMES[0], workdir=str(out / "work" / "explore"))
    assert "3,000 customers" in text
    # the three broken rows are quarantined, each with its reason
    assert "3 quarantined" in text
    for reason in ("unknown event_type 'teleport'", "missing customer_id", "unparsable event_ts"):
        assert reason in text
    assert text.count("[image]") >= 3
    cdnow = NOTEBOOKS / "../../shared/data/cdnow/CDNOW_master.txt"
    if cdnow.exists():
        assert "67,591 purchases of 23,570 customers; 0 quarantined" in text
    else:
        assert "CDNOW not found" in text


@pytest.fixture(scope="module")
def trained(out: Path) -> tuple[Path, str]:
    """Run 2.0: the world 3.0 reads; returns the folder and the notebook's output text."""
    world = out / "work"
    text = execute(NAMES[1], out / NAMES[1], workdir=str(world))
    return world, text


def test_train_evaluate_reads_the_run_back_compares_and_promotes(trained):
    world, text = trained
    # metrics read back from MLflow, with BG/NBD and the oracle beside the model
    assert re.search(r"churn: 90 days, evaluated at \d{4}-\d\d-\d\d", text)
    assert re.search(r"^bgnbd\s+\d+\.0\s", text, re.MULTILINE)  # a row of the metrics table
    assert re.search(r"^oracle\s+\d+\.0\s", text, re.MULTILINE)
    # calibration + gain for next-stage and churn, deciles + gain for CLV
    assert text.count("[image]") >= 6
    # the first run becomes champion; the second is compared with it
    assert text.count("first champion") == 3
    assert re.search(r"lifecycle-churn\s+v2\s+v1\s+roc_auc", text)
    assert (world / "scores.parquet").stat().st_size > 0


def test_explanations_over_http_match_in_process(trained, out):
    world, _ = trained
    port = free_port()
    uri = f"sqlite:///{world / 'mlflow.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIFECYCLE_", "BENTOML_"))}
    env |= {"LIFECYCLE_API_KEY": KEY, "MLFLOW_TRACKING_URI": uri}
    args = [
        *(str(BIN / "lifecycle"), "serve", "--tracking-uri", uri, "--port", str(port)),
        *("--lookup", str(world / "scores.parquet")),
        *("--events", str(world / "validated" / "events.parquet")),
    ]
    with running(args, env, port, out / "serve.log") as url:
        text = execute(NAMES[2], out / NAMES[2], workdir=str(world), service_url=url, api_key=KEY)
    assert f"over HTTP at {url}" in text
    assert "HTTP vs in-process: {'churn_risk': True" in text
    assert text.count("[image]") >= 4  # two waterfalls, the beeswarm, actions by segment
    assert re.search(r"[\uac00-\ud7a3]", text), "no Korean sentence in the output"


def test_explanations_without_a_service_answer_in_process(trained, out):
    world, _ = trained
    closed = f"http://127.0.0.1:{free_port()}"
    name = NAMES[2].replace(".ipynb", "-in-process.ipynb")
    text = execute(NAMES[2], out / name, workdir=str(world), service_url=closed)
    assert "calling the API in-process" in text
    assert f"no service at {closed}" in text
