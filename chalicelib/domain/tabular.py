"""Reading uploaded recipient lists (CSV and XLSX) and mapping their columns to list items. Pure: no AWS.

CSV is read as UTF-8 (a BOM is allowed) with `,` `;` or TAB between fields, detected from the header, and RFC 4180
quoting (doubled quotes, delimiters and newlines inside quotes). `csv_records` streams a file from any record
boundary, holding one record and one piece of input at a time, and tells where each record ends so that the ingest
worker can stop and resume exactly. A record that cannot be read (a huge field, the wrong number of fields, bytes that
are not UTF-8) is reported on its own; the records around it still parse. XLSX is read with openpyxl in read-only mode.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any, BinaryIO, Literal

from openpyxl import load_workbook
from pydantic import BaseModel, ConfigDict, Field

from chalicelib.domain.recipients import MAX_DESTINATIONS, DestinationType, RowError, iso_date, number_problem

MAX_FIELD_BYTES = 128 * 1024
HEAD_BYTES = 64 * 1024
DELIMITERS = (",", ";", "\t")

_BOM = b"\xef\xbb\xbf"
_QUOTE, _NL, _CR = ord('"'), ord("\n"), ord("\r")
# Bytes that do not occur in text: C0 controls other than TAB, LF, VT, FF, CR; and DEL.
_CONTROLS = bytes([*range(0, 9), *range(14, 32), 127])
_TEXT_BYTES = bytes(b for b in range(256) if b not in _CONTROLS)
_BINARY_SIGNATURES = {
    b"PK\x03\x04": "a ZIP archive (an .xlsx file? upload it as .xlsx)",
    b"\xd0\xcf\x11\xe0": "an old .xls",
}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[0-9 ()./\-]{7,}$")
_INTEGER = re.compile(r"^[+-]?[0-9]+$")
_DECIMAL = re.compile(r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$")
_BOOLEANS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


class FileProblem(ValueError):
    """The whole file cannot be read; `code` is one of: empty, no_header, not_text, not_utf8, bad_xlsx, bad_mapping,
    too_large."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code, self.detail = code, detail


@dataclass(frozen=True)
class Layout:
    format: Literal["csv", "xlsx"]
    header: list[str]  # column names as written (stripped; BOM removed)
    delimiter: str  # "," ";" or "\t" (CSV); "" for XLSX
    data_start: int  # CSV: byte offset of the first data record; XLSX: sheet row number (1-based) of the first data row
    first_line: int  # line number (1-based) of the first data record, for reports


@dataclass(frozen=True)
class Cells:
    line: int  # CSV: 1-based physical line where the record starts; XLSX: sheet row number
    values: list[str] | None  # the record's cells as strings; None when the record could not be read
    problem: str | None  # why it could not be read
    resume: int  # where reading continues after this record: CSV byte offset just past it; XLSX next row number
    next_line: int = 0  # the line number at `resume` (pass it as `line` when resuming there)


# ---------------------------------------------------------------------------------------------------------- CSV


@dataclass
class _Record:
    line: int
    end: int
    next_line: int
    fields: list[bytes]  # at most `keep` of them
    count: int  # how many fields the record has
    biggest: int  # size of its largest field when one is over MAX_FIELD_BYTES, else 0


_START, _UNQUOTED, _QUOTED, _QUOTE_SEEN, _QUOTE_CR = range(5)


class _Scanner:
    """Splits CSV bytes into records incrementally, tracking byte offsets and physical lines. Keeps at most `keep`
    fields of a record and no field beyond MAX_FIELD_BYTES, so memory stays bounded whatever the input."""

    def __init__(self, delimiter: str, keep: int, pos: int, line: int) -> None:
        self.delimiter, self.separator = ord(delimiter), delimiter.encode()
        self.stop = re.compile(b"[" + re.escape(delimiter.encode()) + b"\n]")
        self.keep, self.pos, self.line = keep, pos, line
        self._new_record(pos)

    def _new_record(self, start: int) -> None:
        self.start, self.start_line = start, self.line
        self.fields: list[bytes] = []
        self.count = self.size = self.biggest = self.newlines = 0
        self.field, self.cr = bytearray(), False
        self.state = _START

    def _add(self, data: bytes, i: int, j: int) -> None:
        if j <= i:
            return
        self.size += j - i
        self.newlines += data.count(b"\n", i, j)
        self.cr = data[j - 1] == _CR
        if self.size > MAX_FIELD_BYTES + 1:  # + 1: the CR of a CRLF, removed at the end of the record
            self.field = bytearray()
        elif self.count < self.keep:
            self.field += memoryview(data)[i:j]

    def _end_field(self) -> None:
        if self.size > MAX_FIELD_BYTES:
            self.biggest = max(self.biggest, self.size)
        elif self.count < self.keep:
            self.fields.append(bytes(self.field))
        self.count += 1
        self.field, self.size, self.cr = bytearray(), 0, False

    def _end_record(self, end: int) -> _Record | None:
        if self.state == _UNQUOTED and self.cr:  # the CR of a CRLF
            self.size -= 1
            if self.field:
                del self.field[-1]
        self._end_field()
        return self._emit(end)

    def _emit(self, end: int) -> _Record | None:
        self.line = self.start_line + self.newlines
        record = _Record(self.start_line, end, self.line, self.fields, self.count, self.biggest)
        self._new_record(end)
        blank = not record.biggest and record.count <= self.keep and not any(f.strip() for f in record.fields)
        return None if blank else record

    def feed(self, data: bytes) -> Iterator[_Record]:
        """The records that end in `data` (consume the iterator before feeding more)."""
        base, i, n = self.pos, 0, len(data)
        self.pos += n
        while i < n:
            state = self.state
            if state == _START and not self.count:  # a record starts: a line without quotes is split at once
                j = data.find(b"\n", i)
                if 0 <= j - i <= MAX_FIELD_BYTES and data.find(b'"', i, j) < 0:
                    fields = data[i : j - 1 if j > i and data[j - 1] == _CR else j].split(self.separator)
                    self.fields, self.count, self.newlines = fields[: self.keep], len(fields), 1
                    i = j + 1
                    if record := self._emit(base + i):
                        yield record
                    continue
            if state == _START:
                self.state = _UNQUOTED
                if data[i] == _QUOTE:
                    self.state, i = _QUOTED, i + 1
            elif state == _UNQUOTED:
                match = self.stop.search(data, i)
                j = match.start() if match else n
                self._add(data, i, j)
                i = j + 1
                if match is None:
                    break
                if data[j] == _NL:
                    self.newlines += 1
                    if record := self._end_record(base + i):
                        yield record
                else:
                    self._end_field()
                    self.state = _START
            elif state == _QUOTED:
                j = data.find(b'"', i)
                self._add(data, i, n if j < 0 else j)
                i = n if j < 0 else j + 1
                if j >= 0:
                    self.state = _QUOTE_SEEN
            else:  # after a quote inside a quoted field (_QUOTE_SEEN), or after that quote and a CR (_QUOTE_CR)
                byte = data[i]
                if byte == _NL:
                    self.newlines += 1
                    if record := self._end_record(base + i + 1):
                        yield record
                elif state == _QUOTE_CR:  # a lone CR after the closing quote is kept: records end at LF only
                    self._add(b"\r", 0, 1)
                    self.state = _UNQUOTED
                    continue
                elif byte == _QUOTE:
                    self._add(data, i, i + 1)
                    self.state = _QUOTED
                elif byte == self.delimiter:
                    self._end_field()
                    self.state = _START
                elif byte == _CR:
                    self.state = _QUOTE_CR
                else:  # text after the closing quote: kept, as the csv module does
                    self.state = _UNQUOTED
                    continue
                i += 1

    def finish(self) -> Iterator[_Record]:
        """The last record when the input ends without a newline."""
        if self.pos > self.start and (record := self._end_record(self.pos)):
            yield record


def _cells(record: _Record, width: int) -> Cells:
    problem, values = None, None
    if record.biggest:
        problem = f"a field of {record.biggest:,} bytes; at most {MAX_FIELD_BYTES:,}"
    elif record.count != width:
        problem = f"has {record.count} fields; the header has {width}"
    else:
        try:
            values = [field.decode("utf-8") for field in record.fields]
        except UnicodeDecodeError:
            problem = "not UTF-8 text"
    return Cells(record.line, values, problem, record.end, record.next_line)


def csv_layout(head: bytes) -> Layout:
    """The layout of a CSV file from its first bytes (up to HEAD_BYTES; may be the whole file): the header, the
    delimiter (`,` `;` or TAB, the one that splits the header, and the first data record alike, into most fields) and
    where the data starts. Raises FileProblem: empty, not_text (NUL bytes, many control bytes: a binary file),
    not_utf8, no_header (the first row looks like data, or a column name is empty or repeated)."""
    whole = len(head) < HEAD_BYTES
    skip = len(_BOM) if head.startswith(_BOM) else 0
    body = bytes(head[skip:])
    if body.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise FileProblem("not_utf8", "the file is UTF-16 text; save it as CSV UTF-8")
    if not body.strip():
        raise FileProblem("empty", "the file is empty")
    for signature, kind in _BINARY_SIGNATURES.items():
        if body.startswith(signature):
            raise FileProblem("not_text", f"the file is {kind}, not CSV text")
    if b"\x00" in body or len(body.translate(None, _TEXT_BYTES)) > len(body) // 50:
        raise FileProblem("not_text", "the file holds binary data, not CSV text")
    best: tuple[tuple[bool, int, int], str, _Record] | None = None
    for rank, delimiter in enumerate(DELIMITERS):
        scanner = _Scanner(delimiter, HEAD_BYTES, skip, 1)
        records: list[_Record] = []
        for record in scanner.feed(body):
            records.append(record)
            if len(records) == 2:
                break
        else:
            if whole:
                records.extend(scanner.finish())
        if not records:
            raise FileProblem("no_header", f"the first line is longer than {HEAD_BYTES:,} bytes")
        agree = len(records) > 1 and records[1].count == records[0].count
        score = (agree, records[0].count, -rank)
        if best is None or score > best[0]:
            best = (score, delimiter, records[0])
    assert best is not None
    _, delimiter, record = best
    try:
        header = [field.decode("utf-8").strip() for field in record.fields]
    except UnicodeDecodeError:
        raise FileProblem("not_utf8", "the header is not UTF-8 text; save the file as CSV UTF-8") from None
    _check_header(header)
    return Layout("csv", header, delimiter, record.end, record.next_line)


def csv_records(chunks: Iterable[bytes], layout: Layout, *, offset: int, line: int) -> Iterator[Cells]:
    """The records of a CSV file from byte `offset` (layout.data_start or a previous Cells.resume; `line` is the line
    number there), where `chunks` yields the file's bytes from that offset on, in pieces of any size. Blank lines are
    skipped; a record that cannot be read comes with `problem` set and `values` None."""
    width = len(layout.header)
    scanner = _Scanner(layout.delimiter, width, offset, line)
    for chunk in chunks:
        for record in scanner.feed(bytes(chunk)):
            yield _cells(record, width)
    for record in scanner.finish():
        yield _cells(record, width)


def next_boundary(
    chunks: Iterable[bytes], layout: Layout, *, offset: int, line: int, at_least: int
) -> tuple[int, int] | None:
    """The first record boundary at or after byte `at_least`, reading `chunks` (the file's bytes from `offset`, a
    record boundary at line number `line`): (byte offset, line number) there, or None when the file ends first.

    Exact under quoting: past the first quote the records are found by the scanner that reads them. Before it,
    every newline ends a record, so a stretch without quotes is crossed at the speed of bytes.find."""
    base, tail, scanner = offset, b"", None  # base: the last boundary known; tail: the bytes since
    for chunk in chunks:
        if scanner is not None:
            for record in scanner.feed(bytes(chunk)):
                if record.end >= at_least:
                    return record.end, record.next_line
            continue
        data = tail + bytes(chunk)
        quote = data.find(b'"')
        end = data.find(b"\n", max(0, at_least - 1 - base), quote if quote >= 0 else len(data))
        if end >= 0:
            return base + end + 1, line + data.count(b"\n", 0, end + 1)
        last = data.rfind(b"\n", 0, quote if quote >= 0 else len(data))
        line += data.count(b"\n", 0, last + 1)
        base, tail = base + last + 1, data[last + 1 :]
        if quote >= 0 or len(tail) > MAX_FIELD_BYTES:  # from here on, record by record
            scanner = _Scanner(layout.delimiter, 0, base, line)
            for record in scanner.feed(tail):
                if record.end >= at_least:
                    return record.end, record.next_line
    if scanner is None:
        scanner = _Scanner(layout.delimiter, 0, base, line)
        list(scanner.feed(tail))
    for record in scanner.finish():
        if record.end >= at_least:
            return record.end, record.next_line
    return None


def _check_header(header: list[str]) -> None:
    seen: set[str] = set()
    for number, name in enumerate(header, start=1):
        if not name:
            raise FileProblem(
                "no_header", f"column {number} of the first row has no name; the first row must name columns"
            )
        if _EMAIL.match(name) or (_PHONE.match(name) and sum(c.isdigit() for c in name) >= 7):
            raise FileProblem(
                "no_header", f"the first row looks like data ('{name[:60]}'); the first row must name the columns"
            )
        if name in seen:
            raise FileProblem("no_header", f"the column name '{name[:60]}' appears twice in the first row")
        seen.add(name)


# --------------------------------------------------------------------------------------------------------- XLSX


def _open_sheet(file: BinaryIO) -> Any:
    try:
        workbook = load_workbook(file, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises zipfile, KeyError, XML and its own errors alike
        raise FileProblem("bad_xlsx", f"not an .xlsx workbook that can be read: {type(exc).__name__}") from None
    if not workbook.worksheets:
        workbook.close()
        raise FileProblem("bad_xlsx", "the workbook has no worksheet")
    sheet = workbook.worksheets[0]
    sheet.reset_dimensions()  # some writers record wrong dimensions; read what is there
    return workbook, sheet


def cell_text(value: Any) -> str:
    """An XLSX cell as text: integers without '.0', dates as YYYY-MM-DD, datetimes in ISO 8601, empty as ''."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time() and value.tzinfo is None else value.isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    return str(value)


def _trimmed(values: Iterable[Any]) -> list[str]:
    cells = [cell_text(value) for value in values]
    while cells and not cells[-1].strip():
        cells.pop()
    return cells


def xlsx_layout(file: BinaryIO) -> Layout:
    """The layout of the first worksheet of an XLSX workbook: its first non-empty row is the header. Raises
    FileProblem: bad_xlsx, empty, no_header."""
    workbook, sheet = _open_sheet(file)
    try:
        for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            header = [name.strip() for name in _trimmed(values)]
            if header:
                _check_header(header)
                return Layout("xlsx", header, "", number + 1, number + 1)
    finally:
        workbook.close()
    raise FileProblem("empty", "the first worksheet is empty")


def xlsx_records(file: BinaryIO, layout: Layout, *, row: int) -> Iterator[Cells]:
    """The rows of the first worksheet from sheet row `row` on, as text cells (see `cell_text`); empty rows are
    skipped. `file` must be seekable; openpyxl reads the sheet as a stream."""
    width = len(layout.header)
    workbook, sheet = _open_sheet(file)
    try:
        for number, values in enumerate(sheet.iter_rows(min_row=row, values_only=True), start=row):
            cells = _trimmed(values)
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) > width:
                yield Cells(number, None, f"has {len(cells)} fields; the header has {width}", number + 1, number + 1)
            else:
                yield Cells(number, cells + [""] * (width - len(cells)), None, number + 1, number + 1)
    finally:
        workbook.close()


# ------------------------------------------------------------------------------------------------------ mapping


class DestinationColumn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    column: str = Field(min_length=1, description="A column of the file's header holding addresses.")
    type: DestinationType = Field(description="What the column holds: phone, email, whatsapp or voice.")


class ColumnMapping(BaseModel):
    """Which columns of an uploaded file hold what. Without a mapping one is derived from the header's names."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(None, description="The column holding your id for the recipient; else the first address.")
    destinations: list[DestinationColumn] = Field(
        min_length=1,
        max_length=MAX_DESTINATIONS,
        description="Up to 5 columns holding addresses, first preferred; empty cells are left out.",
    )
    locale: str | None = Field(None, description="The column holding a BCP 47 language tag, e.g. en-GB.")
    timezone: str | None = Field(None, description="The column holding an IANA time zone, e.g. Europe/London.")
    attributes: list[str] | None = Field(
        None, description="The columns that become attributes; null (the default) means every other column."
    )
    types: dict[str, Literal["string", "number", "boolean", "date"]] = Field(
        default_factory=dict,
        description="Attribute column -> type. Columns not named are strings, as written ('007' stays '007'); "
        "booleans are true/false/yes/no/1/0; dates YYYY-MM-DD. A cell that does not convert rejects its row.",
    )
    default_region: str | None = Field(
        None,
        pattern=r"^[A-Z]{2}$",
        description="ISO 3166 alpha-2 country for phone numbers written without '+' and country code, e.g. GB.",
    )


def _key(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", name.lower())


_DESTINATION_NAMES = {
    DestinationType.PHONE: {"phone", "mobile", "msisdn", "phonenumber", "number", "cell", "sms"},
    DestinationType.EMAIL: {"email", "emailaddress"},
    DestinationType.WHATSAPP: {"whatsapp"},
    DestinationType.VOICE: {"voice", "sip", "sipuri"},
    DestinationType.MESSENGER: {"messenger", "psid"},
}
_ID_NAMES = {"id", "userid", "customerid", "externalid", "recipientid"}
_LOCALE_NAMES = {"locale", "language", "lang"}
_TIMEZONE_NAMES = {"timezone", "tz"}


def _destination_type(name: str) -> DestinationType | None:
    key = _key(name)
    for candidate in (key, key.rstrip("0123456789")):
        for kind, names in _DESTINATION_NAMES.items():
            if candidate in names:
                return kind
    return None


def default_mapping(header: list[str]) -> ColumnMapping:
    """A mapping from the header's names (case, spaces, '_' and '-' ignored): id/user_id/customer_id/... is the id,
    phone/mobile/email/whatsapp/voice/... (and numbered variants such as phone2) are destinations in column order,
    locale/language and timezone/tz likewise; every other column is a string attribute. FileProblem bad_mapping when
    no column names a destination, or more than 5 do."""
    found: dict[str, str | None] = {"id": None, "locale": None, "timezone": None}
    destinations: list[DestinationColumn] = []
    for name in header:
        key, kind = _key(name), _destination_type(name)
        if kind is not None:
            destinations.append(DestinationColumn(column=name, type=kind))
            continue
        for role, names in (("id", _ID_NAMES), ("locale", _LOCALE_NAMES), ("timezone", _TIMEZONE_NAMES)):
            if key in names and found[role] is None:
                found[role] = name
                break
    if not destinations:
        raise FileProblem(
            "bad_mapping",
            "no destination column: name a column phone, email, whatsapp or voice, or send a column mapping",
        )
    if len(destinations) > MAX_DESTINATIONS:
        columns = ", ".join(d.column for d in destinations)
        raise FileProblem(
            "bad_mapping", f"{len(destinations)} destination columns ({columns}); send a mapping choosing at most 5"
        )
    return ColumnMapping(id=found["id"], destinations=destinations, locale=found["locale"], timezone=found["timezone"])


def _roles(mapping: ColumnMapping) -> list[tuple[str, str]]:
    roles = [("id", mapping.id)] + [(f"destinations[{i}]", d.column) for i, d in enumerate(mapping.destinations)]
    roles += [("locale", mapping.locale), ("timezone", mapping.timezone)]
    return [(role, column) for role, column in roles if column is not None]


def _attribute_columns(mapping: ColumnMapping, header: list[str]) -> list[str]:
    if mapping.attributes is not None:
        return mapping.attributes
    used = {column for _, column in _roles(mapping)}
    return [name for name in header if name not in used]


def check_mapping(mapping: ColumnMapping, header: list[str]) -> None:
    """FileProblem bad_mapping (naming the column) when a mapped column is not in the header, a column is mapped
    twice, or `types` names a column that is not an attribute."""
    known: set[str] = set(header)
    used: dict[str, str] = {}
    roles = _roles(mapping) + [("attributes", column) for column in mapping.attributes or []]
    for role, column in roles:
        if column not in known:
            raise FileProblem("bad_mapping", f"{role} names the column '{column}', which is not in the file's header")
        if column in used:
            raise FileProblem("bad_mapping", f"the column '{column}' is mapped twice: as {used[column]} and as {role}")
        used[column] = role
    attributes = set(_attribute_columns(mapping, header))
    for column in mapping.types:
        if column not in attributes:
            raise FileProblem("bad_mapping", f"types names the column '{column}', which is not an attribute column")


def _typed(kind: str, text: str) -> Any:
    if kind == "boolean":
        if text.lower() not in _BOOLEANS:
            raise ValueError("is not a boolean: use true/false, yes/no or 1/0")
        return _BOOLEANS[text.lower()]
    if kind == "date":
        try:
            return iso_date(text)
        except ValueError:
            raise ValueError("is not a date: use YYYY-MM-DD") from None
    if kind == "number":
        number: int | float
        if _INTEGER.match(text):
            if len(text) > 60:  # far beyond 38 digits; int() of huge text is slow
                raise ValueError("has more than 38 digits")
            number = int(text)
        elif _DECIMAL.match(text):
            number = float(text)
        else:
            raise ValueError("is not a number")
        problem = number_problem(number)
        if problem is not None:
            raise ValueError(problem)
        return number
    return text


def to_row(mapping: ColumnMapping, header: list[str], values: list[str]) -> dict[str, Any]:
    """The raw list item of one record, for recipients.check_row: destinations from the non-empty destination cells,
    attributes typed as the mapping says; cells are stripped and empty ones left out. Raises RowError (invalid_row)
    when a cell does not convert to its type or every destination cell is empty."""
    cells = {name: value.strip() for name, value in zip(header, values, strict=False)}
    rid = (cells.get(mapping.id) or None) if mapping.id else None
    row: dict[str, Any] = {"id": rid} if rid else {}
    row["destinations"] = [
        {"type": d.type.value, "address": cells[d.column]} for d in mapping.destinations if cells.get(d.column)
    ]
    if not row["destinations"]:
        raise RowError("invalid_row", "destinations", "no destination: every destination cell is empty", rid)
    attributes: dict[str, Any] = {}
    for name in _attribute_columns(mapping, header):
        if text := cells.get(name):
            try:
                attributes[name] = _typed(mapping.types.get(name, "string"), text)
            except ValueError as exc:
                shown = text if len(text) <= 40 else text[:40] + "..."
                raise RowError(
                    "invalid_row", f"attributes.{name}", f"attributes.{name}: '{shown}' {exc}", rid
                ) from None
    row["attributes"] = attributes
    for key in ("locale", "timezone"):
        column = getattr(mapping, key)
        if column and cells.get(column):
            row[key] = cells[column]
    return row


# ------------------------------------------------------------------------------------------------------ reports


def neutralise(cell: str) -> str:
    """The cell with a leading `'` when a spreadsheet would read it as a formula (starts with = + - @ TAB or CR)."""
    return "'" + cell if cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell


def csv_line(cells: list[str]) -> bytes:
    """One CSV line (UTF-8, CRLF, quoted where needed) of neutralised cells, for reports customers open in Excel."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow([neutralise(cell) for cell in cells])
    return out.getvalue().encode("utf-8")
