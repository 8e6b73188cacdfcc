"""Tests for broadcast personalization: validation messages, rendering, the sandbox."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rundfunk.core import personalize
from rundfunk.core.personalize import (
    MAX_RENDERED_CHARS,
    MAX_TEMPLATE_CHARS,
    PersonalizationError,
    render,
    validate,
)

ANNA: dict[str, object] = {
    "name": "Anna",
    "address": "+4915100000000",
    "language": "de",
    "attributes": {"city": "Berlin", "items": 3, "plan": "gold"},
}
HINT = "use contact.name, contact.address, contact.language, contact.attributes.<key>"


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    personalize._compile.cache_clear()
    yield


def test_limits() -> None:
    assert MAX_TEMPLATE_CHARS == 4096
    assert MAX_RENDERED_CHARS == 4096
    assert issubclass(PersonalizationError, ValueError)


# -- validate ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Hello!",
        "Hallo {{ contact.name }}",
        '{{ contact.name | default("friend", true) }}',
        "{{ contact.attributes.city }} {{ contact.address }} {{ contact.language }}",
        "{{ workspace.name }}",
        "{% if contact.language == 'de' %}Hallo{% else %}Hello{% endif %}",
        "{% for k in contact.attributes %}{{ k }}{% endfor %}",
        "{% set greeting = 'Hi' %}{{ greeting }}",
        "{% for i in range(3) %}{% for j in range(3) %}.{% endfor %}{% endfor %}",
        "Price: {5} — 50 % off",  # lone braces are plain text
        "x" * MAX_TEMPLATE_CHARS,
    ],
)
def test_validate_accepts(text: str) -> None:
    validate(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "text is empty"),
        ("  \n\t", "text is empty"),
        ("x" * (MAX_TEMPLATE_CHARS + 1), "text is longer than 4096 characters"),
        ("{{ contact.name }", "line 1: unexpected '}'"),
        ("ok\nok\n{% if %}", "line 3: "),
        ("{% if contact.name %}open", "line 1: Unexpected end of template"),
        ("50 {# off", "line 1: Missing end of comment tag"),
        ("{{ foo }}", f"unknown variable 'foo' — {HINT}"),
        ("{{ contact.name }} {{ name }}", "unknown variable 'name'"),
        ("{{ lipsum() }}", "unknown variable 'lipsum'"),
        ('{% include "other" %}', "line 1: {% include %} is not allowed"),
        ('{% import "m" as m %}', "{% import %} is not allowed"),
        ('{% from "m" import x %}', "{% from … import %} is not allowed"),
        ('{% extends "base" %}', "{% extends %} is not allowed"),
        ("{% macro m() %}{% endmacro %}", "{% macro %} is not allowed"),
        ("{% call range(1) %}{% endcall %}", "{% call %} is not allowed"),
        ("{{ contact.name | shout }}", "line 1: No filter named 'shout'"),
        ("{{ contact.name is loud }}", "line 1: No test named 'loud'"),
        ("{{ contact.name.__class__ }}", "line 1: names starting with '_' are not allowed"),
        ('{{ contact["_secret"] }}', "names starting with '_' are not allowed"),
        (
            "{% for a in range(2) %}{% for b in range(2) %}\n{% for c in range(2) %}"
            "{% endfor %}{% endfor %}{% endfor %}",
            "line 2: loops may be nested at most 2 deep",
        ),
    ],
)
def test_validate_refuses_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(PersonalizationError) as caught:
        validate(text)
    assert message in str(caught.value)


def test_render_refuses_what_validate_refuses() -> None:
    with pytest.raises(PersonalizationError, match="unknown variable"):
        render("{{ foo }}", contact=ANNA)
    with pytest.raises(PersonalizationError, match="longer than"):
        render("x" * (MAX_TEMPLATE_CHARS + 1), contact=ANNA)


# -- render --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "contact", "expected"),
    [
        ("Hallo {{ contact.name }}!", ANNA, "Hallo Anna!"),
        ('Hi {{ contact.name | default("friend", true) }}', ANNA, "Hi Anna"),
        ('Hi {{ contact.name | default("friend", true) }}', {"name": None}, "Hi friend"),
        ('Hi {{ contact.name | default("friend", true) }}', {"name": ""}, "Hi friend"),
        ('Hi {{ contact.name | default("friend", true) }}', {}, "Hi friend"),
        ("[{{ contact.attributes.city }}]", ANNA, "[Berlin]"),
        ("[{{ contact.attributes.zip }}]", ANNA, "[]"),  # missing key renders empty
        ("[{{ contact.attributes.zip.code }}]", {}, "[]"),  # chained through missing parts
        ("[{{ contact.attributes.items }}]", ANNA, "[3]"),  # the key, not dict.items
        ('[{{ contact["attributes"]["plan"] }}]', ANNA, "[gold]"),
        ('[{{ contact["values"] }}]', ANNA, "[]"),  # not dict.values either
        ("{{ contact.name.upper() }}", ANNA, "ANNA"),
        ("Tom & Jerry <b>{{ contact.name }}</b>", {"name": "<Ö&>"}, "Tom & Jerry <b><Ö&></b>"),
        ("line\n", ANNA, "line\n"),  # trailing newline kept
        ("{{ workspace.name }}|", ANNA, "|"),
        ("", ANNA, ""),  # a media broadcast without caption renders nothing
        ("{% for i in range(3) %}{{ i }}{% endfor %}", ANNA, "012"),
        ("{{ 2 ** 10 }} {{ 'ab' * 3 }} {{ 1.5 ** 2 }}", ANNA, "1024 ababab 2.25"),
    ],
)
def test_render(text: str, contact: dict[str, object], expected: str) -> None:
    assert render(text, contact=contact) == expected


def test_render_with_workspace() -> None:
    text = "{{ workspace.name }}: {{ contact.name }}"
    out = render(text, contact=ANNA, workspace={"name": "Bäcker"})
    assert out == "Bäcker: Anna"


class CountingContact(Mapping[str, object]):
    """A contact that counts how often the template reads it."""

    def __init__(self, data: dict[str, object]) -> None:
        self.data, self.reads = data, 0

    def __getitem__(self, key: str) -> object:
        self.reads += 1
        return self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


def test_render_truncates_to_the_message_limit() -> None:
    assert render("{{ contact.name }}", contact={"name": "z" * 5000}) == "z" * MAX_RENDERED_CHARS
    # A runaway loop stops once the message is full, not after a million iterations.
    contact = CountingContact({"name": "yy"})
    text = "{% for i in range(1000) %}{% for j in range(1000) %}{{ contact.name }}{% endfor %}"
    out = render(text + "{% endfor %}", contact=contact)
    assert out == "y" * MAX_RENDERED_CHARS
    assert contact.reads <= MAX_RENDERED_CHARS // 2 + 1


@pytest.mark.parametrize(
    ("text", "contact", "message"),
    [
        ('{{ contact.name | attr("__class__") }}', ANNA, "'__class__' of a str is not allowed"),
        ("{{ contact.attributes.clear() }}", ANNA, "cannot personalize"),
        ("{{ contact.name.pop() }}", {"name": ["a"]}, "cannot personalize"),  # immutable
        ("{{ 1 / 0 }}", ANNA, "division by zero"),
        ("{{ 10 ** 100000 }}", ANNA, "10 ** 100000 is too large"),
        ("{{ (10 ** 1000) ** 1000 }}", ANNA, "is too large"),
        ("{{ 'x' * 5000 }}", ANNA, "exceed the message length"),
        ("{{ 5000 * contact.name }}", ANNA, "exceed the message length"),
        ("{% for i in range(1001) %}{% endfor %}", ANNA, "at most 1000 numbers"),
        ("{% if contact.attributes.plan %}{{ 1 | nosuch }}{% endif %}", ANNA, "nosuch"),
    ],
)
def test_render_errors_become_personalization_errors(
    text: str, contact: dict[str, object], message: str
) -> None:
    with pytest.raises(PersonalizationError) as caught:
        render(text, contact=contact)
    assert message in str(caught.value)


def test_sandbox_cannot_change_the_callers_data() -> None:
    contact: dict[str, Any] = {"name": "A", "attributes": {"tags": ["x"]}}
    with pytest.raises(PersonalizationError):
        render("{{ contact.attributes.tags.append('y') }}", contact=contact)
    with pytest.raises(PersonalizationError):
        render("{{ contact.attributes.update({'b': 1}) }}", contact=contact)
    assert contact == {"name": "A", "attributes": {"tags": ["x"]}}


def test_template_is_compiled_once(monkeypatch: pytest.MonkeyPatch) -> None:
    parses = 0
    parse = personalize._ENV.parse

    def counting_parse(*args: Any, **kwargs: Any) -> Any:
        nonlocal parses
        parses += 1
        return parse(*args, **kwargs)

    monkeypatch.setattr(personalize._ENV, "parse", counting_parse)
    for i in range(1000):
        assert render("Hi {{ contact.name }}", contact={"name": str(i)}) == f"Hi {i}"
    validate("Hi {{ contact.name }}")
    assert parses == 1


def test_rendering_100k_times_is_fast() -> None:
    text = 'Hallo {{ contact.name | default("friend", true) }}!'
    started = time.perf_counter()
    for _ in range(100_000):
        render(text, contact=ANNA)
    # ~0.7 s on a 2-core machine; 30+ s if every render compiled.
    assert time.perf_counter() - started < 5.0


# -- properties ----------------------------------------------------------------------

PLAIN = st.text(
    alphabet=st.characters(blacklist_characters="{}%#\r", blacklist_categories=["Cs"]),
    max_size=300,
)


@given(PLAIN)
def test_text_without_template_syntax_renders_unchanged(text: str) -> None:
    assert render(text, contact=ANNA) == text


@given(st.text(max_size=5000))
def test_values_are_inserted_verbatim_and_never_evaluated(name: str) -> None:
    # Autoescape off, and a name like "{{ 7*7 }}" is data, not a template.
    assert render("{{ contact.name }}", contact={"name": name}) == name[:MAX_RENDERED_CHARS]


JINJA_SOUP = st.lists(
    st.sampled_from(
        [
            "{{",
            "}}",
            "{%",
            "%}",
            "{#",
            "#}",
            "{",
            "}",
            " ",
            ".",
            "|",
            "(",
            ")",
            "'",
            "*",
            "/",
            "[",
            "]",
            "_",
            "contact",
            "name",
            "attributes",
            "workspace",
            "foo",
            "if",
            "endif",
            "for",
            "in",
            "endfor",
            "range",
            "set",
            "=",
            "default",
            "upper",
            "1",
            "0",
            "\n",
        ]
    ),
    max_size=40,
).map("".join)


@given(st.one_of(st.text(max_size=200), JINJA_SOUP))
def test_arbitrary_text_either_works_or_says_why(text: str) -> None:
    # Whatever an editor types, the only failure is a PersonalizationError with a message.
    try:
        validate(text)
        out = render(text, contact=ANNA)
    except PersonalizationError as exc:
        assert str(exc)
        return
    assert len(out) <= MAX_RENDERED_CHARS


def test_a_missing_value_renders_empty_not_none() -> None:
    assert render("Hallo {{ contact.name }}!", contact={"name": None}) == "Hallo !"
    assert render("{{ contact.name | default('du', true) }}", contact={"name": None}) == "du"
