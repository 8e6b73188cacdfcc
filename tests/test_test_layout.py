"""The suite's own layout: helpers are imported by names of their own.

pytest loads every folder's ``conftest.py`` under the one module name ``conftest``,
so ``from conftest import X`` gets whichever folder's conftest came last and breaks
as soon as the suite grows a folder. Shared helpers live in modules such as
``e2e_server``, ``e2e_support`` and ``browser_support`` instead.
"""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).parent


def test_no_test_module_imports_a_conftest_by_name() -> None:
    offenders = [
        str(path.relative_to(TESTS))
        for path in TESTS.rglob("*.py")
        if re.search(r"^\s*(from conftest import|import conftest)", path.read_text(), re.M)
    ]
    assert not offenders, f"import these helpers from a module of their own: {offenders}"
