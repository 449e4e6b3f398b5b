import pytest

from chalicelib.domain.delivery import state_deltas
from chalicelib.domain.models import CampaignCreate
from chalicelib.domain.template import TemplateError, render

pytestmark = pytest.mark.unit


def test_template_renders_recipient_variables() -> None:
    assert render("Hi {{ first_name }}, {{ code | upcase }}", {"first_name": "Ada", "code": "x1"}) == "Hi Ada, X1"


def test_a_missing_variable_fails_instead_of_sending_a_blank() -> None:
    with pytest.raises(TemplateError, match="first_name"):
        render("Hi {{ first_name }}", {})


def test_campaign_with_a_broken_template_is_refused_at_creation() -> None:
    with pytest.raises(ValueError, match="template"):
        CampaignCreate(name="x", list_id="l", sender="Acme", template="Hi {{ name ")


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (None, "in_flight", {"in_flight": 1}),
        ("in_flight", "succeeded", {"in_flight": -1, "succeeded": 1}),
        ("in_flight", "queued", {"in_flight": -1, "waiting": 1}),
        ("queued", "in_flight", {"waiting": -1, "in_flight": 1}),
        (None, "queued", {"waiting": 1}),
        ("in_flight", "failed", {"in_flight": -1, "failed": 1}),
        ("in_flight", "unknown", {"in_flight": -1, "unknown": 1}),
        ("unknown", "succeeded", {"unknown": -1, "succeeded": 1}),
        (None, "failed", {"failed": 1}),
        ("succeeded", "succeeded", {}),
    ],
)
def test_each_state_change_moves_the_counted_buckets(old: str | None, new: str, expected: dict[str, int]) -> None:
    assert state_deltas(old, new) == expected


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("{% include '/etc/passwd' %}", "unexpected tag 'include'"),
        ("{% render 'other' %}", "unexpected tag 'render'"),
        ("Hi {{ first_name | system }}", "unknown filter 'system'"),
        ("{% if x %}{{ x | upcase | nosuch: 1 }}{% endif %}", "unknown filter 'nosuch'"),
    ],
)
def test_tags_that_reach_outside_and_unknown_filters_are_refused_at_creation(template: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        CampaignCreate(name="x", list_id="l", sender="Acme", template=template)


@pytest.mark.parametrize(
    ("template", "limit"),
    [
        ("{% for i in (1..100000000) %}x{% endfor %}", "loop iteration limit"),
        ("{% for i in (1..1000) %}{% for j in (1..1000) %}{% endfor %}{% endfor %}", "loop iteration limit"),
        ("{% for i in (1..9000) %}{{ long }}{% endfor %}", "output stream limit"),
        ("{% assign s = 'xx' %}{% for i in (1..40) %}{% assign s = s | append: s %}{% endfor %}", "namespace limit"),
    ],
)
def test_rendering_is_bounded_so_a_template_cannot_tie_up_dispatch(template: str, limit: str) -> None:
    CampaignCreate(name="x", list_id="l", sender="Acme", template=template)  # valid Liquid: accepted
    with pytest.raises(TemplateError, match=limit):
        render(template, {"long": "x" * 20})
