"""Operators, auditors and admins over HTTP: agreements, licences, users, the audit log.

Each command is one call of the notebook client (so one API request, with the server's role
check) and a table, or the server's JSON with --json. A new decision is a new function here and
one line in `sandbox.cli`'s command table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Column

from sandbox.cli.common import (
    DEFAULT_URL,
    Json,
    Token,
    Url,
    _,
    console,
    fail,
    ident,
    numbers,
    remote,
    show_json,
    state,
    table,
    word,
    write_checkpoints,
)
from sandbox.errors import SandboxError

Reason = Annotated[str, typer.Option("--reason", help=_("why; the developer and the auditors will read it"))]
AgreementId = Annotated[str, typer.Argument(help=_("the agreement's id"), show_default=False)]


# -- agreements -----------------------------------------------------------------------------------
def _agreement_rows(items: list[dict[str, Any]]) -> list[list[Any]]:
    n = numbers()
    return [[a["id"], word(a["status"]), _who(a), a["purpose"], ", ".join(a["datasets"]),
             f"{n.epsilon(a['spent_epsilon'])} / {n.epsilon(a['budget_epsilon'] or a['requested_epsilon'])}",
             a["valid_to"][:10], (a.get("decided_at") or "")[:10]] for a in items]


def _who(agreement: dict[str, Any]) -> str:
    """The developer's name and organisation when the server sends them, else their id's start."""
    name = agreement.get("developer_name")
    if not name:
        return agreement["developer_id"][:8]
    return f"{name} ({agreement['organisation']})" if agreement.get("organisation") else name


def _agreement_table(items: list[dict[str, Any]], title: str | None = None) -> None:
    table([ident(_("agreement")), _("status"), _("developer"), _("purpose"), _("datasets"), _("ε spent / granted"),
           _("valid until"), _("decided")], _agreement_rows(items), title=title)


def agreements_list(
    status: Annotated[list[str] | None, typer.Option(help=_(
        "only this status (repeat for several): requested, active, rejected, revoked, expired or exhausted"))] = None,
    search: Annotated[str | None, typer.Option("--search", "-s", help=_(
        "text in the organisation, the developer's name, a dataset (name or title) or the purpose"))] = None,
    organisation: Annotated[str | None, typer.Option(help=_("the developer's organisation (part of it)"))] = None,
    developer: Annotated[str | None, typer.Option(help=_("the developer's name (part of it) or account id"))] = None,
    dataset: Annotated[str | None, typer.Option(help=_("a dataset in scope"))] = None,
    purpose: Annotated[str | None, typer.Option(help=_("text in the purpose"))] = None,
    decided: Annotated[bool, typer.Option("--decided", help=_(
        "only decided agreements (the history), newest decision first"))] = False,
    decided_since: Annotated[str | None, typer.Option(help=_("decided at or after (YYYY-MM-DD or ISO-8601)"))] = None,
    decided_until: Annotated[str | None, typer.Option(help=_("decided before (exclusive)"))] = None,
    limit: Annotated[int, typer.Option(help=_("at most this many"))] = 100,
    offset: Annotated[int, typer.Option(help=_("skip this many (the next page)"))] = 0,
    url: Url = DEFAULT_URL, token: Token = None, as_json: Json = False,
) -> None:
    """Agreements you may see (operators and auditors: all), with their budgets; filters and a
    search make it the history of decisions."""
    filters = {"q": search, "organisation": organisation, "developer": developer, "dataset": dataset,
               "purpose": purpose, "decided": decided or None, "decided_since": decided_since,
               "decided_until": decided_until}
    history = any(filters.values())
    params = filters | {"status": status or None, "order": "decided" if history else None,
                        "limit": max(1, min(limit, 1000)), "offset": max(offset, 0)}
    with remote(url, token) as sb:
        items, total = sb.raw("GET", "/agreements", params=params, total=True)
    if as_json:
        show_json(items)
        return
    title = None
    if total > len(items) or offset:
        title = _("{first}–{last} of {total} (the next: --offset {next})").format(
            first=offset + 1 if items else 0, last=offset + len(items), total=total, next=offset + len(items))
    _agreement_table(items, title)


def _show_agreement(data: dict[str, Any]) -> None:
    from sandbox.client import Agreement

    facts = Agreement.from_json(data, state.lang).facts()
    table([_("agreement"), data["id"]], [*facts, (_("decision"), data.get("decision_reason") or "—")])


def agreements_show(agreement_id: AgreementId, url: Url = DEFAULT_URL, token: Token = None,
                    as_json: Json = False) -> None:
    """One agreement: status, scope, validity, budget spent and left, output rules."""
    with remote(url, token) as sb:
        data = sb.raw("GET", f"/agreements/{agreement_id}")
    show_json(data) if as_json else _show_agreement(data)


def agreements_approve(
    agreement_id: AgreementId,
    epsilon: Annotated[float | None, typer.Option(help=_("total ε (default: as requested; never more)"))] = None,
    delta: Annotated[float | None, typer.Option(help=_("total δ (default: as requested)"))] = None,
    per_query_epsilon: Annotated[float | None, typer.Option(help=_("ε cap per query"))] = None,
    valid_to: Annotated[str | None, typer.Option(help=_("an earlier end, YYYY-MM-DD"))] = None,
    min_count: Annotated[int, typer.Option(help=_("suppress noisy counts below this"))] = 0,
    round_to: Annotated[int, typer.Option(help=_("round released counts to this"))] = 1,
    reason: Annotated[str, typer.Option(help=_("a note to the developer and the auditors"))] = "",
    url: Url = DEFAULT_URL, token: Token = None, as_json: Json = False,
) -> None:
    """Approve a requested agreement, possibly with less budget, an earlier end, output rules."""
    with remote(url, token) as sb:
        decided = sb.approve(agreement_id, epsilon=epsilon, delta=delta, per_query_epsilon=per_query_epsilon,
                             valid_to=valid_to, min_count=min_count, round_to=round_to, reason=reason).raw
    _decided(decided, as_json)


def _decided(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        show_json(data)
        return
    n = numbers()
    console.print(_("agreement {id} is {status} (ε {budget} granted, {left} left)").format(
        id=data["id"], status=word(data["status"]), budget=n.epsilon(data["budget_epsilon"]),
        left=n.epsilon(data["remaining_epsilon"])), soft_wrap=True)


def agreements_amend(
    agreement_id: AgreementId,
    reason: Reason,
    epsilon_add: Annotated[float | None, typer.Option(help=_("ε added to the budget (a top-up)"))] = None,
    epsilon: Annotated[float | None, typer.Option(help=_("the new total ε (never below what is spent)"))] = None,
    delta_add: Annotated[float | None, typer.Option(help=_("δ added to the budget"))] = None,
    delta: Annotated[float | None, typer.Option(help=_("the new total δ"))] = None,
    per_query_epsilon: Annotated[float | None, typer.Option(help=_("a new ε cap per query"))] = None,
    valid_to: Annotated[str | None, typer.Option("--until", "--valid-to", help=_(
        "a new end, YYYY-MM-DD: later extends it (also an expired agreement)"))] = None,
    dataset: Annotated[list[str] | None, typer.Option("--dataset", help=_(
        "the new scope, within the request: NAME (the columns requested) or NAME:COL,COL; repeat for each "
        "dataset"))] = None,
    url: Url = DEFAULT_URL, token: Token = None, as_json: Json = False,
) -> None:
    """Amend an agreement in force, spent or expired: a top-up, a later end, another cap or a
    scope within the request; anything beyond the request is a new request."""
    scope = None if not dataset else {
        name.strip(): ([c.strip() for c in columns.split(",") if c.strip()] if sep else None)
        for name, sep, columns in (item.partition(":") for item in dataset)}
    with remote(url, token) as sb:
        amended = sb.amend(agreement_id, reason=reason, epsilon=epsilon, epsilon_add=epsilon_add, delta=delta,
                           delta_add=delta_add, per_query_epsilon=per_query_epsilon, valid_to=valid_to,
                           datasets=scope).raw
    _decided(amended, as_json)
    if not as_json:
        every = _("all queryable columns")
        scope_text = "; ".join(f"{name} ({', '.join(cols) if cols else every})"
                               for name, cols in amended["datasets"].items())
        console.print(_("valid until {end}; scope: {scope}").format(end=amended["valid_to"][:10], scope=scope_text),
                      soft_wrap=True)


def agreements_reject(agreement_id: AgreementId, reason: Reason, url: Url = DEFAULT_URL, token: Token = None,
                      as_json: Json = False) -> None:
    """Reject a requested agreement with a reason."""
    with remote(url, token) as sb:
        _decided(sb.reject(agreement_id, reason).raw, as_json)


def agreements_revoke(agreement_id: AgreementId, reason: Reason, url: Url = DEFAULT_URL, token: Token = None,
                      as_json: Json = False) -> None:
    """Revoke an active agreement with a reason; its jobs stop at once."""
    with remote(url, token) as sb:
        _decided(sb.revoke(agreement_id, reason).raw, as_json)


# -- licences -------------------------------------------------------------------------------------
def licences_list(url: Url = DEFAULT_URL, token: Token = None, as_json: Json = False) -> None:
    """Developer licences with their status (operators and auditors)."""
    with remote(url, token) as sb:
        items = sb.raw("GET", "/licences")
    if as_json:
        show_json(items)
        return
    table([ident(_("licence")), _("number"), _("organisation"), _("developer"), _("status"), _("valid"),
           _("reason")],
          [[lic["id"], lic["licence_number"], lic["organisation"], lic["user_id"][:8], word(lic["status"]),
            f"{lic['valid_from'][:10]} – {lic['valid_to'][:10]}", lic.get("status_reason") or ""] for lic in items])


def licences_add(
    name: Annotated[str, typer.Option(help=_("the developer's name"))],
    organisation: Annotated[str, typer.Option(help=_("their organisation"))],
    licence_number: Annotated[str, typer.Option(help=_("the licence's number"))],
    valid_from: Annotated[str, typer.Option(help=_("YYYY-MM-DD"))],
    valid_to: Annotated[str, typer.Option(help=_("YYYY-MM-DD (exclusive)"))],
    url: Url = DEFAULT_URL, token: Token = None, as_json: Json = False,
) -> None:
    """License a developer: creates their account; prints their token once."""
    with remote(url, token) as sb:
        created = sb.license_developer(name=name, organisation=organisation, licence_number=licence_number,
                                       valid_from=valid_from, valid_to=valid_to)
    if as_json:
        show_json(created)
        return
    console.print(_("licence {number} ({licence}) for {name}, developer {developer}").format(
        number=created["licence"]["licence_number"], licence=created["licence"]["id"],
        name=created["developer"]["name"], developer=created["developer"]["id"]), soft_wrap=True)
    console.print(_("their token (shown once; give it to them now): {token}").format(token=created["token"]),
                  soft_wrap=True)


def _show_licence_status(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        show_json(data)
        return
    console.print(_("licence {number} ({licence}) is {status}").format(
        number=data["licence_number"], licence=data["id"], status=word(data["status"])), soft_wrap=True)


def licences_suspend(
    licence_id: Annotated[str, typer.Argument(help=_("the licence's id"), show_default=False)], reason: Reason,
    url: Url = DEFAULT_URL, token: Token = None, as_json: Json = False,
) -> None:
    """Suspend a licence with a reason; the developer's jobs are refused from now on."""
    with remote(url, token) as sb:
        data = sb.suspend_licence(licence_id, reason)
    _show_licence_status(data, as_json)


def licences_reinstate(
    licence_id: Annotated[str, typer.Argument(help=_("the licence's id"), show_default=False)], reason: Reason,
    url: Url = DEFAULT_URL, token: Token = None, as_json: Json = False,
) -> None:
    """Reinstate a suspended licence with a reason; the developer may work again."""
    with remote(url, token) as sb:
        data = sb.reinstate_licence(licence_id, reason)
    _show_licence_status(data, as_json)


# -- users ----------------------------------------------------------------------------------------
def users_list(url: Url = DEFAULT_URL, token: Token = None, as_json: Json = False) -> None:
    """Accounts and their roles, never tokens (GET /users)."""
    with remote(url, token) as sb:
        try:
            items = sb.raw("GET", "/users")
        except SandboxError as exc:  # a server without the route yet: say where else to look
            if exc.code in ("not_found", "method_not_allowed") and "/users" in exc.message:
                fail(_("This server has no GET /users yet. On the server machine, `sandbox users list --local "
                       "--data-dir DIR` reads the accounts directly."))
            raise
    if as_json:
        show_json(items)
        return
    table([ident(_("account")), _("name"), _("role"), _("active")],
          [[u["id"], u["name"], word(u["role"]), "✔" if u.get("active", True) else "✘"] for u in items])


def users_add(
    name: Annotated[str, typer.Argument(help=_("the person's or office's name"), show_default=False)],
    role: Annotated[str, typer.Option(help=_("operator or auditor (developers are licensed by operators)"))],
    url: Url = DEFAULT_URL, token: Token = None, as_json: Json = False, organisation: str | None = None,
) -> None:
    """Create an operator, auditor or data steward account (admins); prints its token once."""
    with remote(url, token) as sb:
        created = sb.create_user(name, role, organisation)
    if as_json:
        show_json(created)
        return
    console.print(_("{role} {id} created; token (shown once): {token}").format(
        role=word(created["role"]), id=created["id"], token=created["token"]), soft_wrap=True)


# -- the audit log --------------------------------------------------------------------------------
Actor = Annotated[str | None, typer.Option(help=_("an account's id"))]
Agreement = Annotated[str | None, typer.Option("--agreement", help=_("an agreement's id"))]
Dataset = Annotated[str | None, typer.Option(help=_("a dataset's name"))]
Action = Annotated[str | None, typer.Option(help=_("e.g. agreement.approved, job.released"))]
Outcome = Annotated[str | None, typer.Option(help=_("ok, rejected, failed or cancelled"))]
Job = Annotated[str | None, typer.Option("--job", help=_("a job's id"))]
Since = Annotated[str | None, typer.Option(help=_("from this time (ISO-8601, UTC if no zone), inclusive"))]
Until = Annotated[str | None, typer.Option(help=_("until this time, exclusive"))]


def audit_list(
    actor: Actor = None, agreement: Agreement = None, dataset: Dataset = None, action: Action = None,
    outcome: Outcome = None, job: Job = None, since: Since = None, until: Until = None,
    limit: Annotated[int, typer.Option(help=_("at most this many events, newest first"))] = 50,
    url: Url = DEFAULT_URL, token: Token = None, as_json: Json = False,
) -> None:
    """Audit events, newest first, filtered on the server (auditors)."""
    params = {"actor": actor, "agreement_id": agreement, "dataset": dataset, "action": action, "outcome": outcome,
              "job_id": job, "since": since, "until": until}
    with remote(url, token) as sb:
        page = sb.raw("GET", "/audit", params=params | {"limit": min(limit, 1000), "offset": 0})
    if as_json:
        show_json(page)
        return
    title = _("{shown} of {total} events, newest first").format(shown=len(page["events"]), total=page["total"])
    table([_("#"), Column(_("time (UTC)"), min_width=19), Column(_("actor"), min_width=8),
           Column(_("action"), min_width=12), _("outcome"), Column(_("agreement"), min_width=8), _("dataset"),
           Column(_("summary"), no_wrap=True, overflow="ellipsis", max_width=40)],
          [[e["seq"], e["ts"].replace("T", " ")[:19], e["actor"][:8] if e["actor"] else word(e["role"] or "system"),
            e["action"], word(e["outcome"]), (e["agreement_id"] or "")[:8], e["dataset"] or "", _summary(e)]
           for e in page["events"]], title=title)


def _summary(event: dict[str, Any]) -> str:
    details = event["details"]
    for key in ("reason", "sql"):
        if details.get(key):
            return str(details[key])[:80]
    if isinstance(details.get("charge_epsilon"), int | float):
        return f"ε {numbers().epsilon(details['charge_epsilon'])}"
    return ""


def audit_verify(
    checkpoints_file: Annotated[Path | None, typer.Option(
        "--checkpoints", help=_("checkpoints exported earlier (`sandbox audit checkpoints FILE`), kept elsewhere: "
                                "they must still be in the log"))] = None,
    url: Url = DEFAULT_URL, token: Token = None, as_json: Json = False,
) -> None:
    """Ask the server to recompute the hash chain and check its signed checkpoints; with
    --checkpoints, also check that checkpoints you kept are still signed into the log.
    Exit code 1 and the first bad event when it does not check out."""
    saved = _read_checkpoints(checkpoints_file) if checkpoints_file else None
    with remote(url, token) as sb:
        verification = sb.verify()
        current = sb.raw("GET", "/audit/checkpoints") if saved else None
    problem = _kept_checkpoints_problem(saved, current, verification.events) if saved else None
    if as_json:
        show_json({k: v for k, v in verification.__dict__.items() if k != "lang"}
                  | ({"kept_checkpoints": problem or "ok"} if saved else {}))
    elif verification.ok:
        console.print(f"[green]✔[/green] {verification.summary()}", soft_wrap=True)
    else:
        console.print(f"[red]✘ {verification.summary()}[/red]", soft_wrap=True)
    if problem:
        console.print("[red]✘ " + _("the checkpoints you kept do not check out: {problem}").format(problem=problem)
                      + "[/red]", soft_wrap=True)
    elif saved and not as_json:
        console.print("[green]✔[/green] " + _("the {n} checkpoints you kept are signed into this log").format(
            n=len(saved["checkpoints"])), soft_wrap=True)
    if not verification.ok or problem:
        raise typer.Exit(1)


def _read_checkpoints(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text())
        document["public_key"] and document["checkpoints"]  # noqa: B018  (the fields we need)
        return document
    except (OSError, ValueError, KeyError, TypeError) as exc:
        fail(_("{path} is not a checkpoints file written by `sandbox audit checkpoints` ({problem}).").format(
            path=path, problem=exc))


def _kept_checkpoints_problem(saved: dict[str, Any], current: dict[str, Any], events: int) -> str | None:
    """Every checkpoint in the file must be in the server's list, identical, and signed by the key
    the file names; and the server's list must follow from it (the server checked it against the
    chain when it verified)."""
    from sandbox.audit import checkpoints

    trust = checkpoints.load_export(saved)
    chain = {c["seq"]: c["hash"] for c in current["checkpoints"]}
    _good, finding = checkpoints.check(current["checkpoints"], chain, events, trust)
    return finding.reason if finding else None


def audit_export(
    out: Annotated[Path, typer.Argument(help=_("the file to write"), show_default=False)],
    format: Annotated[str, typer.Option(help=_("jsonl, csv or parquet"))] = "jsonl",
    actor: Actor = None, agreement: Agreement = None, dataset: Dataset = None, action: Action = None,
    outcome: Outcome = None, job: Job = None, since: Since = None, until: Until = None,
    url: Url = DEFAULT_URL, token: Token = None,
) -> None:
    """Export the log (filtered like `audit list`) to a file; the export is itself audited."""
    with remote(url, token) as sb:
        body = sb.export(format, actor=actor, agreement=agreement, dataset=dataset, action=action, outcome=outcome,
                         job=job, since=since, until=until)
    try:
        out.write_bytes(body)
    except OSError as exc:
        fail(_("Cannot write {path}: {problem}").format(path=out, problem=exc.strerror or exc))
    console.print(_("wrote {path} ({size} bytes)").format(path=out, size=numbers().count(len(body))), soft_wrap=True)


def audit_checkpoints(
    out: Annotated[Path | None, typer.Argument(help=_("write the JSON here (default: print it)"),
                                               show_default=False)] = None,
    url: Url = DEFAULT_URL, token: Token = None,
) -> None:
    """The signed checkpoints and the public key: keep the file elsewhere and check a later log
    against it with `sandbox audit verify --checkpoints FILE`."""
    with remote(url, token) as sb:
        document = sb.raw("GET", "/audit/checkpoints")
    write_checkpoints(document, out)


# -- data stewards --------------------------------------------------------------------------------
DatasetArg = Annotated[str, typer.Argument(help=_("the dataset's name"), show_default=False)]
OneAgreement = Annotated[str | None, typer.Option("--agreement", help=_(
    "only under this agreement (default: every agreement that uses the dataset)"))]


def _part_rows(parts: list[dict[str, Any]]) -> list[list[Any]]:
    n = numbers()
    return [[p["agreement_id"], p["dataset"], word(p["status"]) + (" · " + word("suspended") if p["suspended"] else ""),
             p.get("purpose", ""), "—" if p["budget_epsilon"] is None else n.epsilon(p["budget_epsilon"]),
             n.epsilon(p["spent_epsilon"]), ", ".join(p["columns"]) if p["columns"] else _("as requested"),
             (p["valid_to"] or "")[:10] or "—", _rules_text(p)] for p in parts]


def _rules_text(part: dict[str, Any]) -> str:
    if not (part.get("min_count") or part.get("round_to")):
        return "—"
    return _("min count {min_count}, round to {round_to}").format(
        min_count=part.get("min_count") or "—", round_to=part.get("round_to") or "—")


def _part_table(parts: list[dict[str, Any]]) -> None:
    table([ident(_("agreement")), _("dataset"), _("status"), _("purpose"), _("ε for the dataset"), _("ε spent"),
           _("columns"), _("until"), _("output rules")], _part_rows(parts))


def stewardship_parts(
    status: Annotated[str | None, typer.Option(help=_("only this status: pending, approved, rejected or "
                                                      "delegated"))] = None,
    url: Url = DEFAULT_URL, token: Token = None, as_json: Json = False,
) -> None:
    """The parts of agreements that use your organisation's datasets, newest request first."""
    with remote(url, token) as sb:
        parts = sb.parts(status)
    show_json(parts) if as_json else _part_table(parts)


def stewardship_approve(
    agreement_id: AgreementId, dataset: DatasetArg,
    epsilon: Annotated[float | None, typer.Option(help=_(
        "a budget for this dataset (at most the requested ε)"))] = None,
    column: Annotated[list[str] | None, typer.Option("--column", help=_(
        "only this column (repeat for several; default: the columns requested)"))] = None,
    valid_to: Annotated[str | None, typer.Option(help=_("an earlier end for this dataset, YYYY-MM-DD"))] = None,
    min_count: Annotated[int | None, typer.Option(help=_(
        "suppress counts below this in every query that reads the dataset"))] = None,
    round_to: Annotated[int | None, typer.Option(help=_(
        "round counts to a multiple of this in every query that reads the dataset"))] = None,
    reason: Annotated[str, typer.Option(help=_("a note to the developer, the operator and the auditors"))] = "",
    url: Url = DEFAULT_URL, token: Token = None, as_json: Json = False,
) -> None:
    """Approve your dataset's part of a request, possibly with a smaller budget, fewer columns,
    an earlier end, stricter output rules."""
    with remote(url, token) as sb:
        part = sb.approve_part(agreement_id, dataset, epsilon=epsilon, columns=column or None, valid_to=valid_to,
                               min_count=min_count, round_to=round_to, reason=reason)
    show_json(part) if as_json else _part_table([part])


def stewardship_reject(agreement_id: AgreementId, dataset: DatasetArg, reason: Reason, url: Url = DEFAULT_URL,
                       token: Token = None, as_json: Json = False) -> None:
    """Reject your dataset's part of a request: the request is rejected, with your reason."""
    with remote(url, token) as sb:
        part = sb.reject_part(agreement_id, dataset, reason)
    show_json(part) if as_json else _part_table([part])


def stewardship_suspend(dataset: DatasetArg, reason: Reason, agreement: OneAgreement = None, url: Url = DEFAULT_URL,
                        token: Token = None, as_json: Json = False) -> None:
    """Suspend the use of your dataset under one agreement, or all, from the next job on."""
    with remote(url, token) as sb:
        parts = sb.suspend_dataset(dataset, reason, agreement)
    show_json(parts) if as_json else _part_table(parts)


def stewardship_resume(dataset: DatasetArg, reason: Reason, agreement: OneAgreement = None, url: Url = DEFAULT_URL,
                       token: Token = None, as_json: Json = False) -> None:
    """Lift a suspension of your dataset (one agreement, or all)."""
    with remote(url, token) as sb:
        parts = sb.resume_dataset(dataset, reason, agreement)
    show_json(parts) if as_json else _part_table(parts)
