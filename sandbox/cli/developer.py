"""Every account over HTTP (the catalog) and licensed developers (query, notebook)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from sandbox.cli.common import (
    DEFAULT_URL,
    DataDir,
    Json,
    Token,
    Url,
    _,
    console,
    fail,
    one_line,
    remote,
    show_json,
    state,
)
from sandbox.cli.common import table as print_table
from sandbox.errors import SandboxError


def catalog_list(url: Url = DEFAULT_URL, token: Token = None, as_json: Json = False) -> None:
    """Registered datasets with their privacy unit (schemas and policies, never rows)."""
    with remote(url, token) as sb:
        items = sb.raw("GET", "/datasets")
        lang = sb.lang
    if as_json:
        show_json(items)
        return
    from sandbox.client import _localized

    print_table([_("dataset"), _("title"), _("owner"), _("privacy unit"), _("columns")],
                [[d["name"], _localized(d, "title", lang), d.get("owner", ""),
                  (f"{d['privacy_unit']['column']} (≤ {d['privacy_unit']['max_rows']})" if d.get("privacy_unit")
                   else _("public")), ", ".join(d["columns"])] for d in items])


def catalog_certificate(
    name: Annotated[str, typer.Argument(help=_("the dataset's name"), show_default=False)],
    every: Annotated[bool, typer.Option("--all", help=_("every version, oldest first (default: the latest)"))] = False,
    public_key: Annotated[Path | None, typer.Option("--public-key", help=_(
        "also write the server's public key (PEM) to this file; compare its key id with the one you keep"))] = None,
    url: Url = DEFAULT_URL, token: Token = None,
) -> None:
    """A dataset's signed data asset certificate as JSON (save it; check it offline with
    `sandbox catalog verify-certificate`)."""
    with remote(url, token) as sb:
        chain = sb.raw("GET", f"/datasets/{name}/certificate")
    if not chain["certificates"]:
        fail(_("{name} has no certificate yet: it is issued when the dataset is registered (again).").format(name=name))
    if public_key is not None:
        public_key.write_text(chain["public_key"])
    print(json.dumps(chain["certificates"] if every else chain["certificates"][-1], indent=2, sort_keys=True,
                     ensure_ascii=False))


def catalog_verify_certificate(
    file: Annotated[Path, typer.Argument(help=_("a certificate (JSON), as `sandbox catalog certificate` printed it"),
                                         show_default=False)],
    public_key: Annotated[Path, typer.Option("--public-key", help=_("the sandbox's public key (PEM) you keep"))],
    data: Annotated[Path | None, typer.Option("--data", help=_(
        "the managed data file (data.parquet) to check against the certified snapshot"))] = None,
    previous: Annotated[Path | None, typer.Option("--previous", help=_(
        "the version before, to check the chain"))] = None,
) -> None:
    """Check a certificate offline: its signature, and optionally the data file and the chain.
    Exit code 1 with what does not check out."""
    from sandbox import certificates

    try:
        certificate = json.loads(file.read_text())
        before = json.loads(previous.read_text()) if previous else None
        pem = public_key.read_text()
    except (OSError, ValueError) as exc:
        fail(_("Cannot read {file}: {problem}").format(file=exc.filename if isinstance(exc, OSError) else file,
                                                      problem=exc))
    problems = certificates.verify(certificate, pem, snapshot=data, previous=before)
    if problems:
        fail(_("the certificate does not verify: {problems}").format(problems="; ".join(problems)))
    console.print(_("the certificate of {name} (version {version}, issued {issued}) verifies under key {key}").format(
        name=certificate["dataset"], version=certificate["version"], issued=certificate["issued_at"][:19],
        key=certificate["key_id"][:16] + "…"), soft_wrap=True)


def query(
    sql: Annotated[str, typer.Argument(help=_("one SELECT"), show_default=False)],
    epsilon: Annotated[float, typer.Option(help=_("the privacy budget this query may spend"))],
    agreement: Annotated[str | None, typer.Option("--agreement", envvar="SANDBOX_AGREEMENT",
                                                  help=_("the agreement that pays (default: your only active one)"))
                         ] = None,
    delta: Annotated[float | None, typer.Option(help=_("for private GROUP BY keys; default: the dataset's"))] = None,
    explain: Annotated[bool, typer.Option("--explain", help=_(
        "preview cost, accuracy and each contribution bound's noise; spends nothing"))] = False,
    max_rows: Annotated[list[str] | None, typer.Option("--max-rows", metavar="DATASET=ROWS", show_default=False, help=_(
        "rows per unit of a dataset, up to its policy's ceiling (repeat for more datasets)"))] = None,
    max_groups: Annotated[int | None, typer.Option("--max-groups", metavar="N", show_default=False, help=_(
        "groups one unit may reach, up to the policy's ceiling"))] = None,
    clamp: Annotated[list[str] | None, typer.Option("--clamp", metavar="DATASET.COLUMN=LOW,HIGH", show_default=False,
                                                    help=_("tighter clamping bounds for a measure, inside its public "
                                                           "bounds (repeat for more)"))] = None,
    url: Url = DEFAULT_URL, token: Token = None, as_json: Json = False,
) -> None:
    """Run a query in the sandbox (as a developer) and print the release with its 95% intervals
    and what it leaves out. A query whose group keys are private is preceded by a warning on
    stderr (how large a group must be to appear)."""
    from sandbox.client import parse_contribution

    try:
        bounds = parse_contribution(max_rows or (), max_groups, clamp or (), lang=state.lang)
    except SandboxError as exc:
        fail(exc.message)
    with remote(url, token) as sb:
        if explain:
            preview = sb.explain(sql, epsilon=epsilon, delta=delta, agreement=agreement, **bounds)
        else:
            release = sb.query(sql, epsilon=epsilon, delta=delta, agreement=agreement, **bounds)
    if explain:
        _show_explanation(preview, as_json)
        return
    if as_json:
        show_json({"job_id": release.job_id, "columns": release.columns, "rows": release.rows,
                   "half_widths": release.half_widths, "lower": release.lower, "upper": release.upper,
                   "suppressed": release.suppressed, "notes": release.notes, "note_details": release.note_details,
                   "bias": release.bias, "contribution": release.contribution,
                   "charge_epsilon": release.charge_epsilon, "remaining_epsilon": release.remaining_epsilon})
        return
    print_table(release.columns, [[_("suppressed") if cell is None else cell for cell in row]
                                  for row in release.cells()])
    console.print(release.footer(), soft_wrap=True)
    _show_messages(release.messages())


def _show_explanation(preview: Any, as_json: bool) -> None:
    if as_json:
        show_json(preview.raw)
        return
    console.print(preview.summary(), soft_wrap=True)
    print_table([_("column"), _("aggregate"), _("expected {level} interval").format(level="95%")],
                preview.expected())
    _show_messages(preview.messages())
    if preview.contribution_choices:
        print_table(preview.choice_headers(), preview.choice_rows(),
                    title=_("Contribution bounds this query could ask for (✓: used now)"))


def _show_messages(messages: list[tuple[bool, str]]) -> None:
    for warning, text in messages:
        if warning:
            console.print(f"[yellow]⚠ {escape(text)}[/yellow]", soft_wrap=True)
        else:
            console.print(f"[dim]· {escape(text)}[/dim]", soft_wrap=True)


def notebook(
    data_dir: DataDir = Path("var"),
    url: Annotated[str, typer.Option(envvar="SANDBOX_URL", help=_("the running sandbox"))] = DEFAULT_URL,
    token: Annotated[str | None, typer.Option(envvar="SANDBOX_TOKEN", show_default=False, help=_(
        "developer token (default: the demo developer's, from the data directory)"))] = None,
    agreement: Annotated[str | None, typer.Option(envvar="SANDBOX_AGREEMENT", show_default=False)] = None,
    port: Annotated[int, typer.Option(help=_("first port to try (loopback only)"))] = 8888,
    staff_tokens: Annotated[bool, typer.Option("--staff-tokens", help=_(
        "demo only: also give the kernels the demo operator's and auditor's tokens"))] = False,
) -> None:
    """JupyterLab on notebooks/ (loopback only), its kernels configured for the running sandbox;
    prints one URL that opens the quickstart."""
    from sandbox.notebook import QUICKSTART, check_sandbox, demo_tokens, start, wait

    extra: dict[str, str] = {}
    if token is None or staff_tokens:
        try:
            demo = demo_tokens(data_dir)
        except FileNotFoundError as exc:
            fail(str(exc))
        token, agreement = token or demo["developer"], agreement or demo["agreement_id"]
        if staff_tokens:
            extra = {"SANDBOX_OPERATOR_TOKEN": demo["operator"], "SANDBOX_AUDITOR_TOKEN": demo["auditor"]}
            if demo.get("stewards"):  # a demo made before stewards has none (notebook 02 needs them)
                extra["SANDBOX_STEWARD_TOKENS"] = json.dumps(demo["stewards"])
    try:
        who = check_sandbox(url, token)
    except SandboxError as exc:
        fail(one_line(exc, url))
    with console.status(_("starting JupyterLab")):
        server = start(sandbox_url=url, token=token, agreement=agreement, extra_env=extra, port=port, quiet=True)
    console.print(_("JupyterLab for {who} on the sandbox at {url}; open:").format(who=who, url=url), soft_wrap=True)
    print(f"  {server.browser_url_for(QUICKSTART)}", flush=True)
    console.print(_("(stop with Ctrl-C)"))
    wait(server)
