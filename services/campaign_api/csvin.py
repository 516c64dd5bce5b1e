"""Contact files: CSV bytes to raw contact rows, with every problem tied to its line. Pure.

Columns: ``phone`` or ``phone1``…``phone10``, ``name``, ``email``, ``timezone``; any other
column becomes a variable under its normalised header (``case number`` → ``CASE_NUMBER``)."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field

from campaign_api.domain import normalise_header

MAX_FILE_BYTES = 5 * 1024 * 1024
_PHONE = re.compile(r"^phone(\d{0,2})$")
_KNOWN = {"name", "email", "timezone", "sim_outcomes"}

TEMPLATE = (
    "phone,phone2,name,email,timezone,loan_amount,due_date\n"
    "+919876543210,,Priya Sharma,priya@example.com,Asia/Kolkata,75000,2027-02-15\n"
    "+12125550123,+12125550124,Sam Lee,,America/New_York,12000,2027-02-20\n"
)


class CsvError(ValueError):
    """The file as a whole cannot be read; ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, *, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class RowError:
    row: int  # line number in the file (the header is line 1)
    field: str
    message: str


@dataclass
class ParsedCsv:
    rows: list[dict[str, str]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # line number of each row
    errors: list[RowError] = field(default_factory=list)


def column_key(header: str) -> str:
    """The contact field a header maps to: ``Phone 1`` → ``phone1``, ``E-mail`` stays a
    variable (``E_MAIL``), ``case number`` → ``CASE_NUMBER``."""
    canon = normalise_header(header)
    compact = canon.lower().replace("_", "")
    if _PHONE.match(compact):
        return compact
    if canon.lower() in _KNOWN:
        return canon.lower()
    return canon


def parse_csv(data: bytes, *, max_bytes: int = MAX_FILE_BYTES, max_rows: int) -> ParsedCsv:
    """Raise :class:`CsvError` for a file that cannot be used at all; report row problems
    (ragged rows) in ``errors`` so a caller may reject the file or skip those rows."""
    if len(data) > max_bytes:
        raise CsvError(
            f"the file is {len(data)} bytes; the limit is {max_bytes} bytes (5 MB)", status=413
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CsvError(
            f"the file is not UTF-8 (invalid byte at offset {exc.start}); save it as UTF-8 CSV"
        ) from exc
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise CsvError("the file is empty; the first line must name the columns") from None
    except csv.Error as exc:
        raise CsvError(f"line 1: {exc}") from exc
    keys = [column_key(h) for h in header]
    if not any(_PHONE.match(k) for k in keys):
        raise CsvError(
            "no phone column: name one column phone (or phone1…phone10); "
            f"found {', '.join(h.strip() for h in header) or 'nothing'}"
        )
    empty = [i + 1 for i, k in enumerate(keys) if not k]
    if empty:
        raise CsvError(f"column(s) {empty} have no header")
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        raise CsvError(f"duplicate column(s) after normalising headers: {', '.join(dupes)}")
    out = ParsedCsv()
    line = reader.line_num
    try:
        for values in reader:
            row_line, line = line + 1, reader.line_num
            if not any(v.strip() for v in values):
                continue  # blank line
            if len(values) != len(keys):
                out.errors.append(
                    RowError(
                        row_line,
                        "row",
                        f"{len(values)} fields where the header has {len(keys)}",
                    )
                )
                continue
            if len(out.rows) >= max_rows:
                raise CsvError(
                    f"more than {max_rows} contacts; the limit is {max_rows} per campaign",
                    status=413,
                )
            out.rows.append({k: v.strip() for k, v in zip(keys, values, strict=True)})
            out.lines.append(row_line)
    except csv.Error as exc:
        raise CsvError(f"line {reader.line_num}: {exc}") from exc
    return out
