"""Readable ``--help``: arguments named by their metavar alone (``SLUG``, not ``SLUG <str>``).

Typer prints a type tag after every argument even when it has a metavar; the options
get theirs from ``metavar=``, and ``main.app`` uses click's plain help, which wraps whole
words where rich's boxes cut them (``tests/cli/test_cli_help.py`` checks every command).
"""

from __future__ import annotations

from typer import _click  # Typer's own copy of click, whose types its commands use
from typer.core import TyperCommand


class ReadableCommand(TyperCommand):
    """A command whose help lists arguments without Typer's ``<type>`` tag."""

    def format_options(self, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
        arguments: list[tuple[str, str]] = []
        options: list[tuple[str, str]] = []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                name, text = record
                arguments.append((name.split(" <", 1)[0], text))
            else:
                options.append(record)
        if arguments:
            with formatter.section("Arguments"):
                formatter.write_dl(arguments)
        if options:
            with formatter.section("Options"):
                formatter.write_dl(options)
