"""The `sandbox` command: one entry point for every role.

    over HTTP (--url/--token or SANDBOX_URL/SANDBOX_TOKEN), from any machine:
      agreements list|show|approve|reject|amend|revoke   operators decide, auditors read
      licences list|add|suspend|reinstate            operators
      users list|add                                 admins (list: operators and auditors too)
      audit list|verify|export|checkpoints           auditors
      stewardship parts|approve|reject|suspend|resume  data stewards
      catalog list|certificate                       every account
      catalog verify-certificate                     anyone, offline
      query                                          developers
    on the server machine (the data directory and the database themselves; each says so):
      demo, serve, stop, catalog register, users create-admin, users list --local,
      audit checkpoint, audit verify --local
    notebook                                         JupyterLab next to a running sandbox

A refusal, an unreachable server or a wrong token is one line on stderr and exit code 1. The
language is SANDBOX_LANG or the system's locale (en, zh-CN), or `sandbox --lang zh-CN ...`.
The table below is the whole command tree: a new command is a function and one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sandbox import i18n
from sandbox.cli import demo as demo_module
from sandbox.cli import developer, server, staff
from sandbox.cli.common import DEFAULT_URL, DatabaseUrl, DataDir, Json, Token, Url, _, fail, state
from sandbox.errors import SandboxError

__all__ = ["app", "main"]

app = typer.Typer(help=_("The Xiamen public-data sandbox: use data without seeing it."), no_args_is_help=True,
                  pretty_exceptions_show_locals=False)


@app.callback()
def _options(lang: Annotated[str | None, typer.Option(
        "--lang", help=_("en or zh-CN (default: SANDBOX_LANG, then the system's locale)"))] = None) -> None:
    if lang:
        state.lang = i18n.choose(lang)


def users_list(ctx: typer.Context, local: server.Local = False, data_dir: DataDir = Path("var"),
               database_url: DatabaseUrl = None, url: Url = DEFAULT_URL, token: Token = None,
               as_json: Json = False) -> None:
    """Accounts and their roles, never tokens. Over HTTP (GET /users); with --local, from the
    database on the server machine."""
    if local or _given(ctx, "data_dir", "database_url"):
        server.users_list_local(data_dir, database_url)
    else:
        staff.users_list(url, token, as_json)


def users_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help=_("the person's or office's name"), show_default=False)],
    role: Annotated[str, typer.Option(help=_("operator, auditor or steward (developers are licensed by "
                                             "operators)"))],
    organisation: Annotated[str | None, typer.Option(help=_(
        "a steward's organisation, exactly as its datasets' policies name the owner"))] = None,
    local: server.Local = False, data_dir: DataDir = Path("var"), database_url: DatabaseUrl = None,
    url: Url = DEFAULT_URL, token: Token = None, as_json: Json = False,
) -> None:
    if local or _given(ctx, "data_dir", "database_url"):
        server.users_add_local(name, role, data_dir, database_url, organisation)
    else:
        staff.users_add(name, role, url, token, as_json, organisation)


def audit_verify(
    ctx: typer.Context, local: server.Local = False, data_dir: DataDir = Path("var"), database_url: DatabaseUrl = None,
    checkpoints_file: Annotated[Path | None, typer.Option(
        "--checkpoints", help=_("checkpoints exported earlier (`sandbox audit checkpoints FILE`) and kept "
                                "elsewhere"))] = None,
    url: Url = DEFAULT_URL, token: Token = None, as_json: Json = False,
) -> None:
    """Verify the audit log: the hash chain, the signed checkpoints and, with --checkpoints, the
    ones you kept. Over HTTP (auditors); with --local, from the database and the key on the
    server machine. Exit code 1 and the first bad event when it does not check out."""
    if local or _given(ctx, "data_dir", "database_url"):
        server.audit_verify_local(data_dir, database_url, checkpoints_file)
    else:
        staff.audit_verify(checkpoints_file, url, token, as_json)


def audit_checkpoints(
    ctx: typer.Context, out: Annotated[Path | None, typer.Argument(help=_("write the JSON here (default: print it)"),
                                               show_default=False)] = None,
    local: server.Local = False, data_dir: DataDir = Path("var"), database_url: DatabaseUrl = None,
    url: Url = DEFAULT_URL, token: Token = None,
) -> None:
    if local or _given(ctx, "data_dir", "database_url"):
        server.audit_checkpoints_local(out, data_dir, database_url)
    else:
        staff.audit_checkpoints(out, url, token)


def _given(ctx: typer.Context, *names: str) -> bool:
    """Whether the user named the data directory or the database on the command line: then the
    command reads them (on the server machine) instead of asking a server."""
    return any(getattr(ctx.get_parameter_source(name), "name", "") == "COMMANDLINE" for name in names)


# The command tree, with each command's help (translated: the docstrings stay English).
for _command, _function, _help in (
    ("serve", server.serve, _("Register the policies and serve the sandbox (API and console) until Ctrl-C or "
                              "`sandbox stop`. On the server machine.")),
    ("stop", server.stop, _("Stop the sandbox that `make demo` or `sandbox serve` started on this data directory, "
                            "and nothing else. On the server machine.")),
    ("query", developer.query, _("Run a query in the sandbox (as a developer) and print the release with its "
                                 "{level} intervals.").format(level="95%")),
    ("notebook", developer.notebook, _("JupyterLab on notebooks/ (loopback only), its kernels configured for the "
                                       "running sandbox; prints one URL that opens the quickstart.")),
):
    app.command(_command, help=_help)(_function)

demo_app = typer.Typer(help=_("Build the demo city (once), register its policies, make the demo accounts and serve. "
                              "On the server machine."), invoke_without_command=True)
app.add_typer(demo_app, name="demo")
demo_app.callback()(demo_module.demo)
demo_app.command("build", help=_("Generate the deterministic synthetic city into DATA_DIR/demo (rebuilds)."))(
    demo_module.build_command)

_GROUPS = {
    "catalog": (_("Registered datasets."), [
        ("list", developer.catalog_list, _("Registered datasets with their privacy unit (schemas and policies, "
                                           "never rows).")),
        ("certificate", developer.catalog_certificate, _("A dataset's signed data asset certificate (JSON); "
                                                         "--public-key FILE saves the key to check it with.")),
        ("verify-certificate", developer.catalog_verify_certificate, _(
            "Check a certificate offline with the public key (and --data, the data file; --previous, the chain).")),
        ("register", server.catalog_register, _("Register (or re-check) every policy in a directory. On the server "
                                                "machine.")),
    ]),
    "agreements": (_("Data-use agreements: operators decide, auditors read."), [
        ("list", staff.agreements_list, _("Agreements you may see (operators and auditors: all), with their "
                                          "budgets; --search, --decided and the filters make it the history of "
                                          "decisions.")),
        ("show", staff.agreements_show, _("One agreement: status, scope, validity, budget spent and left, output "
                                          "rules.")),
        ("approve", staff.agreements_approve, _("Approve a requested agreement, possibly with less budget, an earlier "
                                                "end and output rules.")),
        ("reject", staff.agreements_reject, _("Reject a requested agreement with a reason.")),
        ("amend", staff.agreements_amend, _("Amend an agreement in force, spent or expired, with a reason: a top-up "
                                            "(--epsilon-add), a later end (--until), another cap or a scope within "
                                            "the request.")),
        ("revoke", staff.agreements_revoke, _("Revoke an active agreement with a reason; its jobs stop at once.")),
    ]),
    "stewardship": (_("Data stewards: decide and suspend the use of your organisation's datasets."), [
        ("parts", staff.stewardship_parts, _("The parts of agreements that use your organisation's datasets, newest "
                                             "request first (--status pending: your queue).")),
        ("approve", staff.stewardship_approve, _("Approve your dataset's part of a request, possibly with a smaller "
                                                 "budget (--epsilon), fewer columns (--column) or an earlier end.")),
        ("reject", staff.stewardship_reject, _("Reject your dataset's part of a request with a reason: the request "
                                               "is rejected.")),
        ("suspend", staff.stewardship_suspend, _("Suspend the use of your dataset under one agreement (--agreement) "
                                                 "or all, from the next job on.")),
        ("resume", staff.stewardship_resume, _("Lift a suspension of your dataset (one agreement, or all).")),
    ]),
    "licences": (_("Developer licences, as an operator."), [
        ("list", staff.licences_list, _("Developer licences with their status (operators and auditors).")),
        ("add", staff.licences_add, _("License a developer: creates their account and prints their token once.")),
        ("suspend", staff.licences_suspend, _("Suspend a licence with a reason; the developer's jobs are refused "
                                              "from now on.")),
        ("reinstate", staff.licences_reinstate, _("Reinstate a suspended licence with a reason; the developer may "
                                                  "work again.")),
    ]),
    "users": (_("Accounts: admins add operators and auditors."), [
        ("list", users_list, _("Accounts and their roles, never tokens: over HTTP (GET /users), or with --local "
                               "(or --data-dir) from the database on the server machine.")),
        ("add", users_add, _("Create an operator, auditor or data steward (--organisation) account and print its "
                             "token once: over HTTP (admins), or with --local (or --data-dir) on the server machine.")),
        ("create-admin", server.users_create_admin, _("Bootstrap an admin account and print its token once. On the "
                                                      "server machine: there is no admin yet to ask the API.")),
    ]),
    "audit": (_("The audit log, as an auditor."), [
        ("list", staff.audit_list, _("Audit events, newest first, filtered on the server.")),
        ("verify", audit_verify, _("Verify the hash chain, the signed checkpoints and, with --checkpoints, the ones "
                                   "you kept: over HTTP, or with --local (or --data-dir) on the server machine. Exit "
                                   "code 1 and the first bad event when it does not check out.")),
        ("export", staff.audit_export, _("Export the log (filtered like `audit list`) to a file; the export is itself "
                                         "audited.")),
        ("checkpoints", audit_checkpoints, _("The signed checkpoints and the public key: keep the file elsewhere, "
                                             "check a later log with `audit verify --checkpoints`. Over HTTP, or "
                                             "with --local on the server machine.")),
        ("checkpoint", server.audit_checkpoint, _("Sign the audit head now (the service also signs on its own). On "
                                                  "the server machine: needs the signing key.")),
    ]),
}
for _name, (_group_help, _commands) in _GROUPS.items():
    _group_app = typer.Typer(help=_group_help, no_args_is_help=True)
    app.add_typer(_group_app, name=_name)
    for _command, _function, _help in _commands:
        _group_app.command(_command, help=_help)(_function)


def main() -> None:
    """The console script: a sandbox error raised on the server machine (a policy that does not
    load, a source that is missing) is one line too."""
    try:
        app()
    except SandboxError as exc:
        try:
            fail(f"{exc.code}: {exc.message}")
        except typer.Exit as done:
            raise SystemExit(done.exit_code) from None
