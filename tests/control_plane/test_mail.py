"""Resend and Postmark delivery of the notifier's emails, against a local HTTP server: the
exact request each provider's API takes, retries on 5xx, none on 4xx, nothing personal logged."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import pytest

from control_plane.mail import MailSender
from control_plane.notify import Email, Notifier
from control_plane.settings import ControlPlaneSettings
from tests.standins.http_target import Answer, HttpTarget

EMAIL = Email(to="owner@bakery.example", subject="Payment failed for Bakery Blum", text="Update your card.")


@pytest.fixture
def target() -> Iterator[HttpTarget]:
    server = HttpTarget().start()
    yield server
    server.stop()


def sender(backend: str, target: HttpTarget, client: httpx.AsyncClient,
           delays: tuple[float, ...] = (0.01, 0.01)) -> MailSender:
    settings = ControlPlaneSettings(email=backend, email_api_key="key-123", email_from="AAT <billing@aat.example>",
                                    email_api_base=target.base_url)
    return MailSender(settings, client, delays=delays)


async def test_resend_gets_its_own_request_shape(target: HttpTarget) -> None:
    async with httpx.AsyncClient() as client:
        mailer = sender("resend", target, client)
        Notifier("resend", deliver=mailer.deliver).send(EMAIL)
        await mailer.idle()
    (sent,) = target.requests
    assert (sent.method, sent.path, sent.headers["authorization"]) == ("POST", "/emails", "Bearer key-123")
    assert sent.json == {"from": "AAT <billing@aat.example>", "to": ["owner@bakery.example"],
                         "subject": "Payment failed for Bakery Blum", "text": "Update your card."}


async def test_postmark_gets_its_own_request_shape(target: HttpTarget) -> None:
    async with httpx.AsyncClient() as client:
        mailer = sender("postmark", target, client)
        mailer.deliver(EMAIL)
        await mailer.idle()
    (sent,) = target.requests
    assert (sent.method, sent.path, sent.headers["x-postmark-server-token"]) == ("POST", "/email", "key-123")
    assert sent.json == {"From": "AAT <billing@aat.example>", "To": "owner@bakery.example",
                         "Subject": "Payment failed for Bakery Blum", "TextBody": "Update your card.",
                         "MessageStream": "outbound"}


async def test_a_5xx_is_retried_and_a_4xx_is_not(target: HttpTarget, caplog: pytest.LogCaptureFixture) -> None:
    target.script(Answer(status=503, json={}), Answer(status=200, json={"id": "e1"}))
    async with httpx.AsyncClient() as client:
        mailer = sender("resend", target, client)
        mailer.deliver(EMAIL)
        await mailer.idle()
        assert len(target.requests) == 2
        target.script(Answer(status=422, json={"message": "invalid from"}))
        with caplog.at_level(logging.WARNING, logger="aat.cp.mail"):
            mailer.deliver(EMAIL)
            await mailer.idle()
    assert len(target.requests) == 3
    assert [r.status for r in caplog.records if r.name == "aat.cp.mail"] == [422]
    assert "owner@bakery.example" not in caplog.text and "Bakery" not in caplog.text


def test_a_hosted_backend_needs_its_key_and_sender() -> None:
    with pytest.raises(ValueError, match="AAT_CP_EMAIL_API_KEY and AAT_CP_EMAIL_FROM"):
        MailSender(ControlPlaneSettings(email="postmark"), httpx.AsyncClient())
