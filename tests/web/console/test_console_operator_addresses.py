"""The console's channel form has no Graph API address (the operator's setting), and a
form that sends one anyway is refused with a 422 naming the setting."""

from __future__ import annotations

from typing import Any

from rundfunk.services.actors import Role


async def test_the_console_refuses_api_base_url(console: Any) -> None:
    owner = await console(Role.OWNER)
    page = await owner.get("/channels/new?kind=whatsapp")
    assert page.status_code == 200 and 'name="api_base_url"' not in page.text
    form = {
        "kind": "whatsapp",
        "name": "WA",
        "phone_number_id": "1001",
        "waba_id": "2002",
        "access_token": "EAAG-operator-test",
        "app_secret": "operator-secret",
        "api_base_url": "http://127.0.0.1:5432",
    }
    refused = await owner.post("/channels/new", form)
    assert refused.status_code == 422, refused.text
    assert "RUNDFUNK_WHATSAPP_API_BASE_URL" in refused.text
