"""Reply handlers' conditions (decision 45): keywords read as one word, as STOP is; a regex searched in the
text; a catastrophic regex refused when made, and one that slips through takes nothing rather than holding
the webhook up."""

from __future__ import annotations

import pytest

from chalicelib.domain.replies import PatternRefused, check_pattern, matches


@pytest.mark.parametrize(
    ("text", "taken"),
    [("Interested!", True), (" inter-ested ", True), ("INTÉRESSÉ", True), ("interested, thanks", False), ("", False)],
)
def test_keywords_are_the_whole_message_read_as_one_word(text: str, taken: bool) -> None:
    assert matches({"type": "keywords", "keywords": ["interested", "intéressé"]}, text) is taken


def test_a_regex_is_searched_case_insensitively_unless_asked() -> None:
    condition = {"type": "regex", "pattern": r"\border\s*#?\d+"}
    assert matches(condition, "where is my ORDER #1234?")
    assert not matches({**condition, "case_sensitive": True}, "where is my ORDER #1234?")
    assert not matches(condition, "no order here")
    assert matches({"type": "any"}, "")


@pytest.mark.parametrize("pattern", ["(a+)+$", "(x+x+)+y", "(a|aa)+$", "^(([a-z])+.)+[A-Z]([a-z])+$"])
def test_a_catastrophic_regex_is_refused_when_made(pattern: str) -> None:
    with pytest.raises(PatternRefused, match="too long"):
        check_pattern(pattern, case_sensitive=False)


@pytest.mark.parametrize("pattern", [r"\border\s*#?\d+", r"^(\d+)*$", "yes|yeah|yep", r"(.*a){20}"])
def test_a_usual_regex_is_taken(pattern: str) -> None:
    check_pattern(pattern, case_sensitive=False)


def test_a_regex_past_its_time_limit_takes_nothing() -> None:
    # Made directly, past the check: on a long enough message it would run for years; it stops and declines.
    assert not matches({"type": "regex", "pattern": "(a+)+$"}, "a" * 900 + "!")
    assert matches({"type": "regex", "pattern": "(a+)+$"}, "aaa")


def test_an_invalid_regex_is_refused() -> None:
    with pytest.raises(PatternRefused, match="not a valid regular expression"):
        check_pattern("(unclosed", case_sensitive=False)
