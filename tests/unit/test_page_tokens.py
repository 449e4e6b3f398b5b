import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.domain.errors import MalformedRequest
from chalicelib.store import pages

pytestmark = pytest.mark.unit

SCOPE = "acc_1/lists/lst_1"


def test_a_token_reads_back_its_position_in_its_own_scope_only() -> None:
    token = pages.encode(SCOPE, "R#+14155550100")
    assert token is not None
    assert pages.decode(SCOPE, token) == "R#+14155550100"
    with pytest.raises(MalformedRequest):
        pages.decode("acc_2/lists/lst_1", token)


@pytest.mark.parametrize("token", ["eArDqQ", "w6k", "not a token", "====", "YWJj", "x" * 5000, "\u00e9t\u00e9"])
def test_a_token_we_did_not_issue_is_a_400_naming_page_token(token: str) -> None:
    with pytest.raises(MalformedRequest) as raised:
        pages.decode(SCOPE, token)
    assert raised.value.status == 400
    assert [e.field for e in raised.value.errors] == ["page_token"]


@given(st.text(min_size=1, max_size=300))
def test_any_text_is_a_position_we_issued_or_a_400(token: str) -> None:
    try:
        pages.decode(SCOPE, token)
    except MalformedRequest as exc:
        assert exc.errors[0].field == "page_token"


@given(st.binary(min_size=1, max_size=200))
def test_any_bytes_encoded_like_our_tokens_are_refused_unless_signed(raw: bytes) -> None:
    import base64

    token = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    with pytest.raises(MalformedRequest):
        pages.decode(SCOPE, token)
