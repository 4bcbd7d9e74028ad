"""The request schemas of ``/api/v1/broadcasts`` and ``/api/v1/templates``.

A broadcast's ``message`` is either text with up to three buttons or a WhatsApp template::

    {"text": "Hi {{contact.first_name|there}}, our sale starts today",
     "buttons": [{"title": "Show me", "flow_id": "12"}, {"title": "Shop", "url": "https://..."}]}

    {"template": {"name": "spring_sale", "language": "en_US",
                  "body": ["{{contact.first_name|there}}", "20%"],      (or {"name": value} for
                  "header": ["Spring"],                                  NAMED templates)
                  "header_media": {"type": "image", "link": "https://..."},
                  "buttons": [{"index": 0, "flow_id": "12"}]}}

Texts and variables may use the flow template language (``{{contact.first_name|there}}``,
``{{contact.fields.plan}}``), filled in per recipient. A button that starts a flow carries the
payload of that flow's ``postback`` trigger, so a tap starts it like a persistent-menu item.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from appliance.broadcasts.audience import FIELD_OPS, resolve_time

__all__ = [
    "Audience", "TagSet", "FieldCondition", "Interaction", "Button", "TemplateButton", "TemplateMessage",
    "Message", "NewBroadcast", "Estimate", "SyncTemplates", "dump",
]

Tag = Annotated[str, StringConstraints(min_length=1, max_length=64, strip_whitespace=True,
                                       pattern=r"^[^\x00-\x1f/]+$")]
FieldName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
IdText = Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]{0,17}$")]
MetaId = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,32}$")]
Url = Annotated[str, StringConstraints(max_length=2000, pattern=r"^https?://[^\s]+$")]
Variable = Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)  # built on first use, not at start


class TagSet(_Strict):
    any: list[Tag] = Field(default_factory=list, max_length=50, description="has at least one of these")
    all: list[Tag] = Field(default_factory=list, max_length=50, description="has every one of these")
    none: list[Tag] = Field(default_factory=list, max_length=50, description="has none of these")


class FieldCondition(_Strict):
    field: FieldName
    op: Literal[FIELD_OPS]  # type: ignore[valid-type]
    value: Annotated[str, StringConstraints(max_length=2000)] | int | float | bool | None = None

    @model_validator(mode="after")
    def _value_fits(self) -> FieldCondition:
        if self.op in ("is_set", "is_not_set"):
            if self.value is not None:
                raise ValueError(f"`{self.op}` takes no value")
        elif self.op in ("gt", "gte", "lt", "lte"):
            if isinstance(self.value, bool) or not isinstance(self.value, int | float):
                raise ValueError(f"`{self.op}` compares numbers: give a number as value")
        elif self.value is None:
            raise ValueError(f"`{self.op}` needs a value")
        return self


class Interaction(_Strict):
    after: str | None = Field(None, description="ISO-8601 time with an offset, or a span before now: 7d, 12h")
    before: str | None = Field(None, description="ISO-8601 time with an offset, or a span before now: 7d, 12h")

    @field_validator("after", "before")
    @classmethod
    def _time(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                resolve_time(value, datetime.now().astimezone())
            except (ValueError, OverflowError) as exc:
                raise ValueError("expected an ISO-8601 time with an offset (2026-11-01T09:00:00+01:00) "
                                 "or a span like 7d, 12h, 30m, 2w") from exc
        return value


class Audience(_Strict):
    """A segment: every condition given must hold (see :mod:`appliance.broadcasts.audience`)."""

    tags: TagSet = Field(default_factory=TagSet)
    fields: list[FieldCondition] = Field(default_factory=list, max_length=20)
    channels: list[Literal["messenger", "instagram", "whatsapp"]] | None = Field(None, min_length=1)
    channel_ids: list[IdText] | None = Field(None, min_length=1, max_length=50)
    subscribed: bool | None = None
    last_interaction: Interaction | None = None


class Button(_Strict):
    """A reply button that starts a flow (``flow_id``) or sends ``payload``, or a link (``url``)."""

    title: Annotated[str, StringConstraints(min_length=1, max_length=20)]
    flow_id: IdText | None = None
    payload: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None
    url: Url | None = None

    @model_validator(mode="after")
    def _one_action(self) -> Button:
        if sum(v is not None for v in (self.flow_id, self.payload, self.url)) != 1:
            raise ValueError("a button needs exactly one of flow_id, payload or url")
        return self


class TemplateButton(_Strict):
    """A quick-reply button of the template (``index`` as Meta counts them, from 0)."""

    index: int = Field(ge=0, le=9)
    flow_id: IdText | None = None
    payload: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None

    @model_validator(mode="after")
    def _one_action(self) -> TemplateButton:
        if (self.flow_id is None) == (self.payload is None):
            raise ValueError("a template button needs exactly one of flow_id or payload")
        return self


class HeaderMedia(_Strict):
    type: Literal["image", "video", "document"]
    link: Url


class TemplateMessage(_Strict):
    name: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{1,512}$")]
    language: Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2,3}(_[A-Za-z0-9]{2,8})?$")]
    waba_id: MetaId | None = Field(None, description="The account whose template it is (when several have it)")
    header: list[Variable] | None = Field(None, max_length=1)
    header_media: HeaderMedia | None = None
    body: list[Variable] | dict[FieldName, Variable] | None = Field(None, max_length=60)
    buttons: list[TemplateButton] = Field(default_factory=list, max_length=10)


class Message(_Strict):
    text: Annotated[str, StringConstraints(min_length=1, max_length=4096)] | None = None
    buttons: list[Button] = Field(default_factory=list, max_length=3)
    template: TemplateMessage | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Message:
        if (self.text is None) == (self.template is None):
            raise ValueError("a message is either `text` (with optional `buttons`) or a WhatsApp `template`")
        if self.template is not None and self.buttons:
            raise ValueError("a template's buttons are given as `template.buttons`")
        return self


class NewBroadcast(_Strict):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")]
    audience: Audience = Field(default_factory=Audience)
    message: Message
    send_at: str | None = Field(
        None, description="When to send once started: ISO-8601 with an offset, or a local time "
        "read in `timezone` (default: the workspace's). Absent or past: at once.")
    timezone: Annotated[str, StringConstraints(max_length=64)] | None = None


class Estimate(_Strict):
    """A live count of the audience, and what the policy would decide for each recipient now."""

    audience: Audience = Field(default_factory=Audience)
    message: Message


class SyncTemplates(_Strict):
    channel_id: IdText | None = Field(None, description="Sync only this WhatsApp number's account")


def dump(model: BaseModel) -> dict[str, Any]:
    """What is stored and returned: the input without the parts left out."""
    return model.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
