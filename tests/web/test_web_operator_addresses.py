"""Where a WhatsApp channel's requests go is the operator's setting, not the tenant's:
an ``api_base_url`` in a channel's config is refused by the API and the console with a
422 naming the setting (the console's refusal: tests/web/console)."""

from __future__ import annotations

from typing import Any

import httpx

CONFIG = {
    "phone_number_id": "1001",
    "waba_id": "2002",
    "access_token": "EAAG-operator-test",
    "app_secret": "operator-secret",
}
INTERNAL = ["http://127.0.0.1:5432", "http://169.254.169.254/latest", "https://graph.facebook.com"]


async def test_the_api_refuses_api_base_url_on_create_and_update(
    client: httpx.AsyncClient, make_tenant: Any
) -> None:
    tenant = await make_tenant("ops")
    for url in INTERNAL:
        body = {"kind": "whatsapp", "name": "WA", "config": {**CONFIG, "api_base_url": url}}
        refused = await client.post("/api/v1/channels", json=body, headers=tenant.auth())
        assert refused.status_code == 422, refused.text
        assert "RUNDFUNK_WHATSAPP_API_BASE_URL" in refused.text
        assert "operator setting" in refused.text
    made = await client.post(
        "/api/v1/channels",
        json={"kind": "whatsapp", "name": "WA", "config": CONFIG},
        headers=tenant.auth(),
    )
    assert made.status_code == 201, made.text
    assert "api_base_url" not in made.json()["config"]
    url = f"/api/v1/channels/{made.json()['id']}"
    for config in ({"api_base_url": INTERNAL[0]}, {"throughput": 90, "api_base_url": INTERNAL[1]}):
        changed = await client.patch(url, json={"config": config}, headers=tenant.auth())
        assert changed.status_code == 422, changed.text
        assert "RUNDFUNK_WHATSAPP_API_BASE_URL" in changed.text
    # Settings are refused the same way as config.
    body = {"kind": "whatsapp", "name": "WA", "config": CONFIG, "settings": {"api_base_url": "x"}}
    sneaked = await client.post("/api/v1/channels", json=body, headers=tenant.auth())
    assert sneaked.status_code == 422, sneaked.text
