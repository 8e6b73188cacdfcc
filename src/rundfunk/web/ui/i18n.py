"""The console's languages: English as written in the templates, German from gettext catalogs.

Every ``locale/de/*.po`` file is read at start and merged into one catalog, so each
area of the console keeps its own file (``inbox.po``, ``broadcasts.po``, …). The
catalogs are compiled in memory with Babel: no build step, no binary files in git.
Strings in Python code are marked with ``N_`` and translated where they are shown.
"""

from __future__ import annotations

import gettext
from functools import cache
from io import BytesIO
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGES = {"en": "English", "de": "Deutsch"}


def N_(message: str) -> str:  # noqa: N802 - the gettext convention for "translate later"
    """Mark a string for extraction; it is translated when a template shows it."""
    return message


def catalog(locale: str) -> Catalog:
    """Every message of one language, merged from its ``.po`` files."""
    merged = Catalog(locale=locale)
    for path in sorted((LOCALE_DIR / locale).glob("*.po")):
        with path.open("rb") as file:
            for message in read_po(file, locale=locale):
                if message.id and message.string:
                    merged[message.id] = message
    return merged


@cache
def translations(locale: str) -> gettext.NullTranslations:
    if locale == "en" or not (LOCALE_DIR / locale).is_dir():
        return gettext.NullTranslations()
    compiled = BytesIO()
    write_mo(compiled, catalog(locale))
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)
