"""The console in Chromium at a desktop's and a phone's width: axe-core finds no serious
or critical WCAG A/AA violation on the main pages at 1280 and 390 px, nothing sticks
out sideways at 390 and 320 px, the navigation folds behind a Menu button, the focus
ring stands out (3:1), and /docs renders from this server alone."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from a11y_support import axe_violations, overflow
from browser_support import screenshot
from e2e_support import tag

PHONE = "4915100000001"  # the simulator's phone 1

CONTRAST = """() => {
  const el = document.activeElement;
  const rgb = (c) => c.match(/[\\d.]+/g).slice(0, 3).map(Number);
  const lum = (c) => { const v = rgb(c).map((x) => { x /= 255;
      return x <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4); });
    return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2]; };
  let back = el.parentElement, bg = "rgb(255, 255, 255)";
  while (back) { const c = getComputedStyle(back).backgroundColor;
    if (c !== "rgba(0, 0, 0, 0)" && c !== "transparent") { bg = c; break; }
    back = back.parentElement; }
  const style = getComputedStyle(el);
  const [a, b] = [lum(style.outlineColor), lum(bg)].sort((x, y) => y - x);
  return {ratio: (a + 0.05) / (b + 0.05), width: parseFloat(style.outlineWidth),
          style: style.outlineStyle};
}"""


def _world(server: Any) -> tuple[int, int]:
    """A sandbox channel of this test's own with one subscriber (consent history, ticks)."""
    client = server.client
    created = client.post("/api/v1/channels", json={"kind": "sandbox", "name": f"A11y {tag()[:8]}"})
    assert created.status_code == 201, created.text
    channel_id = created.json()["id"]
    wrote = client.post(
        f"/sandbox/{channel_id}/phones/{PHONE}/messages", json={"text": "START", "name": "Ada"}
    )
    assert wrote.status_code == 202, wrote.text
    # What makes a narrow page overflow: a broadcast's funnel on the dashboard (its bars
    # in a three-column grid), a token's row on the team page.
    sent = client.post("/api/v1/broadcasts", json={"channel_id": channel_id, "text": "Hallo"})
    assert sent.status_code in (201, 202), sent.text
    named = {"name": f"newsroom-alerts-{tag()}", "role": "editor"}
    token = client.post("/api/v1/tokens", json=named)
    assert token.status_code == 201, token.text
    return channel_id, wrote.json()["contact_id"]


def test_main_pages_pass_axe_and_fit_a_phone(owner_page: Any, server: Any) -> None:
    page = owner_page
    channel_id, contact_id = _world(server)
    pages = [  # (url, also checked by axe at 390 px)
        ("/dashboard", True),
        ("/inbox", False),
        ("/broadcasts", False),
        ("/broadcasts/new", True),
        ("/contacts", False),
        (f"/contacts/{contact_id}", True),
        (f"/simulator?channel={channel_id}", True),
        ("/channels", False),
        ("/team", True),
    ]
    found: dict[str, Any] = {}
    for url, narrow_axe in pages:
        page.set_viewport_size({"width": 1280, "height": 860})
        page.goto(url)  # one load per page; the widths below only re-lay it out
        if url.startswith("/simulator"):
            page.locator("#phone-1-messages .ticks[role=img]").first.wait_for()
        if url.startswith("/contacts/"):
            page.locator("#consent-history .table-wrap[tabindex='0']").wait_for()
        if violations := axe_violations(page):
            found[f"{url} @1280"] = violations
        page.set_viewport_size({"width": 390, "height": 844})
        if narrow_axe and (violations := axe_violations(page)):
            found[f"{url} @390"] = violations
        for width in (390, 320):
            page.set_viewport_size({"width": width, "height": 800})
            if wider := overflow(page):
                found[f"{url} @{width}"] = f"{wider} px wider than the window"
    assert found == {}, found
    screenshot(page, "console-320")


def test_navigation_folds_behind_a_menu_button_on_a_phone(owner_page: Any) -> None:
    page = owner_page
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/dashboard")
    nav = page.get_by_role("navigation", name="Main navigation")
    menu = page.get_by_role("button", name="Menu")
    assert nav.is_hidden() and menu.get_attribute("aria-expanded") == "false"
    menu.click()
    assert menu.get_attribute("aria-expanded") == "true"
    nav.get_by_role("link", name="Contacts").click()
    page.wait_for_url("**/contacts")
    assert overflow(page) == 0
    # The focus ring, reached by keyboard: at least 3:1 against what is behind it, on
    # the dark top bar (the brand link after the Menu button) and in the page.
    page.get_by_role("button", name="Menu").focus()
    page.keyboard.press("Tab")
    ring = page.evaluate(CONTRAST)
    assert ring["style"] != "none" and ring["width"] >= 2 and ring["ratio"] >= 3, ring
    page.set_viewport_size({"width": 1280, "height": 860})
    page.locator("main input").first.focus()
    page.keyboard.press("Tab")
    ring = page.evaluate(CONTRAST)
    assert ring["style"] != "none" and ring["width"] >= 2 and ring["ratio"] >= 3, ring
    assert menu.is_hidden() and nav.is_visible()  # the desktop has the sidebar


def test_docs_render_from_this_server_alone(browser: Any, server: Any) -> None:
    context = browser.new_context(base_url=server.base_url)
    page = context.new_page()
    origins: set[str] = set()
    page.on("request", lambda request: origins.add(urlsplit(request.url).netloc))
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if "Content Security" in m.text else None)
    page.goto("/docs")
    operation = page.locator(".swagger-ui .opblock-summary-path", has_text="/api/v1/broadcasts")
    operation.first.wait_for()
    assert page.locator(".swagger-ui .info .title").first.inner_text().startswith("Rundfunk")
    assert origins == {urlsplit(server.base_url).netloc}, origins
    assert refused == []
    context.close()
