"""Tests for Cloud API request bodies and the size limits checked before sending."""

from __future__ import annotations

from typing import Any

import pytest

from rundfunk.channels.base import Choice, Menu, OutboundMessage, TemplateSend
from rundfunk.channels.whatsapp.payload import build, limits_problem, media_kind_for

TO = "4915112345678"


def send(**fields: Any) -> dict[str, Any]:
    fields.setdefault("text", None)
    return build(OutboundMessage(address=TO, **fields))


# --- text --------------------------------------------------------------------------


def test_text_message_shape() -> None:
    assert send(text="Hallo Anna") == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": TO,
        "type": "text",
        "text": {"body": "Hallo Anna", "preview_url": False},
    }


def test_text_preview_url_flag_is_passed_through() -> None:
    assert send(text="see https://x.example", preview_url=True)["text"] == {
        "body": "see https://x.example",
        "preview_url": True,
    }


def test_callback_data_goes_into_biz_opaque_callback_data() -> None:
    payload = send(text="Hi", callback_data="d:42")
    assert payload["biz_opaque_callback_data"] == "d:42"


def test_no_callback_data_means_no_key() -> None:
    assert "biz_opaque_callback_data" not in send(text="Hi")


def test_callback_data_is_cut_to_512_characters() -> None:
    payload = send(text="Hi", callback_data="m:" + "9" * 600)
    assert payload["biz_opaque_callback_data"] == ("m:" + "9" * 600)[:512]


def test_text_none_sends_an_empty_body() -> None:
    assert send(text=None)["text"] == {"body": "", "preview_url": False}


# --- media -------------------------------------------------------------------------


def test_image_by_link_with_caption() -> None:
    payload = send(text="Unser Plakat", media_url="https://cdn.example/poster.jpg")
    assert payload["type"] == "image"
    assert payload["image"] == {"link": "https://cdn.example/poster.jpg", "caption": "Unser Plakat"}
    assert "text" not in payload
    assert payload["messaging_product"] == "whatsapp"
    assert payload["to"] == TO


def test_document_by_media_id_with_filename() -> None:
    payload = send(
        text="Programm", media_id="1122334455", media_kind="document", filename="programm.pdf"
    )
    assert payload["type"] == "document"
    assert payload["document"] == {
        "id": "1122334455",
        "caption": "Programm",
        "filename": "programm.pdf",
    }


def test_media_id_wins_over_media_url() -> None:
    payload = send(media_id="777", media_url="https://cdn.example/a.jpg", media_kind="image")
    assert payload["image"] == {"id": "777"}


def test_media_id_without_kind_is_a_document() -> None:
    payload = send(media_id="777")
    assert payload["type"] == "document"
    assert payload["document"] == {"id": "777"}


def test_filename_only_for_documents() -> None:
    payload = send(media_url="https://cdn.example/a.jpg", filename="a.jpg")
    assert payload["image"] == {"link": "https://cdn.example/a.jpg"}


@pytest.mark.parametrize("kind", ["audio", "sticker"])
def test_audio_and_sticker_carry_no_caption(kind: str) -> None:
    payload = send(text="ignored", media_id="55", media_kind=kind)
    assert payload["type"] == kind
    assert payload[kind] == {"id": "55"}
    assert "caption" not in payload[kind]


def test_media_without_text_has_no_caption() -> None:
    assert send(media_url="https://cdn.example/v.mp4")["video"] == {
        "link": "https://cdn.example/v.mp4"
    }


def test_explicit_media_kind_overrides_the_extension() -> None:
    payload = send(media_url="https://cdn.example/file.jpg", media_kind="document")
    assert payload["type"] == "document"
    assert payload["document"] == {"link": "https://cdn.example/file.jpg"}


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("https://cdn.example/p.jpg", "image"),
        ("https://cdn.example/p.JPEG", "image"),
        ("https://cdn.example/p.png?size=large#x", "image"),
        ("https://cdn.example/clip.mp4", "video"),
        ("https://cdn.example/clip.3gp", "video"),
        ("https://cdn.example/voice.ogg", "audio"),
        ("https://cdn.example/song.mp3", "audio"),
        ("https://cdn.example/s.webp", "sticker"),
        ("https://cdn.example/flyer.pdf", "document"),
        ("https://cdn.example/data.xyz", "document"),
        ("https://cdn.example/download", "document"),
        ("https://cdn.example/p.jpg.pdf", "document"),
        ("https://cdn.example/dir.jpg/file?name=a.mp4", "document"),
    ],
)
def test_kind_is_guessed_from_the_url_path(url: str, kind: str) -> None:
    payload = send(media_url=url)
    assert payload["type"] == kind
    assert payload[kind] == {"link": url}


# --- interactive menus -------------------------------------------------------------


def test_menu_with_up_to_three_short_choices_is_reply_buttons() -> None:
    menu = Menu(
        choices=(
            Choice("START news", "News"),
            Choice("START events", "Termine"),
            Choice("STOP", "Abmelden"),
        )
    )
    payload = send(text="Was möchtest du?", menu=menu, callback_data="m:1")
    assert payload == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": TO,
        "biz_opaque_callback_data": "m:1",
        "type": "interactive",
        "interactive": {
            "type": "button",
            "body": {"text": "Was möchtest du?"},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": "START news", "title": "News"}},
                    {"type": "reply", "reply": {"id": "START events", "title": "Termine"}},
                    {"type": "reply", "reply": {"id": "STOP", "title": "Abmelden"}},
                ]
            },
        },
    }


def test_button_title_of_exactly_20_characters_stays_a_button() -> None:
    payload = send(text="?", menu=Menu(choices=(Choice("a", "x" * 20),)))
    assert payload["interactive"]["type"] == "button"
    assert payload["interactive"]["action"]["buttons"][0]["reply"]["title"] == "x" * 20


def test_menu_without_text_uses_the_button_label_as_body() -> None:
    payload = send(text=None, menu=Menu(choices=(Choice("a", "A"),), button="Wähle"))
    assert payload["interactive"]["body"] == {"text": "Wähle"}


def test_menu_body_is_cut_to_1024_characters() -> None:
    payload = send(text="y" * 2000, menu=Menu(choices=(Choice("a", "A"),)))
    body = payload["interactive"]["body"]["text"]
    assert len(body) == 1024
    assert body == "y" * 1023 + "…"


def test_menu_with_five_choices_is_a_list() -> None:
    choices = tuple(Choice(f"START t{i}", f"Thema {i}") for i in range(5))
    payload = send(text="Themen", menu=Menu(choices=choices, button="Themen", section="Alle"))
    assert payload["type"] == "interactive"
    assert payload["interactive"] == {
        "type": "list",
        "body": {"text": "Themen"},
        "action": {
            "button": "Themen",
            "sections": [
                {
                    "title": "Alle",
                    "rows": [{"id": f"START t{i}", "title": f"Thema {i}"} for i in range(5)],
                }
            ],
        },
    }


def test_a_title_longer_than_20_makes_a_list_even_with_few_choices() -> None:
    long_title = "Veranstaltungen im Mai"  # 22 characters
    payload = send(text="?", menu=Menu(choices=(Choice("a", "A"), Choice("b", long_title))))
    interactive = payload["interactive"]
    assert interactive["type"] == "list"
    rows = interactive["action"]["sections"][0]["rows"]
    assert rows == [{"id": "a", "title": "A"}, {"id": "b", "title": long_title}]
    assert interactive["action"]["button"] == "Choose"
    assert "title" not in interactive["action"]["sections"][0]  # no section title given


def test_list_rows_are_cut_to_24_and_72_characters_and_at_most_10() -> None:
    choices = tuple(
        Choice(f"id{i}", f"{i:02d}" + "T" * 40, description=f"{i:02d}" + "D" * 100)
        for i in range(12)
    )
    payload = send(
        text="?",
        menu=Menu(choices=choices, button="B" * 30, section="S" * 30),
    )
    action = payload["interactive"]["action"]
    rows = action["sections"][0]["rows"]
    assert len(rows) == 10
    assert [row["id"] for row in rows] == [f"id{i}" for i in range(10)]
    for i, row in enumerate(rows):
        assert row["title"] == f"{i:02d}" + "T" * 21 + "…"
        assert len(row["title"]) == 24
        assert row["description"] == f"{i:02d}" + "D" * 69 + "…"
        assert len(row["description"]) == 72
    assert action["button"] == "B" * 19 + "…"
    assert action["sections"][0]["title"] == "S" * 23 + "…"


def test_list_row_within_limits_is_not_cut_and_no_description_key_without_one() -> None:
    choices = tuple(Choice(f"id{i}", "x" * 24) for i in range(4))
    choices += (Choice("d", "with desc", description="z" * 72),)
    rows = send(text="?", menu=Menu(choices=choices))["interactive"]["action"]["sections"][0][
        "rows"
    ]
    assert rows[0] == {"id": "id0", "title": "x" * 24}
    assert rows[4] == {"id": "d", "title": "with desc", "description": "z" * 72}


def test_menu_without_choices_sends_plain_text() -> None:
    payload = send(text="Hi", menu=Menu(choices=()))
    assert payload["type"] == "text"
    assert "interactive" not in payload


# --- templates ---------------------------------------------------------------------


def test_template_with_body_parameters() -> None:
    payload = send(
        template=TemplateSend(name="welcome", language="de", body=("Anna", "Mai")),
        callback_data="d:9",
    )
    assert payload == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": TO,
        "biz_opaque_callback_data": "d:9",
        "type": "template",
        "template": {
            "name": "welcome",
            "language": {"code": "de"},
            "components": [
                {
                    "type": "body",
                    "parameters": [
                        {"type": "text", "text": "Anna"},
                        {"type": "text", "text": "Mai"},
                    ],
                }
            ],
        },
    }


def test_template_without_parameters_has_no_components() -> None:
    payload = send(template=TemplateSend(name="hello_world", language="en_US"))
    assert payload["template"] == {"name": "hello_world", "language": {"code": "en_US"}}


def test_template_wins_over_text_and_media() -> None:
    payload = send(
        text="free text",
        media_url="https://cdn.example/a.jpg",
        template=TemplateSend(name="t", language="de"),
    )
    assert payload["type"] == "template"
    assert "text" not in payload
    assert "image" not in payload


def test_template_text_header_parameters() -> None:
    template = TemplateSend(
        name="order", language="de", body=("Anna",), header=("A-17",), header_format="TEXT"
    )
    components = send(template=template)["template"]["components"]
    assert components == [
        {"type": "header", "parameters": [{"type": "text", "text": "A-17"}]},
        {"type": "body", "parameters": [{"type": "text", "text": "Anna"}]},
    ]


@pytest.mark.parametrize(
    ("media", "ref"),
    [
        ("https://cdn.example/p.jpg", {"link": "https://cdn.example/p.jpg"}),
        ("http://cdn.example/p.jpg", {"link": "http://cdn.example/p.jpg"}),
        ("1234567890", {"id": "1234567890"}),
    ],
)
def test_template_media_header(media: str, ref: dict[str, str]) -> None:
    template = TemplateSend(name="promo", language="de", header_media=media, header_format="IMAGE")
    components = send(template=template)["template"]["components"]
    assert components == [{"type": "header", "parameters": [{"type": "image", "image": ref}]}]


@pytest.mark.parametrize("fmt", ["VIDEO", "DOCUMENT", "video"])
def test_template_media_header_kind_follows_the_format(fmt: str) -> None:
    template = TemplateSend(name="t", language="de", header_media="42", header_format=fmt)
    header = send(template=template)["template"]["components"][0]
    kind = fmt.lower()
    assert header == {"type": "header", "parameters": [{"type": kind, kind: {"id": "42"}}]}


def test_template_url_button_parameters() -> None:
    template = TemplateSend(
        name="track",
        language="de",
        body=("Anna",),
        url_buttons=((0, "A-17"), (2, "B-9")),
    )
    components = send(template=template)["template"]["components"]
    assert components == [
        {"type": "body", "parameters": [{"type": "text", "text": "Anna"}]},
        {
            "type": "button",
            "sub_type": "url",
            "index": "0",
            "parameters": [{"type": "text", "text": "A-17"}],
        },
        {
            "type": "button",
            "sub_type": "url",
            "index": "2",
            "parameters": [{"type": "text", "text": "B-9"}],
        },
    ]
    assert all(isinstance(c["index"], str) for c in components if c["type"] == "button")


# --- limits_problem ----------------------------------------------------------------


def problem(
    text: str | None = None,
    *,
    media_url: str | None = None,
    media_id: str | None = None,
    media_kind: str | None = None,
) -> str | None:
    return limits_problem(text=text, media_url=media_url, media_id=media_id, media_kind=media_kind)


def test_text_up_to_4096_is_fine_and_longer_is_refused() -> None:
    assert problem("x" * 4096) is None
    message = problem("x" * 4097)
    assert message is not None
    assert "4096" in message


def test_caption_up_to_1024_is_fine_and_longer_is_refused() -> None:
    assert problem("x" * 1024, media_url="https://cdn.example/a.jpg") is None
    message = problem("x" * 1025, media_url="https://cdn.example/a.jpg")
    assert message is not None
    assert "1024" in message
    assert "1025" in message  # tells the editor how long it is


def test_caption_limit_applies_to_media_ids_too() -> None:
    message = problem("x" * 2000, media_id="55", media_kind="image")
    assert message is not None
    assert "1024" in message


@pytest.mark.parametrize("kind", ["audio", "sticker"])
def test_audio_and_sticker_with_text_are_refused(kind: str) -> None:
    message = problem("hello", media_id="55", media_kind=kind)
    assert message is not None
    assert kind in message
    assert "caption" in message


def test_audio_guessed_from_the_url_with_text_is_refused() -> None:
    message = problem("hello", media_url="https://cdn.example/voice.ogg")
    assert message is not None
    assert "audio" in message


def test_audio_without_text_is_fine() -> None:
    assert problem(None, media_id="55", media_kind="audio") is None
    assert problem("", media_url="https://cdn.example/voice.ogg") is None


@pytest.mark.parametrize("kind", ["gif", "Image", "file", ""])
def test_unknown_media_kind_is_refused(kind: str) -> None:
    message = problem("hi", media_url="https://cdn.example/a.jpg", media_kind=kind)
    assert message == "media_kind must be one of image, video, audio, document, sticker"


def test_unknown_media_kind_is_refused_even_without_media() -> None:
    assert problem("hi", media_kind="gif") is not None


@pytest.mark.parametrize(
    ("text", "media_url", "media_id", "media_kind"),
    [
        ("Hallo", None, None, None),
        (None, None, None, None),
        ("Plakat", "https://cdn.example/a.jpg", None, None),
        ("Programm", None, "77", "document"),
        (None, "https://cdn.example/voice.ogg", None, "audio"),
        ("x" * 4096, None, None, "image"),  # a kind without media: plain text limit
    ],
)
def test_fine_messages_have_no_problem(
    text: str | None, media_url: str | None, media_id: str | None, media_kind: str | None
) -> None:
    assert problem(text, media_url=media_url, media_id=media_id, media_kind=media_kind) is None


# --- media_kind_for ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("mime", "kind"),
    [
        ("image/jpeg", "image"),
        ("image/png", "image"),
        ("video/mp4", "video"),
        ("video/3gpp", "video"),
        ("audio/aac", "audio"),
        ("audio/mpeg", "audio"),
        ("audio/ogg", "audio"),
        ("audio/amr", "audio"),
        ("image/webp", "sticker"),
        ("application/pdf", "document"),
        ("image/gif", "document"),
        ("text/plain", "document"),
        ("application/octet-stream", "document"),
    ],
)
def test_media_kind_for_mime_type(mime: str, kind: str) -> None:
    assert media_kind_for(mime) == kind
