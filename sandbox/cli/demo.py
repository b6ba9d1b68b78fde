"""`sandbox demo` (`make demo`): the demo city, its accounts and agreement, and a short banner.

The accounts are made once and kept in DATA_DIR/demo-tokens.json (owner-only). A restarted demo
tops its agreement up: when the demo agreement is no longer active or has less than one query's
budget left, an operator's decision approves a fresh one (audited like any other) and the
banner says so; when that is impossible (the demo developer's licence was suspended) the banner
says how to start afresh.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from sandbox.cli.common import DataDir, _, console
from sandbox.cli.server import REPO_POLICIES, Host, Port, refuse_if_serving, register, serve_app, store

TOKENS = "demo-tokens.json"
EPSILON, PER_QUERY = 5.0, 1.0
REPO = REPO_POLICIES.parent
Scale = Annotated[int, typer.Option(help=_("residents in the demo city"))]


def demo(ctx: typer.Context, data_dir: DataDir = Path("var"), scale: Scale = 20_000, host: Host = "127.0.0.1",
         port: Port = 8000) -> None:
    """Build the demo city (once), register its policies, make the demo accounts and serve."""
    if ctx.invoked_subcommand is not None:
        return
    refuse_if_serving(data_dir, host, port)
    build(data_dir, scale, seed=2026, force=False)
    register(data_dir, REPO_POLICIES, skip_missing=True)
    tokens = demo_accounts(data_dir)
    note = top_up(data_dir, tokens)
    serve_app(data_dir, host, port, banner=lambda url: banner(url, data_dir, tokens, note))


def build_command(
    data_dir: DataDir = Path("var"), scale: Scale = 20_000,
    seed: Annotated[int, typer.Option(help=_("same seed, same bytes"))] = 2026,
) -> None:
    """Generate the deterministic synthetic city into DATA_DIR/demo (rebuilds)."""
    build(data_dir, scale, seed, force=True)


def build(data_dir: Path, scale: int, seed: int, force: bool) -> None:
    from sandbox.demo import build_demo, summarize

    out = data_dir / "demo"
    marker = out / f".built-{scale}-{seed}"
    if marker.exists() and not force:
        console.print(_("demo city already built in {path} (scale {scale})").format(path=out, scale=f"{scale:,}"))
        return
    with console.status(_("building the demo city at scale {scale}").format(scale=f"{scale:,}")):
        start = time.perf_counter()
        paths = build_demo(out, scale=scale, seed=seed)
    table = Table(_("dataset"), _("rows"), _("bytes"), title=_("demo city built in {seconds}s").format(
        seconds=f"{time.perf_counter() - start:.1f}"))
    for name, rows, size in summarize(paths):
        table.add_row(name, f"{rows:,}", f"{size:,}")
    console.print(table)
    for old in out.glob(".built-*"):
        old.unlink()
    marker.touch()


# -- accounts and the agreement -------------------------------------------------------------------
def _known(data_dir: Path) -> dict[str, set[str]]:
    from sandbox.catalog import Catalog

    return {d.name: set(d.policy.queryable()) for d in Catalog(data_dir).list() if not d.policy.public}


def _approved_agreement(conn: Any, operator: Any, developer: Any, known: dict[str, set[str]], why: str) -> str:
    from sandbox import agreements

    agreement = agreements.request(
        conn, developer, purpose="Demo: income and health-care use across districts", legal_basis="Demo data only",
        datasets={name: None for name in known}, valid_from="2026-01-01", valid_to="2030-01-01",
        epsilon=2 * EPSILON, delta=1e-5, known=known)
    agreements.approve(conn, operator, agreement["id"], epsilon=EPSILON, per_query_epsilon=PER_QUERY, reason=why)
    return agreement["id"]


def _stewards(conn: Any, admin: Any, data_dir: Path) -> dict[str, str]:
    """A data steward per department that owns a dataset of the demo city (the `owner` of its
    policy); their tokens by dataset name. New requests over a department's data wait for its
    steward (the demo agreement was approved before there were any)."""
    from sandbox import accounts
    from sandbox.catalog import Catalog
    from sandbox.demo import DATASETS

    owners = Catalog(data_dir).owners()
    made: dict[str, str] = {}
    tokens: dict[str, str] = {}
    for name in DATASETS:
        owner = owners.get(name)
        if owner is None:  # public, or not registered
            continue
        if owner not in made:
            made[owner] = accounts.create_user(conn, f"Data steward, {owner.split(',')[0]}", "steward", by=admin,
                                               organisation=owner)[1]
        tokens[name] = made[owner]
    return tokens


def demo_accounts(data_dir: Path) -> dict[str, str]:
    """Demo admin, operator, auditor, a data steward per department and a licensed developer with
    one approved agreement; created once, then reused (the file is readable by its owner only)."""
    from sandbox import accounts

    path = data_dir / TOKENS
    if path.exists():
        return json.loads(path.read_text())
    known = _known(data_dir)
    db = store(data_dir, None)
    with db.transaction() as conn:
        admin, admin_token = accounts.create_user(conn, "Demo admin", "admin")
        operator, operator_token = accounts.create_user(conn, "Demo operator", "operator", by=admin)
        _, auditor_token = accounts.create_user(conn, "Demo auditor", "auditor", by=admin)
        _, developer, developer_token = accounts.create_licence(
            conn, operator, name="Demo developer", organisation="Xiamen University (demo)",
            licence_number="XM-DEMO-0001", valid_from="2026-01-01", valid_to="2030-01-01")
        agreement_id = _approved_agreement(conn, operator, developer, known,
                                           "demo agreement: half the requested budget")
        stewards = _stewards(conn, admin, data_dir)
    db.close()
    tokens = {"admin": admin_token, "operator": operator_token, "auditor": auditor_token,
              "developer": developer_token, "agreement_id": agreement_id, "stewards": stewards}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(tokens, handle, indent=2)
    return tokens


def top_up(data_dir: Path, tokens: dict[str, str]) -> str | None:
    """A fresh agreement when the demo's is spent or no longer active; a note for the banner."""
    from sandbox import accounts, agreements
    from sandbox.errors import SandboxError

    db = store(data_dir, None)
    try:
        with db.transaction() as conn:
            operator = accounts.authenticate(conn, tokens["operator"])
            developer = accounts.authenticate(conn, tokens["developer"])
            current = agreements.get(conn, operator, tokens["agreement_id"])
            if current["status"] == "active" and current["remaining_epsilon"] >= PER_QUERY:
                return None
            accounts.require_licence(conn, developer)
            left = current["remaining_epsilon"]
            new_id = _approved_agreement(conn, operator, developer, _known(data_dir),
                                         f"demo restarted: the previous agreement was {current['status']} with "
                                         f"ε {left:g} left")
    except SandboxError as exc:
        return _("The demo agreement cannot be topped up ({problem}). To start afresh: make stop; rm -rf {data}; "
                 "make demo").format(problem=exc.message, data=data_dir)
    finally:
        db.close()
    tokens["agreement_id"] = new_id
    path = data_dir / TOKENS
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(tokens, handle, indent=2)
    temporary.replace(path)
    return _("The demo agreement {old} was {status} with ε {left} left; a new one with ε {budget} is approved.").format(
        old=current["id"][:8], status=current["status"], left=f"{left:g}", budget=f"{EPSILON:g}")


# -- the banner -----------------------------------------------------------------------------------
def command() -> str:
    """How to call this `sandbox` from the current directory: the venv's, e.g. .venv/bin/sandbox."""
    exe = Path(sys.executable).parent / "sandbox"
    if not exe.exists():
        return "sandbox"
    try:
        return str(exe.relative_to(Path.cwd()))
    except ValueError:
        return str(exe)


def banner(url: str, data_dir: Path, tokens: dict[str, str], note: str | None = None) -> None:
    """Short and copy-pasteable: one command per line, nothing wrapped by the terminal's width."""
    port = url.rsplit(":", 1)[1]
    data_arg = f" DATA={data_dir}" if Path(data_dir).resolve() != (REPO / "var").resolve() else ""
    make_args = (f" PORT={port}" if port != "8000" else "") + data_arg
    sandbox = command()
    console_, notebooks, docs, stop = _("console"), _("notebooks"), _("API docs"), _("stop")
    lines = [
        _("The sandbox is serving on {url} (data in {data}).").format(url=url, data=data_dir),
        f"  {console_:<10} {url}/console   " + _("(sign in with a token below)"),
        f"  {notebooks:<10} make notebook{make_args}   " + _("(JupyterLab, in another terminal)"),
        f"  {docs:<10} {url}/docs",
        f"  {stop:<10} " + _("Ctrl-C, or make stop{args} in another terminal").format(args=data_arg),
        _("Demo tokens (all of them in {path}):").format(path=Path(data_dir) / TOKENS),
        *(f"  {role:<10} {tokens[role]}" for role in ("operator", "auditor", "developer")),
        _("Try, as the developer (agreement {agreement}):").format(agreement=tokens["agreement_id"]),
        f"  export SANDBOX_URL={url} SANDBOX_TOKEN={tokens['developer']} SANDBOX_AGREEMENT={tokens['agreement_id']}",
        f'  {sandbox} query "SELECT district, COUNT(*) FROM residents GROUP BY district" --epsilon 0.5',
        _("and as the operator:"),
        f"  {sandbox} agreements list --token {tokens['operator']}",
    ]
    if note:
        lines.insert(1, note)
    print("\n".join(lines), flush=True)
