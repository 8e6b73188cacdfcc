"""How a broadcast ends, and the moves between its states (core.broadcast_status), plus
what the review reads from a text (personalize.contact_fields, render's limit)."""

from __future__ import annotations

import pytest

from rundfunk.core import personalize
from rundfunk.core.broadcast_status import (
    FINISHED,
    TRANSITIONS,
    BroadcastStatus,
    can_move,
    finished_as,
)

S = BroadcastStatus


@pytest.mark.parametrize(
    ("accepted", "failed", "ended"),
    [(0, 3, S.FAILED), (1, 999, S.DONE), (5, 0, S.DONE), (0, 0, S.DONE)],
)
def test_failed_only_when_every_tried_send_failed(accepted: int, failed: int, ended: S) -> None:
    assert finished_as(accepted=accepted, failed=failed) is ended


def test_the_transition_table() -> None:
    assert set(TRANSITIONS) == set(S)
    assert can_move(S.SENDING, S.FAILED) and can_move(S.SCHEDULED, S.FAILED)
    assert can_move(S.FAILED, S.DONE)  # a late receipt proves a copy arrived
    assert not can_move(S.FAILED, S.PAUSED) and not can_move(S.DRAFT, S.DONE)
    assert TRANSITIONS[S.CANCELLED] == frozenset()
    assert {S.DONE, S.FAILED, S.CANCELLED} == FINISHED


def test_contact_fields_names_what_a_text_reads() -> None:
    text = (
        "{{ contact.name.upper() }} {{ contact.attributes.city | upper }} "
        '{{ contact["attributes"]["zip"] }} {{ workspace.name }} {{ contact.address }}'
    )
    assert personalize.contact_fields(text) == {
        ("name",), ("attributes",), ("attributes", "city"), ("attributes", "zip"), ("address",)
    }
    assert personalize.contact_fields("Hallo") == frozenset()


def test_render_with_a_limit_tells_a_text_that_fits_from_one_that_was_cut() -> None:
    contact = {"attributes": {"bio": "x" * 5000}}
    assert len(personalize.render("{{ contact.attributes.bio }}", contact=contact)) == 4096
    long = personalize.render("{{ contact.attributes.bio }}", contact=contact, limit=4097)
    assert len(long) == 4097
