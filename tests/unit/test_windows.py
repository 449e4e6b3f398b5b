from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import AfterValidator, BaseModel, ValidationError

from chalicelib.domain.windows import (
    WEEKDAYS,
    SendWindow,
    default_window,
    is_open,
    next_open,
    recipient_zones,
    validate_zone,
)

pytestmark = pytest.mark.unit

NEW_YORK = ("America/New_York",)
LORD_HOWE = ("Australia/Lord_Howe",)
KOLKATA = ("Asia/Kolkata",)
CHATHAM = ("Pacific/Chatham",)
NEWFOUNDLAND_AND_LABRADOR = ("America/Halifax", "America/St_Johns")
AUSTRALIAN_MOBILE = (
    "Australia/Adelaide",
    "Australia/Brisbane",
    "Australia/Eucla",
    "Australia/Lord_Howe",
    "Australia/Perth",
    "Australia/Sydney",
    "Indian/Christmas",
    "Indian/Cocos",
)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def window(start: str, end: str, **fields: Any) -> SendWindow:
    return SendWindow.model_validate({"start": start, "end": end, **fields})


MARKETING = window("08:00", "21:00")


# --- DST in New York ---------------------------------------------------------------------------


def test_new_york_opens_at_eight_local_on_both_sides_of_the_spring_change() -> None:
    # Saturday 7 March is EST (UTC-5), Sunday 8 March is EDT (UTC-4).
    assert not is_open(MARKETING, NEW_YORK, utc(2026, 3, 7, 12, 59))
    assert is_open(MARKETING, NEW_YORK, utc(2026, 3, 7, 13, 0))
    assert is_open(MARKETING, NEW_YORK, utc(2026, 3, 8, 1, 59))  # 20:59 EST on the 7th
    assert not is_open(MARKETING, NEW_YORK, utc(2026, 3, 8, 2, 0))
    assert not is_open(MARKETING, NEW_YORK, utc(2026, 3, 8, 11, 59))
    assert is_open(MARKETING, NEW_YORK, utc(2026, 3, 8, 12, 0))
    assert next_open(MARKETING, NEW_YORK, utc(2026, 3, 8, 2, 0)) == utc(2026, 3, 8, 12, 0)


def test_new_york_opens_an_hour_later_in_utc_after_the_autumn_change() -> None:
    assert next_open(MARKETING, NEW_YORK, utc(2026, 10, 31, 2, 0)) == utc(2026, 10, 31, 12, 0)
    assert next_open(MARKETING, NEW_YORK, utc(2026, 11, 1, 1, 0)) == utc(2026, 11, 1, 13, 0)
    assert not is_open(MARKETING, NEW_YORK, utc(2026, 11, 1, 12, 30))  # 07:30 EST
    assert is_open(MARKETING, NEW_YORK, utc(2026, 11, 2, 1, 59))  # 20:59 EST
    assert not is_open(MARKETING, NEW_YORK, utc(2026, 11, 2, 2, 0))


def test_a_window_starting_in_the_skipped_hour_opens_when_the_clocks_jump() -> None:
    # 02:00-03:00 does not exist on 8 March: at 07:00Z the wall clock goes from 01:59:59 EST to 03:00 EDT.
    skipped = window("02:30", "03:30")
    assert next_open(skipped, NEW_YORK, utc(2026, 3, 8, 0, 0)) == utc(2026, 3, 8, 7, 0)
    assert not is_open(skipped, NEW_YORK, utc(2026, 3, 8, 6, 59, 59))
    assert is_open(skipped, NEW_YORK, utc(2026, 3, 8, 7, 0))
    assert not is_open(skipped, NEW_YORK, utc(2026, 3, 8, 7, 30))
    assert next_open(skipped, NEW_YORK, utc(2026, 3, 8, 7, 30)) == utc(2026, 3, 9, 6, 30)


def test_a_window_in_the_repeated_hour_opens_twice_that_night() -> None:
    repeated = window("01:30", "01:45")
    assert next_open(repeated, NEW_YORK, utc(2026, 11, 1, 0, 0)) == utc(2026, 11, 1, 5, 30)  # 01:30 EDT
    assert next_open(repeated, NEW_YORK, utc(2026, 11, 1, 5, 45)) == utc(2026, 11, 1, 6, 30)  # 01:30 EST
    assert is_open(repeated, NEW_YORK, utc(2026, 11, 1, 6, 40))
    assert next_open(repeated, NEW_YORK, utc(2026, 11, 1, 6, 45)) == utc(2026, 11, 2, 6, 30)


# --- half-hour and quarter-hour zones ----------------------------------------------------------


def test_lord_howe_opens_half_an_hour_later_in_utc_when_its_summer_time_ends() -> None:
    # Until 2026-04-05 02:00 local Lord Howe is UTC+11, then UTC+10:30.
    assert next_open(MARKETING, LORD_HOWE, utc(2026, 4, 3, 10, 0)) == utc(2026, 4, 3, 21, 0)
    assert next_open(MARKETING, LORD_HOWE, utc(2026, 4, 4, 10, 0)) == utc(2026, 4, 4, 21, 30)
    # 01:30-02:00 happens twice, back to back: 14:30Z-15:00Z at +11 and 15:00Z-15:30Z at +10:30.
    repeated = window("01:30", "02:00")
    assert next_open(repeated, LORD_HOWE, utc(2026, 4, 4, 14, 0)) == utc(2026, 4, 4, 14, 30)
    assert is_open(repeated, LORD_HOWE, utc(2026, 4, 4, 15, 15))
    assert not is_open(repeated, LORD_HOWE, utc(2026, 4, 4, 15, 30))


def test_lord_howe_opens_half_an_hour_earlier_in_utc_when_its_summer_time_starts() -> None:
    # On 2026-10-04 at 02:00 local (+10:30) the clocks go to 02:30 (+11).
    assert next_open(MARKETING, LORD_HOWE, utc(2026, 10, 2, 11, 0)) == utc(2026, 10, 2, 21, 30)
    assert next_open(MARKETING, LORD_HOWE, utc(2026, 10, 3, 11, 0)) == utc(2026, 10, 3, 21, 0)
    # 02:00-02:15 does not exist on the 4th, so the window first opens on the 5th.
    skipped = window("02:00", "02:15")
    assert next_open(skipped, LORD_HOWE, utc(2026, 10, 3, 15, 0)) == utc(2026, 10, 4, 15, 0)


def test_kolkata_is_five_and_a_half_hours_ahead() -> None:
    assert not is_open(MARKETING, KOLKATA, utc(2026, 6, 15, 2, 29))
    assert is_open(MARKETING, KOLKATA, utc(2026, 6, 15, 2, 30))
    assert is_open(MARKETING, KOLKATA, utc(2026, 6, 15, 15, 29))
    assert not is_open(MARKETING, KOLKATA, utc(2026, 6, 15, 15, 30))
    assert next_open(MARKETING, KOLKATA, utc(2026, 6, 15, 16, 0)) == utc(2026, 6, 16, 2, 30)


def test_chatham_is_twelve_forty_five_ahead_in_winter_and_thirteen_forty_five_in_summer() -> None:
    assert next_open(MARKETING, CHATHAM, utc(2026, 6, 14, 10, 0)) == utc(2026, 6, 14, 19, 15)
    assert next_open(MARKETING, CHATHAM, utc(2027, 1, 14, 10, 0)) == utc(2027, 1, 14, 18, 15)


# --- which zones a recipient is in -------------------------------------------------------------


def test_the_recipients_own_time_zone_wins_over_its_number_and_the_campaign() -> None:
    assert recipient_zones("Europe/Lisbon", "+12125550123", "Europe/London") == ("Europe/Lisbon",)


def test_a_us_number_with_one_zone_is_evaluated_there() -> None:
    assert recipient_zones(None, "+12125550123", "Europe/London") == NEW_YORK


def test_a_number_that_cannot_be_placed_falls_back_to_the_campaigns_zone() -> None:
    assert recipient_zones(None, "+15551234567", "Europe/London") == ("Europe/London",)  # phonenumbers: Etc/Unknown
    assert recipient_zones(None, "not a number", "Europe/London") == ("Europe/London",)
    assert recipient_zones(None, None, "Europe/London") == ("Europe/London",)


def test_a_number_spanning_two_zones_is_open_only_while_both_are() -> None:
    zones = recipient_zones(None, "+17095550123", "Europe/London")
    assert zones == NEWFOUNDLAND_AND_LABRADOR
    # July: St John's (-2:30) opens at 10:30Z but Halifax (-3) only at 11:00Z; St John's closes first, 23:30Z.
    assert next_open(MARKETING, zones, utc(2026, 7, 15, 10, 0)) == utc(2026, 7, 15, 11, 0)
    assert is_open(MARKETING, zones, utc(2026, 7, 15, 23, 29))
    assert not is_open(MARKETING, zones, utc(2026, 7, 15, 23, 30))
    assert is_open(MARKETING, ("America/Halifax",), utc(2026, 7, 15, 23, 30))


def test_an_australian_mobile_is_open_only_from_cocos_opening_to_sydney_closing() -> None:
    zones = recipient_zones(None, "+61412345678", "Europe/London")
    assert zones == AUSTRALIAN_MOBILE
    # January: Cocos (+6:30) opens last at 01:30Z, Sydney and Lord Howe (+11) close first at 10:00Z.
    assert next_open(MARKETING, zones, utc(2027, 1, 15, 0, 0)) == utc(2027, 1, 15, 1, 30)
    assert is_open(MARKETING, zones, utc(2027, 1, 15, 9, 59))
    assert not is_open(MARKETING, zones, utc(2027, 1, 15, 10, 0))


def test_zones_across_the_date_line_share_the_hours_where_their_local_days_differ() -> None:
    zones = recipient_zones(None, "+18005550100", "Europe/London")  # toll-free: from Pago Pago to Guam
    assert {"Pacific/Pago_Pago", "Pacific/Guam", "America/St_Johns"} <= set(zones)
    # 22:00Z is 08:00 tomorrow in Guam (+10) and 11:00 today in Pago Pago (-11); St John's (-2:30) closes at 23:30Z.
    assert next_open(MARKETING, zones, utc(2026, 7, 15, 0, 0)) == utc(2026, 7, 15, 22, 0)
    assert is_open(MARKETING, zones, utc(2026, 7, 15, 23, 29))
    assert not is_open(MARKETING, zones, utc(2026, 7, 15, 23, 30))


def test_a_number_whose_zones_never_share_the_window_never_opens() -> None:
    zones = recipient_zones(None, "+18005550100", "Europe/London")
    office_hours = window("09:00", "17:00")  # 8 hours, and the zones' clocks spread over 11.5
    assert next_open(office_hours, zones, utc(2026, 7, 15, 0, 0)) is None


# --- days and blackout dates -------------------------------------------------------------------


def test_a_weekday_window_is_closed_at_the_weekend() -> None:
    weekdays = window("08:00", "21:00", days=["mon", "tue", "wed", "thu", "fri"])
    assert not is_open(weekdays, NEW_YORK, utc(2026, 7, 18, 16, 0))  # Saturday noon
    assert is_open(weekdays, NEW_YORK, utc(2026, 7, 20, 16, 0))  # Monday noon
    assert next_open(weekdays, NEW_YORK, utc(2026, 7, 18, 16, 0)) == utc(2026, 7, 20, 12, 0)


def test_next_open_skips_a_weekend_and_a_blacked_out_monday() -> None:
    holidays = window("08:00", "21:00", days=["mon", "tue", "wed", "thu", "fri"], blackout_dates=["2026-12-28"])
    friday_evening = utc(2026, 12, 26, 2, 0)  # Friday 25 December, 21:00 EST
    assert next_open(holidays, NEW_YORK, friday_evening) == utc(2026, 12, 29, 13, 0)


def test_a_blackout_date_is_the_recipients_local_date() -> None:
    fourth_of_july = window("08:00", "21:00", blackout_dates=["2026-07-04"])
    instant = utc(2026, 7, 4, 23, 30)  # 19:30 on the 4th in New York, 08:30 on the 5th in Tokyo
    assert not is_open(fourth_of_july, NEW_YORK, instant)
    assert is_open(fourth_of_july, ("Asia/Tokyo",), instant)
    assert next_open(fourth_of_july, NEW_YORK, utc(2026, 7, 4, 4, 0)) == utc(2026, 7, 5, 12, 0)  # from midnight EDT


def test_next_open_looks_366_days_ahead_and_no_further() -> None:
    mondays_2026 = [date(2026, 1, 5) + timedelta(weeks=week) for week in range(52)]
    mondays = window("08:00", "21:00", days=["mon"], blackout_dates=mondays_2026)
    assert next_open(mondays, ("Europe/London",), utc(2026, 1, 6, 0, 0)) == utc(2027, 1, 4, 8, 0)
    assert next_open(mondays, ("Europe/London",), utc(2026, 1, 1, 0, 0)) is None


def test_an_instant_inside_the_window_is_its_own_next_open() -> None:
    at = datetime(2026, 7, 15, 9, 30, 15, 500, tzinfo=UTC)
    assert next_open(MARKETING, KOLKATA, at) == at


def test_instants_in_other_offsets_are_read_as_the_same_instant() -> None:
    paris_afternoon = datetime.fromisoformat("2026-07-15T13:30:00+02:00")  # 11:30Z, 07:30 in New York
    assert not is_open(MARKETING, NEW_YORK, paris_afternoon)
    assert next_open(MARKETING, NEW_YORK, paris_afternoon) == utc(2026, 7, 15, 12, 0)
    assert next_open(MARKETING, NEW_YORK, paris_afternoon + timedelta(hours=1)) == utc(2026, 7, 15, 12, 30)


# --- validation and defaults -------------------------------------------------------------------


def test_a_window_reads_hh_mm_days_and_dates_from_json() -> None:
    parsed = window("08:30", "17:00", days=["sat", "sun"], blackout_dates=["2026-12-25"])
    assert parsed.start == time(8, 30)
    assert parsed.end == time(17, 0)
    assert parsed.days == ["sat", "sun"]
    assert parsed.blackout_dates == [date(2026, 12, 25)]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"start": "21:00", "end": "08:00"}, "end must be after start"),
        ({"start": "08:00", "end": "08:00"}, "end must be after start"),
        ({"start": "22:00", "end": "06:00"}, "a window crossing midnight is not supported"),
        ({"start": "08:00:30", "end": "21:00"}, "must be whole minutes"),
        ({"start": "08:00+02:00", "end": "21:00"}, "must be a local time without an offset"),
        ({"start": "08:00", "end": "21:00", "days": []}, "days must name at least one day"),
        ({"start": "08:00", "end": "21:00", "days": ["mon", "tue", "mon"]}, "days must not repeat: mon"),
        ({"start": "08:00", "end": "21:00", "days": ["monday"]}, "Input should be 'mon', 'tue'"),
        (
            {"start": "08:00", "end": "21:00", "blackout_dates": ["2026-12-25", "2026-12-25"]},
            "blackout_dates must not repeat: 2026-12-25",
        ),
        ({"start": "08:00", "end": "21:00", "timezone": "UTC"}, "Extra inputs are not permitted"),
    ],
)
def test_a_window_refuses_what_it_cannot_honour(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SendWindow.model_validate(fields)


def test_a_window_takes_at_most_100_blackout_dates() -> None:
    dates = [date(2026, 1, 1) + timedelta(days=n) for n in range(101)]
    with pytest.raises(ValidationError, match="at most 100 items"):
        window("08:00", "21:00", blackout_dates=dates)
    assert len(window("08:00", "21:00", blackout_dates=dates[:100]).blackout_dates) == 100


def test_marketing_defaults_to_the_tcpa_hours_and_transactional_to_no_window() -> None:
    assert default_window("marketing") == SendWindow(start=time(8), end=time(21), days=list(WEEKDAYS))
    assert default_window("transactional") is None


def test_validate_zone_accepts_iana_names_and_refuses_others() -> None:
    assert validate_zone("Pacific/Chatham") == "Pacific/Chatham"
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus_Mons'"):
        validate_zone("Mars/Olympus_Mons")

    class Campaign(BaseModel):
        timezone: Annotated[str, AfterValidator(validate_zone)]

    with pytest.raises(ValidationError, match="unknown time zone 'Europe/Atlantis'"):
        Campaign(timezone="Europe/Atlantis")


def test_a_naive_instant_or_no_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        is_open(MARKETING, NEW_YORK, datetime(2026, 7, 15, 12, 0))
    with pytest.raises(ValueError, match="aware"):
        next_open(MARKETING, NEW_YORK, datetime(2026, 7, 15, 12, 0))
    with pytest.raises(ValueError, match="at least one time zone"):
        next_open(MARKETING, (), utc(2026, 7, 15))


# --- next_open agrees with is_open, minute by minute, around DST changes -------------------------

SAMPLE_ZONES = [
    "America/New_York",
    "America/St_Johns",
    "America/Santiago",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "Asia/Kolkata",
    "Europe/London",
]
TRANSITION_DAYS = [
    utc(2026, 3, 8),
    utc(2026, 3, 29),
    utc(2026, 4, 5),
    utc(2026, 9, 6),
    utc(2026, 9, 27),
    utc(2026, 10, 4),
    utc(2026, 10, 25),
    utc(2026, 11, 1),
]
quarter_hours = st.integers(min_value=0, max_value=95).map(lambda n: time(n // 4, n % 4 * 15))


@settings(max_examples=60, deadline=None)
@given(
    zones=st.lists(st.sampled_from(SAMPLE_ZONES), min_size=1, max_size=2, unique=True),
    bounds=st.tuples(quarter_hours, quarter_hours).filter(lambda pair: pair[0] < pair[1]),
    days=st.lists(st.sampled_from(WEEKDAYS), min_size=1, max_size=7, unique=True),
    around=st.sampled_from(TRANSITION_DAYS),
    minutes=st.integers(min_value=-2 * 1440, max_value=1440),
)
def test_next_open_is_the_first_open_minute(
    zones: list[str], bounds: tuple[time, time], days: list[str], around: datetime, minutes: int
) -> None:
    candidate = SendWindow.model_validate({"start": bounds[0], "end": bounds[1], "days": days})
    at = around + timedelta(minutes=minutes)
    found = next_open(candidate, tuple(zones), at)
    scanned = 2 * 1440
    first = next(
        (
            at + timedelta(minutes=n)
            for n in range(scanned)
            if is_open(candidate, tuple(zones), at + timedelta(minutes=n))
        ),
        None,
    )
    if first is not None:
        assert found == first
    else:
        assert found is None or found >= at + timedelta(minutes=scanned)
    if found is not None:
        assert is_open(candidate, tuple(zones), found)
