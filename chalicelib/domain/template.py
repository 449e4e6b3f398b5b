"""Message templates in Liquid: checked when a campaign is created, rendered per recipient."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from liquid import BoundTemplate, Environment, StrictUndefined
from liquid.exceptions import LiquidError

# Strict: a variable missing for one recipient fails that recipient instead of sending a blank.
_ENV = Environment(undefined=StrictUndefined)


class TemplateError(ValueError):
    pass


@lru_cache(maxsize=256)
def compile_template(source: str) -> BoundTemplate:
    try:
        return _ENV.from_string(source)
    except LiquidError as exc:
        raise TemplateError(str(exc).splitlines()[0]) from exc


def render(source: str, variables: dict[str, Any]) -> str:
    try:
        return compile_template(source).render(**variables)
    except LiquidError as exc:
        raise TemplateError(str(exc).splitlines()[0]) from exc
