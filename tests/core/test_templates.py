"""Tests for template shapes and the compose-time parameter check."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rundfunk.core.templates import (
    MAX_PARAMETER,
    TemplateError,
    TemplateShape,
    check,
    clean_parameter,
    placeholder_count,
    preview,
)

# --- placeholder_count -------------------------------------------------------------


def test_placeholder_count_is_the_highest_number_not_the_number_of_placeholders() -> None:
    assert placeholder_count("Hallo {{1}}, dein Termin am {{3}}; {{1}} again") == 3


def test_placeholder_count_accepts_spaces_inside_the_braces() -> None:
    assert placeholder_count("Hi {{ 1 }} and {{2 }} and {{  4}}") == 4


@pytest.mark.parametrize("text", ["", None, "no placeholders here", "{1} {{x}} {{}}"])
def test_placeholder_count_without_placeholders_is_zero(text: str | None) -> None:
    assert placeholder_count(text) == 0


# --- TemplateShape.of --------------------------------------------------------------

FULL: list[dict[str, Any]] = [
    {"type": "HEADER", "format": "TEXT", "text": "Order {{1}}"},
    {"type": "BODY", "text": "Hi {{1}}, your order {{2}} ships on {{3}}."},
    {"type": "FOOTER", "text": "Reply STOP to unsubscribe"},
    {
        "type": "BUTTONS",
        "buttons": [
            {"type": "QUICK_REPLY", "text": "Stop {{1}}"},
            {"type": "URL", "text": "Track", "url": "https://shop.example/track/{{1}}"},
            {"type": "URL", "text": "Shop", "url": "https://shop.example/"},
            {"type": "URL", "text": "Again", "url": "https://shop.example/o/{{1}}"},
        ],
    },
]


def test_shape_of_a_full_template() -> None:
    shape = TemplateShape.of(FULL)
    assert shape == TemplateShape(
        header_format="TEXT",
        header_params=1,
        body_params=3,
        url_buttons=(1, 3),
        body="Hi {{1}}, your order {{2}} ships on {{3}}.",
    )
    assert shape.media_header is False


def test_shape_url_buttons_are_only_dynamic_url_buttons_by_their_index() -> None:
    shape = TemplateShape.of(
        [
            {
                "type": "BUTTONS",
                "buttons": [
                    {"type": "QUICK_REPLY", "text": "{{1}}"},
                    {"type": "URL", "url": "https://static.example/"},
                    {"type": "PHONE_NUMBER", "phone_number": "+49301234567"},
                ],
            }
        ]
    )
    assert shape.url_buttons == ()


@pytest.mark.parametrize("fmt", ["IMAGE", "VIDEO", "DOCUMENT"])
def test_shape_media_header_has_no_text_parameters(fmt: str) -> None:
    shape = TemplateShape.of(
        [{"type": "HEADER", "format": fmt}, {"type": "BODY", "text": "Look {{1}}"}]
    )
    assert shape.header_format == fmt
    assert shape.header_params == 0
    assert shape.body_params == 1
    assert shape.media_header is True


def test_shape_location_header_is_not_a_media_header() -> None:
    shape = TemplateShape.of([{"type": "HEADER", "format": "LOCATION"}])
    assert shape.header_format == "LOCATION"
    assert shape.media_header is False


def test_shape_reads_types_case_insensitively() -> None:
    shape = TemplateShape.of(
        [
            {"type": "header", "format": "image"},
            {"type": "body", "text": "Hi {{1}} {{2}}"},
            {"type": "buttons", "buttons": [{"type": "url", "url": "https://x.example/{{1}}"}]},
        ]
    )
    assert shape.header_format == "IMAGE"
    assert shape.media_header is True
    assert shape.body_params == 2
    assert shape.url_buttons == (0,)


def test_shape_header_without_format_is_text() -> None:
    shape = TemplateShape.of([{"type": "header", "text": "Hi {{1}}"}])
    assert shape.header_format == "TEXT"
    assert shape.header_params == 1


def test_shape_of_no_components() -> None:
    assert TemplateShape.of([]) == TemplateShape(None, 0, 0, (), "")


# --- check -------------------------------------------------------------------------

SHAPE = TemplateShape.of(FULL)  # header 1, body 3, URL buttons at 1 and 3
IMAGE_SHAPE = TemplateShape.of(
    [{"type": "HEADER", "format": "IMAGE"}, {"type": "BODY", "text": "Hi {{1}}"}]
)


GOOD_BODY = ("Anna", "A-17", "Monday")


def check_full(
    *,
    status: str = "APPROVED",
    body: Sequence[str] = GOOD_BODY,
    header: Sequence[str] = ("A-17",),
    buttons: Sequence[str] = ("A-17", "A-17"),
    header_media: str | None = None,
) -> None:
    """check() against SHAPE; the defaults fit it exactly."""
    check(
        SHAPE,
        status=status,
        body_parameters=body,
        header_parameters=header,
        button_parameters=buttons,
        header_media=header_media,
    )


def test_exact_fit_passes() -> None:
    check_full()


def test_status_is_compared_case_insensitively() -> None:
    check_full(status="approved")


@pytest.mark.parametrize("status", ["PENDING", "PAUSED", "DISABLED", "REJECTED", ""])
def test_only_approved_templates_can_be_sent(status: str) -> None:
    with pytest.raises(TemplateError, match="only APPROVED") as caught:
        check_full(status=status)
    assert f"template is {status}," in str(caught.value)


@pytest.mark.parametrize("given_params", [["Anna", "A-17"], ["Anna", "A-17", "Mo", "extra"]])
def test_body_count_mismatch_names_both_counts(given_params: list[str]) -> None:
    with pytest.raises(TemplateError) as caught:
        check_full(body=given_params)
    assert str(caught.value) == (
        f"the template's body needs 3 parameter(s), got {len(given_params)}"
    )


@pytest.mark.parametrize("given_params", [[], ["a", "b"]])
def test_header_count_mismatch_names_both_counts(given_params: list[str]) -> None:
    with pytest.raises(TemplateError) as caught:
        check_full(header=given_params)
    assert str(caught.value) == (
        f"the template's header needs 1 parameter(s), got {len(given_params)}"
    )


@pytest.mark.parametrize("given_params", [[], ["x"], ["x", "y", "z"]])
def test_button_count_mismatch_names_both_counts(given_params: list[str]) -> None:
    with pytest.raises(TemplateError) as caught:
        check_full(buttons=given_params)
    assert str(caught.value) == (
        "the template has 2 URL button(s) with a parameter, "
        f"got {len(given_params)} button parameter(s)"
    )


def test_media_header_requires_header_media() -> None:
    with pytest.raises(TemplateError, match="IMAGE header: give header_media"):
        check(IMAGE_SHAPE, status="APPROVED", body_parameters=["Anna"])
    with pytest.raises(TemplateError, match="IMAGE header"):
        check(IMAGE_SHAPE, status="APPROVED", body_parameters=["Anna"], header_media="")


def test_media_header_with_header_media_passes() -> None:
    check(
        IMAGE_SHAPE,
        status="APPROVED",
        body_parameters=["Anna"],
        header_media="https://cdn.example/p.jpg",
    )
    check(IMAGE_SHAPE, status="APPROVED", body_parameters=["Anna"], header_media="1234567890")


def test_media_header_refuses_text_header_parameters() -> None:
    with pytest.raises(TemplateError, match="header needs 0 parameter"):
        check(
            IMAGE_SHAPE,
            status="APPROVED",
            body_parameters=["Anna"],
            header_media="123",
            header_parameters=["x"],
        )


def test_non_media_header_refuses_header_media() -> None:
    with pytest.raises(TemplateError, match="no media header; drop header_media"):
        check_full(header_media="https://cdn.example/p.jpg")
    plain = TemplateShape.of([{"type": "BODY", "text": "Hi"}])
    with pytest.raises(TemplateError, match="no media header"):
        check(plain, status="APPROVED", body_parameters=[], header_media="123")


@pytest.mark.parametrize(
    ("body", "header", "buttons", "message"),
    [
        (["Anna", "", "Mo"], ["h"], ["b", "b"], "body parameter 2 is empty"),
        (["Anna", "A", "  \t "], ["h"], ["b", "b"], "body parameter 3 is empty"),
        (["Anna", "A", "Mo"], [" "], ["b", "b"], "header parameter 1 is empty"),
        (["Anna", "A", "Mo"], ["h"], ["ok", ""], "button parameter 2 is empty"),
    ],
)
def test_empty_parameter_is_refused(
    body: list[str], header: list[str], buttons: list[str], message: str
) -> None:
    with pytest.raises(TemplateError) as caught:
        check_full(body=body, header=header, buttons=buttons)
    assert str(caught.value) == message


def test_too_long_parameter_is_refused_and_the_limit_itself_passes() -> None:
    at_limit = "x" * MAX_PARAMETER
    check_full(body=["Anna", at_limit, "Mo"])
    with pytest.raises(TemplateError) as caught:
        check_full(body=["Anna", at_limit + "x", "Mo"])
    assert str(caught.value) == "body parameter 2 is longer than 1024 characters"
    with pytest.raises(TemplateError, match="button parameter 1 is longer than 1024"):
        check_full(buttons=[at_limit + "x", "ok"])


def test_template_without_parameters_takes_none() -> None:
    plain = TemplateShape.of([{"type": "BODY", "text": "Hello, no params"}])
    check(plain, status="APPROVED", body_parameters=[])
    with pytest.raises(TemplateError, match="needs 0 parameter\\(s\\), got 1"):
        check(plain, status="APPROVED", body_parameters=["x"])


def test_template_error_is_a_value_error() -> None:
    assert issubclass(TemplateError, ValueError)


@given(
    n=st.integers(min_value=0, max_value=12),
    value=st.text(min_size=1, max_size=30).filter(lambda s: s.strip() != ""),
    spaced=st.booleans(),
)
def test_check_accepts_exactly_n_body_parameters(n: int, value: str, spaced: bool) -> None:
    fmt = "{{ %d }}" if spaced else "{{%d}}"
    body = "Hi " + ", ".join(fmt % i for i in range(1, n + 1)) + "."
    shape = TemplateShape.of([{"type": "BODY", "text": body}])
    assert shape.body_params == n

    check(shape, status="APPROVED", body_parameters=[value] * n)
    with pytest.raises(TemplateError, match=f"needs {n} parameter\\(s\\), got {n + 1}"):
        check(shape, status="APPROVED", body_parameters=[value] * (n + 1))
    if n > 0:
        with pytest.raises(TemplateError, match=f"needs {n} parameter\\(s\\), got {n - 1}"):
            check(shape, status="APPROVED", body_parameters=[value] * (n - 1))


# --- clean_parameter ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        ("Anna\nMüller", "Anna Müller"),
        ("Anna\r\nMüller", "Anna Müller"),
        ("a\tb", "a b"),
        ("a\n\n\nb", "a b"),
        ("a     b", "a b"),
        ("a          b", "a b"),
        ("a    b", "a    b"),  # four spaces are allowed and kept
        ("  Anna  ", "Anna"),
        ("\nAnna\t", "Anna"),
        ("plain", "plain"),
        ("", ""),
    ],
)
def test_clean_parameter(raw: str, cleaned: str) -> None:
    assert clean_parameter(raw) == cleaned


# --- preview -----------------------------------------------------------------------


def test_preview_fills_placeholders_by_number() -> None:
    assert preview("Hi {{1}}, order {{2}} for {{1}}", ["Anna", "A-17"]) == (
        "Hi Anna, order A-17 for Anna"
    )


def test_preview_fills_spaced_placeholders() -> None:
    assert preview("Hi {{ 1 }}!", ["Anna"]) == "Hi Anna!"


def test_preview_leaves_placeholders_without_a_parameter() -> None:
    assert preview("Hi {{1}}, see {{2}} and {{0}}", ["Anna"]) == "Hi Anna, see {{2}} and {{0}}"
    assert preview("Hi {{1}}", []) == "Hi {{1}}"


@pytest.mark.parametrize("raw", ["a  \n  b", "a \t\t   b", "Musterstr. 1    \n Berlin"])
def test_clean_parameter_never_leaves_more_than_four_spaces(raw: str) -> None:
    # Meta refuses parameters with newlines, tabs or more than 4 consecutive spaces
    # (error 132018); a newline between spaces must not join them into a long gap.
    cleaned = clean_parameter(raw)
    assert "     " not in cleaned
    assert not any(c in cleaned for c in "\t\r\n")
