"""The E.164 fast path must never disagree with phonenumbers: whatever it accepts,
phonenumbers accepts unchanged; everything else is left to phonenumbers."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberType
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

from outbound_core.phones import InvalidPhone, _fast_e164, normalize_e164

_TYPES = [getattr(PhoneNumberType, n) for n in dir(PhoneNumberType) if n.isupper()]


def _slow(text: str) -> str | None:
    try:
        parsed = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _examples() -> list[str]:
    out = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for t in _TYPES:
            n = phonenumbers.example_number_for_type(region, t)
            if n is not None:
                out.append(phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.E164))
    return sorted(set(out))


EXAMPLES = _examples()


def test_agrees_with_phonenumbers_on_every_example_number_and_its_neighbours() -> None:
    fast_hits = 0
    for e164 in EXAMPLES:
        variants = {e164, e164[:-1], e164 + "7", e164[:-1] + str((int(e164[-1]) + 1) % 10)}
        variants.add(e164[:4] + "0" + e164[4:])  # a national prefix / trunk zero
        for v in variants:
            got = _fast_e164(v)
            if got is not None:
                fast_hits += 1
                assert got == _slow(v), v
    # the fast path does serve most real numbers (otherwise this test proves nothing)
    assert fast_hits > len(EXAMPLES) // 2


@settings(max_examples=3000, deadline=None)
@given(
    cc=st.sampled_from(sorted(COUNTRY_CODE_TO_REGION_CODE)),
    rest=st.text(alphabet="0123456789", min_size=1, max_size=14),
)
def test_agrees_with_phonenumbers_on_random_digits(cc: int, rest: str) -> None:
    text = f"+{cc}{rest}"
    got = _fast_e164(text)
    if got is not None:
        assert got == _slow(text)


@pytest.mark.parametrize("text", ["+12125550123", "+919876543210", "+442071838750"])
def test_common_numbers_take_the_fast_path(text: str) -> None:
    assert _fast_e164(text) == text
    assert normalize_e164(text) == text


def test_rejections_still_come_from_phonenumbers_with_their_reason() -> None:
    with pytest.raises(InvalidPhone, match="not a valid phone number"):
        normalize_e164("+12125550")
    assert _fast_e164("+12125550") is None
