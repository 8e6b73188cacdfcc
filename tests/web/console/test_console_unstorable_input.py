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
