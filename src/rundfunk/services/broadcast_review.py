"""The review before a broadcast goes out: its message rendered for a sample of the
real audience, refused with the reason when it would not arrive as meant.

The console's preview shows one contact. A text such as ``Hallo {{ contact.name.upper() }}``
works for that one and fails for everyone without a name; ``{{ contact.attributes.city }}``
comes out empty for everyone without a city. So before the confirmation, and again when a
broadcast starts (API, CLI, console, the scheduler), the message is rendered exactly as the
dispatcher will render it (``content.outbound``) for the first and the last
``SAMPLE_EACH`` recipients, for up to ``SAMPLE_EACH`` lacking a field (no name, no
attributes; of the fields the text reads, no language, no such attribute or an empty
one) and, for a text that reads attributes, the ``SAMPLE_EACH`` with the longest ones.
The send is refused when any of them fails to render, comes out empty (after
stripping) or is longer than the channel takes (``content.text_limit``). At most a few
hundred renders of a compiled template; the look-ups cost about a count of the audience
each (see ``sample_audience``). A sample is not everyone: a copy that still fails (a
field emptied after the start) fails alone, never goes out empty, and a broadcast whose
every copy failed ends ``failed``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import String, cast, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from rundfunk.core import personalize
from rundfunk.db.tables import contacts, workspaces
from rundfunk.services import content as content_service
from rundfunk.services.audience import audience_filter
from rundfunk.services.errors import Invalid

SAMPLE_EACH: Final = 20
MAX_FIELDS: Final = 10  # fields a text reads that get their own look-up
# Attribute keys looked up in the database (others are still rendered for the sample).
_KEY: Final = re.compile(r"^[A-Za-z0-9_\- ]{1,64}$")
_COLUMNS = (contacts.c.id, contacts.c.address, contacts.c.name, contacts.c.language,
            contacts.c.attributes)  # fmt: skip


@dataclass(frozen=True)
class RenderProblem:
    """Why the message cannot go to one sampled recipient."""

    kind: str  # "render" | "empty" | "long"
    who: str  # the recipient's name and address
    detail: str  # the renderer's message ("render"), else ""
    length: int  # the rendered length ("long")
    limit: int  # the channel's limit
    failing: int  # how many of the sample have a problem
    checked: int  # how many were checked

    def sentence(self) -> str:
        if self.kind == "render":
            what = f"the text cannot be personalized ({self.detail})"
        elif self.kind == "empty":
            what = "the message comes out empty"
        else:
            what = f"the message has {self.length} characters; the channel allows {self.limit}"
        return (
            f"for {self.who} {what} ({self.failing} of {self.checked} recipients checked "
            "are affected)"
        )


class RenderRefused(Invalid):
    """The review found recipients the message would not reach as meant."""

    def __init__(self, problem: RenderProblem, *, field: str) -> None:
        super().__init__(f"{field}: {problem.sentence()}", field=field)
        self.problem = problem


async def check_audience_renders(
    conn: AsyncConnection,
    *,
    workspace_id: int,
    channel_id: int,
    kind: str,
    topic_ids: Sequence[int],
    text: str | None,
    media_url: str | None,
    content: Mapping[str, Any] | None,
) -> int:
    """Raise ``RenderRefused`` unless the message renders for the whole sample; returns
    how many recipients were checked."""
    template = content.get("template") if content else None
    sources = (
        [str(v) for k in ("body_parameters", "header_parameters", "button_parameters")
         for v in template.get(k) or []] if isinstance(template, Mapping)
        else [text or ""]
    )  # fmt: skip
    sample = await sample_audience(
        conn, channel_id=channel_id, topic_ids=topic_ids, sources=sources
    )
    workspace = {
        "name": await conn.scalar(select(workspaces.c.name).where(workspaces.c.id == workspace_id))
    }
    media = bool(media_url or (content and content.get("media_id")))
    limit = content_service.text_limit(kind, media=media)
    problems = [
        (contact, found)
        for contact in sample
        if (found := _problem(contact, workspace, text, media_url, content, limit)) is not None
    ]
    if problems:
        first_contact, (problem_kind, detail, length) = problems[0]
        raise RenderRefused(
            RenderProblem(
                kind=problem_kind,
                who=_who(first_contact),
                detail=detail,
                length=length,
                limit=limit,
                failing=len(problems),
                checked=len(sample),
            ),
            field="template" if isinstance(template, Mapping) else "text",
        )
    return len(sample)


def _who(contact: Mapping[str, Any]) -> str:
    name, address = contact.get("name"), str(contact["address"])
    return f"{name} ({address})" if name else address


def _problem(
    contact: dict[str, Any],
    workspace: Mapping[str, object],
    text: str | None,
    media_url: str | None,
    content: Mapping[str, Any] | None,
    limit: int,
) -> tuple[str, str, int] | None:
    """What is wrong with the message for this contact: (kind, detail, length), as the
    dispatcher would meet it (see ``worker.dispatcher``)."""
    template = bool(content and content.get("template"))
    rendered = text
    try:
        if text is not None and not template:
            # One character over the limit tells a text that fits from one that was cut.
            rendered = personalize.render(
                text, contact=contact, workspace=workspace, limit=limit + 1
            )
        content_service.outbound(
            address=str(contact["address"]),
            callback_data="d:0",
            text=None if template else rendered,
            media_url=media_url,
            content=content,
            render=lambda source: personalize.render(source, contact=contact, workspace=workspace),
        )
    except personalize.PersonalizationError as exc:
        return "render", str(exc).removeprefix("cannot personalize: "), 0
    except ValueError as exc:
        return ("render", str(exc), 0) if template else ("empty", "", 0)
    if not template and rendered is not None and len(rendered) > limit:
        return "long", "", len(rendered)
    return None


async def sample_audience(
    conn: AsyncConnection, *, channel_id: int, topic_ids: Sequence[int], sources: Sequence[str]
) -> list[dict[str, Any]]:
    """The recipients the review renders for, as the dispatcher sees a contact: the first
    and last ``SAMPLE_EACH``, and up to ``SAMPLE_EACH`` lacking each field ``sources`` read."""
    audience = audience_filter(channel_id, list(topic_ids))
    fields: set[tuple[str, ...]] = set()
    for source in sources:
        try:
            fields |= personalize.contact_fields(source)
        except Exception:  # noqa: BLE001 - a text that does not parse fails its render anyway
            continue
    # Each look-up that finds fewer than SAMPLE_EACH scans the channel's audience, about
    # as long as counting it (225-315 ms against 184 ms for the count, 100,000 contacts,
    # SQLite, a busy 2-core machine), so only the fields that matter: no name and no
    # attributes always, the others when the text reads them.
    conditions: list[ColumnElement[bool]] = [
        contacts.c.name.is_(None),
        # No attributes at all (``{}`` or a JSON null).
        or_(
            contacts.c.attributes.is_(None),
            func.coalesce(cast(contacts.c.attributes, String), "null").in_(("{}", "null")),
        ),
    ]
    if ("language",) in fields:
        conditions.append(contacts.c.language.is_(None))
    keys = sorted(f[1] for f in fields if len(f) == 2 and f[0] == "attributes" and _KEY.match(f[1]))
    for key in keys[:MAX_FIELDS]:
        value = contacts.c.attributes[key].as_string()
        conditions.append(or_(value.is_(None), value == ""))
    found: dict[int, dict[str, Any]] = {}
    queries = [
        select(*_COLUMNS).where(audience).order_by(contacts.c.id).limit(SAMPLE_EACH),
        select(*_COLUMNS).where(audience).order_by(contacts.c.id.desc()).limit(SAMPLE_EACH),
    ]
    if any(f[0] == "attributes" for f in fields):
        # The longest attributes: the ones a text is most likely to overflow the limit with.
        longest = func.length(cast(contacts.c.attributes, String)).desc()
        queries.append(select(*_COLUMNS).where(audience).order_by(longest).limit(SAMPLE_EACH))
    queries += [
        select(*_COLUMNS).where(audience, condition).order_by(contacts.c.id).limit(SAMPLE_EACH)
        for condition in conditions
    ]
    for query in queries:
        for row in (await conn.execute(query)).all():
            found.setdefault(row.id, dict(row._mapping))
    return [found[i] for i in sorted(found)]
