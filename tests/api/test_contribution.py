"""Contribution bounds per query over HTTP: explain shows every choice's noise and what it leaves
out, a job keeps what it asked for (and is audited with it), the same SQL with other bounds is a
new question (never a reuse), bounds beyond the ceilings are refused with the fix, and every
released cell carries both ends of its interval and the notes a reader needs."""

from __future__ import annotations

from tests.api.conftest import Api

JOIN = (
    "SELECT r.district, COUNT(*) AS visits FROM residents r JOIN medical_visits m ON r.person_id = m.person_id "
    "GROUP BY r.district"
)
TEN = {"max_rows": {"medical_visits": 10}}
BOTH = {"residents": None, "medical_visits": None}


def _job(api: Api, dev: str, agreement: str, contribution: dict | None = None) -> dict:
    body = {"sql": JOIN, "epsilon": 0.2, "agreement_id": agreement, "wait": 30}
    if contribution is not None:
        body["contribution"] = contribution
    response = api.post(dev, "/jobs", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def test_explain_lists_each_choice_with_its_noise_and_what_it_leaves_out(api: Api) -> None:
    dev = api.developer()
    plan = api.post(dev, "/explain", json={"sql": JOIN, "epsilon": 0.2}).json()
    (visits,) = [c for c in plan["contribution_choices"] if c["dataset"] == "medical_visits"]
    options = {o["max_rows"]: o for o in visits["options"]}
    assert visits["ceiling"] == 40 and options[40]["chosen"]
    assert options[1]["count_half_width"] < options[40]["count_half_width"]  # less noise ...
    assert options[1]["rows_left_out"] > options[40]["rows_left_out"]  # ... more left out
    asked = api.post(dev, "/explain", json={"sql": JOIN, "epsilon": 0.2, "contribution": TEN}).json()
    assert asked["primitives"][0]["sensitivity"] == 10
    assert any("at most 10 joined rows" in note for note in asked["notes"]), asked["notes"]
    (asked_visits,) = [c for c in asked["contribution_choices"] if c["dataset"] == "medical_visits"]
    assert {o["max_rows"]: o for o in asked_visits["options"]}[10]["chosen"]


def test_a_job_keeps_its_bounds_and_other_bounds_are_a_new_question(api: Api) -> None:
    dev = api.developer()
    agreement = api.agreement(dev, datasets=BOTH)
    ceiling = _job(api, dev, agreement)
    asked = _job(api, dev, agreement, TEN)
    again = _job(api, dev, agreement, TEN)
    assert ceiling["contribution"] is None and asked["contribution"] == TEN
    assert not asked["reused"] and again["reused"] and again["reused_from"] == asked["id"]
    (submitted,) = [e for e in api.audit(job_id=asked["id"]) if e["action"] == "job.submitted"]
    assert submitted["details"]["contribution"] is not None


def test_bounds_beyond_the_ceiling_are_refused_with_the_fix(api: Api) -> None:
    dev = api.developer()
    response = api.post(dev, "/explain", json={"sql": JOIN, "epsilon": 0.2,
                                                 "contribution": {"max_rows": {"medical_visits": 400}}})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_parameter" and "ceiling 40" in error["message"]
    clamp = api.post(dev, "/explain", json={"sql": "SELECT AVG(monthly_income) FROM residents", "epsilon": 0.2,
                                             "contribution": {"clamp": {"residents.monthly_income": [0, 10**9]}}})
    assert clamp.status_code == 422 and "inside its public bounds" in clamp.json()["error"]["message"]


def test_a_release_carries_both_ends_of_every_interval_and_its_notes(api: Api) -> None:
    dev = api.developer()
    one = {"max_rows": {"medical_visits": 1}}  # leaves out most visits (about 3 in 4): a material bias
    result = _job(api, dev, api.agreement(dev, datasets=BOTH), one)["result"]
    for row, lower, upper in zip(result["rows"], result["lower"], result["upper"], strict=True):
        assert lower[1] <= row[1] <= upper[1]
    assert any("left out" in note for note in result["notes"])
    assert any(b.get("dataset") == "medical_visits" and b["max_rows"] == 1 and b["rows_left_out"] > 0.3
               for b in result["bias"])
