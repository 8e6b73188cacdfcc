"""The phone number node and its business profile (``whatsapp_business_profile``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from .errors import JSON, bad
from .validation import read_json

if TYPE_CHECKING:
    from .server import FakeGraph

VERTICALS = frozenset(
    [
        "UNDEFINED",
        "OTHER",
        "AUTO",
        "BEAUTY",
        "APPAREL",
        "EDU",
        "ENTERTAIN",
        "EVENT_PLAN",
        "FINANCE",
        "GROCERY",
        "GOVT",
        "HOTEL",
        "HEALTH",
        "NONPROFIT",
        "PROF_SERVICES",
        "RETAIL",
        "TRAVEL",
        "RESTAURANT",
        "NOT_A_BIZ",
    ]
)
# Meta's reference says 512 for description; older pages (and our notes) say 256.
# The fake accepts the larger documented limit so it never rejects a valid profile.
PROFILE_LIMITS = {"about": 139, "address": 256, "description": 512, "email": 128}


async def get_profile(graph: FakeGraph, request: web.Request) -> web.StreamResponse:
    profile = {**graph.profile, "messaging_product": "whatsapp"}
    if "fields" in request.query:
        fields = {f.strip() for f in request.query["fields"].split(",")}
        profile = {k: v for k, v in profile.items() if k in fields or k == "messaging_product"}
    return web.json_response({"data": [profile]})


async def post_profile(graph: FakeGraph, request: web.Request) -> web.StreamResponse:
    graph.profile.update(check_profile_update(await read_json(request)))
    return web.json_response({"success": True})


def check_profile_update(body: JSON) -> JSON:
    """Validate a profile update like the Cloud API; returns the fields to store."""
    if body.pop("messaging_product", None) != "whatsapp":
        raise bad("Param messaging_product must be 'whatsapp'")
    update: JSON = {}
    for key, value in body.items():
        if key in PROFILE_LIMITS:
            if not isinstance(value, str) or len(value) > PROFILE_LIMITS[key]:
                raise bad(f"Param {key} must be a string of at most {PROFILE_LIMITS[key]} chars")
            if key == "about" and not value:
                raise bad("Param about cannot be empty")
            if key == "email" and value and "@" not in value:
                raise bad("Param email must be a valid email address")
        elif key == "websites":
            if (
                not isinstance(value, list)
                or len(value) > 2
                or not all(
                    isinstance(w, str) and len(w) <= 256 and w.startswith(("http://", "https://"))
                    for w in value
                )
            ):
                raise bad("Param websites must be at most 2 http(s) URLs of at most 256 chars")
        elif key == "vertical":
            if value != "" and value not in VERTICALS:
                raise bad(f"Param vertical must be one of {', '.join(sorted(VERTICALS))}")
        elif key == "profile_picture_handle":
            if not isinstance(value, str) or not value:
                raise bad("Param profile_picture_handle must be a non-empty string")
            key, value = "profile_picture_url", f"https://pps.example.invalid/{value}"
        else:
            raise bad(f"Param {key} is not a business profile field")
        update[key] = value
    return update


async def phone_number(graph: FakeGraph, request: web.Request) -> web.StreamResponse:
    node: JSON = {
        "id": graph.phone_number_id,
        "display_phone_number": graph.display_phone_number,
        "verified_name": graph.verified_name,
        "quality_rating": "GREEN",
        "code_verification_status": "VERIFIED",
        "platform_type": "CLOUD_API",
        "throughput": {"level": "STANDARD"},
    }
    if "fields" in request.query:
        fields = {f.strip() for f in request.query["fields"].split(",")} | {"id"}
        node = {k: v for k, v in node.items() if k in fields}
    return web.json_response(node)
