"""The provider's webhooks, played for real in the fault suite: the fake provider posts each callback over
HTTP to a small bridge, which hands the request, as received, to the real route (the Chalice test client)
and answers the fake with what the route answered, so the fake retries what the route refused, as Vonage
does."""

from __future__ import annotations

import json
import queue
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.utils import Api

SIGNATURE_SECRET = "a-signature-secret-of-the-account-0001"
NUMBER = "+14155550100"  # the account's number: the campaigns' sender, and where replies go
HELP_TEXT = "Acme Shoes: offers by text. Reply STOP to end them. Help: acme.example/help"


class EventBridge:
    """An HTTP server in front of the in-process API: the fake provider posts events to it; `deliver()`
    (called between the harness's rounds) passes each to the route and answers the fake with its status."""

    def __init__(self) -> None:
        self.waiting: queue.Queue[tuple[str, dict[str, str], bytes, queue.Queue[int]]] = queue.Queue()
        bridge = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                answer: queue.Queue[int] = queue.Queue()
                bridge.waiting.put((self.path, dict(self.headers), body, answer))
                try:
                    status = answer.get(timeout=4)
                except queue.Empty:
                    status = 504
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.answered: Counter[int] = Counter()
        self.results: Counter[tuple[str, str]] = Counter()
        self.seen: list[tuple[str, str, bytes]] = []  # every callback passed on: path, Authorization, body

    def deliver(self, api: Api, idle_seconds: float = 0.1) -> None:
        """Pass on the events waiting, and those that follow them, until none came for `idle_seconds`."""
        while True:
            try:
                path, headers, body, answer = self.waiting.get(timeout=idle_seconds)
            except queue.Empty:
                return
            sent = {"Content-Type": "application/json", "Authorization": headers.get("Authorization", "")}
            response = api.client.http.request("POST", path, headers=sent, body=body)
            self.answered[response.status_code] += 1
            kind = json.loads(body).get("status", "inbound")
            self.results[(kind, json.loads(response.body).get("result"))] += 1
            self.seen.append((path, headers.get("Authorization", ""), body))
            answer.put(response.status_code)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
