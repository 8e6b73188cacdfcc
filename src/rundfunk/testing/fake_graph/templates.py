"""Message templates: the Graph shape, the checks of a template send, the paged list."""

from __future__ import annotations

import base64
import re
from collections.abc import Container

from aiohttp import web

from .errors import JSON, GraphError, bad
from .validation import check_media_ref, list_param, obj_param, str_param

PLACEHOLDER = re.compile(r"\{\{\s*(\d+)\s*\}\}")


def placeholders(text: object) -> int:
    return len(set(PLACEHOLDER.findall(text))) if isinstance(text, str) else 0


def _example(text: str) -> list[str]:
    return [f"Beispiel {n}" for n in sorted(set(PLACEHOLDER.findall(text)), key=int)]


def build_template(
    template_id: str,
    name: str,
    *,
    language: str,
    category: str,
    status: str,
    body: str,
    header: str | None,
    header_format: str | None,
    buttons: list[JSON] | None,
) -> JSON:
    """One template in the Graph shape (see ``FakeGraph.add_template``)."""
    components: list[JSON] = []
    fmt = (header_format or ("TEXT" if header is not None else "")).upper()
    if fmt == "TEXT":
        head: JSON = {"type": "HEADER", "format": "TEXT", "text": header or ""}
        if placeholders(header):
            head["example"] = {"header_text": _example(header or "")}
        components.append(head)
    elif fmt:
        components.append({"type": "HEADER", "format": fmt})
    main: JSON = {"type": "BODY", "text": body}
    if placeholders(body):
        main["example"] = {"body_text": [_example(body)]}
    components.append(main)
    if buttons:
        components.append({"type": "BUTTONS", "buttons": [dict(b) for b in buttons]})
    return {
        "name": name,
        "language": language,
        "status": status.upper(),
        "category": category.upper(),
        "id": template_id,
        "parameter_format": "POSITIONAL",
        "components": components,
    }


def find_template(templates: list[JSON], name: str, language: str) -> JSON | None:
    for template in templates:
        if template.get("name") == name and template.get("language") == language:
            return template
    return None


def check_template_send(obj: JSON, templates: list[JSON], media_ids: Container[str]) -> str:
    """A send's ``template`` object against the stored templates; returns the category."""
    name = str_param(obj.get("name"), "template['name']", max_len=512)
    code = str_param(
        obj_param(obj.get("language"), "template['language']").get("code"), "code", max_len=16
    )
    template = find_template(templates, str(name), str(code))
    status = template.get("status") if template else None
    if template is None or status not in ("APPROVED", "PAUSED", "DISABLED"):
        raise GraphError(132001, f"template name ({name}) does not exist in {code}")
    if status == "PAUSED":
        raise GraphError(132015, f"Template {name} is paused due to low quality")
    if status == "DISABLED":
        raise GraphError(132016, f"Template {name} has been disabled")
    _check_params(obj, template, media_ids)
    return str(template.get("category", "MARKETING")).lower()


def _check_text_param(param: JSON, where: str) -> None:
    text = param.get("text")
    if not isinstance(text, str) or not text.strip():
        raise bad(f"Param {where}['text'] must be a non-empty string")
    if "\n" in text or "\t" in text or "     " in text:
        raise bad(
            f"Param {where}['text'] cannot have new-line/tab characters "
            "or more than 4 consecutive spaces"
        )


def _mismatch(part: str, given: int, expected: int) -> GraphError:
    return GraphError(
        132000,
        f"{part}: number of localizable_params ({given}) does not match "
        f"the expected number of params ({expected})",
    )


def _check_params(request: JSON, template: JSON, media_ids: Container[str]) -> None:
    """Components of the send vs the approved template: counts, types, button indexes."""
    parts = {str(c.get("type", "")).upper(): c for c in template.get("components", [])}
    given: dict[str, list[JSON]] = {}
    buttons_given: dict[int, tuple[str, list[JSON]]] = {}
    raw = request.get("components", [])
    for i, raw_component in enumerate(list_param(raw, "template['components']", low=0, high=20)):
        where = f"template['components'][{i}]"
        component = obj_param(raw_component, where)
        kind = component.get("type")
        params = [
            obj_param(p, f"{where}['parameters'][{j}]")
            for j, p in enumerate(
                list_param(
                    component.get("parameters", []), f"{where}['parameters']", low=0, high=100
                )
            )
        ]
        for j, param in enumerate(params):
            if param.get("type") == "text":
                _check_text_param(param, f"{where}['parameters'][{j}]")
        if kind in ("header", "body"):
            if kind in given:
                raise bad(f"Component {kind} given twice")
            given[kind] = params
        elif kind == "button":
            index = component.get("index")
            if not str(index).isdigit():
                raise bad(f"Param {where}['index'] must be a button index")
            sub_type = component.get("sub_type")
            if not isinstance(sub_type, str):
                raise bad(f"Param {where}['sub_type'] is required")
            buttons_given[int(str(index))] = (sub_type, params)
        else:
            raise bad(f"Param {where}['type'] must be header, body or button")

    body_params = given.get("body", [])
    expected = placeholders(parts.get("BODY", {}).get("text"))
    if len(body_params) != expected:
        raise _mismatch("body", len(body_params), expected)
    for param in body_params:
        if param.get("type") not in ("text", "currency", "date_time"):
            raise GraphError(132012, "body parameters must be text, currency or date_time")

    header = parts.get("HEADER")
    header_params = given.get("header", [])
    header_format = str(header.get("format", "TEXT")).upper() if header else None
    if header_format in ("IMAGE", "VIDEO", "DOCUMENT"):
        if len(header_params) != 1:
            raise _mismatch("header", len(header_params), 1)
        kind = header_format.lower()
        if header_params[0].get("type") != kind:
            raise GraphError(132012, f"header needs a parameter of type {kind}")
        check_media_ref(obj_param(header_params[0].get(kind), f"header {kind}"), kind, media_ids)
    else:
        expected = placeholders(header.get("text")) if header else 0
        if len(header_params) != expected:
            raise _mismatch("header", len(header_params), expected)
        if any(p.get("type") != "text" for p in header_params):
            raise GraphError(132012, "text header parameters must be of type text")

    buttons: list[JSON] = list(parts.get("BUTTONS", {}).get("buttons", []))
    for index, (sub_type, params) in buttons_given.items():
        if index >= len(buttons):
            raise _mismatch(f"button at index {index}", len(params), 0)
        wanted = str(buttons[index].get("type", "")).lower()
        if sub_type != wanted:
            raise bad(f"button at index {index} is {wanted}, not {sub_type}")
    for index, button in enumerate(buttons):
        if str(button.get("type")).upper() == "URL" and placeholders(button.get("url")):
            _sub, params = buttons_given.get(index, ("url", []))
            if len(params) != 1 or params[0].get("type") != "text":
                raise _mismatch(f"button at index {index}", len(params), 1)
        elif index in buttons_given and str(button.get("type")).upper() == "URL":
            raise _mismatch(f"button at index {index}", len(buttons_given[index][1]), 0)


async def list_templates(templates: list[JSON], request: web.Request) -> web.StreamResponse:
    """``GET /{waba_id}/message_templates``: filters, ``fields`` and cursor paging."""
    query = request.query
    try:
        limit = int(query.get("limit", "25"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= 1000:
        raise bad("Param limit must be an integer between 1 and 1000")
    rows = templates
    if "status" in query:
        wanted = {s.strip().upper() for s in query["status"].split(",")}
        rows = [t for t in rows if t.get("status") in wanted]
    if "name" in query:
        rows = [t for t in rows if query["name"] in str(t.get("name"))]
    start = 0
    if "after" in query:
        start = _cursor_index(query["after"]) + 1
    elif "before" in query:
        start = max(0, _cursor_index(query["before"]) - limit)
    page = rows[start : start + limit]
    if "fields" in query:
        fields = {f.strip() for f in query["fields"].split(",")} | {"id"}
        page = [{k: v for k, v in t.items() if k in fields} for t in page]
    if not page:
        return web.json_response({"data": []})
    before, after = _cursor(start), _cursor(start + len(page) - 1)
    paging: JSON = {"cursors": {"before": before, "after": after}}
    if start + len(page) < len(rows):
        paging["next"] = str(
            request.url.update_query({"after": after}).without_query_params("before")
        )
    if start > 0:
        paging["previous"] = str(
            request.url.update_query({"before": before}).without_query_params("after")
        )
    return web.json_response({"data": page, "paging": paging})


def _cursor(index: int) -> str:
    return base64.urlsafe_b64encode(f"fake-cursor:{index}".encode()).decode()


def _cursor_index(cursor: str) -> int:
    try:
        prefix, index = base64.urlsafe_b64decode(cursor.encode()).decode().split(":")
        if prefix != "fake-cursor":
            raise ValueError(prefix)
        return int(index)
    except ValueError as exc:
        raise bad("Param after/before is not a valid cursor") from exc
