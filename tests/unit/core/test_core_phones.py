"""Phone normalisation, timezone lookup and masking."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from outbound_core.phones import (
    UNKNOWN_TIMEZONE,
    InvalidPhone,
    mask_phone,
    mask_phones_in,
    normalize_e164,
    timezones_for_number,
)

PROPS = settings(max_examples=200, deadline=None, derandomize=True, database=None)

VALID = [
    "+12125550123",
    "+442079460018",
    "+33142685300",
    "+4930901820",
    "+819012345678",
    "+61291234567",
    "+5511987654321",
]


@pytest.mark.parametrize("phone", VALID)
def test_e164_is_kept(phone: str) -> None:
    assert normalize_e164(phone) == phone
    assert normalize_e164(f"  {phone}  ") == phone


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("(212) 555-0123", "US", "+12125550123"),
        ("212.555.0123", "US", "+12125550123"),
        ("020 7946 0018", "GB", "+442079460018"),
        ("01 42 68 53 00", "FR", "+33142685300"),
        ("+1 212 555 0123", None, "+12125550123"),
        ("+1 (212) 555-0123", "GB", "+12125550123"),  # an explicit + wins over the region
    ],
)
def test_formats_are_normalised(raw: str, region: str | None, expected: str) -> None:
    assert normalize_e164(raw, default_region=region) == expected


def test_national_format_needs_a_default_region() -> None:
    with pytest.raises(InvalidPhone, match="E.164") as exc:
        normalize_e164("2125550123")
    assert "2125550123" not in str(exc.value)


@pytest.mark.parametrize("raw", ["", "   ", None])
def test_empty_phone(raw: str | None) -> None:
    with pytest.raises(InvalidPhone, match="empty"):
        normalize_e164(raw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raw", "region"),
    [
        ("+1212555012", None),  # too short
        ("+12125550123456789", None),
        ("+10005550123", None),  # invalid area code
        ("hello", "US"),
        ("+", None),
        ("2125550123999", "US"),
        ("+999123456789", None),
    ],
)
def test_invalid_numbers_raise_without_echoing_the_number(raw: str, region: str | None) -> None:
    with pytest.raises(InvalidPhone) as exc:
        normalize_e164(raw, default_region=region)
    digits = re.sub(r"\D", "", raw)
    if len(digits) >= 7:
        assert digits not in re.sub(r"\D", "", str(exc.value))
    assert isinstance(exc.value, ValueError)


@given(
    st.text(alphabet="0123456789", min_size=7, max_size=17),
    st.booleans(),
    st.sampled_from([None, "US", "GB", "DE"]),
)
@PROPS
def test_any_input_normalises_or_raises_masked(digits: str, plus: bool, region: str | None) -> None:
    raw = ("+" if plus else "") + digits
    try:
        out = normalize_e164(raw, default_region=region)
    except InvalidPhone as exc:
        assert digits not in re.sub(r"\D", "", str(exc))
    else:
        assert re.fullmatch(r"\+\d{7,17}", out)  # ≤15 is the E.164 rule: see the xfail below
        assert normalize_e164(out) == out  # idempotent


@pytest.mark.xfail(
    reason="BUG: normalize_e164 trusts phonenumbers.is_valid_number, which accepts "
    "some 16-digit German numbers; E.164 allows at most 15 digits and "
    "mask_phones_in (8–15 digit runs) then leaves such a number unmasked in logs",
    strict=True,
)
def test_normalised_numbers_have_at_most_15_digits_and_are_maskable() -> None:
    try:
        out = normalize_e164("+4920100000000000")
    except InvalidPhone:
        return  # rejecting it is a fix too
    assert len(out) - 1 <= 15
    assert out[1:] not in mask_phones_in(f"dialling {out} now")


@pytest.mark.xfail(
    reason="BUG: mask_phone keeps 4 leading + 2 trailing digits, so a value of "
    "exactly 6 digits is returned unmasked (InvalidPhone then echoes the whole "
    "input, e.g. '555123 is not a valid phone number')",
    strict=True,
)
def test_mask_phone_hides_something_for_six_digits() -> None:
    assert mask_phone("555123") != "555123"


def test_timezones_for_number() -> None:
    assert timezones_for_number("+12125550123") == ("America/New_York",)
    assert timezones_for_number("+442079460018") == ("Europe/London",)
    assert len(timezones_for_number("+19075551234")) >= 2
    assert len(timezones_for_number("+18005551234")) > 10
    assert timezones_for_number("+99912345678") == (UNKNOWN_TIMEZONE,)
    assert timezones_for_number("garbage") == (UNKNOWN_TIMEZONE,)


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("+12125550123", "+1212*****23"),
        ("12125550123", "1212*****23"),
        ("+1 (212) 555-0123", "+1212*****23"),
        ("1234567", "1234*67"),
        ("12345", "*****"),
        ("", ""),
    ],
)
def test_mask_phone(raw: str, masked: str) -> None:
    assert mask_phone(raw) == masked


@given(st.text(alphabet="0123456789", min_size=7, max_size=15), st.booleans())
@PROPS
def test_mask_phone_never_shows_the_whole_number(digits: str, plus: bool) -> None:
    out = mask_phone(("+" if plus else "") + digits)
    assert digits not in out
    assert out.endswith(digits[-2:])
    assert len(re.sub(r"\D", "", out)) == 6


@pytest.mark.parametrize(
    "template",
    [
        "dialling {p}",
        "{p}",
        "phone={p}",
        "to {p}.",
        "({p})",
        '{{"phone": "{p}"}}',
        "numbers: {p}, {p}",
        "tel:{p}",
        "a/{p}/b",
        "<{p}>",
    ],
)
def test_mask_phones_in_masks_e164_in_free_text(template: str) -> None:
    text = template.format(p="+12125550123")
    out = mask_phones_in(text)
    assert "12125550123" not in out
    assert "+1212*****23" in out


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-22T21:18:52.123Z",
        "at 2026-11-22T21:18:52.123456+00:00 ok",
        "evt_12345678901",
        "tsk_4Rv8sT1wXq2LmN0p",
        "call_123456789012345",
        "version 1.2.3",
        "port 127.0.0.1:8080",
        "1234567",
    ],
)
def test_mask_phones_in_leaves_timestamps_and_ids(text: str) -> None:
    assert mask_phones_in(text) == text


@given(
    st.sampled_from(VALID),
    st.sampled_from([" ", ", ", "=", "(", '"', "'", "\n", "[", "/"]),
    st.sampled_from([" ", ", ", ")", '"', "'", "\n", "]", ".", "/", ";"]),
    st.text(alphabet="abcdefghij ", max_size=12),
)
@PROPS
def test_mask_phones_in_property(phone: str, before: str, after: str, filler: str) -> None:
    text = f"{filler}{before}{phone}{after}{filler}"
    out = mask_phones_in(text)
    assert phone[1:] not in out
    assert mask_phone(phone) in out


@pytest.mark.xfail(
    reason="BUG: _PHONE_RE's lookahead (?![\\w:-]) refuses a number followed by "
    "':' or '-', so 'dialling +12125550123: busy' reaches the log unmasked",
    strict=True,
)
def test_mask_phones_in_number_followed_by_colon() -> None:
    assert "12125550123" not in mask_phones_in("dialling +12125550123: busy")
