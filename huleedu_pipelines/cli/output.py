"""How the command line prints: tables for people, one JSON object for programs (`--json`), and
one line on stderr for a mistake.

Tables are drawn with rich on stdout. On a terminal they get colour; piped or redirected they
are plain text (no escape codes) at a width that does not wrap them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from typer.core import TyperGroup

try:  # typer vendors click since 0.2x; before, it used click itself
    from typer._click.exceptions import NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover
    from click.exceptions import NoArgsIsHelpError, UsageError

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

EXIT_USAGE = 2
"""A user mistake: wrong name, version, path, date or a move that cannot be made."""

PLAIN_WIDTH = 200
"""Columns a table may use when stdout is not a terminal (a file or a pipe)."""


def usage_error(message: str) -> NoReturn:
    """`error: <message>` as one line on stderr, then exit code 2."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(EXIT_USAGE)


def echo_json(value: Any) -> None:
    """`value` as one line of JSON on stdout (keys sorted; dates and paths as strings)."""
    typer.echo(json.dumps(value, sort_keys=True, default=str))


def table(*columns: str, title: str | None = None, numeric: Iterable[str] = ()) -> Table:
    """A table with a header rule and no other lines; columns named in `numeric` align right."""
    from rich import box
    from rich.table import Table

    right = set(numeric)
    result = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", highlight=False)
    for column in columns:
        result.add_column(column, justify="right" if column in right else "left", no_wrap=True)
    return result


def stdout_console() -> Console:
    from rich.console import Console

    return Console(file=sys.stdout, highlight=False, emoji=False)


def print_table(result: Table) -> None:
    """On a terminal with colour and the terminal's width; otherwise as `table_text`."""
    if sys.stdout.isatty():
        stdout_console().print(result)
    else:
        typer.echo(table_text(result))


def table_text(result: Table, width: int = PLAIN_WIDTH) -> str:
    """The table as plain text (no escape codes), trailing spaces removed."""
    import io

    from rich.console import Console

    console = Console(
        file=io.StringIO(),
        width=width,
        color_system=None,
        force_terminal=False,
        highlight=False,
        emoji=False,
    )
    with console.capture() as captured:
        console.print(result)
    return "\n".join(line.rstrip() for line in captured.get().splitlines()).strip("\n")


def figure(value: float | int | None, digits: int = 4) -> str:
    """A metric for a table cell: `-` when missing or not a number."""
    if value is None or value != value:  # NaN
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


class OneLineErrorsGroup(TyperGroup):
    """The command group: a usage mistake below it (a malformed date, a missing argument, an
    unknown option or command) is one line, `error: ... (see `<command> --help`)`, with exit
    code 2, instead of click's usage block."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except NoArgsIsHelpError:
            raise
        except UsageError as error:
            command = (error.ctx or ctx).command_path
            usage_error(f"{error.format_message()} (see `{command} --help`)")
