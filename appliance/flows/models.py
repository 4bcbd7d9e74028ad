"""The ``aat.flow/v1`` document (docs/spec/flow-format.md) as pydantic models.

These models are the single definition of the format: they parse documents (unknown fields are
errors, so typos surface), and :func:`flow_json_schema` generates the JSON Schema served at
``GET /api/v1/flows/schema``. Cross-field rules (step references, regexes, limits per channel,
cycles) live in :mod:`appliance.flows.validate`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

__all__ = [
    "ChannelName",
    "FlowDocument",
    "Trigger",
    "Step",
    "MessageStep",
    "InputStep",
    "ConditionStep",
    "RandomizerStep",
    "DelayStep",
    "ActionStep",
    "HttpRequestStep",
    "GoogleSheetsStep",
    "AiReplyStep",
    "HandoffStep",
    "GotoFlowStep",
    "EndStep",
    "FlowButton",
    "QuickReply",
    "Card",
    "Media",
    "Condition",
    "flow_json_schema",
    "MAX_DELAY_SECONDS",
]

MAX_DELAY_SECONDS = 365 * 24 * 3600

ChannelName = Literal["messenger", "instagram", "whatsapp"]
StepId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_\-]{1,64}$")]
Text = Annotated[str, StringConstraints(min_length=1, max_length=4096)]
Title = Annotated[str, StringConstraints(min_length=1, max_length=80)]
Url = Annotated[str, StringConstraints(pattern=r"^https?://\S+$", max_length=2000)]
FieldName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
TagName = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Keyword = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Channels = Annotated[list[ChannelName], Field(min_length=1)]


class _Strict(BaseModel):
    # defer_build: the ~35 models are built on first use, not at import (about 70 ms of every
    # start; bench/footprint.py measures restart-to-ready).
    model_config = ConfigDict(extra="forbid", populate_by_name=True, defer_build=True)


# --- triggers ------------------------------------------------------------------------------

class _TriggerBase(_Strict):
    channels: Channels | None = Field(None, description="Channels it fires on (default: all).")


class KeywordTrigger(_TriggerBase):
    type: Literal["keyword"]
    keywords: Annotated[list[Keyword], Field(min_length=1, max_length=100)]
    match: Literal["exact", "contains", "starts_with"] = "contains"


class CommentTrigger(_TriggerBase):
    type: Literal["comment"]
    post_ids: list[Annotated[str, StringConstraints(min_length=1, max_length=100)]] | None = None
    keywords: Annotated[list[Keyword], Field(min_length=1, max_length=100)] | None = None
    match: Literal["exact", "contains", "starts_with"] = "contains"
    public_reply: Annotated[str, StringConstraints(min_length=1, max_length=2000)] | None = None


class StoryReplyTrigger(_TriggerBase):
    type: Literal["story_reply"]
    keywords: Annotated[list[Keyword], Field(min_length=1, max_length=100)] | None = None
    match: Literal["exact", "contains", "starts_with"] = "contains"


class StoryMentionTrigger(_TriggerBase):
    type: Literal["story_mention"]


class RefTrigger(_TriggerBase):
    type: Literal["ref"]
    ref: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_\-.]{1,100}$")]


class PostbackTrigger(_TriggerBase):
    type: Literal["postback"]
    payload: Annotated[str, StringConstraints(min_length=1, max_length=1000)]


class WelcomeTrigger(_TriggerBase):
    type: Literal["welcome"]


class DefaultTrigger(_TriggerBase):
    type: Literal["default"]


Trigger = Annotated[
    KeywordTrigger | CommentTrigger | StoryReplyTrigger | StoryMentionTrigger | RefTrigger
    | PostbackTrigger | WelcomeTrigger | DefaultTrigger,
    Field(discriminator="type"),
]


# --- message content -----------------------------------------------------------------------

class FlowButton(_Strict):
    """A reply button (``next``) or a link (``url``)."""

    title: Title
    next: StepId | None = None
    url: Url | None = None

    @model_validator(mode="after")
    def _one_target(self) -> FlowButton:
        if (self.next is None) == (self.url is None):
            raise ValueError("a button needs exactly one of `next` (a step) or `url` (a link)")
        return self


class QuickReply(_Strict):
    title: Title
    next: StepId


class Card(_Strict):
    title: Title
    subtitle: Annotated[str, StringConstraints(max_length=80)] | None = None
    image_url: Url | None = None
    buttons: Annotated[list[FlowButton], Field(max_length=3)] = Field(default_factory=list)


class Media(_Strict):
    type: Literal["image", "video", "audio", "file"]
    url: Url


class Window(_Strict):
    """Only continue between ``from`` and ``to`` (24 h clock) in ``timezone`` (IANA name; the
    contact's time zone when absent, else the workspace's)."""

    from_: Annotated[str, StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")] = Field(alias="from")
    to: Annotated[str, StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    timezone: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None


class Condition(_Strict):
    field: Annotated[str, StringConstraints(min_length=1, max_length=100)] = Field(
        description="`contact.first_name`, `contact.fields.NAME`, `contact.channel`, ... or a tag name for has_tag"
    )
    op: Literal["eq", "ne", "contains", "not_contains", "gt", "lt", "exists", "not_exists",
                "has_tag", "not_has_tag"]
    value: str | int | float | bool | None = None


# --- steps ---------------------------------------------------------------------------------

class _StepBase(_Strict):
    pass


class MessageStep(_StepBase):
    type: Literal["message"]
    text: Text | None = None
    media: Media | None = None
    buttons: Annotated[list[FlowButton], Field(max_length=10)] = Field(default_factory=list)
    quick_replies: Annotated[list[QuickReply], Field(max_length=13)] = Field(default_factory=list)
    cards: Annotated[list[Card], Field(max_length=10)] = Field(default_factory=list)
    next: StepId | None = None

    @model_validator(mode="after")
    def _has_content(self) -> MessageStep:
        if not (self.text or self.media or self.cards):
            raise ValueError("a message needs `text`, `media` or `cards`")
        if self.buttons and self.quick_replies:
            raise ValueError("use either `buttons` or `quick_replies`, not both")
        return self


class InputStep(_StepBase):
    type: Literal["input"]
    text: Text
    validate_: Annotated[str, StringConstraints(max_length=500)] = Field("text", alias="validate")
    save_to: FieldName | None = None
    retry_text: Text | None = None
    max_retries: int = Field(2, ge=0, le=10)
    timeout_seconds: int | None = Field(None, ge=60, le=30 * 24 * 3600)
    next: StepId | None = None
    on_invalid: StepId | None = None
    on_timeout: StepId | None = None


class ConditionStep(_StepBase):
    type: Literal["condition"]
    if_: Annotated[list[Condition], Field(min_length=1, max_length=20)] = Field(alias="if")
    match: Literal["all", "any"] = "all"
    then: StepId | None = None
    else_: StepId | None = Field(None, alias="else")


class Branch(_Strict):
    weight: int = Field(ge=1, le=1000)
    next: StepId | None = None


class RandomizerStep(_StepBase):
    type: Literal["randomizer"]
    branches: Annotated[list[Branch], Field(min_length=2, max_length=10)]


class DelayStep(_StepBase):
    type: Literal["delay"]
    seconds: int = Field(ge=1, le=MAX_DELAY_SECONDS)
    window: Window | None = None
    next: StepId | None = None


class SetField(_Strict):
    name: FieldName
    value: Annotated[str, StringConstraints(max_length=1000)]


class Action(_Strict):
    """Exactly one of the keys."""

    add_tag: TagName | None = None
    remove_tag: TagName | None = None
    set_field: SetField | None = None
    clear_field: FieldName | None = None
    subscribe: bool | None = None
    notify_team: Annotated[str, StringConstraints(min_length=1, max_length=1000)] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Action:
        given = [k for k, v in self.__dict__.items() if v is not None]
        if len(given) != 1:
            raise ValueError(
                "an action has exactly one of add_tag, remove_tag, set_field, clear_field, "
                "subscribe, notify_team"
            )
        return self


class ActionStep(_StepBase):
    type: Literal["action"]
    actions: Annotated[list[Action], Field(min_length=1, max_length=50)]
    next: StepId | None = None


class HttpRequestStep(_StepBase):
    type: Literal["http_request"]
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    url: Annotated[str, StringConstraints(min_length=1, max_length=2000)]
    headers: dict[Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9\-]{1,100}$")],
                  Annotated[str, StringConstraints(max_length=2000)]] = Field(default_factory=dict)
    body: Annotated[str, StringConstraints(max_length=20000)] | dict[str, Any] | list[Any] | None = None
    timeout_seconds: float = Field(10, gt=0, le=10)
    save: dict[FieldName, Annotated[str, StringConstraints(pattern=r"^\$(\.[A-Za-z0-9_\-]+|\[\d+\])*$")]] = Field(
        default_factory=dict
    )
    next: StepId | None = None
    on_error: StepId | None = None


class GoogleSheetsStep(_StepBase):
    type: Literal["google_sheets"]
    spreadsheet_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_\-]{10,200}$")]
    sheet: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    values: Annotated[list[Annotated[str, StringConstraints(max_length=5000)]], Field(min_length=1, max_length=100)]
    next: StepId | None = None
    on_error: StepId | None = None


class AiReplyStep(_StepBase):
    type: Literal["ai_reply"]
    instructions: Annotated[str, StringConstraints(max_length=10000)] | None = None
    use_knowledge_base: bool = True
    provider: Literal["anthropic", "openai"] | None = None
    model: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None
    max_turns: int = Field(5, ge=1, le=50)
    handoff_keywords: list[Keyword] = Field(default_factory=list, max_length=50)
    next: StepId | None = None
    on_error: StepId | None = None


class HandoffStep(_StepBase):
    type: Literal["handoff"]
    text: Text | None = None
    assign_to: Annotated[str, StringConstraints(max_length=254)] | None = None


class GotoFlowStep(_StepBase):
    type: Literal["goto_flow"]
    flow: Annotated[str, StringConstraints(min_length=1, max_length=200)]


class EndStep(_StepBase):
    type: Literal["end"]


Step = Annotated[
    MessageStep | InputStep | ConditionStep | RandomizerStep | DelayStep | ActionStep
    | HttpRequestStep | GoogleSheetsStep | AiReplyStep | HandoffStep | GotoFlowStep | EndStep,
    Field(discriminator="type"),
]


class Position(_Strict):
    x: float
    y: float


class FlowSettings(_Strict):
    channels: Channels | None = None


class FlowDocument(_Strict):
    """One flow: what starts it and what it does."""

    schema_: Literal["aat.flow/v1"] = Field(alias="schema")
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    description: Annotated[str, StringConstraints(max_length=2000)] | None = None
    triggers: Annotated[list[Trigger], Field(max_length=50)] = Field(default_factory=list)
    start: StepId
    steps: Annotated[dict[StepId, Step], Field(min_length=1, max_length=500)]
    layout: dict[StepId, Position] | None = None
    settings: FlowSettings | None = None

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_defaults=True)


def _closed_maps(node: Any) -> None:
    # pydantic describes dict[StepId, ...] with patternProperties only, which lets any other
    # key through; the models reject keys that do not match, so the schema must too.
    if isinstance(node, dict):
        if "patternProperties" in node:
            node.setdefault("additionalProperties", False)
        for value in node.values():
            _closed_maps(value)
    elif isinstance(node, list):
        for value in node:
            _closed_maps(value)


def flow_json_schema() -> dict[str, Any]:
    schema = FlowDocument.model_json_schema(by_alias=True)
    _closed_maps(schema)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "aat.flow/v1"
    return schema
