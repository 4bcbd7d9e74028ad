"""The input step's validators (appliance/flows/inputs.py)."""

from __future__ import annotations

from typing import Any

import pytest

from appliance.flows.inputs import MAX_ANSWER_LENGTH, ValidatorError, check_answer, compile_validator


@pytest.mark.parametrize("spec, answer, saved", [
    ("text", " hi there ", "hi there"),
    ("email", "Ana@Example.com", "ana@example.com"),
    ("email", "a.b+c@sub.example.co.uk", "a.b+c@sub.example.co.uk"),
    ("phone", "+1 (555) 123-4567", "+15551234567"),
    ("phone", "33612345678", "+33612345678"),
    ("phone", "0049 30 1234567", "+49301234567"),
    ("phone", "+٩٧١٥٠١٢٣٤٥٦٧", "+971501234567"),
    ("number", "42", 42),
    ("number", "-7", -7),
    ("number", "3.25", 3.25),
    ("number", "3,25", 3.25),
    ("number", "1 000", 1000),
    ("date", "2024-12-31", "2024-12-31"),
    ("date", "31.12.2024", "2024-12-31"),
    ("date", "31/12/2024", "2024-12-31"),
    ("date", "31-12-2024", "2024-12-31"),
    ("date", "2024/12/31", "2024-12-31"),
    ("url", "https://example.com/x?y=1", "https://example.com/x?y=1"),
    ("url", "HTTP://EXAMPLE.COM", "HTTP://EXAMPLE.COM"),
    (r"regex:[A-Z]{2}-\d+", "AB-12", "AB-12"),
    ("regex:(?i)yes|no", "YES", "YES"),
])
def test_valid(spec: str, answer: str, saved: Any) -> None:
    assert check_answer(spec, answer) == saved


@pytest.mark.parametrize("spec, answer", [
    ("text", ""), ("text", "   "), ("text", None),
    ("email", "ana"), ("email", "ana@x"), ("email", "a b@x.io"), ("email", "@x.io"), ("email", "a@@x.io"),
    ("phone", "123456"), ("phone", "+1234567890123456"), ("phone", "call me"), ("phone", "+1 555 abc 4567"),
    ("number", "ten"), ("number", "nan"), ("number", "inf"), ("number", "1e999"), ("number", "1,000,000"),
    ("date", "2024-02-30"), ("date", "tomorrow"), ("date", "12/31/2024"),
    ("url", "example.com"), ("url", "ftp://x.io"), ("url", "https://"), ("url", "https://a b.io"),
    (r"regex:[A-Z]{2}-\d+", "AB-12x"), (r"regex:[A-Z]{2}-\d+", "xAB-12"),
    ("unknown", "anything"), ("regex:(", "("),
])
def test_invalid(spec: str, answer: str | None) -> None:
    assert check_answer(spec, answer) is None


def test_answer_too_long() -> None:
    assert check_answer("text", "x" * (MAX_ANSWER_LENGTH + 1)) is None


def test_answer_at_the_length_limit() -> None:
    assert check_answer("text", "x" * MAX_ANSWER_LENGTH) == "x" * MAX_ANSWER_LENGTH


@pytest.mark.parametrize("spec", ["text", "email", "phone", "number", "date", "url"])
def test_named_validators_compile_to_none(spec: str) -> None:
    assert compile_validator(spec) is None


def test_regex_validator_compiles() -> None:
    assert compile_validator(r"regex:\d+").pattern == r"\d+"  # type: ignore[union-attr]


@pytest.mark.parametrize("spec", ["regex:(", "regex:a{99999999999}", "regex:(?P<a>x)(?P<a>y)", "Email", "regex"])
def test_bad_validator_raises_validator_error(spec: str) -> None:
    with pytest.raises(ValidatorError):
        compile_validator(spec)
