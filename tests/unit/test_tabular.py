import csv
import io
import tracemalloc
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import Workbook
from pydantic import ValidationError

from chalicelib.domain.recipients import RowError, check_row
from chalicelib.domain.tabular import (
    DELIMITERS,
    HEAD_BYTES,
    MAX_FIELD_BYTES,
    Cells,
    ColumnMapping,
    DestinationColumn,
    FileProblem,
    Layout,
    check_mapping,
    csv_layout,
    csv_line,
    csv_records,
    default_mapping,
    neutralise,
    next_boundary,
    to_row,
    xlsx_layout,
    xlsx_records,
)

pytestmark = pytest.mark.unit

BOM = b"\xef\xbb\xbf"


def pieces(data: bytes, sizes: list[int]) -> Iterator[bytes]:
    """`data` cut into pieces of the given sizes, cycling through them."""
    i = k = 0
    while i < len(data):
        size = sizes[k % len(sizes)]
        yield data[i : i + size]
        i, k = i + size, k + 1


def read_csv(data: bytes, sizes: list[int] | None = None) -> tuple[Layout, list[Cells]]:
    layout = csv_layout(data[:HEAD_BYTES])
    rest = data[layout.data_start :]
    chunks = pieces(rest, sizes) if sizes else [rest]
    return layout, list(csv_records(chunks, layout, offset=layout.data_start, line=layout.first_line))


def problem_of(head: bytes) -> FileProblem:
    with pytest.raises(FileProblem) as caught:
        csv_layout(head)
    return caught.value


# ------------------------------------------------------------------------------------------------ CSV layout


@pytest.mark.parametrize("delimiter", DELIMITERS)
def test_layout_detects_the_delimiter_with_quoted_names_holding_the_others(delimiter: str) -> None:
    others = "".join(d for d in DELIMITERS if d != delimiter)
    head = f'id{delimiter}"phone{others}x"{delimiter}name\r\nr1{delimiter}+447911123456{delimiter}Ann\r\n'.encode()
    layout = csv_layout(head)
    assert layout == Layout("csv", ["id", f"phone{others}x", "name"], delimiter, head.index(b"\r\nr1") + 2, 2)


def test_layout_strips_the_bom_and_counts_it_in_offsets() -> None:
    data = BOM + b" Phone , Name \nx,y\n"
    layout = csv_layout(data)
    assert layout.header == ["Phone", "Name"]
    assert layout.data_start == len(BOM) + len(b" Phone , Name \n")
    assert data[layout.data_start :] == b"x,y\n"


def test_single_column_file_uses_comma_and_header_only_file_has_no_records() -> None:
    layout, cells = read_csv(b"phone\n+447911123456\n")
    assert (layout.header, layout.delimiter) == (["phone"], ",")
    assert [c.values for c in cells] == [["+447911123456"]]
    layout, cells = read_csv(b"phone;email")
    assert (layout.header, layout.delimiter, layout.data_start, cells) == (["phone", "email"], ";", 11, [])


def test_header_may_follow_blank_lines() -> None:
    layout, cells = read_csv(b"\r\n\nphone,name\n+447911123456,Ann\n")
    assert (layout.header, layout.first_line) == (["phone", "name"], 4)
    assert cells[0].line == 4


@pytest.mark.parametrize("head", [b"", b" \r\n\t\n", BOM, BOM + b"\n\n"])
def test_empty_files(head: bytes) -> None:
    assert problem_of(head).code == "empty"


def test_binary_files_are_not_text() -> None:
    book = io.BytesIO()
    Workbook().save(book)
    problem = problem_of(book.getvalue()[:HEAD_BYTES])
    assert problem.code == "not_text"
    assert "xlsx" in problem.detail
    assert problem_of(b"phone,name\n\x00\x01\x02\x03binary").code == "not_text"
    assert problem_of(bytes(range(1, 32)) * 20 + b"\n").code == "not_text"
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("a.txt", "hello")
    assert problem_of(archive.getvalue()).code == "not_text"


def test_text_that_is_not_utf8() -> None:
    assert problem_of("téléphone,nom\n".encode("latin-1")).code == "not_utf8"
    assert problem_of("phone,name\n".encode("utf-16")).code == "not_utf8"


@pytest.mark.parametrize(
    ("head", "words"),
    [
        (b"+447911123456,Ann\n+447911123457,Bob\n", "looks like data"),
        (b"ann@example.com;Ann\n", "looks like data"),
        (b"44 7911 123456\tAnn\n", "looks like data"),
        (b"phone,,name\n", "column 2 of the first row has no name"),
        (b"phone,name,phone \n", "'phone' appears twice"),
    ],
)
def test_no_header(head: bytes, words: str) -> None:
    problem = problem_of(head)
    assert problem.code == "no_header"
    assert words in problem.detail


def test_a_header_longer_than_the_head_is_refused() -> None:
    head = b"phone," + b"x" * HEAD_BYTES
    assert problem_of(head[:HEAD_BYTES]).code == "no_header"


# ----------------------------------------------------------------------------------------------- CSV records


def test_quoted_fields_crlf_and_physical_line_numbers() -> None:
    data = (
        b"id,phone,note\r\n"
        b'r1,+447911123456,"says ""hi"", twice"\r\n'
        b'r2,+447911123457,"two\r\nlines"\r\n'
        b"\r\n"
        b'r3,+447911123458,"three\nlf\nlines"\n'
        b"r4,+447911123459,last"
    )
    _, cells = read_csv(data)
    assert [(c.line, c.values, c.problem) for c in cells] == [
        (2, ["r1", "+447911123456", 'says "hi", twice'], None),
        (3, ["r2", "+447911123457", "two\r\nlines"], None),
        (6, ["r3", "+447911123458", "three\nlf\nlines"], None),
        (9, ["r4", "+447911123459", "last"], None),
    ]
    assert [c.next_line for c in cells] == [3, 5, 9, 9]
    assert cells[-1].resume == len(data)
    assert data[cells[0].resume : cells[1].resume] == b'r2,+447911123457,"two\r\nlines"\r\n'


@pytest.mark.parametrize("delimiter", DELIMITERS)
def test_each_dialect_with_quotes(delimiter: str) -> None:
    rows = [["id", "phone", "note"], ["a", "+447911123456", f'x{delimiter}y "q"\nz'], ["b", "+447911123457", ""]]
    text = io.StringIO()
    csv.writer(text, delimiter=delimiter, quoting=csv.QUOTE_ALL, lineterminator="\r\n").writerows(rows)
    layout, cells = read_csv(text.getvalue().encode())
    assert layout.delimiter == delimiter
    assert [c.values for c in cells] == rows[1:]
    assert [c.line for c in cells] == [2, 4]


def test_ragged_records_are_problems_and_the_rest_parse() -> None:
    data = b"a,b,c,d\n1,2,3,4\n1,2,3,4,5\n1,2,3\n5,6,7,8\n"
    _, cells = read_csv(data)
    assert [(c.line, c.problem) for c in cells] == [
        (2, None),
        (3, "has 5 fields; the header has 4"),
        (4, "has 3 fields; the header has 4"),
        (5, None),
    ]
    assert cells[1].values is None
    assert cells[3].values == ["5", "6", "7", "8"]


def test_invalid_utf8_in_a_middle_row_fails_that_row_only() -> None:
    data = "phone,name\n+447911123456,Zoë\n+447911123457,".encode() + "Zoë".encode("latin-1") + b"\n+4479,Al\n"
    _, cells = read_csv(data, [3])
    assert [(c.line, c.values, c.problem) for c in cells] == [
        (2, ["+447911123456", "Zoë"], None),
        (3, None, "not UTF-8 text"),
        (4, ["+4479", "Al"], None),
    ]


def test_a_two_megabyte_field_is_a_problem_read_in_bounded_memory() -> None:
    huge = b"x" * (2 * 1024 * 1024)
    data = b"id,phone\r\nr1,+447911123456\r\nr2," + huge + b'\r\nr3,"' + huge + b'"\r\nr4,+447911123457\r\n'
    layout = csv_layout(data[:HEAD_BYTES])
    rest = data[layout.data_start :]
    tracemalloc.start()
    try:
        cells = []
        chunks = pieces(rest, [64 * 1024])
        for cell in csv_records(chunks, layout, offset=layout.data_start, line=layout.first_line):
            cells.append(cell)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024
    assert [(c.line, c.problem) for c in cells] == [
        (2, None),
        (3, "a field of 2,097,152 bytes; at most 131,072"),
        (4, "a field of 2,097,152 bytes; at most 131,072"),
        (5, None),
    ]
    assert cells[3].values == ["r4", "+447911123457"]
    assert cells[3].resume == len(data)


@pytest.mark.parametrize("quoted", [False, True])
def test_the_field_limit_is_exact(quoted: bool) -> None:
    def field(size: int) -> bytes:
        return b'"' + b"y" * size + b'"' if quoted else b"y" * size

    data = b"a,b\r\n1," + field(MAX_FIELD_BYTES) + b"\r\n2," + field(MAX_FIELD_BYTES + 1) + b"\r\n3,z"
    _, cells = read_csv(data, [1000])
    assert cells[0].values == ["1", "y" * MAX_FIELD_BYTES]
    assert cells[1].problem == "a field of 131,073 bytes; at most 131,072"
    assert cells[2].values == ["3", "z"]


def test_blank_and_whitespace_lines_are_skipped() -> None:
    _, cells = read_csv(b"phone,name\n\n  \n,\n+447911123456,Ann\n\r\n")
    assert [(c.line, c.values) for c in cells] == [(5, ["+447911123456", "Ann"])]


def test_text_after_a_closing_quote_is_kept_like_the_csv_module() -> None:
    data = b'a,b\n"x"y,"p" q\n'
    _, cells = read_csv(data)
    expected = list(csv.reader(io.StringIO(data.decode(), newline="")))[1]
    assert cells[0].values == expected == ["xy", "p q"]


@st.composite
def csv_files(draw: st.DrawFn) -> tuple[bytes, str, list[str], list[list[str]], list[int]]:
    delimiter = draw(st.sampled_from(DELIMITERS))
    terminator = draw(st.sampled_from(["\n", "\r\n"]))
    quoting = draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]))
    width = draw(st.integers(2, 4))
    header = ["id", "phone", "first name", "note"][:width]
    alphabet = ["a", "Z", " ", ",", ";", "\t", '"', "'", "é", "😀", "\n", "\r\n", '""', "=1"]
    if terminator == "\r\n":  # the csv writer quotes a lone CR only when CR is in its line terminator
        alphabet.append("\r")
    cell = st.lists(st.sampled_from(alphabet), max_size=6).map("".join)
    rows = draw(st.lists(st.lists(cell, min_size=width, max_size=width), max_size=10))
    rows = [[f"r{i}{row[0]}", *row[1:]] for i, row in enumerate(rows)]
    text = io.StringIO()
    writer = csv.writer(text, delimiter=delimiter, quoting=quoting, lineterminator=terminator)  # type: ignore[arg-type]
    writer.writerow(header)
    lines = []
    for row in rows:
        lines.append(text.getvalue().count("\n") + 1)
        writer.writerow(row)
    data = (BOM if draw(st.booleans()) else b"") + text.getvalue().encode()
    return data, delimiter, header, rows, lines


@settings(max_examples=300, deadline=None)
@given(csv_files(), st.lists(st.integers(1, 40), min_size=1, max_size=5), st.data())
def test_dialects_round_trip_in_any_pieces_and_resume_exactly(
    file: tuple[bytes, str, list[str], list[list[str]], list[int]], sizes: list[int], data: st.DataObject
) -> None:
    raw, delimiter, header, rows, lines = file
    layout, whole = read_csv(raw)
    assert (layout.delimiter, layout.header) == (delimiter, header)
    assert [c.values for c in whole] == rows
    assert [c.line for c in whole] == lines
    assert all(c.problem is None for c in whole)
    _, cut = read_csv(raw, sizes)
    assert cut == whole
    if whole:
        k = data.draw(st.integers(0, len(whole) - 1))
        at = whole[k]
        rest = csv_records(pieces(raw[at.resume :], sizes), layout, offset=at.resume, line=at.next_line)
        assert list(rest) == whole[k + 1 :]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from([b"a", b",", b'"', b"\n", b"\r", b"\r\n", b"\xff", b"\xc3\xa9", b" "]), max_size=60),
    st.lists(st.integers(1, 7), min_size=1, max_size=4),
    st.data(),
)
def test_any_bytes_parse_the_same_in_pieces_and_resume_exactly(
    parts: list[bytes], sizes: list[int], data: st.DataObject
) -> None:
    raw = b"".join(parts)
    layout = Layout("csv", ["a", "b"], ",", 0, 1)
    whole = list(csv_records([raw], layout, offset=0, line=1))
    assert list(csv_records(pieces(raw, sizes), layout, offset=0, line=1)) == whole
    resumes = [c.resume for c in whole]
    assert resumes == sorted(set(resumes)) and all(0 < r <= len(raw) for r in resumes)
    assert all((c.values is None) != (c.problem is None) for c in whole)
    if whole:
        k = data.draw(st.integers(0, len(whole) - 1))
        at = whole[k]
        rest = csv_records(pieces(raw[at.resume :], sizes), layout, offset=at.resume, line=at.next_line)
        assert list(rest) == whole[k + 1 :]


# ------------------------------------------------------------------------------------------------------ XLSX


def workbook(rows: Mapping[int, Sequence[object]]) -> io.BytesIO:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for number, values in rows.items():
        for column, value in enumerate(values, start=1):
            sheet.cell(row=number, column=column, value=value)
    out = io.BytesIO()
    book.save(out)
    out.seek(0)
    return out


HEADER = ["id", "phone", "email", "joined", "score", "vip", "seen_at"]
SHEET: dict[int, Sequence[object]] = {
    2: HEADER,
    3: ["u1", 447911123456, "a@example.com", date(2024, 1, 31), 12.5, True, datetime(2024, 2, 1, 9, 30)],
    5: [42, 447911123457.0, None, date(2023, 12, 1), 3, False, None],
    6: ["u3", "+447911123458", None, None, None, None, None, "extra"],
    7: ["u4", "+447911123459"],
}


def test_xlsx_layout_and_records_as_text() -> None:
    file = workbook(SHEET)
    layout = xlsx_layout(file)
    assert layout == Layout("xlsx", HEADER, "", 3, 3)
    cells = list(xlsx_records(file, layout, row=layout.data_start))
    assert [(c.line, c.values, c.problem, c.resume) for c in cells] == [
        (3, ["u1", "447911123456", "a@example.com", "2024-01-31", "12.5", "true", "2024-02-01T09:30:00"], None, 4),
        (5, ["42", "447911123457", "", "2023-12-01", "3", "false", ""], None, 6),
        (6, None, "has 8 fields; the header has 7", 7),
        (7, ["u4", "+447911123459", "", "", "", "", ""], None, 8),
    ]
    assert [c.line for c in xlsx_records(file, layout, row=cells[1].resume)] == [6, 7]


def test_xlsx_rows_through_the_mapping_to_recipients() -> None:
    file = workbook(SHEET)
    layout = xlsx_layout(file)
    mapping = default_mapping(layout.header).model_copy(
        update={"types": {"joined": "date", "score": "number", "vip": "boolean"}, "default_region": "GB"}
    )
    check_mapping(mapping, layout.header)
    first = next(xlsx_records(file, layout, row=layout.data_start))
    assert first.values is not None
    row = to_row(mapping, layout.header, first.values)
    assert row["attributes"] == {"joined": "2024-01-31", "score": 12.5, "vip": True, "seen_at": "2024-02-01T09:30:00"}
    recipient = check_row(row, mapping.default_region)
    assert recipient.id == "u1"
    assert [d.address for d in recipient.destinations] == ["+447911123456", "a@example.com"]


def test_unreadable_and_empty_workbooks() -> None:
    with pytest.raises(FileProblem) as caught:
        xlsx_layout(io.BytesIO(b"phone,name\n+447911123456,Ann\n"))
    assert caught.value.code == "bad_xlsx"
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("a.txt", "hello")
    with pytest.raises(FileProblem) as caught:
        xlsx_layout(archive)
    assert caught.value.code == "bad_xlsx"
    with pytest.raises(FileProblem) as caught:
        xlsx_layout(workbook({}))
    assert caught.value.code == "empty"
    with pytest.raises(FileProblem) as caught:
        xlsx_layout(workbook({1: [447911123456, "Ann"]}))
    assert caught.value.code == "no_header"


# --------------------------------------------------------------------------------------------------- mapping


def test_default_mapping_from_header_names() -> None:
    header = ["Customer ID", "Mobile", "E-mail", "phone_2", "Email 2", "WhatsApp", "Language", "Time_Zone"]
    header += ["id", "Plan", "code"]
    mapping = default_mapping(header)
    assert mapping.id == "Customer ID"
    assert [(d.column, d.type.value) for d in mapping.destinations] == [
        ("Mobile", "phone"),
        ("E-mail", "email"),
        ("phone_2", "phone"),
        ("Email 2", "email"),
        ("WhatsApp", "whatsapp"),
    ]
    assert (mapping.locale, mapping.timezone, mapping.attributes, mapping.types) == ("Language", "Time_Zone", None, {})


def test_voice_columns_and_numbered_variants() -> None:
    mapping = default_mapping(["SIP URI", "voice_2", "Phone Number", "number 3", "cell", "tz"])
    assert [(d.column, d.type.value) for d in mapping.destinations] == [
        ("SIP URI", "voice"),
        ("voice_2", "voice"),
        ("Phone Number", "phone"),
        ("number 3", "phone"),
        ("cell", "phone"),
    ]


def test_default_mapping_refuses_files_without_or_with_too_many_destinations() -> None:
    with pytest.raises(FileProblem) as caught:
        default_mapping(["id", "name"])
    assert (caught.value.code, "no destination column" in caught.value.detail) == ("bad_mapping", True)
    with pytest.raises(FileProblem) as caught:
        default_mapping(["phone", "phone2", "phone3", "email", "email2", "sms"])
    assert caught.value.code == "bad_mapping"


def test_default_mapping_keeps_other_columns_as_string_attributes() -> None:
    header = ["user_id", "msisdn", "tz", "lang", "code", "user id"]
    mapping = default_mapping(header)
    assert (mapping.id, mapping.timezone, mapping.locale) == ("user_id", "tz", "lang")
    row = to_row(mapping, header, ["c1", "+447911123456", "Europe/London", "en-GB", "007", "x"])
    assert row == {
        "id": "c1",
        "destinations": [{"type": "phone", "address": "+447911123456"}],
        "attributes": {"code": "007", "user id": "x"},
        "locale": "en-GB",
        "timezone": "Europe/London",
    }
    assert check_row(row).locale == "en-GB"


def mapping_for(**fields: object) -> ColumnMapping:
    return ColumnMapping.model_validate({"destinations": [{"column": "phone", "type": "phone"}], **fields})


@pytest.mark.parametrize(
    ("mapping", "words"),
    [
        (mapping_for(id="ID"), "id names the column 'ID', which is not in the file's header"),
        (mapping_for(locale="phone"), "'phone' is mapped twice: as destinations[0] and as locale"),
        (mapping_for(id="id", attributes=["age", "id"]), "'id' is mapped twice: as id and as attributes"),
        (mapping_for(attributes=["nope"]), "attributes names the column 'nope', which is not in"),
        (mapping_for(types={"phone": "number"}), "'phone', which is not an attribute"),
        (mapping_for(attributes=["age"], types={"vip": "boolean"}), "'vip', which is not an attribute"),
    ],
)
def test_check_mapping_names_the_column(mapping: ColumnMapping, words: str) -> None:
    with pytest.raises(FileProblem) as caught:
        check_mapping(mapping, ["id", "phone", "age", "vip"])
    assert caught.value.code == "bad_mapping"
    assert words in caught.value.detail


def test_column_mapping_model_validation() -> None:
    check_mapping(mapping_for(id="id", types={"age": "number"}), ["id", "phone", "age"])
    bad: dict[str, Any]
    for bad in (
        {"default_region": "gb"},
        {"surprise": 1},
        {"types": {"age": "integer"}},
        {"destinations": [{"column": f"p{i}", "type": "phone"} for i in range(6)]},
        {"destinations": []},
        {"destinations": [{"column": "p", "type": "fax"}]},
    ):
        with pytest.raises(ValidationError):
            ColumnMapping.model_validate({"destinations": [{"column": "phone", "type": "phone"}], **bad})
    assert "description" in ColumnMapping.model_json_schema()["properties"]["types"]
    assert DestinationColumn.model_validate({"column": "e", "type": "email"}).type.value == "email"


TYPED = mapping_for(id="id", types={"age": "number", "vip": "boolean", "born": "date", "code": "string"})
TYPED_HEADER = ["id", "phone", "age", "vip", "born", "code"]


@pytest.mark.parametrize(
    ("cells", "attributes"),
    [
        (["42", "YES", "2000-02-29", "007"], {"age": 42, "vip": True, "born": "2000-02-29", "code": "007"}),
        (["-1.5", "0", " 20000229 ", ""], {"age": -1.5, "vip": False, "born": "2000-02-29"}),
        (["1e3", "False", "", " x "], {"age": 1000.0, "vip": False, "code": "x"}),
        (["", "", "", ""], {}),
    ],
)
def test_typed_attributes(cells: list[str], attributes: dict[str, object]) -> None:
    row = to_row(TYPED, TYPED_HEADER, ["r1", "+447911123456", *cells])
    assert row["attributes"] == attributes
    assert check_row(row).attributes == attributes


@pytest.mark.parametrize(
    ("cells", "field", "words"),
    [
        (["4O", "", "", ""], "attributes.age", "'4O' is not a number"),
        (["nan", "", "", ""], "attributes.age", "is not a number"),
        (["1e999", "", "", ""], "attributes.age", "is not a finite number"),
        (["9" * 39, "", "", ""], "attributes.age", "more than 38 digits"),
        (["", "maybe", "", ""], "attributes.vip", "is not a boolean"),
        (["", "", "31/12/2000", ""], "attributes.born", "is not a date"),
    ],
)
def test_cells_that_do_not_convert_reject_the_row(cells: list[str], field: str, words: str) -> None:
    with pytest.raises(RowError) as caught:
        to_row(TYPED, TYPED_HEADER, ["r1", "+447911123456", *cells])
    assert (caught.value.reason, caught.value.field, caught.value.id) == ("invalid_row", field, "r1")
    assert words in caught.value.detail


def test_a_row_without_any_destination() -> None:
    mapping = mapping_for(destinations=[{"column": "phone", "type": "phone"}, {"column": "mail", "type": "email"}])
    with pytest.raises(RowError) as caught:
        to_row(mapping, ["phone", "mail", "name"], [" ", "", "Ann"])
    assert (caught.value.reason, caught.value.field) == ("invalid_row", "destinations")
    assert caught.value.detail == "no destination: every destination cell is empty"
    row = to_row(mapping, ["phone", "mail", "name"], ["", "a@example.com", "Ann"])
    assert row["destinations"] == [{"type": "email", "address": "a@example.com"}]


# --------------------------------------------------------------------------------------------------- reports


def test_report_lines_neutralise_formulas() -> None:
    assert [neutralise(c) for c in ["=1+1", "+44", "-2", "@x", "\tx", "\rx", "ok", ""]] == [
        "'=1+1",
        "'+44",
        "'-2",
        "'@x",
        "'\tx",
        "'\rx",
        "ok",
        "",
    ]
    line = csv_line(["r1", '=HYPERLINK("x")', "a,b", "Zoë"])
    assert line == 'r1,"\'=HYPERLINK(""x"")","a,b",Zoë\r\n'.encode()
    assert next(csv.reader(io.StringIO(line.decode()))) == ["r1", '\'=HYPERLINK("x")', "a,b", "Zoë"]


def assert_cut_is_exact(raw: bytes, layout: Layout, start: int, line: int, at_least: int, sizes: list[int]) -> None:
    """Cutting the file at next_boundary's answer and reading both parts gives the records of the whole, and
    the cut is the first record boundary at or after `at_least`."""
    whole = list(csv_records([raw[start:]], layout, offset=start, line=line))
    found = next_boundary(pieces(raw[start:], sizes), layout, offset=start, line=line, at_least=at_least)
    if found is None:
        assert at_least > len(raw) or start == len(raw)
        return
    cut, cut_line = found
    assert at_least <= cut <= len(raw)
    assert not any(at_least <= c.resume < cut for c in whole)  # no earlier boundary was skipped
    before = list(csv_records([raw[start:cut]], layout, offset=start, line=line))
    after = list(csv_records([raw[cut:]], layout, offset=cut, line=cut_line))
    assert before + after == whole


@settings(max_examples=300, deadline=None)
@given(csv_files(), st.lists(st.integers(1, 40), min_size=1, max_size=5), st.data())
def test_a_file_cut_at_the_next_boundary_reads_as_the_whole(
    file: tuple[bytes, str, list[str], list[list[str]], list[int]], sizes: list[int], data: st.DataObject
) -> None:
    raw = file[0]
    layout = csv_layout(raw[:HEAD_BYTES])
    at_least = data.draw(st.integers(layout.data_start, len(raw) + 1))
    assert_cut_is_exact(raw, layout, layout.data_start, layout.first_line, at_least, sizes)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from([b"a", b",", b'"', b"\n", b"\r", b"\r\n", b"\xc3\xa9", b" "]), max_size=60),
    st.lists(st.integers(1, 7), min_size=1, max_size=4),
    st.data(),
)
def test_any_bytes_cut_at_the_next_boundary_read_as_the_whole(
    parts: list[bytes], sizes: list[int], data: st.DataObject
) -> None:
    raw = b"".join(parts)
    layout = Layout("csv", ["a", "b"], ",", 0, 1)
    assert_cut_is_exact(raw, layout, 0, 1, data.draw(st.integers(0, len(raw) + 1)), sizes)


def test_a_boundary_past_a_long_stretch_without_quotes_then_inside_quoted_newlines() -> None:
    unquoted = b"".join(b"+1415555%04d,plain\n" % i for i in range(1000))
    quoted = b"".join(b'+1416555%04d,"two\nlines"\n' % i for i in range(100))
    raw = b"phone,note\n" + unquoted + quoted
    layout = csv_layout(raw[:HEAD_BYTES])
    middle_of_quoted = len(raw) - 30 * 50 + 5
    for at_least in (layout.data_start + 1, len(b"phone,note\n") + len(unquoted) - 3, middle_of_quoted):
        assert_cut_is_exact(raw, layout, layout.data_start, layout.first_line, at_least, [4096])
