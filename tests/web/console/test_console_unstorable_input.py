"""The console refuses text no database can store with its error page (422), naming the
field, instead of a 500 (``web.request_checks`` runs before every console route)."""

from __future__ import annotations

from typing import Any

from rundfunk.services.actors import Role


async def test_console_forms_and_queries_refuse_nul_with_a_page(console: Any) -> None:
    editor = await console(Role.EDITOR)
    form = await editor.post("/topics", {"key": "sport", "name": "Sport\x00news"})
    assert form.status_code == 422 and "text/html" in form.headers["content-type"]
    assert "name" in form.text and "NUL" in form.text
    query = await editor.get("/contacts", params={"q": "\x00"})
    assert query.status_code == 422 and "NUL" in query.text
    listed = await editor.get("/topics")
    assert "<code>START sport</code>" not in listed.text


async def test_console_ids_and_cursors_beyond_64_bits_are_422_not_500(console: Any) -> None:
    owner = await console(Role.OWNER)
    huge = str(2**64)
    for path in (
        f"/broadcasts/{huge}",
        f"/contacts/{huge}",
        f"/channels/{huge}",
        f"/conversations/{huge}",
        f"/broadcasts/1?after={huge}",
        f"/contacts?after={huge}",
        f"/contacts?channel={huge}",
        "/contacts?q=" + "x" * 9000,
    ):
        page = await owner.get(path)
        assert page.status_code < 500, (path, page.status_code)
    for path in (f"/broadcasts/{2**63 - 1}", f"/contacts/{2**31}", f"/channels/{2**40}"):
        assert (await owner.get(path)).status_code == 404, path
