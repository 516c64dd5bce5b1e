"""Phone-number rules shared by the API (normalisation), the planner (timezones) and every
log line (masking)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache, lru_cache

import phonenumbers
from phonenumbers import PhoneMetadata
from phonenumbers import timezone as pn_timezone
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

UNKNOWN_TIMEZONE = "Etc/Unknown"
# Phone-like: a run of 8 or more digits (optionally after "+") that is not part of a word; dates
# and times never have such runs, so they stay readable.
_PHONE_RE = re.compile(r"(?<![\w.])\+?\d{8,}(?!\w)")
E164_MAX_DIGITS = 15


_STRICT_E164 = re.compile(r"\+[1-9]\d{1,14}")
_TYPES = (
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
    "fixed_line",
)


class InvalidPhone(ValueError):
    pass


@dataclass(frozen=True)
class _Desc:
    lengths: frozenset[int]
    pattern: re.Pattern[str]

    def matches(self, nsn: str) -> bool:
        # as phonenumbers' _is_number_matching_desc: lengths first, when the desc lists any
        return (not self.lengths or len(nsn) in self.lengths) and bool(self.pattern.fullmatch(nsn))


@dataclass(frozen=True)
class _Rules:
    """One region's validation rules, compiled once: what ``phonenumbers.is_valid_number``
    checks (the general pattern, then any number type), without its per-call pattern look-ups
    and parsing. The number types are merged into one pattern per number length."""

    general: _Desc | None
    by_length: dict[int, re.Pattern[str]]
    leading_digits: re.Pattern[str] | None

    def valid(self, nsn: str) -> bool:
        types = self.by_length.get(len(nsn))
        return (
            types is not None
            and self.general is not None
            and self.general.matches(nsn)
            and bool(types.fullmatch(nsn))
        )


def _desc(desc: object) -> _Desc | None:
    pattern = getattr(desc, "national_number_pattern", None)
    if not pattern:
        return None
    return _Desc(frozenset(getattr(desc, "possible_length", ()) or ()), re.compile(pattern))


@cache
def _rules(region: str) -> _Rules | None:
    md = PhoneMetadata.metadata_for_region(region, None)
    if md is None:
        return None
    names = list(_TYPES)
    if not md.same_mobile_and_fixed_line_pattern:
        names.append("mobile")  # otherwise phonenumbers never looks at the mobile desc
    types = [d for d in (_desc(getattr(md, n, None)) for n in names) if d is not None]
    by_length: dict[int, re.Pattern[str]] = {}
    for size in range(2, 18):
        fits = [t.pattern.pattern for t in types if not t.lengths or size in t.lengths]
        if fits:
            by_length[size] = re.compile("|".join(f"(?:{p})" for p in fits))
    leading = re.compile(md.leading_digits) if md.leading_digits else None
    return _Rules(_desc(md.general_desc), by_length, leading)


@cache
def _national_prefix(country_code: int) -> re.Pattern[str] | None:
    regions = COUNTRY_CODE_TO_REGION_CODE[country_code]
    md = PhoneMetadata.metadata_for_region(regions[0], None)
    prefix = md.national_prefix_for_parsing if md is not None else None
    return re.compile(prefix) if prefix else None


def _fast_e164(text: str) -> str | None:
    """``text`` itself when it is a strict E.164 number that phonenumbers would accept
    unchanged, else None (the caller then asks phonenumbers, which also words the error).

    phonenumbers spends ~0.2 ms a number parsing and looking patterns up; a 10,000-contact
    upload is mostly E.164 already. This does the same checks with patterns compiled once per
    region and gives up on anything it would have to transform (a national prefix after the
    country code, a leading zero, a non-geographic code), so it never disagrees with
    phonenumbers (a property test compares them)."""
    if not _STRICT_E164.fullmatch(text):
        return None
    digits = text[1:]
    for size in (1, 2, 3):
        regions = COUNTRY_CODE_TO_REGION_CODE.get(int(digits[:size]))
        if regions is not None:
            break
    else:
        return None
    nsn = digits[size:]
    if len(nsn) < 2 or nsn[0] == "0" or "001" in regions:
        return None
    prefix = _national_prefix(int(digits[:size]))
    if prefix is not None and prefix.match(nsn):
        return None  # phonenumbers may strip it as a national prefix: let it decide
    for region in regions:
        rules = _rules(region)
        if rules is None:
            continue
        # as phonenumbers picks the number's region: the first whose leading digits match,
        # else the first for which the number is valid
        if rules.leading_digits is not None:
            if rules.leading_digits.match(nsn):
                return text if rules.valid(nsn) else None
        elif rules.valid(nsn):
            return text
    return None


def normalize_e164(raw: str, *, default_region: str | None = None) -> str:
    """Parse ``raw`` and return it in E.164, or raise :class:`InvalidPhone` saying why.

    A national format (no leading ``+``) is accepted only with a ``default_region``."""
    text = (raw or "").strip()
    if not text:
        raise InvalidPhone("phone is empty")
    fast = _fast_e164(text)
    if fast is not None:
        return fast
    if not text.startswith("+") and not default_region:
        raise InvalidPhone(
            f"{mask_phone(text)!s} is not in E.164 format (+<country><number>); "
            "give a default_region to accept national numbers"
        )
    try:
        parsed = phonenumbers.parse(text, None if text.startswith("+") else default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhone(f"{mask_phone(text)} cannot be parsed: {exc}") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidPhone(f"{mask_phone(text)} is not a valid phone number")
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    if len(e164) - 1 > E164_MAX_DIGITS:
        raise InvalidPhone(f"{mask_phone(text)} has more than {E164_MAX_DIGITS} digits")
    return e164


@lru_cache(maxsize=65536)
def timezones_for_number(e164: str) -> tuple[str, ...]:
    """Candidate IANA zones of a number (possibly several, or ``Etc/Unknown``)."""
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return (UNKNOWN_TIMEZONE,)
    zones = tuple(pn_timezone.time_zones_for_number(parsed))
    return zones or (UNKNOWN_TIMEZONE,)


def mask_phone(value: str) -> str:
    """Keep the country-ish prefix and the last two digits: ``+1212*****67``."""
    digits = re.sub(r"\D", "", value)
    plus = "+" if value.strip().startswith("+") else ""
    if len(digits) <= 4:
        return "*" * len(digits)
    if len(digits) <= 8:  # too short to show a prefix as well: only the last two digits
        return f"{plus}{'*' * (len(digits) - 2)}{digits[-2:]}"
    return f"{plus}{digits[:4]}{'*' * (len(digits) - 6)}{digits[-2:]}"


def mask_phones_in(text: str) -> str:
    """Mask every phone-like run of digits inside free text."""
    return _PHONE_RE.sub(lambda m: mask_phone(m.group(0)), text)
