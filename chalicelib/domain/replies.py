"""Reply handlers (decision 45): which inbound messages a handler takes. Pure.

A condition is `any` message, a `keywords` set (the message read as one word, as STOP is: accents, case,
spaces and punctuation dropped), or a `regex` searched in the text. A regular expression is the customer's:
it runs under a time limit (the `regex` module's `timeout`), so a catastrophic one (`(a+)+$`) cannot hold a
webhook up; one that is slow on simple probes is refused when the handler is made.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import regex

from chalicelib.domain.responses import keyword

# How long one search may take on a message (at most 1,000 characters) before it counts as no match.
MATCH_SECONDS = 0.05
# How long a pattern may take on each probe when the handler is made (a linear one takes ~15 ms on 2,000
# characters; a catastrophic one, seconds).
PROBE_SECONDS = 0.1
PROBE_LENGTH = 2_000


class PatternRefused(ValueError):
    """Why a handler's pattern is refused (invalid, or slow to match)."""


def compiled(pattern: str, case_sensitive: bool) -> Any:
    flags = regex.V0 if case_sensitive else regex.V0 | regex.IGNORECASE
    try:
        return regex.compile(pattern, flags)
    except (regex.error, OverflowError, RecursionError) as exc:
        raise PatternRefused(f"not a valid regular expression: {exc}") from None


def _probes(pattern: str) -> Iterable[str]:
    """Texts that make a backtracking pattern slow: long runs of each character it names (and of a few
    usual ones), ending in a character that spoils the match, as the reported catastrophes do."""
    characters = dict.fromkeys([c for c in pattern if c.isalnum() or c in " .-_@"] + ["a", "1", " "])
    for c in characters:
        for tail in ("!", "\x00", ""):
            yield c * PROBE_LENGTH + tail
    yield "".join(characters) * (PROBE_LENGTH // max(len(characters), 1)) + "!"


def check_pattern(pattern: str, case_sensitive: bool) -> None:
    """Refuse a pattern that does not compile or that runs past the probe limit on a probe."""
    expression = compiled(pattern, case_sensitive)
    for probe in _probes(pattern):
        try:
            expression.search(probe, timeout=PROBE_SECONDS)
        except TimeoutError:
            raise PatternRefused(
                "takes too long to match (catastrophic backtracking, e.g. a nested quantifier like (a+)+): "
                "rewrite it without nested repetition"
            ) from None


def matches(condition: dict[str, Any], text: str) -> bool:
    """Whether a handler's condition takes the message. A regex past its time limit takes nothing."""
    kind = condition["type"]
    if kind == "any":
        return True
    if kind == "keywords":
        return keyword(text) in {keyword(str(word)) for word in condition.get("keywords") or ()}
    expression = compiled(str(condition["pattern"]), bool(condition.get("case_sensitive")))
    try:
        return expression.search(text[:1000], timeout=MATCH_SECONDS) is not None
    except TimeoutError:
        return False
