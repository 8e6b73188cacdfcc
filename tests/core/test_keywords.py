"""Tests for the inbound keyword rules: every rule, its order, and the config parser."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rundfunk.core.keywords import (
    DEFAULT_KEYWORDS,
    RULES,
    Decision,
    InboundAction,
    KeywordConfig,
    classify,
)

OPT_IN, OPT_OUT, HELP = InboundAction.OPT_IN, InboundAction.OPT_OUT, InboundAction.HELP
CHAT, IGNORE = InboundAction.CONVERSATION, InboundAction.IGNORE


def test_enum_values_are_the_stored_strings() -> None:
    assert [a.value for a in InboundAction] == [
        "opt_in",
        "opt_out",
        "help",
        "conversation",
        "ignore",
    ]


def test_rules_are_walked_in_the_documented_order() -> None:
    assert [name for name, _ in RULES] == [
        "blocked",
        "empty",
        "opt_out",
        "opt_in",
        "help",
        "conversation",
    ]


def test_default_config() -> None:
    assert KeywordConfig() == DEFAULT_KEYWORDS
    assert DEFAULT_KEYWORDS.opt_in == ("START", "ANMELDEN")
    assert DEFAULT_KEYWORDS.opt_out == ("STOP", "STOPP", "ABMELDEN", "UNSUBSCRIBE")
    assert DEFAULT_KEYWORDS.help == ("HILFE", "HELP")


@pytest.mark.parametrize(
    ("text", "action", "topic", "rule"),
    [
        # empty: media without caption and blank text stay in the chat
        (None, CHAT, None, "empty"),
        ("", CHAT, None, "empty"),
        ("   \n\t ", CHAT, None, "empty"),
        # opt-out, every default keyword, any case, with and without topic
        ("STOP", OPT_OUT, None, "opt_out"),
        ("stop", OPT_OUT, None, "opt_out"),
        ("Stopp", OPT_OUT, None, "opt_out"),
        ("abmelden", OPT_OUT, None, "opt_out"),
        ("UnSubscribe", OPT_OUT, None, "opt_out"),
        ("STOP Sport", OPT_OUT, "sport", "opt_out"),
        ("  abmelden   WETTER  ", OPT_OUT, "wetter", "opt_out"),
        # opt-in
        ("START", OPT_IN, None, "opt_in"),
        ("anmelden", OPT_IN, None, "opt_in"),
        ("  start   Sport ", OPT_IN, "sport", "opt_in"),
        ("START\nsport", OPT_IN, "sport", "opt_in"),
        ("start sport-news_2", OPT_IN, "sport-news_2", "opt_in"),
        # help: the keyword alone only
        ("HILFE", HELP, None, "help"),
        ("help", HELP, None, "help"),
        ("help me", CHAT, None, "conversation"),
        # trailing punctuation and emoji are ignored
        ("STOP!", OPT_OUT, None, "opt_out"),
        ("Start.", OPT_IN, None, "opt_in"),
        ("stop!!!", OPT_OUT, None, "opt_out"),
        ("STOP ! ", OPT_OUT, None, "opt_out"),
        ("Hilfe?", HELP, None, "help"),
        ("start sport!", OPT_IN, "sport", "opt_in"),
        ("stop…", OPT_OUT, None, "opt_out"),
        ("STOP 🛑", OPT_OUT, None, "opt_out"),
        ("stop ❤️", OPT_OUT, None, "opt_out"),
        ("stop 👍🏽", OPT_OUT, None, "opt_out"),
        ("stop :)", OPT_OUT, None, "opt_out"),
        # compatibility forms: full-width letters from CJK keyboards
        ("ＳＴＯＰ", OPT_OUT, None, "opt_out"),
        # keyword + more than one extra word is a sentence, not a command
        ("stop sending me this crap", CHAT, None, "conversation"),
        ("start sport now", CHAT, None, "conversation"),
        ("stop it now!", CHAT, None, "conversation"),
        # a keyword inside a sentence never matches
        ("please stop", CHAT, None, "conversation"),
        ("I said STOP", CHAT, None, "conversation"),
        ("can you help", CHAT, None, "conversation"),
        ("restart", CHAT, None, "conversation"),
        ("stopping", CHAT, None, "conversation"),
        ("start-up", CHAT, None, "conversation"),
        # leading punctuation is not dropped: it is not a bare keyword
        ("¿stop?", CHAT, None, "conversation"),
        # not blank, but nothing left after the noise is dropped
        ("!!!", CHAT, None, "conversation"),
        ("Hallo, wann habt ihr offen?", CHAT, None, "conversation"),
        # Telegram's own commands
        ("/start", OPT_IN, None, "opt_in"),
        ("/START", OPT_IN, None, "opt_in"),
        ("/start Sport_Deeplink-1", OPT_IN, "sport_deeplink-1", "opt_in"),
        ("/start@RundfunkBot", OPT_IN, None, "opt_in"),
        ("/start@RundfunkBot news", OPT_IN, "news", "opt_in"),
        ("/stop", OPT_OUT, None, "opt_out"),
        ("/stop sport", OPT_OUT, "sport", "opt_out"),
        ("/help", HELP, None, "help"),
        ("/help me", CHAT, None, "conversation"),
        ("/start a b", CHAT, None, "conversation"),
        ("/starter", CHAT, None, "conversation"),
        ("/", CHAT, None, "conversation"),
    ],
)
def test_classify(text: str | None, action: InboundAction, topic: str | None, rule: str) -> None:
    assert classify(text) == Decision(action, topic, rule=rule)


def test_topic_key_is_lower_case_not_casefolded() -> None:
    # Topic keys are stored with str.lower(); casefold would turn "ß" into "ss".
    assert classify("start Straße").topic_key == "straße"
    assert classify("start STRASSE").topic_key == "strasse"


def test_keyword_in_both_lists_errs_towards_opt_out() -> None:
    config = KeywordConfig(opt_in=("GO",), opt_out=("GO",))
    assert classify("go", config).action is OPT_OUT


def test_blocked_contact_is_ignored_before_anything_else() -> None:
    for text in (None, "", "START", "stop", "help", "hello"):
        assert classify(text, blocked=True) == Decision(IGNORE, rule="blocked")


def test_custom_config_replaces_the_defaults() -> None:
    config = KeywordConfig.from_settings({"opt_out": ["Beenden"], "opt_in": ["Opt in"]})
    assert classify("BEENDEN", config) == Decision(OPT_OUT, rule="opt_out")
    assert classify("stop", config).action is CHAT
    assert classify("  opt   IN   sport.", config) == Decision(OPT_IN, "sport", rule="opt_in")
    assert classify("opt", config).action is CHAT
    assert classify("hilfe", config).action is HELP  # not given: default kept
    # Telegram's commands don't depend on the configured words.
    assert classify("/stop", config).action is OPT_OUT
    assert classify("/start", config).action is OPT_IN


def test_decision_is_frozen_and_rule_is_keyword_only() -> None:
    decision = classify("STOP")
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.action = OPT_IN  # type: ignore[misc]
    with pytest.raises(TypeError):
        Decision(OPT_IN, None, "opt_in")  # type: ignore[call-arg]


# -- from_settings -----------------------------------------------------------------


def test_from_settings_missing_keeps_defaults() -> None:
    assert KeywordConfig.from_settings(None) == DEFAULT_KEYWORDS
    assert KeywordConfig.from_settings({}) == DEFAULT_KEYWORDS
    config = KeywordConfig.from_settings({"help": ["INFO", " Hilfe "]})
    assert config.help == ("INFO", "Hilfe")
    assert config.opt_in == DEFAULT_KEYWORDS.opt_in
    assert config.opt_out == DEFAULT_KEYWORDS.opt_out


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"opt_out": "STOP"}, "keywords.opt_out must be a list of words, not str"),
        ({"opt_in": 5}, "keywords.opt_in must be a list of words, not int"),
        ({"help": {"a": 1}}, "keywords.help must be a list of words, not dict"),
        ({"help": None}, "keywords.help must be a list of words, not NoneType"),
        ({"opt_out": []}, "keywords.opt_out must name at least one word"),
        ({"opt_in": ["START", 3]}, "keywords.opt_in may hold only text, not 3"),
        ({"opt_in": [None]}, "keywords.opt_in may hold only text, not None"),
        ({"help": ["  "]}, "keywords.help holds '  ', which has no letters or digits"),
        ({"help": ["?!"]}, "keywords.help holds '?!', which has no letters or digits"),
        ({"optout": ["X"]}, "unknown keyword list 'optout'; expected opt_in, opt_out or help"),
        ({"opt_in": ["Stop"]}, "keyword 'Stop' is in both opt_out and opt_in"),
        ({"help": ["start!"]}, "keyword 'start!' is in both opt_in and help"),
        (["STOP"], "keywords must be an object"),
    ],
)
def test_from_settings_refuses_bad_input(data: object, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        KeywordConfig.from_settings(data)  # type: ignore[arg-type]
    assert message in str(caught.value)


def test_from_settings_accepts_tuples_and_multiword_keywords() -> None:
    config = KeywordConfig.from_settings({"opt_out": ("NO MORE",)})
    assert classify("no more", config).action is OPT_OUT
    assert classify("no more sport", config) == Decision(OPT_OUT, "sport", rule="opt_out")
    assert classify("no", config).action is CHAT


# -- properties --------------------------------------------------------------------

KEYWORDS = st.sampled_from(
    [(w, OPT_OUT) for w in DEFAULT_KEYWORDS.opt_out]
    + [(w, OPT_IN) for w in DEFAULT_KEYWORDS.opt_in]
    + [(w, HELP) for w in DEFAULT_KEYWORDS.help]
)
SPACE = st.text(alphabet=" \t\n\u00a0\u3000", max_size=4)
TRAILING = st.text(alphabet="!?.,;:)…»\"' 🛑🙏", max_size=4)
TOPIC = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,20}", fullmatch=True)
WORD = st.from_regex(r"[A-Za-zÄÖÜäöüß]{1,10}", fullmatch=True)


def _any_case(word: str, flips: list[bool]) -> str:
    padded = flips + [False] * len(word)
    return "".join(c.upper() if f else c.lower() for c, f in zip(word, padded, strict=False))


@given(KEYWORDS, st.lists(st.booleans()), SPACE, SPACE, TRAILING)
def test_keyword_alone_matches_in_any_case_spacing_and_punctuation(
    keyword: tuple[str, InboundAction], flips: list[bool], before: str, after: str, tail: str
) -> None:
    word, action = keyword
    decision = classify(before + _any_case(word, flips) + after + tail)
    assert decision.action is action
    assert decision.topic_key is None


@given(KEYWORDS, TOPIC, st.lists(st.booleans()), SPACE, TRAILING)
def test_keyword_with_one_topic(
    keyword: tuple[str, InboundAction], topic: str, flips: list[bool], pad: str, tail: str
) -> None:
    word, action = keyword
    decision = classify(f"{pad}{word}{pad} {_any_case(topic, flips)}{pad}{tail}")
    if action is HELP:
        assert decision.action is CHAT
    else:
        assert decision == Decision(action, topic, rule=action.value)


@given(KEYWORDS, st.lists(WORD, min_size=2, max_size=6))
def test_keyword_followed_by_a_sentence_is_conversation(
    keyword: tuple[str, InboundAction], words: list[str]
) -> None:
    assert classify(" ".join([keyword[0], *words])).action is CHAT


@given(WORD, KEYWORDS, st.lists(WORD, max_size=3))
def test_keyword_inside_a_sentence_never_matches(
    first: str, keyword: tuple[str, InboundAction], rest: list[str]
) -> None:
    keywords = {w.casefold() for w in DEFAULT_KEYWORDS.opt_out + DEFAULT_KEYWORDS.opt_in}
    keywords |= {w.casefold() for w in DEFAULT_KEYWORDS.help}
    if first.casefold() in keywords:
        return
    assert classify(" ".join([first, keyword[0], *rest])).action is CHAT


@given(st.one_of(st.none(), st.text()), st.booleans())
def test_classify_is_total_and_consistent(text: str | None, blocked: bool) -> None:
    decision = classify(text, blocked=blocked)
    assert decision.rule in {name for name, _ in RULES}
    if blocked:
        assert decision.action is IGNORE
    else:
        assert decision.action is not IGNORE
    if decision.topic_key is not None:
        assert decision.action in (OPT_IN, OPT_OUT)
        assert decision.topic_key == decision.topic_key.lower()
        assert decision.topic_key.strip() == decision.topic_key != ""
    if text is None or not text.strip():
        assert decision.action in (CHAT, IGNORE)
