"""Read a contact CSV into the API's contact objects (header rules are the API's: it
normalises custom column names and phone formats, and reports problems per contact)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any


class CsvError(ValueError):
    pass


def read_contacts(path: Path) -> list[dict[str, Any]]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CsvError(f"{path}: not UTF-8 (byte {exc.start}); save the file as UTF-8") from exc
    reader = csv.reader(io.StringIO(text))
    rows = list(reader)
    if not rows:
        raise CsvError(f"{path}: empty file")
    header = [h.strip() for h in rows[0]]
    lowered = [h.lower() for h in header]
    if not any(h == "phone" or (h.startswith("phone") and h[5:].isdigit()) for h in lowered):
        raise CsvError(f"{path}: no phone column (phone or phone1…phone10)")
    contacts = []
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise CsvError(f"{path}:{line}: {len(row)} cells, the header has {len(header)}")
        contacts.append(
            {h: cell.strip() for h, cell in zip(header, row, strict=True) if cell.strip()}
        )
    return contacts
