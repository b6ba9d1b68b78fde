"""Notes over HTTP: each note comes as English text and as data (`note_details`, same order) that
says exactly the same, so clients can say it in the reader's language; the notes the worker
adds (why no group was released) reach the release; private keys are announced by explain."""

from __future__ import annotations

from sandbox import notes
from tests.api.conftest import Api

# Each person's total cost, to the yuan: a private key set (the per-unit values of a
# pre-aggregation), every group a handful of people, far below the threshold.
RARE = ("SELECT FLOOR(total) AS total, COUNT(*) AS people FROM (SELECT person_id, SUM(cost) AS total "
        "FROM medical_visits GROUP BY person_id) t GROUP BY 1")
JOIN = ("SELECT r.district, COUNT(*) AS visits FROM residents r JOIN medical_visits m ON r.person_id = m.person_id "
        "GROUP BY r.district")


def _said_alike(answer: dict) -> list[str]:
    assert len(answer["note_details"]) == len(answer["notes"])
    for text, detail in zip(answer["notes"], answer["note_details"], strict=True):
        assert notes.say(detail, "en") == text
    return [d["key"] for d in answer["note_details"]]


def test_explain_says_how_large_a_group_must_be_when_the_keys_are_private(api: Api) -> None:
    dev = api.developer()
    plan = api.post(dev, "/explain", json={"sql": RARE, "epsilon": 0.3}).json()
    assert "private_keys.rows" in _said_alike(plan)
    (detail,) = [d for d in plan["note_details"] if d["key"] == "private_keys.rows"]
    assert detail["threshold"] == plan["selection"]["threshold"] > 10
    public = api.post(dev, "/explain", json={"sql": JOIN, "epsilon": 0.3, "contribution": {"max_rows": {
        "medical_visits": 1}}}).json()
    assert not any(k.startswith("private_keys") for k in _said_alike(public))
    assert {"joined_rows", "rows_left_out.below_ceiling"} <= set(_said_alike(public))


def test_a_release_without_groups_says_why(api: Api) -> None:
    """Failed before: the job service replaced the release's notes with the plan's, dropping the
    worker's note that no group reached the threshold."""
    dev = api.developer()
    agreement = api.agreement(dev, datasets={"medical_visits": None})
    job = api.post(dev, "/jobs", json={"sql": RARE, "epsilon": 0.3, "agreement_id": agreement, "wait": 30}).json()
    assert job["status"] == "released" and job["result"]["rows"] == []
    keys = _said_alike(job["result"])
    assert keys[0] == "private_keys.rows" and "no_groups.rows" in keys  # said alike: both "about N rows"
    (why,) = [n for n in job["result"]["notes"] if n.startswith("no group reached the release threshold")]
    assert "nothing was released" in why
    again = api.get(dev, f"/jobs/{job['id']}").json()  # stored with the job, not only in the first answer
    assert again["result"]["note_details"] == job["result"]["note_details"]
