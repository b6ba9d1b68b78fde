"""On the server machine: serve, stop, register policies, and the administration that needs the
data directory and the database themselves (create-admin, users list --local, audit checkpoint,
audit verify --local). Each says so in its help; every other command goes over HTTP.

`serve` and `demo` write DATA_DIR/sandbox.pid (pid, process start time, URL) while they run, so
`sandbox stop` (`make stop`) stops exactly that process, and a second server on the same data
directory is refused with what to do instead.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from sandbox.cli.common import DatabaseUrl, DataDir, _, console, fail, word, write_checkpoints

PID_FILE = "sandbox.pid"
REPO_POLICIES = Path(__file__).resolve().parents[2] / "policies"  # = sandbox.settings' (not imported: slow)

Host = Annotated[str, typer.Option(help=_("the address to listen on (loopback by default)"))]
Port = Annotated[int, typer.Option(help=_("the port to listen on"))]
Policies = Annotated[Path, typer.Option(help=_("a directory of policy YAML files"))]
Local = Annotated[bool, typer.Option("--local", help=_(
    "on the server machine: read the data directory and the database directly (also implied by --data-dir or "
    "--database-url)"))]


def store(data_dir: Path, database_url: str | None):
    """The server's database, opened here; events appended here go to the server's journal too
    (sandbox/audit/journal.py), so its checkpointer signs them and `verify` accepts them."""
    from sandbox.audit import Journal
    from sandbox.store import Store

    database = database_url or str(data_dir / "sandbox.db")
    return Store(database, journal=Journal.of(data_dir, database))


# -- registering policies -------------------------------------------------------------------------
def register(data_dir: Path, policies: Path, *, skip_missing: bool = False, database_url: str | None = None) -> None:
    """Register every policy in `policies`. With `skip_missing` (the demo), a dataset whose source
    file is absent (the PUMS samples live outside the repository) is left out, with a note. Each
    new certificate (a changed policy or snapshot, which also spends the policy's metadata
    allowance anew) is a `dataset.registered` audit event."""
    from sandbox import certificates
    from sandbox.catalog import Catalog
    from sandbox.errors import ConnectorError
    from sandbox.policy import load_policies

    catalog = Catalog(data_dir)
    start, done, skipped, issued = time.perf_counter(), 0, [], []
    with console.status(_("registering datasets (bounding ranks are computed once, here)")):
        for name, (policy, file) in load_policies(policies).items():
            before = certificates.latest(data_dir, name)
            try:
                catalog.register(policy, file)
                done += 1
            except ConnectorError:
                if not skip_missing:
                    raise
                skipped.append(name)
                continue
            after = certificates.latest(data_dir, name)
            if after is not None and (before is None or after["version"] != before["version"]):
                issued.append((policy, after))
    if issued:
        _audit_registrations(store(data_dir, database_url), issued)
    seconds = f"{time.perf_counter() - start:.1f}"
    console.print(_("registered {n} datasets in {seconds}s").format(n=done, seconds=seconds))
    for note in skipped:
        console.print(_("skipped {dataset}: its source is not on this machine").format(dataset=note), soft_wrap=True)


def _audit_registrations(db: Any, issued: list[tuple[Any, dict[str, Any]]]) -> None:
    """One event per new certificate, in one transaction: what was registered, under which policy
    and snapshot, and the ε its DP metadata spent (once per registration, not per query)."""
    from sandbox import audit

    with db.transaction() as conn:
        for policy, certificate in issued:
            audit.append(conn, action="dataset.registered", role="system", dataset=policy.name, details={
                "owner": policy.owner, "version": certificate["version"],
                "policy_sha256": certificate["policy_sha256"], "snapshot_sha256": certificate["snapshot_sha256"],
                "rows": certificate["rows"], "units": certificate["units"],
                "metadata_epsilon": 0.0 if policy.public else policy.metadata_epsilon,
                "certificate_signature": certificate["signature"]})
    db.close()


# -- serving, and the PID file ----------------------------------------------------------------------
def _start_ticks(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), so a reused PID is not ours."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int) -> bool:
    """Running (a process that has exited but not yet been reaped by its parent is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def running(data_dir: Path) -> dict[str, Any] | None:
    """The sandbox serving `data_dir`, from its PID file, if that process is still the one that wrote it."""
    path = Path(data_dir) / PID_FILE
    try:
        info = json.loads(path.read_text())
        pid = int(info["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not _alive(pid) or (info.get("start") and _start_ticks(pid) not in (None, info["start"])):
        return None
    return info


def refuse_if_serving(data_dir: Path, host: str, port: int) -> None:
    """Before touching anything: one server per data directory, and a free port."""
    other = running(data_dir)
    if other:
        fail(_("A sandbox is already serving {data} (pid {pid}, {url}). Stop it first: make stop (or sandbox stop "
               "--data-dir {data}).").format(data=data_dir, pid=other["pid"], url=other.get("url")))
    if not _port_free(host, port):
        fail(_("Port {port} on {host} is taken. Stop what runs there (make stop) or use another port: make demo "
               "PORT={other}").format(port=port, host=host, other=port + 1))


def _claim(data_dir: Path, url: str) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / PID_FILE
    info = {"pid": os.getpid(), "start": _start_ticks(os.getpid()), "url": url, "data_dir": str(data_dir.resolve())}
    temporary = path.with_suffix(".pid.tmp")
    temporary.write_text(json.dumps(info))
    temporary.replace(path)
    return path


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def serve_app(data_dir: Path, host: str, port: int, database_url: str | None = None,
              banner: Callable[[str], None] | None = None) -> None:
    """Serve until Ctrl-C or SIGTERM (`sandbox stop`); `banner(url)` is printed once the server
    accepts connections, so every address it names already answers."""
    import uvicorn

    from sandbox.api import create_app
    from sandbox.settings import Settings

    url = f"http://{host}:{port}"
    refuse_if_serving(data_dir, host, port)
    pid_file = _claim(data_dir, url)
    try:
        settings = Settings(data_dir=data_dir, DATABASE_URL=database_url)
        server = uvicorn.Server(uvicorn.Config(create_app(settings), host=host, port=port, log_level="warning"))

        def announce() -> None:
            while not server.started and not server.should_exit:
                time.sleep(0.05)
            if server.started:
                (banner or _plain_banner)(url)

        threading.Thread(target=announce, name="banner", daemon=True).start()
        # uvicorn shuts down cleanly on SIGINT/SIGTERM, then re-raises the signal to the handler
        # that was there before it: ours ends the process through `finally`, without a traceback.
        signal.signal(signal.SIGTERM, _quit)
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        pid_file.unlink(missing_ok=True)


def _quit(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _plain_banner(url: str) -> None:
    console.print(_("sandbox serving on {url}: console {url}/console, API docs {url}/docs; stop with Ctrl-C or "
                    "make stop").format(url=url), soft_wrap=True)


def serve(
    data_dir: DataDir = Path("var"), database_url: DatabaseUrl = None, policies: Policies = REPO_POLICIES,
    host: Host = "127.0.0.1", port: Port = 8000,
) -> None:
    """Register the policies and serve the sandbox (API and console) until Ctrl-C or `sandbox stop`."""
    refuse_if_serving(data_dir, host, port)
    register(data_dir, policies, database_url=database_url)
    serve_app(data_dir, host, port, database_url)


def stop(data_dir: DataDir = Path("var"),
         timeout: Annotated[float, typer.Option(help=_("seconds to wait for a clean shutdown"))] = 30.0) -> None:
    """Stop the sandbox serving DATA_DIR (the one `make demo` or `sandbox serve` started there),
    and nothing else."""
    path = data_dir / PID_FILE
    info = running(data_dir)
    if info is None:
        stale = path.exists()
        path.unlink(missing_ok=True)
        console.print(_("No sandbox is running for {data}.").format(data=data_dir)
                      + (" " + _("(Removed a stale PID file.)") if stale else ""), soft_wrap=True)
        return
    pid = int(info["pid"])
    os.kill(pid, signal.SIGTERM)  # uvicorn shuts down cleanly: jobs settle, workers stop, the head is signed
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
        path.unlink(missing_ok=True)
        console.print(_("The sandbox (pid {pid}) did not stop within {seconds} s and was killed.").format(
            pid=pid, seconds=f"{timeout:g}"), soft_wrap=True)
        return
    console.print(_("Stopped the sandbox (pid {pid}) that served {url}.").format(pid=pid, url=info.get("url")),
                  soft_wrap=True)


# -- the catalog ----------------------------------------------------------------------------------
def catalog_register(data_dir: DataDir = Path("var"), policies: Policies = REPO_POLICIES,
                     database_url: DatabaseUrl = None) -> None:
    """Register (or re-check) every policy in a directory; unchanged datasets are only re-checked.
    On the server machine; each new certificate is an audit event."""
    register(data_dir, policies, database_url=database_url)


# -- administration on the server machine ---------------------------------------------------------
def users_create_admin(
    name: Annotated[str, typer.Argument(help=_("the admin's name"))] = "admin",
    data_dir: DataDir = Path("var"), database_url: DatabaseUrl = None,
) -> None:
    """Bootstrap an admin account; prints its token once. On the server machine: reads the data
    directory and the database directly (there is no admin yet to ask the API)."""
    from sandbox import accounts

    with store(data_dir, database_url).transaction() as conn:
        user, token = accounts.create_user(conn, name, "admin")
    console.print(_("admin {id} created; token (shown once): {token}").format(id=user.id, token=token),
                  soft_wrap=True)


def users_add_local(name: str, role: str, data_dir: Path, database_url: str | None,
                    organisation: str | None = None) -> None:
    from sandbox import accounts
    from sandbox.catalog import Catalog
    from sandbox.errors import SandboxError

    if role not in ("operator", "auditor", "steward"):
        fail(_("The role must be operator, auditor or steward; developers are licensed by operators."))
    try:
        owners = set(Catalog(data_dir).owners().values()) if role == "steward" else None
        with store(data_dir, database_url).transaction() as conn:
            user, token = accounts.create_user(conn, name, role, organisation=organisation, owners=owners)
    except SandboxError as exc:
        fail(f"{exc.code}: {exc.message}")
    console.print(_("{role} {id} created; token (shown once): {token}").format(role=word(role), id=user.id,
                                                                               token=token), soft_wrap=True)


def users_list_local(data_dir: Path, database_url: str | None) -> None:
    from sqlalchemy import select

    from sandbox.store.schema import users

    table = Table(_("account"), _("name"), _("role"), _("active"), _("created"))
    with store(data_dir, database_url).read() as conn:
        for row in conn.execute(select(users).order_by(users.c.created_at)):
            table.add_row(row.id, row.name, word(row.role), "✔" if row.active else "✘", row.created_at)
    console.print(table)


def audit_checkpoint(data_dir: DataDir = Path("var"), database_url: DatabaseUrl = None) -> None:
    """Sign the audit head now (the service also signs on its own). On the server machine: needs
    the signing key in the data directory."""
    from sandbox.audit import checkpoints

    database = database_url or str(data_dir / "sandbox.db")
    made = checkpoints.create(store(data_dir, database_url), checkpoints.Signer.load_or_create(data_dir),
                              witness=checkpoints.witness_path(data_dir, database))
    if made is None:
        console.print(_("nothing signed: the head is already signed, or the chain since the last checkpoint does "
                        "not check out (run `sandbox audit verify`)"), soft_wrap=True)
        return
    console.print(_("signed checkpoint {n}: event {seq}, head {head}…").format(
        n=made["n"], seq=made["seq"], head=made["hash"][:16]), soft_wrap=True)


def audit_checkpoints_local(out: Path | None, data_dir: Path, database_url: str | None) -> None:
    from sandbox.audit import checkpoints

    with store(data_dir, database_url).read() as conn:
        document = checkpoints.export(conn, checkpoints.Signer.load(data_dir))
    write_checkpoints(document, out)


def audit_verify_local(data_dir: Path, database_url: str | None, checkpoints_file: Path | None) -> None:
    """Recompute the chain from the database and check the checkpoints with the key in the data
    directory, the server's own copies and --checkpoints; exit code 1 and the first bad event."""
    from sandbox import audit
    from sandbox.audit import checkpoints
    from sandbox.cli.common import state
    from sandbox.client import Verification

    trust = checkpoints.Trust.of_server(data_dir, database_url or str(data_dir / "sandbox.db"))
    if checkpoints_file is not None:
        trust = trust + checkpoints.load_export(json.loads(checkpoints_file.read_text()))
    with store(data_dir, database_url).read() as conn:
        result = audit.verify(conn, trust)
    shown = Verification.from_json(result.__dict__, state.lang)
    console.print(("[green]✔[/green] " if result.ok else "[red]✘[/red] ") + shown.summary(), soft_wrap=True)
    if result.ok and not trust.keys and result.checkpoints:
        console.print(_("signatures not checked: no key in {data} and no --checkpoints file").format(data=data_dir),
                      soft_wrap=True)
    if not result.ok:
        raise typer.Exit(1)

