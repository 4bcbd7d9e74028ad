"""Structured JSON logs on stderr, with ids only.

Log records carry ids (message, contact, channel, journal), codes and counts as ``extra``
fields. Never message text, names, phone numbers, tokens, request bodies or query strings
(the verify handshake carries the verify token in its query). Exceptions are logged as their
type and stack frames, without the exception's message, which can quote input.

Everything that would otherwise reach stderr as plain text goes through the same formatter:
Python warnings, uncaught exceptions in the main thread and in other threads, and
"unraisable" exceptions (``__del__``, garbage collection). Their default printers write the
exception's message, which can quote a webhook body.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import traceback
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

__all__ = ["JsonFormatter", "configure_logging"]

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "taskName"}

# asyncio writes the repr of the failed task, callback or handle into the message, and those
# reprs include the exception's message and the callback's arguments ("Task exception was
# never retrieved\nfuture: <Task ... exception=ValueError('<text>')>"). Only the fixed words
# before the first ":", "<", "(" or newline are kept; the exception still comes out as its
# type and stack frames.
_REPR_START = re.compile(r"[:<(\n]")
_REDACTED_LOGGERS = ("asyncio",)

crash_log = logging.getLogger("aat.crash")


def _exc_fields(exc_type: type[BaseException], tb: TracebackType | None) -> dict[str, object]:
    return {
        "exc_type": exc_type.__name__,
        "stack": [f"{frame.filename}:{frame.lineno} {frame.name}" for frame in traceback.extract_tb(tb)],
    }


def _json_default(value: object) -> object:
    # An exception passed as an extra field would otherwise be rendered with str(), its message.
    if isinstance(value, BaseException):
        return type(value).__name__
    return str(value)


def _event(record: logging.LogRecord) -> str:
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a bad format string must not print the args to stderr
        # logging's own handleError would print the record's arguments in plain text.
        message = str(record.msg)
    if record.name.split(".")[0] in _REDACTED_LOGGERS:
        message = _REPR_START.split(message, maxsplit=1)[0].strip()
    return message


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, event, the record's extra fields, and for
    an exception its type and stack frames (never its message)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": _event(record),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_") and key != "color_message":
                entry[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            exc_type, _, tb = record.exc_info
            entry.update(_exc_fields(exc_type, tb))
        return json.dumps(entry, default=_json_default, ensure_ascii=False)


def _log_uncaught(exc_type: type[BaseException], exc: BaseException | None, tb: TracebackType | None,
                  *, where: str, **extra: Any) -> None:
    crash_log.error(f"uncaught exception in {where}", exc_info=(exc_type, exc, tb), extra=extra)  # type: ignore[arg-type]


def _thread_hook(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return  # what threading's default hook does too
    _log_uncaught(args.exc_type, args.exc_value, args.exc_traceback, where="a thread",
                  thread_name=args.thread.name if args.thread is not None else None)


def _main_hook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, tb)
        return
    _log_uncaught(exc_type, exc, tb, where="the main thread")


def _unraisable_hook(unraisable: Any) -> None:
    _log_uncaught(unraisable.exc_type, unraisable.exc_value, unraisable.exc_traceback,
                  where="a finalizer", object_type=type(unraisable.object).__name__)


def configure_logging(level: str = "info") -> None:
    """Route every logger (ours, uvicorn's, litestar's, huey's), warnings and uncaught
    exceptions through one JSON handler on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "litestar", "huey", "huey.consumer", "py.warnings"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # Access lines are written by our own middleware (path without query string).
    logging.getLogger("uvicorn.access").disabled = True
    # httpx logs full URLs at INFO (a query string can carry an access token); httpcore's
    # DEBUG trace logs response headers. Neither is needed to run the appliance.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    logging.captureWarnings(True)
    threading.excepthook = _thread_hook
    sys.excepthook = _main_hook
    sys.unraisablehook = _unraisable_hook
