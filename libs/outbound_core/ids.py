"""Prefixed identifiers (``cmp_…``, ``tsk_…``) — random ones for new things, stable ones for
things whose identity must survive redelivery (a call is the same call however often its
dispatch arrives)."""

from __future__ import annotations

import hashlib
import secrets

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

PREFIXES = frozenset(
    {"org", "ws", "key", "cmp", "tsk", "call", "agt", "num", "wh", "msg", "evt", "lease", "dlv"}
)


# two base-62 digits at a time (least significant first, as one at a time would give): ids
# are minted 10,000 at a time when a campaign is created
_PAIRS = [_ALPHABET[i % 62] + _ALPHABET[i // 62] for i in range(62 * 62)]


def _encode(raw: bytes, length: int) -> str:
    n = int.from_bytes(raw, "big")
    out = []
    for _ in range(length // 2):
        n, r = divmod(n, 3844)
        out.append(_PAIRS[r])
    if length % 2:
        out.append(_ALPHABET[n % 62])
    return "".join(out)


def new_id(prefix: str, length: int = 16) -> str:
    """A random id such as ``cmp_4Rv8sT1wXq2LmN0p``."""
    if prefix not in PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    return f"{prefix}_{_encode(secrets.token_bytes(16), length)}"


def stable_id(prefix: str, *parts: object, length: int = 16) -> str:
    """A deterministic id derived from ``parts``: the same inputs always give the same id."""
    if prefix not in PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return f"{prefix}_{_encode(digest, length)}"


def has_prefix(value: str, prefix: str) -> bool:
    return value.startswith(prefix + "_") and len(value) > len(prefix) + 1
