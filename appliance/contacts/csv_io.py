"""Contacts as CSV: the export's rows, and an import that is checked whole before anything is
written.

Columns (the export writes them all; an import needs ``external_id`` and ``channel`` or
``channel_id``, every other column is optional)::

    id  channel  channel_id  external_id  name  first_name  last_name  username  phone
    subscribed  tags  last_inbound_at  created_at  field.<name> ...

- A row matches an existing contact by channel and ``external_id`` (on WhatsApp also by the
  ``wa_id`` or BSUID Meta gave): it is updated, else created. ``channel`` (``messenger``,
  ``instagram``, ``whatsapp``) names the channel when only one of that type is connected;
  ``channel_id`` picks one among several.
- An empty cell changes nothing. ``tags`` (separated by ``;``) are added, never removed.
  ``field.<name>`` sets that custom field to the text in the cell (a value whose text is
  unchanged keeps its type: a number stays a number). ``subscribed`` takes true/false,
  yes/no, 1/0. ``id``, ``username``, ``last_inbound_at`` and ``created_at`` are read-only
  (the export writes them; the import ignores them).
- All or nothing: :func:`plan` checks every row against the database first; a file with any
  error writes nothing and says which row and column is wrong and why (invariant 5).
- Limits: :data:`MAX_ROWS` rows, :data:`MAX_BYTES` bytes, :data:`MAX_FIELDS` field columns.
- Cells starting with ``=``, ``+``, ``-``, ``@`` are exported with a leading ``'`` so that a
  spreadsheet does not run them as formulas (CSV injection); the import removes that quote.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlite_utils import Database

from appliance import events
from appliance.contacts.store import split_name
from appliance.errors import Detail, Unprocessable
from appliance.store.rows import many

__all__ = [
    "MAX_ROWS", "MAX_BYTES", "MAX_FIELDS", "COLUMNS", "ParsedCsv", "Plan", "parse", "plan", "apply",
    "export_header", "export_line", "field_names", "ImportError_",
]

MAX_ROWS = 10_000
MAX_BYTES = 5 * 1024 * 1024
MAX_FIELDS = 100
MAX_ERRORS = 200

COLUMNS = ("id", "channel", "channel_id", "external_id", "name", "first_name", "last_name", "username", "phone",
           "subscribed", "tags", "last_inbound_at", "created_at")
_WRITABLE = {"channel", "channel_id", "external_id", "name", "first_name", "last_name", "phone", "subscribed", "tags"}
_READ_ONLY = {"id", "username", "last_inbound_at", "created_at"}
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_LINE = re.compile(r"^[^\x00-\x1f\x7f]*$")
_EXTERNAL_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_TAG = re.compile(r"^[^\x00-\x1f/]{1,64}$")
_TRUE, _FALSE = {"true", "yes", "1", "y"}, {"false", "no", "0", "n"}
_LIMITS = {"name": 200, "first_name": 200, "last_name": 200, "phone": 32}
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


class ImportError_(Unprocessable):  # noqa: N801 - not the builtin ImportError
    """The file cannot be imported; ``details`` locate each problem (``row 3.external_id``)."""

    default_code = "invalid_import"


@dataclass(frozen=True, slots=True)
class ParsedCsv:
    header: list[str]
    rows: list[dict[str, str]]  # header -> cell, quotes against formulas removed
    line_of: list[int]  # the file's line number of each row (the header is line 1)


@dataclass(slots=True)
class RowPlan:
    row: int
    action: str  # create | update | unchanged | error
    channel_id: int | None = None
    channel: str | None = None
    external_id: str | None = None
    contact_id: int | None = None
    changes: dict[str, Any] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    errors: list[Detail] = field(default_factory=list)


@dataclass(slots=True)
class Plan:
    rows: list[RowPlan]

    @property
    def errors(self) -> list[Detail]:
        return [e for r in self.rows for e in r.errors]

    def counts(self) -> dict[str, int]:
        counts = {"create": 0, "update": 0, "unchanged": 0, "error": 0}
        for r in self.rows:
            counts[r.action] += 1
        return counts

    def report(self, preview: int = 20) -> dict[str, Any]:
        """What a dry run answers: counts, every error (up to :data:`MAX_ERRORS`) and the first
        rows as they would be applied."""
        counts = self.counts()
        return {
            "rows": len(self.rows),
            "create": counts["create"],
            "update": counts["update"],
            "unchanged": counts["unchanged"],
            "invalid": counts["error"],
            "errors": [{"row": int(e.path.split(".")[0].removeprefix("row ")), "path": e.path, "message": e.message}
                       for e in self.errors[:MAX_ERRORS]],
            "preview": [
                {"row": r.row, "action": r.action, "channel": r.channel, "external_id": r.external_id,
                 "contact_id": str(r.contact_id) if r.contact_id else None,
                 "name": r.changes.get("name"), "tags": r.tags, "fields": r.fields,
                 "errors": [e.message for e in r.errors]}
                for r in self.rows[:preview]
            ],
        }


# --- parsing -------------------------------------------------------------------------------------

def _unquote(cell: str) -> str:
    return cell[1:] if len(cell) > 1 and cell[0] == "'" and cell[1] in _FORMULA else cell


def parse(data: bytes) -> ParsedCsv:
    """The rows of a CSV file (UTF-8, optional BOM; comma, semicolon or tab separated, as
    spreadsheets save it); raises :class:`ImportError_` for a file that cannot be read."""
    if len(data) > MAX_BYTES:
        raise ImportError_(f"the file is larger than {MAX_BYTES // (1024 * 1024)} MiB; split it into smaller files",
                           code="payload_too_large")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportError_("the file is not UTF-8 text; save it from your spreadsheet as \"CSV UTF-8\"") from exc
    if not text.strip():
        raise ImportError_("the file is empty; it needs a header line and at least one row")
    first = text.splitlines()[0]
    delimiter = max((",", ";", "\t"), key=first.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = [h.strip() for h in next(reader)]
        problems = _check_header(header)
        if problems:
            raise ImportError_("the header line cannot be used; see details", details=problems)
        rows, lines = [], []
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue  # blank lines, as spreadsheets leave them at the end
            if len(rows) >= MAX_ROWS:
                raise ImportError_(f"the file has more than {MAX_ROWS:,} rows; split it into smaller files",
                                   code="too_many_rows")
            if len(cells) > len(header):
                raise ImportError_("the file has a row with more cells than the header has columns",
                                   details=[Detail(f"row {reader.line_num}", f"{len(cells)} cells, "
                                                   f"{len(header)} columns")])
            rows.append({h: _unquote(c.strip()) for h, c in zip(header, cells, strict=False)})
            lines.append(reader.line_num)
    except csv.Error as exc:
        raise ImportError_(f"the file is not valid CSV (line {reader.line_num}: {exc})") from exc
    if not rows:
        raise ImportError_("the file has a header but no rows")
    return ParsedCsv(header, rows, lines)


def _check_header(header: list[str]) -> list[Detail]:
    problems = []
    seen: set[str] = set()
    fields = 0
    for name in header:
        if name in seen:
            problems.append(Detail(f"header.{name}", "this column appears twice"))
        seen.add(name)
        if name.startswith("field."):
            fields += 1
            if not _FIELD_NAME.match(name.removeprefix("field.")):
                problems.append(Detail(f"header.{name}", "a field name has letters, digits and underscores and does "
                                                         "not start with a digit"))
        elif name not in _WRITABLE and name not in _READ_ONLY:
            problems.append(Detail(f"header.{name or '(empty)'}", "unknown column; the columns are "
                                   + ", ".join(COLUMNS) + " and field.<name>"))
    if "external_id" not in seen:
        problems.append(Detail("header", "the external_id column is missing (the PSID, Instagram id or WhatsApp "
                                         "number of each contact)"))
    if "channel" not in seen and "channel_id" not in seen:
        problems.append(Detail("header", "a channel column is missing: add channel (messenger, instagram, "
                                         "whatsapp) or channel_id"))
    if fields > MAX_FIELDS:
        problems.append(Detail("header", f"more than {MAX_FIELDS} field columns"))
    return problems


# --- planning ------------------------------------------------------------------------------------

def _channels(db: Database) -> tuple[dict[int, str], dict[str, list[int]]]:
    by_id = {int(r["id"]): r["type"] for r in many(db, "SELECT id, type FROM channels")}
    by_type: dict[str, list[int]] = {}
    for channel_id, kind in by_id.items():
        by_type.setdefault(kind, []).append(channel_id)
    return by_id, by_type


def _existing(db: Database, keys: Iterable[tuple[int, str]]) -> dict[tuple[int, str], dict[str, Any]]:
    """Contacts by ``(channel_id, id)`` for each id they are known by (external id, wa_id, BSUID)."""
    pairs = sorted(set(keys))
    found: dict[tuple[int, str], dict[str, Any]] = {}
    for start in range(0, len(pairs), 500):
        chunk = json.dumps([[c, e] for c, e in pairs[start:start + 500]])
        for row in many(db, """
                SELECT k.value ->> 0 AS key_channel, k.value ->> 1 AS key_id, c.id, c.name, c.first_name,
                       c.last_name, c.phone, c.subscribed, c.fields
                FROM json_each(?) k JOIN contacts c ON c.channel_id = k.value ->> 0
                 AND (c.external_id = k.value ->> 1 OR c.wa_id = k.value ->> 1 OR c.bsuid = k.value ->> 1)""",
                [chunk]):
            found.setdefault((int(row["key_channel"]), str(row["key_id"])), row)
    return found


def _tags_of(db: Database, contact_ids: list[int]) -> dict[int, set[str]]:
    tags: dict[int, set[str]] = {}
    for start in range(0, len(contact_ids), 500):
        chunk = json.dumps(contact_ids[start:start + 500])
        for row in many(db, "SELECT contact_id, tag FROM contact_tags WHERE contact_id IN (SELECT value FROM json_each(?))",
                        [chunk]):
            tags.setdefault(int(row["contact_id"]), set()).add(row["tag"])
    return tags


def _resolve_channel(cells: dict[str, str], by_id: dict[int, str], by_type: dict[str, list[int]],
                     where: str) -> tuple[int | None, Detail | None]:
    raw_id, kind = cells.get("channel_id", ""), cells.get("channel", "").lower()
    if raw_id:
        if not raw_id.isdigit() or int(raw_id) not in by_id:
            return None, Detail(f"{where}.channel_id", f"no channel has the id {raw_id[:20]!r}; see Settings → Channels")
        if kind and by_id[int(raw_id)] != kind:
            return None, Detail(f"{where}.channel", f"channel {raw_id} is a {by_id[int(raw_id)]} channel, not {kind}")
        return int(raw_id), None
    if kind not in ("messenger", "instagram", "whatsapp"):
        return None, Detail(f"{where}.channel", "must be messenger, instagram or whatsapp" if kind
                            else "is empty: name the channel (messenger, instagram, whatsapp) or give channel_id")
    candidates = by_type.get(kind, [])
    if not candidates:
        return None, Detail(f"{where}.channel", f"no {kind} channel is connected; connect it in Settings → Channels")
    if len(candidates) > 1:
        return None, Detail(f"{where}.channel", f"{len(candidates)} {kind} channels are connected: add a channel_id "
                                                "column to say which one")
    return candidates[0], None


def _same(old: Any, text: str) -> bool:
    if isinstance(old, bool):
        return text.lower() == ("true" if old else "false")
    return old is not None and str(old) == text


def plan(db: Database, parsed: ParsedCsv) -> Plan:
    """Each row checked against the database: what it would do, or why it cannot."""
    by_id, by_type = _channels(db)
    rows: list[RowPlan] = []
    for cells, line in zip(parsed.rows, parsed.line_of, strict=True):
        where = f"row {line}"
        item = RowPlan(row=line, action="error")
        channel_id, problem = _resolve_channel(cells, by_id, by_type, where)
        if problem:
            item.errors.append(problem)
        item.channel_id, item.channel = channel_id, by_id.get(channel_id) if channel_id else None
        external_id = cells.get("external_id", "")
        if not external_id:
            item.errors.append(Detail(f"{where}.external_id", "is empty: every row needs the contact's id on the channel"))
        elif not _EXTERNAL_ID.match(external_id):
            item.errors.append(Detail(f"{where}.external_id", "is not an id (letters, digits and . _ : - only, "
                                                              "up to 128)"))
        else:
            item.external_id = external_id
        for column, limit in _LIMITS.items():
            value = cells.get(column, "")
            if len(value) > limit:
                item.errors.append(Detail(f"{where}.{column}", f"is longer than {limit} characters"))
            elif value and not _LINE.match(value):
                item.errors.append(Detail(f"{where}.{column}", "contains control characters"))
            elif value:
                item.changes[column] = value
        subscribed = cells.get("subscribed", "").lower()
        if subscribed in _TRUE | _FALSE:
            item.changes["subscribed"] = subscribed in _TRUE
        elif subscribed:
            item.errors.append(Detail(f"{where}.subscribed", "must be true or false (or yes/no, 1/0)"))
        for tag in (t.strip() for t in cells.get("tags", "").split(";")):
            if not tag:
                continue
            if not _TAG.match(tag):
                item.errors.append(Detail(f"{where}.tags", f"{tag[:20]!r} is not a tag (up to 64 characters, no / or "
                                                           "control characters)"))
            elif tag not in item.tags:
                item.tags.append(tag)
        for column, value in cells.items():
            if column.startswith("field.") and value:
                if len(value) > 2000 or "\x00" in value:
                    item.errors.append(Detail(f"{where}.{column}", "is longer than 2000 characters or has NUL"))
                else:
                    item.fields[column.removeprefix("field.")] = value
        rows.append(item)
    _match(db, rows)
    return Plan(rows)


def _match(db: Database, rows: list[RowPlan]) -> None:
    """Decide create/update/unchanged; a second row for the same contact is an error."""
    keyed = [r for r in rows if r.channel_id and r.external_id]
    existing = _existing(db, ((r.channel_id, r.external_id) for r in keyed))  # type: ignore[misc]
    tags = _tags_of(db, sorted({int(c["id"]) for c in existing.values()}))
    seen: dict[tuple[Any, ...], int] = {}
    for r in rows:
        if r.channel_id and r.external_id:
            found = existing.get((r.channel_id, r.external_id))
            key = ("contact", found["id"]) if found else ("new", r.channel_id, r.external_id)
            if key in seen:
                r.errors.append(Detail(f"row {r.row}.external_id", f"the same contact as row {seen[key]}: "
                                                                   "keep one row per contact"))
            seen.setdefault(key, r.row)
            if found and not r.errors:
                r.contact_id = int(found["id"])
                r.changes = {k: v for k, v in r.changes.items()
                             if (bool(found[k]) != v if k == "subscribed" else found[k] != v)}
                stored = json.loads(found["fields"] or "{}")
                r.fields = {k: v for k, v in r.fields.items() if not _same(stored.get(k), v)}
                r.tags = [t for t in r.tags if t not in tags.get(r.contact_id, set())]
        if r.errors:
            r.action = "error"
        elif r.contact_id is None:
            r.action = "create"
        else:
            r.action = "update" if (r.changes or r.fields or r.tags) else "unchanged"


# --- applying ------------------------------------------------------------------------------------

def apply(db: Database, parsed: ParsedCsv, now: str) -> dict[str, int]:
    """Import ``parsed`` in the caller's transaction: every row, or (any error) none.

    Raises :class:`ImportError_` with every problem; returns the counts otherwise."""
    result = plan(db, parsed)
    errors = result.errors
    if errors:
        raise ImportError_(f"{len({e.path.split('.')[0] for e in errors})} row(s) cannot be imported; nothing was "
                           "saved. Fix them and import the file again", details=errors[:MAX_ERRORS])
    for r in result.rows:
        if r.action == "create":
            _create(db, r, now)
        elif r.action == "update":
            _update(db, r, now)
    counts = result.counts()
    return {"rows": len(result.rows), "created": counts["create"], "updated": counts["update"],
            "unchanged": counts["unchanged"]}


def _name_parts(changes: dict[str, Any]) -> dict[str, Any]:
    parts = {k: changes[k] for k in ("name", "first_name", "last_name") if k in changes}
    if "name" in parts and "first_name" not in parts and "last_name" not in parts:
        parts["first_name"], parts["last_name"] = split_name(parts["name"])
    return parts


def _create(db: Database, r: RowPlan, now: str) -> None:
    names = _name_parts(r.changes)
    digits = r.external_id if r.channel == "whatsapp" and r.external_id and r.external_id.isdigit() else None
    cursor = db.conn.execute(
        """INSERT INTO contacts (channel_id, external_id, wa_id, name, first_name, last_name, phone, name_locked,
               fields, subscribed, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        [r.channel_id, r.external_id, digits, names.get("name"), names.get("first_name"), names.get("last_name"),
         r.changes.get("phone") or digits, int(bool(names)), json.dumps(r.fields, ensure_ascii=False, sort_keys=True),
         int(r.changes.get("subscribed", True)), now, now])
    contact_id = int(cursor.lastrowid)
    _add_tags(db, contact_id, r.tags, now)
    events.emit(db, "contact.created", contact_id=contact_id, now=now)


def _update(db: Database, r: RowPlan, now: str) -> None:
    updates: dict[str, Any] = {}
    names = _name_parts(r.changes)
    if names:
        updates.update(names, name_locked=1)
    if "phone" in r.changes:
        updates["phone"] = r.changes["phone"]
    if "subscribed" in r.changes:
        updates["subscribed"] = int(r.changes["subscribed"])
    if updates:
        updates["updated_at"] = now
        db.conn.execute(f"UPDATE contacts SET {', '.join(f'{k} = ?' for k in updates)} WHERE id = ?",
                        [*updates.values(), r.contact_id])
    if r.fields:
        # json_patch merges the new values into the stored object.
        db.conn.execute("UPDATE contacts SET fields = json_patch(fields, ?), updated_at = ? WHERE id = ?",
                        [json.dumps(r.fields, ensure_ascii=False), now, r.contact_id])
    _add_tags(db, r.contact_id, r.tags, now)  # type: ignore[arg-type]
    events.emit(db, "contact.updated", contact_id=r.contact_id, now=now)


def _add_tags(db: Database, contact_id: int, tags: list[str], now: str) -> None:
    db.conn.executemany("INSERT OR IGNORE INTO contact_tags (contact_id, tag, created_at) VALUES (?, ?, ?)",
                        [(contact_id, tag, now) for tag in tags])


# --- export --------------------------------------------------------------------------------------

def field_names(db: Database) -> list[str]:
    """Every custom field name any contact has: one ``field.<name>`` column each."""
    return [r["key"] for r in many(db, "SELECT DISTINCT j.key FROM contacts c, json_each(c.fields) j "
                                       "WHERE json_valid(c.fields) ORDER BY j.key")][:1000]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (dict, list)):
        text = json.dumps(value, ensure_ascii=False)
    else:
        text = str(value)
    return "'" + text if text.startswith(_FORMULA) else text


def export_header(fields: list[str]) -> str:
    return _line([*COLUMNS, *(f"field.{f}" for f in fields)])


def export_line(contact: dict[str, Any], fields: list[str]) -> str:
    """One contact (``contacts.store`` shape) as a CSV line."""
    values = [contact["id"], contact["channel"], contact["channel_id"], contact["external_id"], contact["name"],
              contact["first_name"], contact["last_name"], contact["username"], contact["phone"],
              bool(contact["subscribed"]), ";".join(contact["tags"]), contact["last_inbound_at"],
              contact["created_at"], *(contact["fields"].get(f) for f in fields)]
    return _line([_cell(v) for v in values])


def _line(cells: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(cells)
    return out.getvalue()
