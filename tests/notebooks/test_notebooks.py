"""The three notebooks, and the `%%dpsql` magic, run cell by cell in real IPython kernels
(nbclient) against a live sandbox; key outputs are asserted.

The stored notebooks carry no outputs and no test code: a probe cell, appended here before
execution, prints what the test checks from the kernel's own variables.
"""

from __future__ import annotations

import json
import math
import os

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

from tests.support.live import REPO

NOTEBOOKS = REPO / "notebooks"
DISTRICTS = ["Haicang", "Huli", "Jimei", "Siming", "Tong'an", "Xiang'an"]
JOIN = ("SELECT r.district, COUNT(*) AS visits FROM residents r JOIN medical_visits m ON r.person_id = m.person_id "
        "GROUP BY r.district")
# Each person's total cost to the yuan: private keys, every group far below the threshold.
RARE = ("SELECT FLOOR(total) AS total, COUNT(*) AS people FROM (SELECT person_id, SUM(cost) AS total "
        "FROM medical_visits GROUP BY person_id) t GROUP BY 1")
PROBE = "PROBE:"


def execute(nb: nbformat.NotebookNode, live, probe: str | None = None) -> nbformat.NotebookNode:
    if probe:
        nb.cells.append(new_code_cell(f"import json as _json\nprint({PROBE!r} + _json.dumps({probe}, default=str))"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANDBOX_")} | live.client_env()
    client = NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute(env=env | {"JUPYTER_PLATFORM_DIRS": "1"})
    return nb


def load(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOKS / name, as_version=4)


def outputs(cell) -> list:
    return cell.get("outputs", [])


def probed(nb) -> dict:
    for output in outputs(nb.cells[-1]):
        if output.output_type == "stream" and PROBE in output.text:
            return json.loads(output.text.split(PROBE, 1)[1])
    raise AssertionError(f"no probe output: {outputs(nb.cells[-1])}")


def errors(nb) -> list:
    return [o for cell in nb.cells for o in outputs(cell) if o.output_type == "error"]


def html_of(cell) -> str:
    return "".join(o.data.get("text/html", "") for o in outputs(cell) if "data" in o)


def cell_with(nb, text: str):
    return next(cell for cell in nb.cells if cell.cell_type == "code" and text in cell.source)


def test_notebooks_are_stored_without_outputs() -> None:
    names = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    assert names == ["01_developer_quickstart.ipynb", "02_operator_workflow.ipynb", "03_auditor_review.ipynb"]
    for name in names:
        nb = load(name)
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, name


def test_developer_quickstart(live) -> None:
    nb = execute(load("01_developer_quickstart.ipynb"), live, probe="""{
        "districts": sorted(release.to_polars()["district"]),
        "widths": release.half_width("residents") + release.half_width("avg_income"),
        "charge": release.charge_epsilon, "reused": again.reused, "again_charge": again.charge_epsilon,
        "by_sex": [type(by_sex).__name__, len(by_sex)],
        "fused": sorted(fused.to_polars()["district"]), "fused_charge": fused.charge_epsilon,
        "choices": preview.choices().filter(preview.choices()["dataset"] == "medical_visits").rows(named=True),
        "visits": [visits.contribution, sorted(visits.to_polars()["district"]), visits.charge_epsilon],
        "rates": rates.to_polars(intervals=True).rows(named=True), "rates_charge": rates.charge_epsilon}""")
    result = probed(nb)
    assert result["districts"] == DISTRICTS
    assert all(w is not None and math.isfinite(w) and w > 0 for w in result["widths"])
    assert result["reused"] is True and result["again_charge"] == 0
    assert result["by_sex"] == ["Release", 2]
    assert result["fused"] == DISTRICTS and result["fused_charge"] == 0.5  # three datasets fused
    # choosing contribution bounds with explain: each max_rows with its noise and what it leaves out
    choices = {c["max_rows"]: c for c in result["choices"]}
    assert {1, 8, 40} <= set(choices) and [k for k, c in choices.items() if c["chosen"]] == [40]
    assert choices[8]["count_half_width"] < choices[40]["count_half_width"]
    assert choices[1]["rows_left_out"] > choices[40]["rows_left_out"]
    assert result["visits"] == [{"max_rows": {"medical_visits": 8}}, DISTRICTS, 0.3]
    assert "rows left out (estimated)" in html_of(cell_with(nb, "preview = sb.explain(visits_sql"))
    assert "at most 8 joined rows" in html_of(cell_with(nb, "visits = sb.query(visits_sql"))

    # a share by district with its interval, and a per-capita rate from the public district table
    rates = result["rates"]
    assert [r["district"] for r in rates] == DISTRICTS and result["rates_charge"] == 0.3
    for r in rates:
        assert 0 <= r["share_60_plus_lo"] <= r["share_60_plus"] <= r["share_60_plus_hi"] <= 1, r
        assert 0 < r["registered_per_1000_lo"] <= r["registered_per_1000"] <= r["registered_per_1000_hi"], r
    assert 'class="pm"' in html_of(cell_with(nb, "rates = sb.query"))
    assert any("image/png" in o.get("data", {}) for o in outputs(cell_with(nb, "share_60_plus_lo")))

    assert "MOCK DATA — not real" in html_of(cell_with(nb, "sb.mock_query(sql"))
    assert "would cost ε 0.5" in html_of(cell_with(nb, "sb.explain(sql"))
    shown = html_of(cell_with(nb, "release = sb.query"))
    assert 'class="pm"' in shown and "budget left ε" in shown  # values with their intervals
    plot = cell_with(nb, "yerr=release.half_width")
    assert any("image/png" in o.get("data", {}) for o in outputs(plot))
    assert "would cost ε 0.3" in html_of(cell_with(nb, "%%dpsql --explain"))
    assert "MOCK DATA — not real" in html_of(cell_with(nb, "%%dpsql --mock"))

    # The last cell is a refused query (tagged raises-exception): a short message, no traceback.
    (error,) = errors(nb)
    assert error.ename == "SQLRejected"
    shown = "\n".join(error.traceback)
    assert "line 2, column 8" in shown and "Select aggregates" in shown
    assert "SELECT district, monthly_income\n           ^" in shown
    assert "Traceback" not in shown and ".py" not in shown


def test_operator_workflow(live) -> None:
    nb = execute(load("02_operator_workflow.ipynb"), live, probe="""{
        "approved": [approved.status, approved.budget_epsilon, approved.per_query_epsilon],
        "parts": sorted([p["dataset"], p["status"], p["budget_epsilon"], p["columns"]] for p in approved.raw["parts"]),
        "spent": operator.agreement(approved.id).spent_epsilon, "visits": len(visits),
        "amended": [amended.budget_epsilon, amended.remaining_epsilon, amended.decision_reason],
        "history": approved.id in set(operator.agreements(search="Xiamen University", decided=True)["id"]),
        "rejected": rejected.status, "revoked": revoked.status,
        "licensed": licence["licence"]["id"] in set(operator.licences()["id"])}""")
    assert errors(nb) == []
    result = probed(nb)
    assert result["approved"] == ["active", 2.0, 0.5]
    assert result["parts"] == [["medical_visits", "approved", 1.5, None], ["residents", "approved", None, ["district"]]]
    stewards = "".join(o.text for o in outputs(cell_with(nb, "after the public security bureau"))
                       if o.output_type == "stream")
    assert stewards.splitlines() == ["after the health commission: awaiting",
                                     "after the public security bureau: active"]
    assert "after the operator: awaiting" in "".join(o.text for o in outputs(cell_with(nb, "after the operator:"))
                                                     if o.output_type == "stream")
    assert result["spent"] == pytest.approx(0.5) and result["visits"] == 8
    assert result["amended"] == [3.0, 2.5, "First results reviewed: one more epsilon and another half year."]
    assert result["history"] is True
    assert (result["rejected"], result["revoked"], result["licensed"]) == ("rejected", "revoked", True)
    refused = cell_with(nb, "except AgreementInactive")
    assert "is revoked" in "".join(o.text for o in outputs(refused) if o.output_type == "stream")


def test_auditor_review(live) -> None:
    nb = execute(load("03_auditor_review.ipynb"), live, probe="""{
        "verified": bool(verification), "events": verification.events, "again": bool(auditor.verify()),
        "agreements_plotted": spent["agreement_id"].n_unique(), "exported": exported.height,
        "register": sorted(register.columns), "listed": register.height}""")
    assert errors(nb) == []
    result = probed(nb)
    assert result["verified"] is True and result["again"] is True
    assert result["events"] > 0 and result["exported"] >= result["events"]
    assert result["agreements_plotted"] >= 1  # the quickstart's releases, at least
    checked = "".join(o.text for o in outputs(cell_with(nb, "certificates.verify")) if o.output_type == "stream")
    assert "verifies: True" in checked and "a changed count verifies: False" in checked, checked
    assert result["register"] == sorted(["id", "organisation", "purpose", "legal_basis", "datasets", "valid_from",
                                         "valid_to", "status", "budget_epsilon", "budget_delta", "spent_epsilon",
                                         "spent_delta", "releases"]) and result["listed"] >= 1
    plot = cell_with(nb, "Budget spent per agreement")
    assert any("image/png" in o.get("data", {}) for o in outputs(plot))


def test_the_magic_in_a_real_kernel(live) -> None:
    nb = new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    sql = "SELECT household_size, COUNT(*) AS households FROM residents GROUP BY household_size"
    sources = [
        "%load_ext sandbox",
        f"import os\nfrom sandbox.client import Sandbox\nmine = Sandbox(agreement={live.agreement_id!r})",
        "%dpsql_connect mine",
        f"%%dpsql --epsilon 0.2 -o counted\n{sql}",
        f"%%dpsql --explain -e 0.2\n{sql}",
        f"%%dpsql --mock --rows 80 -o fake\n{sql}",
        f"%%dpsql --epsilon 0.1 --max-rows medical_visits=2 --max-groups 1 -o bounded\n{JOIN}",
        f"%%dpsql --explain -e 0.1 --max-rows medical_visits=2 --clamp residents.monthly_income=0,50000\n{JOIN}",
        f"%%dpsql --epsilon 0.1 -o empty\n{RARE}",  # private keys: warned first, then it runs, and says why
        f"%%dpsql\n{sql}",  # no epsilon: a usage error that says what to write
        f"%%dpsql --epsilon 0.1 --max-rows medical_visits:2\n{JOIN}",  # a malformed bound: a usage error
        "%%dpsql --epsilon 0.1\nSELECT *\nFROM residents",
    ]
    nb.cells = [new_code_cell(s) for s in sources]
    for cell in nb.cells[-3:]:
        cell.metadata["tags"] = ["raises-exception"]
    execute(nb, live, probe="""{
        "counted": [type(counted).__name__, counted.mock, len(counted), counted.charge_epsilon],
        "fake": [fake.mock, sum(r[1] for r in fake.rows)],
        "bounded": bounded.contribution, "empty": [len(empty), empty.charge_epsilon]}""")
    result = probed(nb)
    assert result["counted"] == ["Release", False, 8, pytest.approx(0.2)]
    assert result["fake"] == [True, 80]
    assert result["bounded"] == {"max_rows": {"medical_visits": 2}, "max_groups": 1}
    assert "of medical_visits&#x27;s rows are left out by keeping at most 2" in html_of(nb.cells[6])
    assert "2 ✓" in html_of(nb.cells[7]) and "rows left out (estimated)" in html_of(nb.cells[7])
    warned = "".join(o.text for o in outputs(nb.cells[8]) if o.output_type == "stream" and o.name == "stderr")
    assert warned.startswith("⚠ Before this query spends ε 0.1: the group keys are private: a group needs about ")
    assert result["empty"] == [0, pytest.approx(0.1)] and "no group reached the release threshold" in html_of(
        nb.cells[8])
    malformed = "".join(o.text for o in outputs(nb.cells[10]) if o.output_type == "stream")
    assert "UsageError: --max-rows takes DATASET=ROWS" in malformed
    assert 'class="pm"' in html_of(nb.cells[3]) and "would cost ε 0.2" in html_of(nb.cells[4])
    assert "MOCK DATA — not real" in html_of(nb.cells[5])
    usage = "".join(o.text for o in outputs(nb.cells[9]) if o.output_type == "stream")  # IPython prints these
    assert "UsageError: Say what the query may spend: %%dpsql --epsilon 0.5" in usage
    (rejected,) = errors(nb)
    assert rejected.ename == "SQLRejected" and "line 1, column 8" in "\n".join(rejected.traceback)
    assert "Traceback" not in "\n".join(rejected.traceback)


def test_notebooks_read_their_connection_from_the_environment() -> None:
    sources = "\n".join(cell.source for name in ("01_developer_quickstart.ipynb", "02_operator_workflow.ipynb",
                                                 "03_auditor_review.ipynb") for cell in load(name).cells)
    assert "http://" not in sources and "sbx_" not in sources  # no URLs or tokens written into them
    assert 'os.environ["SANDBOX_OPERATOR_TOKEN"]' in sources and 'os.environ["SANDBOX_AUDITOR_TOKEN"]' in sources
