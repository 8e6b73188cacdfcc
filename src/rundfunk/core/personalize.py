"""Personalize a broadcast's text for each contact with sandboxed Jinja2.

Editors write ``Hallo {{ contact.name | default("friend", true) }}!``; ``validate``
refuses a text when it is saved (with a message an editor can act on) and ``render``
fills it in for every delivery. Templates come from workspace members, so they run in
Jinja's immutable sandbox with nothing but ``contact`` and ``workspace`` in scope, no
access to files or other templates, and bounds on the obvious runaway constructs
(loops, repetition, powers, output length) so that a slip in one text cannot stall the
dispatcher that renders it for every recipient. Compiled templates
are cached by source text: a broadcast to 100,000 contacts compiles its text once.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, Final

from jinja2 import ChainableUndefined, Template, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError
from jinja2.meta import find_undeclared_variables
from jinja2.runtime import Context, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_TEMPLATE_CHARS: Final = 4096  # WhatsApp's limit for a text message body
MAX_RENDERED_CHARS: Final = 4096

ROOTS: Final = frozenset({"contact", "workspace"})
_HINT: Final = "use contact.name, contact.address, contact.language, contact.attributes.<key>"

# Tags that reach outside the text (other templates) or build call graphs the
# nesting bound below cannot see through (recursive macros).
_FORBIDDEN: Final[dict[type[nodes.Node], str]] = {
    nodes.Include: "include",
    nodes.Import: "import",
    nodes.FromImport: "from … import",
    nodes.Extends: "extends",
    nodes.Macro: "macro",
    nodes.CallBlock: "call",
}
MAX_LOOP_DEPTH: Final = 2  # with MAX_RANGE, at most 1,000,000 iterations per render
MAX_RANGE: Final = 1000  # Jinja's own sandbox allows 100,000 per range()
MAX_POWER_BITS: Final = 100_000  # 10 ** 1000 (3,322 bits) is instant; 10 ** 10 ** 8 hangs


class PersonalizationError(ValueError):
    """A text that cannot be personalized; the message says what to fix."""


def _bounded_range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise OverflowError(f"range() may produce at most {MAX_RANGE} numbers")
    return numbers


class _Environment(ImmutableSandboxedEnvironment):
    """The sandbox, plus: dots on a mapping read its keys, and big results are refused.

    Immutable so that ``contact.attributes.clear()`` cannot change the caller's data.
    Keys first so that an attribute named ``items`` or ``values`` reads the contact's
    data, not the dict method of the same name.
    """

    intercepted_binops = frozenset({"*", "**"})

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, Mapping):
            return self._key(obj, attribute)
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if isinstance(obj, Mapping):
            return self._key(obj, argument)
        return super().getitem(obj, argument)

    def _key(self, obj: Mapping[Any, Any], key: Any) -> Any:
        try:
            return obj[key]
        except (KeyError, TypeError):
            return self.undefined(obj=obj, name=key)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        # Jinja's default hands back an Undefined that ChainableUndefined would quietly
        # render as "", hiding a probe like ``contact.name.__class__``; refuse instead.
        raise SecurityError(f"access to {attribute!r} of a {type(obj).__name__} is not allowed")

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if (
            operator == "**"
            and isinstance(left, int)
            and isinstance(right, int)
            and max(left.bit_length(), 1) * abs(right) > MAX_POWER_BITS
        ):
            raise OverflowError(f"{left} ** {right} is too large")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if (
                    isinstance(seq, str | list | tuple)
                    and isinstance(times, int)
                    and len(seq) * times > MAX_RENDERED_CHARS
                ):
                    raise OverflowError("repeating that would exceed the message length")
        return super().call_binop(context, operator, left, right)


_ENV: Final = _Environment(
    autoescape=False,  # plain-text messages: "Tom & Jerry" must stay as typed
    undefined=ChainableUndefined,  # contact.attributes.city renders "" when missing
    keep_trailing_newline=True,  # the message is sent exactly as written
    # A contact without a name must read "Hallo !" rather than "Hallo None!".
    finalize=lambda value: "" if value is None else value,
)
# Only what a message needs; lipsum, cycler, joiner, namespace and dict are noise here.
_ENV.globals = {"range": _bounded_range}


def validate(text: str) -> None:
    """Raise ``PersonalizationError`` unless ``text`` is a usable broadcast text."""
    if not text.strip():
        raise PersonalizationError("text is empty")
    _compile(text)


def render(
    text: str,
    *,
    contact: Mapping[str, object],
    workspace: Mapping[str, object] | None = None,
    limit: int = MAX_RENDERED_CHARS,
) -> str:
    """``text`` filled in for one contact, cut to ``limit`` characters.

    The review asks for one character more than the channel allows, to tell a text
    that fits from one that was cut.
    """
    template = _compile(text)
    pieces: list[str] = []
    length = 0
    try:
        # Streaming lets a runaway loop stop at the message limit instead of
        # building megabytes that would be cut off anyway.
        for piece in template.generate(contact=contact, workspace=workspace or {}):
            pieces.append(piece)
            length += len(piece)
            if length >= limit:
                break
    except Exception as exc:  # the sandbox's SecurityError and any runtime error alike
        raise PersonalizationError(f"cannot personalize: {_describe(exc)}") from exc
    return "".join(pieces)[:limit]


def contact_fields(text: str) -> frozenset[tuple[str, ...]]:
    """The contact fields a valid ``text`` reads: ``("name",)``, ``("attributes", "city")``.

    The review samples the audience for contacts who lack one of them (the ones a
    text like ``{{ contact.name.upper() }}`` fails for).
    """
    found: set[tuple[str, ...]] = set()

    def path(node: nodes.Node) -> tuple[str, ...] | None:
        if isinstance(node, nodes.Name):
            return (node.name,)
        if isinstance(node, nodes.Getattr):
            head = path(node.node)
            return None if head is None else (*head, node.attr)
        if (
            isinstance(node, nodes.Getitem)
            and isinstance(node.arg, nodes.Const)
            and isinstance(node.arg.value, str)
        ):
            head = path(node.node)
            return None if head is None else (*head, node.arg.value)
        return None

    for node in _ENV.parse(text).find_all((nodes.Getattr, nodes.Getitem)):
        named = path(node)
        if named is not None and named[0] == "contact" and len(named) >= 2:
            depth = 3 if named[1] == "attributes" else 2
            found.add(named[1:depth])
    return frozenset(found)


def _describe(exc: Exception) -> str:
    message = str(exc) or type(exc).__name__
    if isinstance(exc, TemplateSyntaxError) and exc.lineno:
        return f"line {exc.lineno}: {exc.message or message}"
    return message


@functools.lru_cache(maxsize=256)  # a few running broadcasts at a time; 256 is plenty
def _compile(text: str) -> Template:
    """Parse, check and compile ``text`` once; errors are not cached."""
    if len(text) > MAX_TEMPLATE_CHARS:
        raise PersonalizationError(f"text is longer than {MAX_TEMPLATE_CHARS} characters")
    try:
        tree = _ENV.parse(text)
        _check_tags(tree, depth=0)
        # Runs the code generator, which is also where unknown filters are reported.
        unknown = sorted(find_undeclared_variables(tree) - ROOTS - set(_ENV.globals))
        if unknown:
            raise PersonalizationError(f"unknown variable {unknown[0]!r} — {_HINT}")
        return _ENV.from_string(tree)
    except TemplateSyntaxError as exc:  # includes unknown filters and tests
        raise PersonalizationError(_describe(exc)) from exc


def _check_tags(node: nodes.Node, *, depth: int) -> None:
    for kind, tag in _FORBIDDEN.items():
        if isinstance(node, kind):
            raise PersonalizationError(f"line {node.lineno}: {{% {tag} %}} is not allowed")
    if _private_name(node):
        raise PersonalizationError(f"line {node.lineno}: names starting with '_' are not allowed")
    if isinstance(node, nodes.For):
        depth += 1
        if depth > MAX_LOOP_DEPTH:
            raise PersonalizationError(
                f"line {node.lineno}: loops may be nested at most {MAX_LOOP_DEPTH} deep"
            )
    for child in node.iter_child_nodes():
        _check_tags(child, depth=depth)


def _private_name(node: nodes.Node) -> bool:
    """``x._y`` or ``x["_y"]``: the sandbox refuses these at render time; say so at save."""
    if isinstance(node, nodes.Getattr):
        return node.attr.startswith("_")
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        return isinstance(node.arg.value, str) and node.arg.value.startswith("_")
    return False
