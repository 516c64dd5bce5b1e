"""Phone-number rules shared by the API (normalisation), the planner (timezones) and every
log line (masking)."""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers
from phonenumbers import timezone as pn_timezone

UNKNOWN_TIMEZONE = "Etc/Unknown"
# Phone-like: a run of 8 or more digits (optionally after "+") that is not part of a word; dates
# and times never have such runs, so they stay readable.
_PHONE_RE = re.compile(r"(?<![\w.])\+?\d{8,}(?!\w)")
E164_MAX_DIGITS = 15


class InvalidPhone(ValueError):
    pass


def normalize_e164(raw: str, *, default_region: str | None = None) -> str:
    """Parse ``raw`` and return it in E.164, or raise :class:`InvalidPhone` saying why.

    A national format (no leading ``+``) is accepted only with a ``default_region``."""
    text = (raw or "").strip()
    if not text:
        raise InvalidPhone("phone is empty")
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
