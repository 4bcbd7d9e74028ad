"""Validators of the ``input`` step: is the contact's answer what was asked for?

Each returns the value to save (normalised: an e-mail lower-cased, a number as int/float, a
date as ISO ``YYYY-MM-DD``, a phone as ``+digits``) or ``None`` when the answer does not fit.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from typing import Any

__all__ = ["check_answer", "compile_validator", "ValidatorError", "MAX_ANSWER_LENGTH"]

MAX_ANSWER_LENGTH = 2000
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s.]{2,}$")
_URL = re.compile(r"^https?://[^\s/$.?#][^\s]*$", re.IGNORECASE)
_PHONE_NOISE = re.compile(r"[\s\-().]")
_DATE_FORMATS = ("%Y-%m-%d", "%d.%m.%Y", "%d/%m/%Y", "%d-%m-%Y", "%Y/%m/%d")


class ValidatorError(ValueError):
    """A ``validate`` value that is not a known validator or not a valid regex."""


def compile_validator(spec: str) -> re.Pattern[str] | None:
    """Check a ``validate`` value; returns the compiled pattern for ``regex:...``."""
    if spec in ("text", "email", "phone", "number", "date", "url"):
        return None
    if spec.startswith("regex:"):
        try:
            return re.compile(spec[len("regex:"):])
        except (re.error, OverflowError, RecursionError) as exc:
            # OverflowError: a repeat count such as a{99999999999}.
            raise ValidatorError(f"invalid regular expression: {exc}") from exc
    raise ValidatorError(
        "must be one of text, email, phone, number, date, url, or regex:<pattern>"
    )


def _number(text: str) -> int | float | None:
    cleaned = text.replace(" ", "").replace("\u00a0", "")
    if re.fullmatch(r"[+-]?\d+", cleaned):
        return int(cleaned)
    cleaned = cleaned.replace(",", ".") if cleaned.count(",") == 1 and "." not in cleaned else cleaned
    try:
        value = float(cleaned)
    except ValueError:
        return None
    return value if value == value and value not in (float("inf"), float("-inf")) else None


def _phone(text: str) -> str | None:
    # Any script's digits count (Arabic-Indic...), saved as ASCII; 00 is the international
    # prefix, as + is.
    digits = "".join(str(unicodedata.decimal(c)) if c.isdecimal() else c for c in _PHONE_NOISE.sub("", text))
    if digits.startswith("00"):
        digits = "+" + digits[2:]
    if re.fullmatch(r"\+?[0-9]{7,15}", digits):
        return digits if digits.startswith("+") else "+" + digits
    return None


def _date(text: str) -> str | None:
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).date().isoformat()
        except ValueError:
            continue
    return None


def check_answer(spec: str, answer: str | None) -> Any:
    """The value to save, or ``None`` when ``answer`` does not satisfy ``spec``."""
    if answer is None:
        return None
    text = answer.strip()
    if not text or len(text) > MAX_ANSWER_LENGTH:
        return None
    if spec == "text":
        return text
    if spec == "email":
        return text.lower() if _EMAIL.match(text) else None
    if spec == "phone":
        return _phone(text)
    if spec == "number":
        return _number(text)
    if spec == "date":
        return _date(text)
    if spec == "url":
        return text if _URL.match(text) else None
    if spec.startswith("regex:"):
        try:
            pattern = compile_validator(spec)
        except ValidatorError:
            return None
        return text if pattern is not None and pattern.fullmatch(text) else None
    return None


