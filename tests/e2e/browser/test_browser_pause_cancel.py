"""The console's Pause, Resume and Cancel buttons act at once (Chromium, real server).

A sandbox channel at 10 msg/s, the whole audience claimed by the worker: once the
page shows "Broadcast paused." no phone gets another copy; Resume sends exactly one
copy to each; "Cancel broadcast" (confirmed in the dialog) stops the next broadcast
and counts the rest skipped. Copies carry the phone's ``received_at`` stamp.
"""

from __future__ import annotations

import time
from typing import Any

from e2e_support import addresses, tag, wait_until
from stop_support import IN_FLIGHT_S, QUIET_S, received

PEOPLE = 30
RATE = 10.0


def _api(server: Any, method: str, path: str, **kwargs: Any) -> Any:
    response = server.client.request(method, path, **kwargs)
    assert response.status_code in (200, 201, 202), f"{method} {path}: {response.text}"
    return response.json()


def _inboxes(server: Any, channel_id: int, people: list[str]) -> dict[str, list[dict[str, Any]]]:
    return {a: _api(server, "GET", f"/sandbox/{channel_id}/phones/{a}/messages") for a in people}


def _arrivals(server: Any, channel_id: int, people: list[str], marker: str) -> list[float]:
    boxes = _inboxes(server, channel_id, people)
    return sorted(
        received(m) for box in boxes.values() for m in box if marker in (m.get("text") or "")
    )


def _stats(server: Any, broadcast_id: int) -> dict[str, int]:
    stats: dict[str, int] = _api(server, "GET", f"/api/v1/broadcasts/{broadcast_id}")["stats"]
    return stats


def _progressed(server: Any, broadcast_id: int) -> int:
    stats = _stats(server, broadcast_id)
    return stats["sent"] + stats["delivered"] + stats["read"]


def _slow_channel(server: Any, people: list[str]) -> int:
    channel = _api(server, "POST", "/api/v1/channels", json={"kind": "sandbox", "name": tag()})
    channel_id = int(channel["id"])
    for address in people:
        path = f"/sandbox/{channel_id}/phones/{address}/messages"
        _api(server, "POST", path, json={"text": "START"})
    wait_until(
        lambda: all(_inboxes(server, channel_id, people).values()),
        timeout=20,
        message="confirmations",
    )
    _api(
        server, "PATCH", f"/api/v1/channels/{channel_id}",
        json={"config": {"throughput": RATE, "burst": 1}},
    )  # fmt: skip
    return channel_id


def _start(server: Any, channel_id: int, text: str) -> int:
    body = {"channel_id": channel_id, "text": text}
    created = _api(server, "POST", "/api/v1/broadcasts", json=body)
    _api(server, "POST", f"/api/v1/broadcasts/{created['id']}/send")
    wait_until(lambda: _progressed(server, created["id"]) >= 4, timeout=20, message="4 sends")
    return int(created["id"])


def _press(page: Any, button: str, flash: str) -> tuple[float, float]:
    """Press ``button``; returns when it was pressed and when the page showed ``flash``."""
    asked = time.time()
    page.get_by_role("button", name=button).click()
    page.get_by_text(flash).wait_for()
    return asked, time.time()


def test_console_pause_resume_and_cancel_act_at_once(owner_page: Any, server: Any) -> None:
    page = owner_page
    people = addresses("3201", PEOPLE)
    channel_id = _slow_channel(server, people)

    marker = tag()
    broadcast_id = _start(server, channel_id, f"Console pause {marker}")
    page.goto(f"/broadcasts/{broadcast_id}")
    asked, shown = _press(page, "Pause", "Broadcast paused.")
    time.sleep(QUIET_S)
    arrived = _arrivals(server, channel_id, people, marker)
    late = [t - shown for t in arrived if t > shown + IN_FLIGHT_S]
    assert late == [], f"copies after the page said paused: {late}"
    assert len(arrived) < PEOPLE - 5
    stats = _stats(server, broadcast_id)
    assert stats["queued"] == PEOPLE - len(arrived), stats
    print(f"\n[console pause] last copy {1000 * (max(arrived) - asked):+.0f} ms after the press")

    page.get_by_role("button", name="Resume").click()
    page.get_by_text("Broadcast resumed.").wait_for()
    wait_until(
        lambda: _api(server, "GET", f"/api/v1/broadcasts/{broadcast_id}")["status"] == "done",
        timeout=30,
        message="resumed broadcast done",
    )
    boxes = _inboxes(server, channel_id, people)
    counts = {a: sum(marker in (m.get("text") or "") for m in box) for a, box in boxes.items()}
    assert set(counts.values()) == {1}, f"not one copy each: {counts}"

    # Slower for the cancel: the rest of the broadcast must still be sending when the page
    # has loaded and the dialog is answered, however busy the machine.
    _api(
        server, "PATCH", f"/api/v1/channels/{channel_id}",
        json={"config": {"throughput": RATE / 3, "burst": 1}},
    )  # fmt: skip
    marker = tag()
    broadcast_id = _start(server, channel_id, f"Console cancel {marker}")
    page.goto(f"/broadcasts/{broadcast_id}")
    page.once("dialog", lambda dialog: dialog.accept())
    asked, shown = _press(page, "Cancel broadcast", "Broadcast cancelled.")
    time.sleep(QUIET_S)
    arrived = _arrivals(server, channel_id, people, marker)
    late = [t - shown for t in arrived if t > shown + IN_FLIGHT_S]
    assert late == [], f"copies after the page said cancelled: {late}"
    stats = _stats(server, broadcast_id)
    assert stats["skipped"] == PEOPLE - len(arrived) and stats["queued"] == 0, stats
    assert _api(server, "GET", f"/api/v1/broadcasts/{broadcast_id}")["status"] == "cancelled"
    print(f"[console cancel] last copy {1000 * (max(arrived) - asked):+.0f} ms after the press")
