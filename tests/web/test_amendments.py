"""The console's amend form, the history of decided agreements (operators and auditors) and
licence reinstatement: what each page shows, what its form changes, what a refusal keeps."""

from __future__ import annotations

import re

from sandbox import accounts, agreements
from tests.web.conftest import csrf_of

SCOPE = ("age", "district", "household_size", "monthly_income")  # the active agreement's requested columns


def _amend(client, agreement_id: str, **fields: str):
    page = client.get(f"/console/agreements/{agreement_id}").text
    boxes = {f"col:residents:{c}": "1" for c in SCOPE}
    form = {"csrf": csrf_of(page), "epsilon_add": "", "delta_add": "", "per_query_epsilon": "0.5",
            "valid_to": "2030-12-31", "reason": ""} | boxes | fields
    return client.post(f"/console/agreements/{agreement_id}/amend", data={k: v for k, v in form.items() if v != "-"})


def test_the_amend_form_shows_the_request_and_what_is_in_scope(console) -> None:
    page = console.client("operator").get(f"/console/agreements/{console.people.active_id}").text
    assert 'action="/console/agreements/' in page and "/amend" in page and "Amend the agreement</button>" in page
    for column in SCOPE:
        assert re.search(rf'name="col:residents:{column}" value="1" checked', page), column
    assert 'id="amend_valid_to" name="valid_to" type="text" value="2030-12-31"' in page
    assert "now 2, spent 0" in page and "Revoke</button>" in page
    assert "Decisions and changes" in page and "Granted 2.0 of 3.0: first agreement of this team" in page
    assert "ε 2 granted of 3 requested" in page


def test_an_operator_tops_up_extends_and_narrows(fresh_console) -> None:
    operator = fresh_console.client("operator")
    active = fresh_console.people.active_id
    response = _amend(operator, active, epsilon_add="1.5", valid_to="2031-06-30", reason="Second phase approved",
                      **{"col:residents:household_size": "-"})
    assert response.status_code == 303 and response.headers["location"].endswith("?done=amended")
    page = operator.get(response.headers["location"]).text
    assert "The agreement was amended." in page and "ε 3.5, δ 1.0e-06;" in page
    assert "budget ε: 2 → 3.5" in page and "valid until: 2030-12-31 → 2031-06-30" in page
    assert ("scope: residents (age, district, household_size, monthly_income) → residents (age, district, "
            "monthly_income)") in page
    assert "Second phase approved" in page and not re.search(r'name="col:residents:household_size" value="1" checked',
                                                             page)
    stored = agreements.get(fresh_console.store, fresh_console.people.users["operator"], active)
    assert (stored["budget_epsilon"], stored["valid_to"], stored["datasets"], stored["per_query_epsilon"]) == (
        3.5, "2031-06-30", {"residents": ["age", "district", "monthly_income"]}, 0.5)

    widened = _amend(operator, active, reason="household size after all", valid_to="2031-06-30")
    assert widened.status_code == 303
    stored = agreements.get(fresh_console.store, fresh_console.people.users["operator"], active)
    assert stored["datasets"] == {"residents": list(SCOPE)} and stored["decision_reason"] == "household size after all"


def test_a_refused_amendment_says_why_and_keeps_the_form(fresh_console) -> None:
    operator = fresh_console.client("operator")
    active = fresh_console.people.active_id
    no_reason = _amend(operator, active, epsilon_add="2", **{"col:residents:age": "-"})
    assert no_reason.status_code == 422 and "Give a reason for the amendment" in no_reason.text
    assert 'id="epsilon_add" name="epsilon_add" type="number" step="any" min="0" value="2"' in no_reason.text
    assert not re.search(r'name="col:residents:age" value="1" checked', no_reason.text), "the form as filled in"
    nothing = _amend(operator, active, reason="just looking")
    assert nothing.status_code == 422 and "Nothing to amend" in nothing.text
    empty = _amend(operator, active, reason="no scope", **{f"col:residents:{c}": "-" for c in SCOPE})
    assert empty.status_code == 422 and "Keep at least one dataset in scope" in empty.text
    bad_date = _amend(operator, active, reason="when", valid_to="next year")
    assert bad_date.status_code == 422 and "is not an ISO-8601 date" in bad_date.text
    assert agreements.get(fresh_console.store, fresh_console.people.users["operator"], active)["budget_epsilon"] == 2


def test_an_auditor_reads_an_agreement_and_its_decisions_without_forms(console) -> None:
    page = console.client("auditor").get(f"/console/agreements/{console.people.active_id}").text
    assert "Household income by district" in page and "Decisions and changes" in page
    assert "Amend the agreement" not in page and "Revoke</button>" not in page and "<form class=\"grid\"" not in page
    assert f'href="/console/audit?agreement_id={console.people.active_id}"' in page
    assert re.search(r'href="/console/audit/events/\d+"', page), "each decision links to its audit event"
    assert 'aria-current="page">Agreements</a>' in page


def test_the_history_searches_filters_and_pages(fresh_console) -> None:
    people, store = fresh_console.people, fresh_console.store
    operator_user = people.users["operator"]
    agreements.reject(store, operator_user, people.other_pending_id, "Transport data is not ours to give")
    known = {"residents": {"district", "age"}}
    for i in range(55):
        made = agreements.request(store, people.users["developer2"], purpose=f"Batch study {i:02d}",
                                  legal_basis="b", datasets={"residents": None}, valid_from="2026-01-01",
                                  valid_to="2027-01-01", epsilon=1.0, delta=0.0, known=known)
        agreements.reject(store, operator_user, made["id"], f"duplicate {i:02d}")
    operator = fresh_console.client("operator")

    first = operator.get("/console/agreements").text
    assert "Agreements 1–50 of 57, the latest decision first" in first
    assert "Batch study 54" in first and "Household income by district" not in first, "newest decision first"
    assert people.pending_id not in first, "a request waiting is not a decided agreement"
    assert 'href="/console/agreements?offset=50" rel="next"' in first
    second = operator.get("/console/agreements?offset=50").text
    assert "Agreements 51–57 of 57" in second and "Household income by district" in second

    def found(query: str) -> str:
        response = operator.get("/console/agreements" + query)
        assert response.status_code == 200, response.text
        return response.text

    amoy = found("?q=amoy+transport")
    assert "of 56" in amoy and "Amoy Transport Research Institute" in amoy  # the organisation, any case
    assert "of 1," in found("?q=Lin+Wei") and "of 1," in found("?q=household+income")  # developer, purpose
    assert "of 1," in found("?dataset=enterprises") and "of 1," in found("?q=企业登记")  # a dataset's Chinese title
    active = found("?status=active")
    assert "of 1," in active and "Household income by district" in active and "Batch study" not in active
    assert "No decided agreement matches." in found("?decided_from=2999-01-01")
    assert "of 57" in found("?decided_from=2000-01-01&decided_to=2999-12-31")
    assert "of 1," in found("?q=batch+study+07&status=rejected")
    assert 'value="batch study 07"' in found("?q=batch+study+07"), "the form keeps the search"
    bad = operator.get("/console/agreements?decided_from=tomorrow")
    assert bad.status_code == 422 and "is not a date; write it as YYYY-MM-DD." in bad.text
    assert 'id="h-from" name="decided_from" type="date" value="tomorrow"' in bad.text, "the form, to correct it"

    auditor = fresh_console.client("auditor").get("/console/agreements?q=household").text
    assert "of 1," in auditor and f'href="/console/agreements/{people.active_id}"' in auditor


def test_reinstate_a_suspended_licence(fresh_console) -> None:
    operator = fresh_console.client("operator")
    page = operator.get("/console/licences").text
    licence_id = re.search(r'action="/console/licences/([^/]+)/suspend"', page).group(1)
    operator.post(f"/console/licences/{licence_id}/suspend", data={"csrf": csrf_of(page), "reason": "Audit pending"})
    page = operator.get("/console/licences").text
    assert '<span class="status suspended">suspended</span><br><span class="hint">Audit pending</span>' in page
    assert f'action="/console/licences/{licence_id}/reinstate"' in page
    missing = operator.post(f"/console/licences/{licence_id}/reinstate", data={"csrf": csrf_of(page), "reason": ""})
    assert missing.status_code == 422 and "Give a reason to reinstate the licence" in missing.text
    done = operator.post(f"/console/licences/{licence_id}/reinstate",
                         data={"csrf": csrf_of(page), "reason": "Audit passed"})
    assert done.headers["location"] == "/console/licences?done=reinstated"
    after = operator.get(done.headers["location"]).text
    assert "The licence was reinstated." in after and "Audit passed" in after
    [licence] = [lic for lic in accounts.list_licences(fresh_console.store) if lic["id"] == licence_id]
    assert licence["status"] == "active"
