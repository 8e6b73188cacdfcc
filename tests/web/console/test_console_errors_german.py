"""A service's refusal reaches a German member in German: each error keeps its message
template and values (services.errors.Message), the console translates the template
(locale/de/errors.po) and puts the values back in; English members and the API keep
the English text."""

from __future__ import annotations

import html
from typing import Any

import httpx

from rundfunk.services.actors import Role
from rundfunk.services.errors import Invalid, Message
from rundfunk.web.ui.i18n import catalog
from rundfunk.web.ui.render import translated


async def _german(console: Any, role: Role = Role.OWNER) -> Any:
    member = await console(role)
    assert (await member.post("/account/language", {"locale": "de"})).status_code == 303
    return member


def _text(response: httpx.Response) -> str:
    return html.unescape(response.text)


async def test_topic_refusals_in_german(console: Any) -> None:
    german = await _german(console)
    assert (await german.post("/topics", {"key": "news", "name": "News"})).status_code == 303
    taken = await german.post("/topics", {"key": "news", "name": "Noch mal"})
    assert taken.status_code == 422
    assert "Das Thema „news“ gibt es schon" in _text(taken)
    assert "already exists" not in taken.text
    long = await german.post("/topics", {"key": "lang", "name": "x" * 201})
    assert "Der Name darf höchstens 200 Zeichen haben" in _text(long)
    empty = await german.post("/topics", {"key": "leer", "name": "  "})
    assert "Der Name darf nicht leer sein" in _text(empty)


async def test_canned_response_refusals_in_german(console: Any) -> None:
    german = await _german(console, Role.AGENT)
    made = await german.post("/inbox/canned", {"short_code": "hallo", "text": "Hallo!"})
    assert made.status_code == 303, made.text
    taken = await german.post("/inbox/canned", {"short_code": "hallo", "text": "Hi"})
    assert "Das Kürzel /hallo ist schon vergeben" in _text(taken)
    long = await german.post("/inbox/canned", {"short_code": "lang", "text": "x" * 4097})
    assert "Der Text ist länger als 4096 Zeichen" in _text(long)


async def test_english_members_and_the_api_keep_english(console: Any, client: httpx.AsyncClient,
                                                         tenant: Any) -> None:  # fmt: skip
    english = await console(Role.EDITOR)
    await english.post("/topics", {"key": "sport", "name": "Sport"})
    taken = await english.post("/topics", {"key": "sport", "name": "Sport"})
    assert "topic 'sport' already exists" in _text(taken)
    await _german(console)  # another member's language changes nothing for the API
    api = await client.post("/api/v1/topics", json={"key": "sport", "name": "S"},
                            headers=tenant.auth())  # fmt: skip
    assert api.status_code == 409
    assert api.json()["error"] == {"code": "conflict", "message": "topic 'sport' already exists"}


def test_messages_keep_template_and_values() -> None:
    error = Invalid("the text is longer than %(max)s characters", field="text", params={"max": 9})
    assert error.message == "the text is longer than 9 characters" == str(error)
    assert isinstance(error.message, Message) and error.message.params == {"max": 9}
    assert translated("de", error.message) == "Der Text ist länger als 9 Zeichen"
    assert translated("en", error.message) == "the text is longer than 9 characters"
    fixed = Invalid("the current password is wrong").message
    assert translated("de", fixed) == "Das aktuelle Passwort ist falsch"
    unknown = Invalid("no German for this one, %(n)s", params={"n": 1}).message
    assert translated("de", unknown) == "no German for this one, 1"
    assert translated("de", "a plain string") == "a plain string"
    assert "the short code /%(code)s is taken already" in catalog("de")
