"""The inspection notebook runs top to bottom against the sample run and shows real figures."""
import base64
import os

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import ROOT

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def test_inspect_notebook_runs_on_the_sample_run(sample_run, tmp_path, monkeypatch):
    monkeypatch.setenv("FACECLUSTER_RUN", str(sample_run))
    notebook = nbformat.read(ROOT / "notebooks" / "inspect_run.ipynb", as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [base64.b64decode(o["data"]["image/png"]) for o in outputs if "image/png" in o.get("data", {})]
    assert images and images[0][:8] == b"\x89PNG\r\n\x1a\n" and len(images[0]) > 20_000  # a grid of faces
    # faces grid, people sizes, the map (and the merge suggestions side by side when there are any)
    assert len(images) >= 3 and all(image[:8] == b"\x89PNG\r\n\x1a\n" for image in images)
    for number, image in enumerate(images):
        (tmp_path / f"figure_{number}.png").write_bytes(image)
    if os.environ.get("FACECLUSTER_KEEP_FIGURES"):  # how docs/sample_people.png and notebook_*.png were made
        names = ["sample_people.png", "notebook_sizes.png"] + [f"notebook_{n}.png" for n in range(2, len(images) - 1)]
        for name, image in zip(names + ["notebook_map.png"], images[:len(names)] + images[-1:]):
            (ROOT / "docs" / name).write_bytes(image)
    tables = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert any("2019_birthday" in t and "2023_holiday" in t for t in tables)  # the person x album matrix
    assert any("2016" in t and "no date" in t for t in tables)  # each person's photos per year
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "26 photos" in text and "people" in text
