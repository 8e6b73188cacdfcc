"""The console speaks English and German: every text has its German translation.

The messages are extracted with Babel from the templates (``_()``, ``ngettext``) and
the console's Python modules (``N_``, ``_``), the same way a translator would; each
must have a German translation with the same placeholders.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from rundfunk.services.actors import Role
from rundfunk.web.ui import i18n

UI = Path(i18n.__file__).parent
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")


def extracted() -> dict[str, str]:
    """Every message id of the console and where it first appears."""
    found: dict[str, str] = {}
    method_map = [("templates/**.html", "jinja2"), ("*.py", "python")]
    options = {"templates/**.html": {"extensions": "jinja2.ext.i18n"}}
    keywords = {"_": None, "N_": None, "gettext": None, "ngettext": (1, 2)}
    for filename, lineno, message, *_rest in extract_from_dir(
        str(UI), method_map, options, keywords=keywords
    ):
        # A plural (ngettext) is filed under its singular, as in the catalog.
        text = message if isinstance(message, str) else message[0]
        if text:
            found.setdefault(text, f"{filename}:{lineno}")
    return found


def test_the_extraction_finds_the_console() -> None:
    messages = extracted()
    assert len(messages) > 40
    assert messages["Sign in"].startswith("templates/")
    assert messages["You are signed out."] == "account.py:" + messages["You are signed out."][11:]


def test_every_message_has_a_german_translation() -> None:
    german = i18n.catalog("de")
    missing = [f"{where}: {text!r}" for text, where in extracted().items() if text not in german]
    assert not missing, "no German translation for:\n" + "\n".join(sorted(missing))


def test_translations_keep_their_placeholders() -> None:
    wrong = []
    for message in i18n.catalog("de"):
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        wanted = set(PLACEHOLDER.findall(ids[-1]))
        for string in strings:
            if set(PLACEHOLDER.findall(string)) != wanted:
                wrong.append(f"{ids[0]!r} -> {string!r}")
    assert not wrong, "placeholders differ:\n" + "\n".join(wrong)


async def test_a_member_who_chose_german_sees_german(console: Any) -> None:
    agent = await console(Role.AGENT)
    english = await agent.get("/account")
    assert "Account and language" in english.text and 'lang="en"' in english.text
    saved = await agent.post("/account/language", {"locale": "de"})
    assert saved.status_code == 303
    german = await agent.get("/account")
    assert 'lang="de"' in german.text
    assert "Konto und Sprache" in german.text and "Abmelden" in german.text
    owner = await console(Role.OWNER)  # the choice is per member
    assert "Account and language" in (await owner.get("/account")).text


async def test_an_unknown_language_is_refused_next_to_the_field(console: Any) -> None:
    agent = await console(Role.AGENT)
    response = await agent.post("/account/language", {"locale": "xx"})
    assert response.status_code == 422
    assert 'id="e-locale"' in response.text and "language must be one of en, de" in response.text


async def test_the_sign_in_page_follows_the_browser_language(client: httpx.AsyncClient) -> None:
    page = await client.get("/setup", headers={"accept-language": "de-DE,de;q=0.9"})
    assert "Willkommen bei Rundfunk" in page.text and 'lang="de"' in page.text


def test_no_message_is_translated_two_ways() -> None:
    seen: dict[str, tuple[str, object]] = {}
    clashes = []
    for path in sorted((i18n.LOCALE_DIR / "de").glob("*.po")):
        with path.open("rb") as file:
            for message in read_po(file):
                if not message.id:
                    continue
                key = message.id if isinstance(message.id, str) else message.id[0]
                first = seen.setdefault(key, (path.name, message.string))
                if first[1] != message.string:
                    clashes.append(f"{key!r}: {first} vs {path.name}={message.string!r}")
    assert not clashes, "\n".join(clashes)
