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
app.add_typer(demo_app, name="demo")
app.add_typer(catalog_app, name="catalog")
console = Console()

DataDir = typer.Option(Path("var"), "--data-dir", help="where the catalog and managed data live")


def _register(data_dir: Path, policies: Path) -> None:
    from sandbox.catalog import Catalog

    catalog = Catalog(data_dir)
    with console.status("registering datasets (bounding ranks are computed once, here)"):
        start = time.perf_counter()
        datasets = catalog.register_directory(policies)
    console.print(f"registered {len(datasets)} datasets in {time.perf_counter() - start:.1f}s")


def _serve(data_dir: Path, host: str, port: int) -> None:
    import uvicorn

    from sandbox.api import create_app

    console.print(f"[bold]sandbox serving on http://{host}:{port}[/bold]  (health: /health, "
                  f"catalog: /datasets, API docs: /docs) — stop with Ctrl-C or `make stop`")
    uvicorn.run(create_app(Settings(data_dir=data_dir)), host=host, port=port, log_level="warning")


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
    _serve(data_dir, host, port)


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
    policies: Path = typer.Option(REPO_POLICIES, help="policies to register before serving"),
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(8000),
) -> None:
    """Register the policies and serve the sandbox's HTTP API."""
    _register(data_dir, policies)
    _serve(data_dir, host, port)


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
            dataset.name, dataset.policy.owner,
            f"{unit.column} (max_rows {unit.max_rows})" if unit else "public",
            ", ".join(f"{n}:{c.role.value}" for n, c in dataset.policy.queryable().items()),
        )
    console.print(table)
