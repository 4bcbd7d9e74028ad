"""How both command-line tools (``aat-appliance`` and ``aat-control-plane``) fail: one plain line
``error: ...`` on stderr and exit code 1, whatever went wrong; never a stack trace.

:class:`OneLineErrorGroup` is the root ``click.Group`` class of each tool. A tool's subclass
names its database (``database``, for ``sqlite3`` errors) and may word settings problems its own
way (``settings_problems``).
"""

from __future__ import annotations

import sqlite3
import sys
from typing import Any, ClassVar

import click
from pydantic import ValidationError

from appliance.errors import AatError

__all__ = ["OneLineErrorGroup", "one_line"]


def one_line(text: str) -> str:
    """``text``'s non-blank lines, stripped and joined with ``"; "``."""
    return "; ".join(part.strip() for part in str(text).splitlines() if part.strip())


class OneLineErrorGroup(click.Group):
    """The root group: runs click outside standalone mode and turns every exception (a usage
    error and ``click.Abort`` included) into ``error: <one line>`` on stderr and exit code 1. A
    bare group prints its help and exits 1; otherwise the exit code is the command's result
    when it is an int, else 0."""

    database: ClassVar[str] = "the database"

    @staticmethod
    def settings_problems(exc: ValidationError) -> str:
        """``loc: msg; ...`` for invalid settings."""
        return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())

    def error_message(self, exc: BaseException) -> str:
        """What went wrong, for the person at the terminal (may span lines)."""
        if isinstance(exc, click.UsageError):
            hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
            return exc.format_message() + hint
        if isinstance(exc, click.ClickException):
            return exc.format_message()
        if isinstance(exc, click.Abort):
            return "aborted"
        if isinstance(exc, AatError):
            return exc.message
        if isinstance(exc, ValidationError):
            return f"invalid settings: {self.settings_problems(exc)}"
        if isinstance(exc, sqlite3.Error):
            return f"{self.database} cannot be used: {exc}"
        if isinstance(exc, OSError):
            return f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc)
        return f"unexpected {type(exc).__name__}: {exc}"

    def main(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        kwargs["standalone_mode"] = False
        try:
            result = super().main(*args, **kwargs)
        except click.exceptions.NoArgsIsHelpError as exc:
            exc.show()  # a bare group: its help is the answer
            sys.exit(1)
        except (Exception, click.Abort) as exc:  # noqa: BLE001 - the one place errors are shown
            click.echo(f"error: {one_line(self.error_message(exc))}", err=True)
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)
