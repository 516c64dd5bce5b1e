"""Contact files: headers, phone columns, limits and every unreadable-file case."""

from __future__ import annotations

import pytest

from campaign_api.csvin import TEMPLATE, CsvError, column_key, parse_csv
from campaign_api.domain import normalise_contacts


def test_headers_are_normalised_and_mapped() -> None:
    assert column_key("Phone") == "phone"
    assert column_key(" phone 3 ") == "phone3"
    assert column_key("PHONE10") == "phone10"
    assert column_key("Name") == "name"
    assert column_key("case number") == "CASE_NUMBER"
    assert column_key("loan-amount (INR)") == "LOAN_AMOUNT_INR"


def test_rows_become_contacts_with_variables() -> None:
    data = b"Phone,Name,case number\n+12125550123,Ada, 42 \n"
    parsed = parse_csv(data, max_rows=10)
    assert parsed.rows == [{"phone": "+12125550123", "name": "Ada", "CASE_NUMBER": "42"}]
    assert parsed.lines == [2]
    norm = normalise_contacts(parsed.rows)
    assert norm.contacts[0]["variables"] == {"CASE_NUMBER": "42"}
    assert norm.contacts[0]["phones"] == ["+12125550123"]


def test_several_phone_columns_keep_their_order() -> None:
    data = b"phone2,phone1,name\n+12125550124,+12125550123,Sam\n"
    norm = normalise_contacts(parse_csv(data, max_rows=10).rows)
    assert norm.contacts[0]["phones"] == ["+12125550123", "+12125550124"]


def test_utf8_bom_and_crlf_and_quoted_newlines() -> None:
    data = '\ufeffphone,name\r\n+12125550123,"Zoë\r\nSecond line"\r\n+12125550124,Bo\r\n'
    parsed = parse_csv(data.encode(), max_rows=10)
    assert [r["name"] for r in parsed.rows] == ["Zoë\r\nSecond line", "Bo"]
    assert parsed.lines == [2, 4]


def test_ragged_rows_are_row_errors_with_line_numbers() -> None:
    data = b"phone,name\n+12125550123,Ada\n+12125550124\n\n+12125550125,Cy,extra\n"
    parsed = parse_csv(data, max_rows=10)
    assert [r["phone"] for r in parsed.rows] == ["+12125550123"]
    assert [(e.row, e.field) for e in parsed.errors] == [(3, "row"), (5, "row")]
    assert "1 fields where the header has 2" in parsed.errors[0].message


@pytest.mark.parametrize(
    ("data", "status", "needle"),
    [
        (b"", 422, "empty"),
        (b"name,email\nAda,a@example.com\n", 422, "no phone column"),
        ("phone,name\n+12125550123,Zo\u00eb\n".encode("latin-1"), 422, "not UTF-8"),
        (b"phone,Phone\n1,2\n", 422, "duplicate column"),
        (b"phone,\n1,2\n", 422, "no header"),
    ],
)
def test_unusable_files(data: bytes, status: int, needle: str) -> None:
    with pytest.raises(CsvError) as info:
        parse_csv(data, max_rows=10)
    assert info.value.status == status
    assert needle in str(info.value)


def test_limits_name_themselves() -> None:
    rows = "".join(f"+1212555{i:04d}\n" for i in range(11))
    with pytest.raises(CsvError) as info:
        parse_csv(f"phone\n{rows}".encode(), max_rows=10)
    assert info.value.status == 413
    assert "limit is 10 per campaign" in str(info.value)
    with pytest.raises(CsvError) as info:
        parse_csv(b"phone\n" + b"1" * 100, max_rows=10, max_bytes=50)
    assert info.value.status == 413
    assert "limit is 50 bytes" in str(info.value)


def test_template_parses_cleanly() -> None:
    parsed = parse_csv(TEMPLATE.encode(), max_rows=10)
    norm = normalise_contacts(parsed.rows)
    assert not parsed.errors
    assert not norm.issues
    assert len(norm.contacts) == 2
    assert norm.contacts[1]["phones"] == ["+12125550123", "+12125550124"]
    assert norm.contacts[0]["variables"]["LOAN_AMOUNT"] == "75000"
