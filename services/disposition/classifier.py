"""A transparent, rule-based transcript classifier for calls that ended without an outcome
label. The rules are data (``transcript_rules.json``): explicit phrases for opt-out, wrong
number and callback (with a requested time). Pure, no I/O after loading."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

RULES_PATH = Path(__file__).with_name("transcript_rules.json")


@dataclass(frozen=True)
class Rule:
    label: str
    patterns: tuple[re.Pattern[str], ...]


@dataclass(frozen=True)
class CallbackTime:
    pattern: re.Pattern[str]
    unit: str
    amount: int | None


@dataclass(frozen=True)
class Rules:
    rules: tuple[Rule, ...]
    callback_times: tuple[CallbackTime, ...]


@dataclass(frozen=True)
class Classified:
    label: str
    matched: str  # the phrase that decided it: the classifier says why
    callback_at: datetime | None = None


def _compile(phrase: str) -> re.Pattern[str]:
    return re.compile(rf"\b(?:{phrase})\b", re.IGNORECASE)


def parse_rules(raw: Mapping[str, Any]) -> Rules:
    return Rules(
        rules=tuple(
            Rule(label=r["label"], patterns=tuple(_compile(p) for p in r["phrases"]))
            for r in raw["rules"]
        ),
        callback_times=tuple(
            CallbackTime(pattern=_compile(t["pattern"]), unit=t["unit"], amount=t.get("amount"))
            for t in raw.get("callback_times", [])
        ),
    )


@lru_cache
def default_rules() -> Rules:
    return parse_rules(json.loads(RULES_PATH.read_text()))


def _contact_text(transcript: Sequence[Mapping[str, str]]) -> str:
    return "\n".join(
        t.get("text", "") for t in transcript if t.get("role") in ("user", "contact", "customer")
    )


def callback_time(text: str, *, ended_at: datetime, rules: Rules) -> datetime | None:
    for t in rules.callback_times:
        m = t.pattern.search(text)
        if m is None:
            continue
        amount = t.amount if t.amount is not None else int(m.group(1))
        return ended_at + timedelta(**{t.unit: amount})
    return None


def classify(
    transcript: Sequence[Mapping[str, str]], *, ended_at: datetime, rules: Rules | None = None
) -> Classified | None:
    """The label the contact's own words give, or None when no rule matches."""
    rules = rules or default_rules()
    text = _contact_text(transcript)
    if not text.strip():
        return None
    for rule in rules.rules:
        for pattern in rule.patterns:
            m = pattern.search(text)
            if m is None:
                continue
            at = None
            if rule.label == "callback":
                at = callback_time(text, ended_at=ended_at, rules=rules)
            return Classified(label=rule.label, matched=m.group(0), callback_at=at)
    return None
