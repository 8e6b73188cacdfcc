"""Every command's ``--help`` reads as text: no type tags (``<bool>``, ``<list[str]>``,
``<str>``), no word cut off with "…" or "...", at the 80 columns of a small terminal."""

from __future__ import annotations

import re

import typer
from typer.testing import CliRunner

from rundfunk.cli.main import app

runner = CliRunner()
TYPE_TAG = re.compile(r"<\w+(\[[^\]]*\])?>")


def _paths(command: object, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and group below ``command``, as the words that name it."""
    found = [prefix]
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        if not getattr(sub, "hidden", False):
            found.extend(_paths(sub, (*prefix, name)))
    return found


def test_every_command_has_a_readable_help_at_80_columns() -> None:
    paths = _paths(typer.main.get_command(app))
    assert ("tokens", "rotate") in paths and ("contacts", "block") in paths
    assert len(paths) > 15
    problems = []
    for path in paths:
        result = runner.invoke(app, [*path, "--help"], terminal_width=80, env={"COLUMNS": "80"})
        assert result.exit_code == 0, (path, result.output)
        text = result.output
        assert "Usage:" in text and "╭" not in text, (path, text)  # plain text, no boxes
        for line in text.splitlines():
            body = line.replace("[ARGS]...", "")  # click's usage for "more words follow"
            if TYPE_TAG.search(body) or "…" in body or "..." in body:
                problems.append(f"rundfunk {' '.join(path)} --help: {line.strip()!r}")
            if len(line) > 80:
                problems.append(f"rundfunk {' '.join(path)} --help: wider than 80: {line!r}")
    assert not problems, "\n".join(problems)
