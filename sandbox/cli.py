"""The `sandbox` command (Typer + rich)."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from sandbox.settings import REPO_POLICIES, Settings

app = typer.Typer(help="The Xiamen public-data sandbox: use data without seeing it.", no_args_is_help=True)
demo_app = typer.Typer(help="The built-in demo city.", invoke_without_command=True)
catalog_app = typer.Typer(help="Registered datasets.", no_args_is_help=True)
users_app = typer.Typer(help="Accounts (run on the server machine).", no_args_is_help=True)
agreements_app = typer.Typer(help="Data-use agreements, as an operator.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit log, as an auditor.", no_args_is_help=True)
for sub, name in (
    (demo_app, "demo"),
    (catalog_app, "catalog"),
    (users_app, "users"),
    (agreements_app, "agreements"),
    (audit_app, "audit"),
):
    app.add_typer(sub, name=name)
console = Console()

DataDir = typer.Option(Path("var"), "--data-dir", envvar="SANDBOX_DATA_DIR", help="catalog, managed data, secret")
DatabaseUrl = typer.Option(None, "--database-url", envvar="DATABASE_URL", help="PostgreSQL URL (default: SQLite)")
Token = typer.Option(..., "--token", envvar="SANDBOX_TOKEN", help="your bearer token")


def _store(data_dir: Path, database_url: str | None):
    from sandbox.store import Store

    return Store(database_url or data_dir / "sandbox.db")


def _fail(exc) -> None:
    console.print(f"[red]{exc.code}[/red]: {exc.message}")
    raise typer.Exit(1)


def _register(data_dir: Path, policies: Path) -> None:
    from sandbox.catalog import Catalog

    catalog = Catalog(data_dir)
    with console.status("registering datasets (bounding ranks are computed once, here)"):
        start = time.perf_counter()
        datasets = catalog.register_directory(policies)
    console.print(f"registered {len(datasets)} datasets in {time.perf_counter() - start:.1f}s")


def _serve(data_dir: Path, host: str, port: int, database_url: str | None = None) -> None:
    import uvicorn

    from sandbox.api import create_app

    console.print(
        f"[bold]sandbox serving on http://{host}:{port}[/bold]  (health: /health, "
        f"API docs: /docs) — stop with Ctrl-C or `make stop`"
    )
    settings = Settings(data_dir=data_dir, DATABASE_URL=database_url)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")


@demo_app.callback()
def demo(
    ctx: typer.Context,
    data_dir: Path = DataDir,
    scale: int = typer.Option(20_000, help="residents rows in the demo city"),
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(8000),
) -> None:
    """Build the demo city (if needed), register its policies and serve the sandbox."""
    if ctx.invoked_subcommand is not None:
        return
    _build(data_dir, scale, seed=2026, force=False)
    _register(data_dir, REPO_POLICIES)
    tokens = _demo_accounts(data_dir)
    table = Table("role", "token", title="demo accounts (kept in DATA_DIR/demo-tokens.json)")
    for role, token in tokens.items():
        if not role.endswith("_id"):
            table.add_row(role, token)
    console.print(table)
    console.print(
        f"An approved agreement for the developer: [bold]{tokens['agreement_id']}[/bold]\n"
        f'Try: sandbox query "SELECT district, COUNT(*) FROM residents GROUP BY district" '
        f"--epsilon 0.5 --agreement {tokens['agreement_id']} --token {tokens['developer']} "
        f"--url http://{host}:{port}"
    )
    _serve(data_dir, host, port)


def _demo_accounts(data_dir: Path) -> dict[str, str]:
    """Demo admin, operator, auditor and a licensed developer with one approved agreement;
    created once, then reused (the file is readable by its owner only)."""
    import json
    import os

    from sandbox import accounts, agreements
    from sandbox.catalog import Catalog

    path = data_dir / "demo-tokens.json"
    if path.exists():
        return json.loads(path.read_text())
    store = _store(data_dir, None)
    known = {d.name: set(d.policy.queryable()) for d in Catalog(data_dir).list() if not d.policy.public}
    with store.transaction() as conn:
        admin, admin_token = accounts.create_user(conn, "Demo admin", "admin")
        operator, operator_token = accounts.create_user(conn, "Demo operator", "operator", by=admin)
        _, auditor_token = accounts.create_user(conn, "Demo auditor", "auditor", by=admin)
        _, developer, developer_token = accounts.create_licence(
            conn,
            operator,
            name="Demo developer",
            organisation="Xiamen University (demo)",
            licence_number="XM-DEMO-0001",
            valid_from="2026-01-01",
            valid_to="2030-01-01",
        )
        agreement = agreements.request(
            conn,
            developer,
            purpose="Demo: income and health-care use across districts",
            legal_basis="Demo data only",
            datasets={name: None for name in known},
            valid_from="2026-01-01",
            valid_to="2030-01-01",
            epsilon=10.0,
            delta=1e-5,
            known=known,
        )
        agreements.approve(
            conn,
            operator,
            agreement["id"],
            epsilon=5.0,
            per_query_epsilon=1.0,
            reason="demo agreement: half the requested budget",
        )
    store.close()
    tokens = {
        "admin": admin_token,
        "operator": operator_token,
        "auditor": auditor_token,
        "developer": developer_token,
        "agreement_id": agreement["id"],
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(tokens, handle, indent=2)
    return tokens


@demo_app.command("build")
def demo_build(
    data_dir: Path = DataDir,
    scale: int = typer.Option(20_000, help="residents rows in the demo city"),
    seed: int = typer.Option(2026, help="same seed, same bytes"),
) -> None:
    """Generate the deterministic synthetic city into DATA_DIR/demo (rebuilds)."""
    _build(data_dir, scale, seed, force=True)


def _build(data_dir: Path, scale: int, seed: int, force: bool) -> None:
    from sandbox.demo import build_demo, summarize

    out = data_dir / "demo"
    marker = out / f".built-{scale}-{seed}"
    if marker.exists() and not force:
        console.print(f"demo city already built in {out} (scale {scale:,})")
        return
    with console.status(f"building the demo city at scale {scale:,}"):
        start = time.perf_counter()
        paths = build_demo(out, scale=scale, seed=seed)
    table = Table("dataset", "rows", "bytes", title=f"demo city built in {time.perf_counter() - start:.1f}s")
    for name, rows, size in summarize(paths):
        table.add_row(name, f"{rows:,}", f"{size:,}")
    console.print(table)
    for old in out.glob(".built-*"):
        old.unlink()
    marker.touch()


@app.command()
def serve(
    data_dir: Path = DataDir,
    database_url: str | None = DatabaseUrl,
    policies: Path = typer.Option(REPO_POLICIES, help="policies to register before serving"),
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(8000),
) -> None:
    """Register the policies and serve the sandbox's HTTP API."""
    _register(data_dir, policies)
    _serve(data_dir, host, port, database_url)


@catalog_app.command("register")
def catalog_register(
    data_dir: Path = DataDir,
    policies: Path = typer.Option(REPO_POLICIES, help="a directory of policy YAML files"),
) -> None:
    """Register (or re-check) every policy in a directory; unchanged datasets are only re-checked."""
    _register(data_dir, policies)


@catalog_app.command("list")
def catalog_list(data_dir: Path = DataDir) -> None:
    """Registered datasets with their privacy unit and columns (never rows)."""
    from sandbox.catalog import Catalog

    table = Table("dataset", "owner", "privacy unit", "columns")
    for dataset in Catalog(data_dir).list():
        unit = dataset.policy.privacy_unit
        table.add_row(
            dataset.name,
            dataset.policy.owner,
            f"{unit.column} (max_rows {unit.max_rows})" if unit else "public",
            ", ".join(f"{n}:{c.role.value}" for n, c in dataset.policy.queryable().items()),
        )
    console.print(table)


@users_app.command("create-admin")
def users_create_admin(
    name: str = typer.Argument("admin"), data_dir: Path = DataDir, database_url: str | None = DatabaseUrl
) -> None:
    """Bootstrap an admin account on the server machine; prints its token once."""
    from sandbox import accounts

    with _store(data_dir, database_url).transaction() as conn:
        user, token = accounts.create_user(conn, name, "admin")
    console.print(f"admin {user.id} created; token (shown once): [bold]{token}[/bold]")


@users_app.command("add")
def users_add(
    name: str,
    role: str = typer.Option(..., help="operator or auditor"),
    data_dir: Path = DataDir,
    database_url: str | None = DatabaseUrl,
) -> None:
    """Create an operator or auditor account; prints its token once."""
    from sandbox import accounts
    from sandbox.errors import SandboxError

    if role not in ("operator", "auditor"):
        console.print(
            "[red]invalid_parameter[/red]: role must be operator or auditor; developers are licensed by operators."
        )
        raise typer.Exit(1)
    try:
        with _store(data_dir, database_url).transaction() as conn:
            user, token = accounts.create_user(conn, name, role)
    except SandboxError as exc:
        _fail(exc)
    console.print(f"{role} {user.id} created; token (shown once): [bold]{token}[/bold]")


@users_app.command("list")
def users_list(data_dir: Path = DataDir, database_url: str | None = DatabaseUrl) -> None:
    """Accounts and their roles (never tokens)."""
    from sqlalchemy import select

    from sandbox.store.schema import users

    table = Table("id", "name", "role", "active", "created")
    with _store(data_dir, database_url).read() as conn:
        for row in conn.execute(select(users).order_by(users.c.created_at)):
            table.add_row(row.id, row.name, row.role, str(row.active), row.created_at)
    console.print(table)


def _as(conn, token: str):
    from sandbox import accounts

    return accounts.authenticate(conn, token)


@agreements_app.command("list")
def agreements_list(
    status: str | None = None, token: str = Token, data_dir: Path = DataDir, database_url: str | None = DatabaseUrl
) -> None:
    """Agreements you may see, with budgets."""
    from sandbox import agreements
    from sandbox.errors import SandboxError

    table = Table("id", "status", "developer", "datasets", "epsilon left / budget", "valid to")
    try:
        with _store(data_dir, database_url).read() as conn:
            for a in agreements.list_for(conn, _as(conn, token), status):
                table.add_row(
                    a["id"],
                    a["status"],
                    a["developer_id"][:8],
                    ", ".join(a["datasets"]),
                    f"{a['remaining_epsilon']:g} / {a['budget_epsilon']:g}",
                    a["valid_to"],
                )
    except SandboxError as exc:
        _fail(exc)
    console.print(table)


@agreements_app.command("approve")
def agreements_approve(
    agreement_id: str,
    epsilon: float | None = None,
    delta: float | None = None,
    per_query_epsilon: float | None = None,
    min_count: int = 0,
    round_to: int = 1,
    reason: str = "",
    token: str = Token,
    data_dir: Path = DataDir,
    database_url: str | None = DatabaseUrl,
) -> None:
    """Approve a requested agreement, possibly with less budget."""
    from sandbox import agreements
    from sandbox.errors import SandboxError

    try:
        with _store(data_dir, database_url).transaction() as conn:
            a = agreements.approve(
                conn,
                _as(conn, token),
                agreement_id,
                epsilon=epsilon,
                delta=delta,
                per_query_epsilon=per_query_epsilon,
                min_count=min_count,
                round_to=round_to,
                reason=reason,
            )
    except SandboxError as exc:
        _fail(exc)
    console.print(f"agreement {a['id']} is {a['status']} with epsilon {a['budget_epsilon']:g}")


def _decide(action: str, agreement_id: str, reason: str, token: str, data_dir: Path, database_url: str | None) -> None:
    from sandbox import agreements
    from sandbox.errors import SandboxError

    try:
        with _store(data_dir, database_url).transaction() as conn:
            a = getattr(agreements, action)(conn, _as(conn, token), agreement_id, reason)
    except SandboxError as exc:
        _fail(exc)
    console.print(f"agreement {a['id']} is {a['status']}")


@agreements_app.command("reject")
def agreements_reject(
    agreement_id: str,
    reason: str = typer.Option(...),
    token: str = Token,
    data_dir: Path = DataDir,
    database_url: str | None = DatabaseUrl,
) -> None:
    """Reject a requested agreement with a reason."""
    _decide("reject", agreement_id, reason, token, data_dir, database_url)


@agreements_app.command("revoke")
def agreements_revoke(
    agreement_id: str,
    reason: str = typer.Option(...),
    token: str = Token,
    data_dir: Path = DataDir,
    database_url: str | None = DatabaseUrl,
) -> None:
    """Revoke an active agreement with a reason; its jobs stop at once."""
    _decide("revoke", agreement_id, reason, token, data_dir, database_url)


@audit_app.command("verify")
def audit_verify(
    data_dir: Path = DataDir,
    database_url: str | None = DatabaseUrl,
    checkpoints_file: Path | None = typer.Option(
        None, "--checkpoints", help="checkpoints exported earlier (`sandbox audit checkpoints`), kept elsewhere"),
) -> None:
    """Recompute the audit hash chain and check the signed checkpoints (with the key in the data
    directory, the server's own copies, and --checkpoints); exit code 1 and the first bad event."""
    import json

    from sandbox import audit, checkpoints

    database = database_url or str(data_dir / "sandbox.db")
    trust = checkpoints.Trust.of(checkpoints.Signer.load(data_dir),
                                 checkpoints.read_witness(checkpoints.witness_path(data_dir, database)))
    if checkpoints_file is not None:
        trust = trust + checkpoints.load_export(json.loads(checkpoints_file.read_text()))
    with _store(data_dir, database_url).read() as conn:
        result = audit.verify(conn, trust)
    signed = (f"{result.checkpoints} signed checkpoints (the last at event {result.last_checkpoint_seq}, "
              f"{result.last_checkpoint_ts}, key {(result.signing_key or '?')[:16]}…), "
              f"{result.unsigned_events} events since" if result.checkpoints else "no signed checkpoints yet")
    if result.ok:
        console.print(f"[green]audit chain verified[/green]: {result.events} events, head {result.head_hash[:16]}…; "
                      f"{signed}")
        if not trust.keys and result.checkpoints:
            console.print(f"[yellow]signatures not checked[/yellow]: no key in {data_dir} and no --checkpoints file")
        return
    if result.first_bad_seq is None:
        console.print(f"[red]audit checkpoints do not check out[/red]: {result.reason}")
    else:
        console.print(f"[red]audit chain broken at event {result.first_bad_seq}[/red]: {result.reason}")
    raise typer.Exit(1)


@audit_app.command("checkpoints")
def audit_checkpoints(
    out: Path | None = typer.Argument(None, help="write the JSON here (default: print it)"),
    data_dir: Path = DataDir,
    database_url: str | None = DatabaseUrl,
) -> None:
    """Export the signed checkpoints and the public key (as GET /audit/checkpoints): keep the file
    elsewhere and check a later log against it with `sandbox audit verify --checkpoints FILE`."""
    import json

    from sandbox import checkpoints

    with _store(data_dir, database_url).read() as conn:
        document = checkpoints.export(conn, checkpoints.Signer.load(data_dir))
    text = json.dumps(document, indent=2)
    if out is None:
        print(text)
        return
    out.write_text(text + "\n")
    console.print(f"wrote {out}: {len(document['checkpoints'])} checkpoints, key {(document['key_id'] or '?')[:16]}…")


@audit_app.command("checkpoint")
def audit_checkpoint(data_dir: Path = DataDir, database_url: str | None = DatabaseUrl) -> None:
    """Sign the audit head now (on the server's host; the service also signs on its own)."""
    from sandbox import checkpoints

    database = database_url or str(data_dir / "sandbox.db")
    made = checkpoints.create(_store(data_dir, database_url), checkpoints.Signer.load_or_create(data_dir),
                              witness=checkpoints.witness_path(data_dir, database))
    if made is None:
        console.print("nothing signed: the head is already signed, or the chain since the last checkpoint does "
                      "not check out (run `sandbox audit verify`)")
        return
    console.print(f"signed checkpoint {made['n']}: event {made['seq']}, head {made['hash'][:16]}…")


@audit_app.command("export")
def audit_export(
    out: Path,
    format: str = typer.Option("jsonl", help="jsonl, csv or parquet"),
    token: str = Token,
    data_dir: Path = DataDir,
    database_url: str | None = DatabaseUrl,
) -> None:
    """Export the whole log (the export is itself audited)."""
    from sandbox import audit
    from sandbox.errors import Forbidden, SandboxError

    try:
        with _store(data_dir, database_url).transaction() as conn:
            user = _as(conn, token)
            if user.role != "auditor":
                raise Forbidden("Exports are for auditors.")
            out.write_bytes(audit.export(conn, format))
            audit.append(conn, action="audit.exported", actor=user.id, role=user.role, details={"format": format})
    except (SandboxError, ValueError) as exc:
        _fail(exc if isinstance(exc, SandboxError) else SandboxError(str(exc)))
    console.print(f"wrote {out}")


@app.command()
def query(
    sql: str,
    epsilon: float = typer.Option(..., help="privacy cost of this query"),
    agreement: str = typer.Option(..., "--agreement", envvar="SANDBOX_AGREEMENT"),
    delta: float | None = None,
    url: str = typer.Option("http://127.0.0.1:8000", envvar="SANDBOX_URL"),
    token: str = Token,
    explain: bool = typer.Option(False, "--explain", help="preview cost and accuracy only"),
) -> None:
    """Run a query against a running sandbox (as a developer) and print the release."""
    import httpx

    body = {"sql": sql, "epsilon": epsilon, "delta": delta, "agreement_id": agreement}
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120) as client:
        try:
            response = client.post("/explain" if explain else "/jobs", json=body | ({} if explain else {"wait": 60}))
        except httpx.HTTPError as exc:
            console.print(f"[red]cannot reach {url}[/red] ({type(exc).__name__}); is the sandbox running?")
            raise typer.Exit(1) from None
    data = response.json()
    if response.status_code >= 400:
        error = data["error"]
        console.print(f"[red]{error['code']}[/red]: {error['message']}")
        if error.get("pointer"):
            console.print(error["pointer"])
        raise typer.Exit(1)
    if explain:
        console.print_json(data=data)
        return
    result = data.get("result")
    if not result:
        console.print(f"job {data['id']} is {data['status']}; poll GET /jobs/{data['id']}")
        return
    table = Table(
        *result["columns"],
        title=f"epsilon charged {data['charge_epsilon']:g}" + (" (reused)" if data["reused"] else ""),
    )
    for row, widths in zip(result["rows"], result["half_widths"], strict=True):
        table.add_row(
            *[f"{v}" if w is None or v is None else f"{v:.6g} ± {w:.3g}" for v, w in zip(row, widths, strict=True)]
        )
    console.print(table)


@app.command()
def notebook(
    data_dir: Path = DataDir,
    url: str = typer.Option("http://127.0.0.1:8000", envvar="SANDBOX_URL", help="the running sandbox"),
    token: str | None = typer.Option(
        None, "--token", envvar="SANDBOX_TOKEN", help="developer token (default: the demo developer's, from DATA_DIR)"
    ),
    agreement: str | None = typer.Option(None, "--agreement", envvar="SANDBOX_AGREEMENT"),
    port: int = typer.Option(8888, help="first port to try (loopback only)"),
    staff_tokens: bool = typer.Option(
        False, "--staff-tokens", help="demo only: also give kernels the demo operator and auditor tokens"
    ),
) -> None:
    """Start Jupyter on notebooks/ (loopback only), its kernels configured for the running sandbox."""
    from sandbox.errors import SandboxError
    from sandbox.notebook import check_sandbox, demo_tokens, start, wait

    extra: dict[str, str] = {}
    if token is None or staff_tokens:
        try:
            demo = demo_tokens(data_dir)
        except FileNotFoundError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from None
        token, agreement = token or demo["developer"], agreement or demo["agreement_id"]
        if staff_tokens:
            extra = {"SANDBOX_OPERATOR_TOKEN": demo["operator"], "SANDBOX_AUDITOR_TOKEN": demo["auditor"]}
    try:
        who = check_sandbox(url, token)
    except SandboxError as exc:
        _fail(exc)
    server = start(sandbox_url=url, token=token, agreement=agreement, extra_env=extra, port=port, quiet=True)
    console.print(
        f"[bold]Jupyter for {who}[/bold] on the sandbox at {url}: open\n  {server.browser_url}\n(stop with Ctrl-C)",
        soft_wrap=True,
    )
    wait(server)


if __name__ == "__main__":
    app()
