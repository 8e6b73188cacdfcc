"""axe-core in the browser tests: its ``axe.min.js`` from the ``axe-playwright-python``
package (axe-core is MPL-2.0, used unchanged as a test fixture), injected into the
page under test and run there; and the horizontal-overflow measure."""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Any

SEVERE = ("serious", "critical")


@cache
def axe_source() -> str:
    return (files("axe_playwright_python") / "axe.min.js").read_text(encoding="utf-8")


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """The serious and critical WCAG 2.x A/AA violations axe finds in the page now."""
    # evaluate, not a <script> tag: the console's CSP allows no inline script. Once per
    # page load (a re-layout to another width keeps it).
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(axe_source())
    found: list[dict[str, Any]] = page.evaluate(
        """async () => {
            const result = await axe.run(document, {
                runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
                resultTypes: ["violations"],
            });
            return result.violations.map((v) => ({
                id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 5)
                    .map((n) => n.target.join(" ") + " :: " + n.failureSummary),
            }));
        }"""
    )
    return [v for v in found if v["impact"] in SEVERE]


def overflow(page: Any) -> int:
    """How many pixels the page is wider than the window (0: nothing to scroll sideways)."""
    width: int = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    return width
