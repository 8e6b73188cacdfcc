"""Decide what an inbound message means: opt-in, opt-out, help, chat, or nothing.

The decision is a table of named rules walked in order by a short loop (the shape of
Mailman's rule chains): the first rule that matches decides, and its name is kept on
the ``Decision`` so an audit trail can say *why* a message unsubscribed someone. A
keyword counts only as the whole message — alone or followed by one topic key, with
case, surrounding whitespace and trailing punctuation or emoji ignored — so a keyword
inside a sentence ("please don't stop") stays a conversation for a human to read.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Final


class InboundAction(StrEnum):
    OPT_IN = "opt_in"
    OPT_OUT = "opt_out"
    HELP = "help"
    CONVERSATION = "conversation"  # everything a human should read: the 1:1 chat
    IGNORE = "ignore"  # dropped without a trace in the inbox (blocked contacts)


@dataclass(frozen=True)
class KeywordConfig:
    """The words that act as commands on one channel (compared case-insensitively)."""

    opt_in: tuple[str, ...] = ("START", "ANMELDEN")
    opt_out: tuple[str, ...] = ("STOP", "STOPP", "ABMELDEN", "UNSUBSCRIBE")
    help: tuple[str, ...] = ("HILFE", "HELP")

    @classmethod
    def from_settings(cls, data: Mapping[str, object] | None) -> KeywordConfig:
        """Build from a channel's ``keywords`` settings; missing lists keep the defaults.

        Raises ``ValueError`` naming the problem, so an admin's typo is refused when the
        channel is saved rather than silently turning STOP into chat.
        """
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ValueError("keywords must be an object with the lists opt_in, opt_out, help")
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(k) for k in data if k not in known)
        if unknown:
            raise ValueError(
                f"unknown keyword list {unknown[0]!r}; expected opt_in, opt_out or help"
            )
        lists = {name: _keyword_list(name, value) for name, value in data.items()}
        config = cls(**lists)
        _refuse_overlap(config)
        return config


def _keyword_list(name: str, value: object) -> tuple[str, ...]:
    # A bare string is a sequence too: "STOP" would silently become S, T, O, P.
    if not isinstance(value, list | tuple):
        raise ValueError(f"keywords.{name} must be a list of words, not {type(value).__name__}")
    if not value:
        raise ValueError(f"keywords.{name} must name at least one word")
    words: list[str] = []
    for item in value:
        if not isinstance(item, str):
            raise ValueError(f"keywords.{name} may hold only text, not {item!r}")
        if not _fold(item):
            raise ValueError(f"keywords.{name} holds {item!r}, which has no letters or digits")
        words.append(item.strip())
    return tuple(words)


def _refuse_overlap(config: KeywordConfig) -> None:
    seen: dict[tuple[str, ...], str] = {}
    for name in ("opt_out", "opt_in", "help"):
        for word in getattr(config, name):
            folded = _fold(word)
            if folded in seen and seen[folded] != name:
                raise ValueError(f"keyword {word!r} is in both {seen[folded]} and {name}")
            seen[folded] = name


@dataclass(frozen=True)
class Decision:
    action: InboundAction
    topic_key: str | None = None
    rule: str = field(kw_only=True)  # name of the rule that matched, for the audit trail


# -- normalizing ---------------------------------------------------------------------

# Trailing characters that never change what a command means: sentence punctuation
# ("STOP!", "Start."), brackets (":-("), symbols and emoji ("STOP 🛑"), invisible
# format characters (zero-width joiners inside emoji). Dashes and underscores are
# kept because topic keys and Telegram deep-link payloads may end with them.
_TRAILING_CATEGORIES: Final = frozenset(
    {"Po", "Ps", "Pe", "Pi", "Pf", "Sm", "Sc", "Sk", "So", "Cf"}
)
_VARIATION_SELECTORS: Final = frozenset({"\ufe0e", "\ufe0f"})  # text/emoji style of "❤️"


def _is_trailing_noise(char: str) -> bool:
    return char in _VARIATION_SELECTORS or unicodedata.category(char) in _TRAILING_CATEGORIES


def _words(text: str) -> tuple[str, ...]:
    """The message's words as typed: NFKC (full-width ＳＴＯＰ is STOP), runs of whitespace
    collapsed, trailing punctuation and emoji dropped."""
    joined = " ".join(unicodedata.normalize("NFKC", text).split())
    end = len(joined)
    while end and (joined[end - 1] == " " or _is_trailing_noise(joined[end - 1])):
        end -= 1
    return tuple(joined[:end].split())


def _fold(text: str) -> tuple[str, ...]:
    return tuple(word.casefold() for word in _words(text))


@functools.lru_cache(maxsize=64)
def _folded_keywords(words: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    # Configs are few and immutable; folding them once per distinct config keeps
    # classify() to one normalization of the message itself.
    return tuple(folded for folded in map(_fold, words) if folded)


# -- the rules -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Message:
    words: tuple[str, ...]  # as typed, for the topic key
    folded: tuple[str, ...]  # casefolded, for comparing with keywords
    blank: bool
    blocked: bool


# A rule answers "does this message mean X?": None for no, else the action and topic.
_Hit = tuple[InboundAction, str | None]
_Rule = Callable[[_Message, KeywordConfig], _Hit | None]


def _keyword(
    msg: _Message, keywords: tuple[str, ...], action: InboundAction, *, topic: bool
) -> _Hit | None:
    """The keyword alone, or (with ``topic``) followed by exactly one topic key.

    One extra word at most: "stop sport" chooses a topic, "stop sending me this" is a
    sentence a human must read.
    """
    for keyword in _folded_keywords(keywords):
        size = len(keyword)
        if msg.folded[:size] != keyword:
            continue
        if len(msg.folded) == size:
            return action, None
        if topic and len(msg.folded) == size + 1:
            return action, msg.words[size].lower()  # topic keys are stored lower-case
    return None


def _telegram(msg: _Message, command: str, action: InboundAction, *, topic: bool) -> _Hit | None:
    """Telegram's own commands: "/start", "/start <payload>", "/start@SomeBot" in groups."""
    if not msg.folded or len(msg.folded) > (2 if topic else 1):
        return None
    name, _, _bot = msg.folded[0].partition("@")
    if name != "/" + command:
        return None
    return action, msg.words[1].lower() if len(msg.words) == 2 else None


def _blocked(msg: _Message, config: KeywordConfig) -> _Hit | None:
    return (InboundAction.IGNORE, None) if msg.blocked else None


def _empty(msg: _Message, config: KeywordConfig) -> _Hit | None:
    # A photo or voice note without a caption is still part of the conversation.
    return (InboundAction.CONVERSATION, None) if msg.blank else None


def _opt_out(msg: _Message, config: KeywordConfig) -> _Hit | None:
    return _keyword(msg, config.opt_out, InboundAction.OPT_OUT, topic=True) or _telegram(
        msg, "stop", InboundAction.OPT_OUT, topic=True
    )


def _opt_in(msg: _Message, config: KeywordConfig) -> _Hit | None:
    # "/start <payload>" is also what Telegram's Start button sends after a deep link.
    return _keyword(msg, config.opt_in, InboundAction.OPT_IN, topic=True) or _telegram(
        msg, "start", InboundAction.OPT_IN, topic=True
    )


def _help(msg: _Message, config: KeywordConfig) -> _Hit | None:
    # No topic: "help me" wants a person, not the help leaflet.
    return _keyword(msg, config.help, InboundAction.HELP, topic=False) or _telegram(
        msg, "help", InboundAction.HELP, topic=False
    )


def _conversation(msg: _Message, config: KeywordConfig) -> _Hit | None:
    return InboundAction.CONVERSATION, None


# Order matters: a blocked contact is never re-subscribed by typing START, and
# opt-out is tried before opt-in so a keyword an admin put in both lists (refused by
# from_settings, but possible in code) errs towards leaving people alone.
RULES: Final[tuple[tuple[str, _Rule], ...]] = (
    ("blocked", _blocked),
    ("empty", _empty),
    ("opt_out", _opt_out),
    ("opt_in", _opt_in),
    ("help", _help),
    ("conversation", _conversation),
)

DEFAULT_KEYWORDS: Final = KeywordConfig()


def classify(
    text: str | None, config: KeywordConfig = DEFAULT_KEYWORDS, *, blocked: bool = False
) -> Decision:
    """What to do with one inbound message; ``text`` is None for media without a caption."""
    words = _words(text or "")
    msg = _Message(
        words=words,
        folded=tuple(word.casefold() for word in words),
        blank=not (text or "").strip(),
        blocked=blocked,
    )
    for name, rule in RULES:
        hit = rule(msg, config)
        if hit is not None:
            action, topic_key = hit
            return Decision(action, topic_key, rule=name)
    raise AssertionError("the conversation rule matches every message")  # pragma: no cover
