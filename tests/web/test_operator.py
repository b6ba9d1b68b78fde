"""Operator pages: the queue, a request with everything needed to decide it, decisions, licences."""

from __future__ import annotations

import re

from sandbox import agreements
from tests.web.conftest import csrf_of


def _approve(client, agreement_id: str, **fields: str):
    page = client.get(f"/console/agreements/{agreement_id}")
    form = {"epsilon": "4", "delta": "1e-6", "per_query_epsilon": "", "valid_to": "", "min_count": "0", "round_to": "1",
            "reason": ""} | fields
    return client.post(f"/console/agreements/{agreement_id}/approve", data={"csrf": csrf_of(page.text)} | form)


def test_the_queue_lists_pending_requests_with_their_developer(console) -> None:
    page = console.client("operator").get("/console/queue").text
    assert "2 waiting for a decision" in page
    assert "Health-care use by age and district" in page and "Enterprise size by industry and district" in page
    assert "Amoy Transport Research Institute" in page and f"/console/agreements/{console.people.pending_id}" in page
    assert "Household income by district" in page  # the active agreement, with its budget gauge
    assert re.search(r"<meter[^>]+max=\"2.0\"", page)


def test_a_request_page_shows_what_the_decision_needs(console) -> None:
    page = console.client("operator").get(f"/console/agreements/{console.people.pending_id}").text
    for expected in ("Health-care use by age and district", "ethics approval XMU-2026-117", "ε 4, δ 1.0e-06",
                     "medical_visits", "all queryable columns", "district, age", "person_id, ≤ 40 rows per unit",
                     "Lin Wei", "Xiamen University, School of Public Health", "XM-2026-0042",
                     "Household income by district",  # the developer's other agreement
                     'for="epsilon"', 'for="per_query_epsilon"', 'for="min_count"', 'for="round_to"',
                     'for="reject-reason"'):
        assert expected in page, expected


def test_approve_with_less_budget_and_output_rules(fresh_console) -> None:
    operator = fresh_console.client("operator")
    pending = fresh_console.people.pending_id
    response = _approve(operator, pending, epsilon="2.5", per_query_epsilon="0.5", valid_to="2028-12-31",
                        min_count="10", round_to="5", reason="Start smaller")
    assert response.status_code == 303
    page = operator.get(response.headers["location"]).text
    assert "The agreement was approved." in page and '<span class="status active">active</span>' in page
    assert "ε 2.5, δ 1.0e-06;" in page and "per query ε ≤ 0.5" in page and "round counts to 5" in page
    assert "Revoke" in page and "Approve</button>" not in page
    with fresh_console.store.read() as conn:
        stored = agreements.get(conn, fresh_console.people.users["operator"], pending)
    assert (stored["budget_epsilon"], stored["per_query_epsilon"], stored["min_count"], stored["round_to"],
            stored["valid_to"]) == (2.5, 0.5, 10, 5, "2028-12-31")


def test_a_refused_approval_says_why_and_keeps_the_form(fresh_console) -> None:
    operator = fresh_console.client("operator")
    response = _approve(operator, fresh_console.people.pending_id, epsilon="9", min_count="10")
    assert response.status_code == 422
    assert "less budget than requested, never more" in response.text
    assert 'name="epsilon" type="number" step="any" min="0" max="4.0" value="9"' in response.text
    assert 'name="min_count" type="number" min="0" step="1" value="10"' in response.text
    bad_number = _approve(operator, fresh_console.people.pending_id, round_to="five")
    assert bad_number.status_code == 422 and "must be a whole number" in bad_number.text


def test_reject_needs_a_reason_then_revoke_an_active_agreement(fresh_console) -> None:
    operator = fresh_console.client("operator")
    other = fresh_console.people.other_pending_id
    token = csrf_of(operator.get(f"/console/agreements/{other}").text)
    empty = operator.post(f"/console/agreements/{other}/reject", data={"csrf": token, "reason": " "})
    assert empty.status_code == 422 and "Give a reason" in empty.text
    done = operator.post(f"/console/agreements/{other}/reject", data={"csrf": token, "reason": "No legal basis given"})
    assert done.headers["location"].endswith("?done=rejected")
    assert "No legal basis given" in operator.get(f"/console/agreements/{other}").text

    active = fresh_console.people.active_id
    revoked = operator.post(f"/console/agreements/{active}/revoke",
                            data={"csrf": token, "reason": "Licence under review"})
    assert revoked.headers["location"].endswith("?done=revoked")
    again = operator.post(f"/console/agreements/{active}/revoke", data={"csrf": token, "reason": "twice"})
    assert again.status_code == 409 and "only an active agreement can be revoked" in again.text


def test_a_new_licence_shows_its_token_once_and_the_token_signs_in(fresh_console) -> None:
    operator = fresh_console.client("operator")
    token = csrf_of(operator.get("/console/licences").text)
    fields = {"name": "Wu Fang", "organisation": "Jimei University", "licence_number": "XM-2026-0200",
              "valid_from": "2026-01-01", "valid_to": "2027-01-01"}
    created = operator.post("/console/licences", data={"csrf": token} | fields)
    assert created.status_code == 201 and "shown this once" in created.text
    new_token = re.search(r'id="new-token" type="text" readonly value="(sbx_[^"]+)"', created.text).group(1)
    later = operator.get("/console/licences").text
    assert "XM-2026-0200" in later and new_token not in later

    developer = fresh_console.client()
    form = developer.get("/console/signin")
    signed = developer.post("/console/signin", data={"csrf": csrf_of(form.text), "token": new_token})
    assert signed.headers["location"] == "/console/me"
    assert "You have no agreements yet" in developer.get("/console/me").text

    duplicate = operator.post("/console/licences", data={"csrf": token} | fields)
    assert duplicate.status_code == 409 and "already registered" in duplicate.text
    assert 'value="Wu Fang"' in duplicate.text  # the form keeps what was typed


def test_suspend_a_licence_with_a_reason(fresh_console) -> None:
    operator = fresh_console.client("operator")
    page = operator.get("/console/licences").text
    licence_id = re.search(r'action="/console/licences/([^/]+)/suspend"', page).group(1)
    response = operator.post(f"/console/licences/{licence_id}/suspend",
                             data={"csrf": csrf_of(page), "reason": "Contract ended"})
    assert response.headers["location"] == "/console/licences?done=suspended"
    assert '<span class="status suspended">suspended</span>' in operator.get("/console/licences").text


def test_the_catalog_renders_each_policy_in_words(console) -> None:
    page = console.client("operator").get("/console/catalog").text
    assert 'id="residents"' in page and 'id="medical_visits"' in page
    assert "each person or enterprise contributes at most" in page
    assert "never shown or grouped by; only COUNT(DISTINCT)" in page  # an identifier
    assert "Siming" in page  # public keys of the district dimension
    assert "Public reference data" in page  # district_reference
    # the declared metadata allowance each release's bias estimate is paid from (issue 16)
    residents = page[page.index('id="residents"'):page.index("</section>", page.index('id="residents"'))]
    assert "DP metadata" in residents and "spent once at each registration" in residents
    assert "queries are planned against at most" in residents


def test_the_catalog_shows_each_datasets_certificate(console, demo_catalog) -> None:
    from sandbox import certificates

    page = console.client("developer").get("/console/catalog").text
    residents = certificates.latest(demo_catalog.data_dir, "residents")
    assert "Certificate" in page and residents["snapshot_sha256"][:16] in page and residents["key_id"][:16] in page
    assert f"at most {residents['rows']:,} rows" in page
