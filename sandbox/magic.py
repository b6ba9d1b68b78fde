"""IPython magic: SQL cells that run in the sandbox.

    %load_ext sandbox
    %%dpsql --epsilon 0.5
    SELECT district, COUNT(*) FROM residents GROUP BY district

`%%dpsql` runs the cell's SQL as a query under your agreement and displays the release (with
its intervals, what it leaves out and the budget left); `--explain` previews cost, accuracy and
each contribution bound's noise instead, `--mock` runs the SQL over fake rows in the notebook
(nothing spent), `-o NAME` also stores the result in a variable. Contribution bounds:
`--max-rows medical_visits=10 --max-groups 6 --clamp residents.monthly_income=0,50000`. A
query whose group keys are private is preceded by a warning (how large a group must be). The
connection comes from SANDBOX_URL / SANDBOX_TOKEN / SANDBOX_AGREEMENT, or from
`%dpsql_connect sb` with a `Sandbox` you made yourself (`use(sb)` does the same in Python).
"""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from sandbox import i18n
from sandbox.client import Sandbox, parse_contribution
from sandbox.errors import SandboxError

__all__ = ["SandboxMagics", "load_ipython_extension", "use"]

_current: Sandbox | None = None


def use(sandbox: Sandbox) -> Sandbox:
    """Make `sandbox` the connection `%%dpsql` cells use."""
    global _current
    _current = sandbox
    return sandbox


def _sandbox() -> Sandbox:
    return _current if _current is not None else use(Sandbox())


def _(message: str) -> str:
    """In the language of the connection (or of the environment, before there is one)."""
    lang = _current.lang if _current is not None else i18n.from_environment()
    return i18n.translations(lang).gettext(message)


@magics_class
class SandboxMagics(Magics):
    @line_magic
    @magic_arguments()
    @argument("variable", nargs="?", help="a Sandbox in the notebook; default: a new one from SANDBOX_URL/TOKEN")
    def dpsql_connect(self, line: str) -> None:
        """Choose the sandbox connection `%%dpsql` uses."""
        args = parse_argstring(self.dpsql_connect, line)
        if args.variable:
            value = self.shell.user_ns.get(args.variable) if self.shell else None
            if not isinstance(value, Sandbox):
                raise UsageError(_("{name} is not a Sandbox; create one with sb = Sandbox(url, token).").format(
                    name=args.variable))
            use(value)
        else:
            use(Sandbox())
        print(_("%%dpsql cells now use {sandbox}").format(sandbox=repr(_current)))

    @cell_magic
    @magic_arguments()
    @argument("--epsilon", "-e", type=float, help="privacy cost of the query (not needed with --mock)")
    @argument("--delta", type=float, help="for private GROUP BY keys; default: the dataset's")
    @argument("--agreement", "-a", help="agreement id; default: SANDBOX_AGREEMENT or your only active one")
    @argument("--explain", action="store_true", help="preview cost and accuracy; spends nothing")
    @argument("--mock", action="store_true", help="run over fake rows in this notebook; spends nothing")
    @argument("--rows", type=int, default=1000, help="fake rows per dataset with --mock")
    @argument("--max-rows", action="append", default=[], metavar="DATASET=ROWS",
              help="rows per unit of a dataset, up to its policy's ceiling (repeat for more datasets)")
    @argument("--max-groups", type=int, metavar="N", help="groups one unit may reach, up to the policy's ceiling")
    @argument("--clamp", action="append", default=[], metavar="DATASET.COLUMN=LOW,HIGH",
              help="tighter clamping bounds for a measure, inside its public bounds (repeat for more)")
    @argument("--out", "-o", help="also store the result in this variable")
    def dpsql(self, line: str, cell: str) -> Any:
        """Run the cell's SQL in the sandbox (or preview it with --explain, or mock it with --mock)."""
        args = parse_argstring(self.dpsql, line)
        sql = cell.strip()
        if not sql:
            raise UsageError(_("The cell is empty: write one SELECT below %%dpsql."))
        if args.explain and args.mock:
            raise UsageError(_("Choose --explain or --mock, not both."))
        sandbox = _sandbox()
        try:
            bounds = parse_contribution(args.max_rows, args.max_groups, args.clamp, lang=sandbox.lang)
        except SandboxError as exc:
            raise UsageError(exc.message) from None
        if args.mock and any(v is not None for v in bounds.values()):
            raise UsageError(_("--mock reads every fake row: contribution bounds apply to --explain and queries."))
        if args.mock:
            result: Any = sandbox.mock_query(sql, rows=args.rows)
        elif args.epsilon is None:
            raise UsageError(_("Say what the query may spend: %%dpsql --epsilon 0.5 (or use --mock / --explain)."))
        elif args.explain:
            result = sandbox.explain(sql, epsilon=args.epsilon, delta=args.delta, agreement=args.agreement, **bounds)
        else:
            result = sandbox.query(sql, epsilon=args.epsilon, delta=args.delta, agreement=args.agreement, **bounds)
        if args.out and self.shell is not None:
            self.shell.user_ns[args.out] = result
        return result


def load_ipython_extension(ipython: Any) -> None:
    ipython.register_magics(SandboxMagics)
