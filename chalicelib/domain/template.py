"""Message templates in Liquid: checked when a campaign is created, rendered per recipient.

Templates are customer input rendered inside dispatch, once per recipient, so the environment is closed
and bounded:
- no tag that reaches outside the template (`include`, `render`): refused when the template is checked;
- every filter it names must exist: an unknown one is refused when the template is checked, not found
  out recipient by recipient at send time (Liquid's standard filters, `json` for HTTP actions' bodies, and
  `track`, which makes a URL a recipient's tracked link: decision 43);
- rendering is bounded: loop iterations, output size, the size of what `assign` and `capture` hold and
  nesting depth; a render past a limit fails that recipient with the limit's name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from liquid import BoundTemplate, Environment, RenderContext, StrictUndefined
from liquid.exceptions import LiquidError
from liquid.filter import with_context

from chalicelib.domain.links import LinkError, check_url

# Tags that load other templates: a campaign's template stands alone.
REFUSED_TAGS = ("include", "render")


class _Bounded(Environment):
    loop_iteration_limit = 10_000  # iterations per render, nested loops included
    output_stream_limit = 100_000  # characters rendered (an SMS is at most 1,000)
    local_namespace_limit = 100_000  # bytes held by `assign` and `capture`
    context_depth_limit = 10


# Strict: a variable missing for one recipient fails that recipient instead of sending a blank.
_ENV = _Bounded(undefined=StrictUndefined)
for _tag in REFUSED_TAGS:
    del _ENV.tags[_tag]


def _json(value: object) -> str:
    """`{{ message | json }}`: a value as JSON (a string quoted and escaped), for HTTP actions' bodies."""
    return json.dumps(value, ensure_ascii=False, default=str)


_ENV.filters["json"] = _json


class TemplateError(ValueError):
    pass


# The render variable holding what makes a recipient's tracked link (decision 43): set by dispatch (and by
# the template preview, with a sample recipient); a render without it cannot track a link.
TRACKER = "__track_link"
Tracker = Callable[[str], str]
# A URL written in the template and piped straight into `track`: checked when the template is.
_STATIC_TRACKED = re.compile(r"""(["'])([^"']*)\1\s*\|\s*track\b""")


@with_context
def _track(value: object, *, context: RenderContext) -> str:
    """`{{ "https://acme.example/sale?c=" | append: code | track }}`: the URL as the recipient's short tracked
    link, `<links base URL>/l/<token>`."""
    try:
        url = check_url(str(value))
    except LinkError as exc:
        raise TemplateError(f"track: {exc}") from None
    tracker = context.globals.get(TRACKER)
    if not callable(tracker):
        raise TemplateError("track: tracked links are made only where a message is sent or previewed")
    link: str = tracker(url)
    return link


_ENV.filters["track"] = _track


@lru_cache(maxsize=256)
def compile_template(source: str) -> BoundTemplate:
    try:
        template = _ENV.from_string(source)
        unknown = sorted(set(template.filter_names()) - set(_ENV.filters))
    except LiquidError as exc:
        raise TemplateError(str(exc).splitlines()[0]) from exc
    if unknown:
        raise TemplateError(f"unknown filter {unknown[0]!r}")
    for _, url in _STATIC_TRACKED.findall(source):
        try:
            check_url(url)
        except LinkError as exc:
            raise TemplateError(f"track: {exc}") from None
    return template


def render(source: str, variables: dict[str, Any]) -> str:
    try:
        return compile_template(source).render(**variables)
    except LiquidError as exc:
        raise TemplateError(str(exc).splitlines()[0]) from exc


def locale_chain(locale: str | None) -> list[str]:
    """Where a recipient's locale looks for a localised template, most specific first: `pt-BR` gives
    `pt-br`, then `pt` (then the template's default)."""
    if not locale:
        return []
    parts = locale.replace("_", "-").lower().split("-")
    return ["-".join(parts[:n]) for n in range(len(parts), 0, -1)]


def pick_locale(locales: dict[str, Any], locale: str | None) -> str | None:
    """The key of `locales` a recipient with `locale` gets (None: the default)."""
    by_lower = {key.lower(): key for key in locales}
    return next((by_lower[tag] for tag in locale_chain(locale) if tag in by_lower), None)


def localised(default: str, texts: dict[str, str], locale: str | None) -> tuple[str, str | None]:
    """The template a recipient with `locale` gets, and the tag it came from (None: the default)."""
    tag = pick_locale(texts, locale)
    return (default, None) if tag is None else (texts[tag], tag)


def global_names(source: str) -> set[str]:
    """The root names a template reads from its variables (not those it assigns or loops over): each must
    be defined for every recipient, since an undefined one fails the render (StrictUndefined)."""
    return set(compile_template(source).global_variables())
