"""A small HTTP client of the Bulk Campaign API, used by the demo, the end-to-end tests and the bench."""

from __future__ import annotations

import csv
import io
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

AREA_CODES = ("202", "415", "212", "312", "617", "303", "206", "512", "305", "404")
FIRST_NAMES = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Margaret", "Ken", "Frances", "Linus")


class ApiError(RuntimeError):
    def __init__(self, answer: httpx.Response) -> None:
        super().__init__(f"{answer.request.method} {answer.request.url.path} -> {answer.status_code}: {answer.text}")
        self.status_code = answer.status_code
        self.problem = answer.json() if answer.headers.get("content-type", "").endswith("json") else {}


class CampaignApi:
    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 60.0) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=base_url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        answer = self.http.request(method, path, json=body, headers=headers)
        if answer.status_code >= 400:
            raise ApiError(answer)
        return answer.json()

    @classmethod
    def for_new_account(cls, base_url: str, admin_token: str, name: str = "demo") -> CampaignApi:
        with httpx.Client(base_url=base_url, timeout=30) as admin:
            answer = admin.post("/v1/accounts", json={"name": name}, headers={"Authorization": f"Bearer {admin_token}"})
            if answer.status_code != 201:
                raise ApiError(answer)
            return cls(base_url, answer.json()["api_key"])

    def create_list(self, name: str) -> dict[str, Any]:
        return dict(self.call("POST", "/v1/lists", {"name": name}))

    def add_recipients(self, list_id: str, rows: list[dict[str, Any]], batch: int = 10_000) -> list[dict[str, Any]]:
        """Upload in batches of up to 10,000 rows; returns each batch's report."""
        return [
            self.call("POST", f"/v1/lists/{list_id}/recipients", {"recipients": rows[start : start + batch]})
            for start in range(0, len(rows), batch)
        ]

    def upload_file(
        self,
        list_id: str,
        path: Path,
        *,
        mapping: dict[str, Any] | None = None,
        sent: Callable[[int], None] = lambda n: None,
    ) -> dict[str, Any]:
        """Upload a CSV or XLSX file the way a user does: ask for an upload, PUT the file to its presigned
        URL (or its parts, for a large file), then S3's notification starts the ingest. `sent` is told
        the bytes sent so far. Returns the created upload."""
        size = path.stat().st_size
        body: dict[str, Any] = {"filename": path.name, "size_bytes": size} | ({"mapping": mapping} if mapping else {})
        created = dict(self.call("POST", f"/v1/lists/{list_id}/uploads", body))
        with httpx.Client(timeout=600) as s3, path.open("rb") as f:
            if created.get("upload_url"):
                s3.put(created["upload_url"], content=_reading(f, sent), headers={"Content-Length": str(size)})
                sent(size)
                return created
            multipart, parts, done = created["multipart"], [], 0
            for number, url in enumerate(multipart["part_urls"], start=1):
                answer = s3.put(url, content=f.read(multipart["part_size"]))
                answer.raise_for_status()
                parts.append({"part_number": number, "etag": answer.headers["ETag"]})
                done = min(size, done + multipart["part_size"])
                sent(done)
        self.call("POST", f"/v1/lists/{list_id}/uploads/{created['id']}/complete", {"parts": parts})
        return created

    def wait_upload(
        self,
        list_id: str,
        upload_id: str,
        *,
        timeout: float = 600,
        seen: Callable[[dict[str, Any]], None] = lambda u: None,
    ) -> dict[str, Any]:
        """Poll the upload until its ingest is completed or failed; `seen` gets every state read."""
        deadline = time.monotonic() + timeout
        while True:
            upload = dict(self.call("GET", f"/v1/lists/{list_id}/uploads/{upload_id}"))
            seen(upload)
            if upload["state"] in ("completed", "failed"):
                return upload
            if time.monotonic() > deadline:
                raise TimeoutError(f"the upload did not finish within {timeout:.0f} s: {upload}")
            time.sleep(0.5)

    def create_campaign(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.call("POST", "/v1/campaigns", body))

    def campaign(self, campaign_id: str) -> dict[str, Any]:
        return dict(self.call("GET", f"/v1/campaigns/{campaign_id}"))

    def act(self, campaign_id: str, action: str) -> dict[str, Any]:
        return dict(self.call("POST", f"/v1/campaigns/{campaign_id}/{action}"))

    def outcomes(self, campaign_id: str, page_size: int = 1000) -> list[dict[str, Any]]:
        return self.all_pages(f"/v1/campaigns/{campaign_id}/recipients", page_size=page_size)

    def all_pages(self, path: str, page_size: int = 1000, **query: Any) -> list[dict[str, Any]]:
        """Every item of a listing, page after page."""
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            params: dict[str, Any] = query | {"limit": page_size} | ({"page_token": token} if token else {})
            page = self.http.get(path, params=params).json()
            items.extend(page["items"])
            token = page.get("next_page_token")
            if not token:
                return items


def valid_phone(n: int) -> str:
    """A distinct valid number for each n below 100,000."""
    return f"+1{AREA_CODES[n // 10_000]}555{n % 10_000:04d}"


def generated_recipients(count: int, *, invalid: int = 0, duplicates: int = 0, seed: int = 7) -> list[dict[str, Any]]:
    """`count` rows: distinct valid numbers, with `invalid` bad numbers and `duplicates` repeats mixed in."""
    rng = random.Random(seed)
    valid = count - invalid - duplicates
    rows: list[dict[str, Any]] = [
        {
            "phone": valid_phone(n),
            "params": {"first_name": FIRST_NAMES[n % len(FIRST_NAMES)], "code": f"SPRING{n % 97:02d}"},
        }
        for n in range(valid)
    ]
    bad = ["12025550100", "+1555", "+44 12", "not a number", "+1 202 555"]
    rows += [{"phone": bad[i % len(bad)], "params": {"first_name": "X"}} for i in range(invalid)]
    rows += [dict(rows[rng.randrange(valid)]) for _ in range(duplicates)]
    rng.shuffle(rows)
    return rows


def _reading(f: Any, sent: Callable[[int], None], piece: int = 1 << 20) -> Any:
    done = 0
    while chunk := f.read(piece):
        yield chunk
        done += len(chunk)
        sent(done)


def recipients_csv(rows: list[dict[str, Any]]) -> str:
    """The rows of `generated_recipients` as a CSV a user would upload: phone and one column per param."""
    names = sorted({name for row in rows for name in row.get("params", {})})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["phone", *names])
    for row in rows:
        writer.writerow([row["phone"], *(row.get("params", {}).get(name, "") for name in names)])
    return out.getvalue()
