"""Voice campaigns through the Vonage Voice API (the fake provider's Voice half): each call stays in flight
until its signed events say how it ended, busy and unanswered calls go to the retry policy, a call never
reported is swept to `unknown`, the concurrency limit holds for calls under way, and a callback that is
unsigned, tampered or replayed changes nothing.

The fake posts each event over HTTP to the call's event URL; here that URL is a small bridge that hands
the request, as received, to the real route (the Chalice test client) and answers what the route answered,
so the fake retries what the route refused, as Vonage does."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from infra.local.fake_provider import FakeProvider
from infra.local.fake_voice import sign
from tests.faults.harness import Harness
from tests.faults.webhooks import EventBridge
from tests.utils import campaign_body, valid_phone

APPLICATION = "app-0001"
SIGNATURE_SECRET = "a-signature-secret-of-the-account-0001"


@pytest.fixture
def voice(monkeypatch: pytest.MonkeyPatch, aws_env: dict[str, str], provider: FakeProvider) -> Iterator[EventBridge]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = serialization.Encoding.PEM
    private = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    public = key.public_key().public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo)
    secrets = boto3.client("secretsmanager", region_name="us-east-1")
    secrets.create_secret(Name="vonage/application-key", SecretString=private.decode())
    secrets.create_secret(Name="vonage/signature-secret", SecretString=SIGNATURE_SECRET)
    provider.voice.public_key = public.decode()
    provider.voice.application_id = APPLICATION
    provider.voice.signature_secret = SIGNATURE_SECRET
    bridge = EventBridge()
    for name, value in {
        "VONAGE_APPLICATION_ID": APPLICATION,
        "VONAGE_PRIVATE_KEY_SECRET": "vonage/application-key",
        "VONAGE_SIGNATURE_SECRET": "vonage/signature-secret",
        "WEBHOOK_BASE_URL": bridge.url,
    }.items():
        monkeypatch.setenv(name, value)
    from chalicelib.settings import get_settings

    get_settings.cache_clear()
    yield bridge
    bridge.close()


def number(i: int) -> str:
    return valid_phone(i).removeprefix("+")


def voice_campaign(harness: Harness, count: int, **overrides: Any) -> dict[str, Any]:
    rows = [{"phone": valid_phone(i), "params": {"first_name": f"Ann{i}"}} for i in range(count)]
    listed = harness.tenant.ok("POST", "/v1/lists", {"name": "calls"}, status=201)
    harness.tenant.ok("POST", f"/v1/lists/{listed['id']}/recipients", {"recipients": rows})
    defaults = {
        "channel": "voice",
        "sender": "14155550100",
        "template": "Hello {{ first_name }}, this is a reminder of your appointment tomorrow.",
        "voice": {"language": "en-GB", "ringing_timer": 1, "length_timer": 1, "machine_detection": "hangup"},
        "rate_per_second": 50,
    }
    body = campaign_body(listed["id"], **{**defaults, **overrides})
    created = harness.tenant.ok("POST", "/v1/campaigns", body, status=201)
    return dict(harness.tenant.ok("POST", f"/v1/campaigns/{created['id']}/start"))


def test_a_scripted_mix_of_calls_ends_with_exact_counts_retries_and_a_sweep(
    harness: Harness, voice: EventBridge, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.operations import calls

    monkeypatch.setattr(calls, "SWEEP_GRACE_SECONDS", 4)  # a silent call is unknown 6 s after it was placed
    script = {
        **{number(i): ["completed"] for i in range(0, 10)},
        **{number(i): ["busy", "completed"] for i in range(10, 14)},  # busy, then answered on the retry
        **{number(i): ["timeout", "unanswered", "timeout"] for i in range(14, 17)},  # never answered: 3 tries
        **{number(i): ["machine", "completed"] for i in range(17, 19)},  # a machine hangs up; the retry answers
        **{number(i): ["rejected"] for i in range(19, 21)},  # refused for good: not tried again
        **{number(i): ["silent"] for i in range(21, 23)},  # never reported: unknown, never called again
    }
    provider.voice.configure({"scripted_by_number": script})
    campaign = voice_campaign(harness, 23)

    final = harness.run(campaign["id"], rounds=400, on_round=lambda _: voice.deliver(harness.tenant))

    assert final["status"] == "completed", final
    outcomes = {o["destination"].removeprefix("+"): o for o in harness.outcomes(campaign["id"])}
    states = Counter(o["state"] for o in outcomes.values())
    assert states == {"succeeded": 16, "failed": 5, "unknown": 2}
    placed = Counter(call["to"] for call in provider.voice.calls())
    assert {n: placed[n] for n in script} == {n: len(outcomes_of) for n, outcomes_of in script.items()}
    assert [o["last_error"] for n, o in outcomes.items() if n in {number(14), number(19)}] == [
        "call timeout",
        "call rejected",
    ]
    assert outcomes[number(14)]["attempts"] == 3 and outcomes[number(19)]["attempts"] == 1
    assert [h.get("reason") for h in outcomes[number(17)]["history"]] == ["machine", None]  # then answered

    listed = harness.tenant.ok("GET", f"/v1/calls?campaign_id={campaign['id']}&limit=100")["items"]
    by_number = {call["to"].removeprefix("+"): call for call in listed}
    assert len(listed) == 23
    answered = by_number[number(0)]
    assert (answered["status"], answered["outcome"], answered["duration_seconds"]) == ("completed", "succeeded", 12)
    assert answered["id"] == next(c["uuid"] for c in provider.voice.calls() if c["to"] == number(0))
    assert (by_number[number(21)]["status"], by_number[number(21)]["outcome"]) == ("unreported", "unknown")
    assert (by_number[number(15)]["status"], by_number[number(15)]["reason"]) == ("timeout", "no_answer")
    spoken = next(c for c in provider.voice.calls() if c["to"] == number(3))["ncco"]
    assert spoken == [
        {"action": "talk", "text": "Hello Ann3, this is a reminder of your appointment tomorrow.", "language": "en-GB"}
    ]
    counters = final["counters"]
    assert {k: counters[k] for k in states} == dict(states) and counters["in_flight"] == counters["queued"] == 0
    # A completed call is the voice channel's receipt: delivered, with when (the other calls were not).
    assert (counters["delivered"], counters["undelivered"]) == (16, 0)
    assert outcomes[number(0)]["receipt"] == "delivered" and outcomes[number(0)]["delivered_at"]
    assert outcomes[number(21)]["receipt"] is None and outcomes[number(19)]["delivered_at"] is None
    recount = harness.tenant.ok("POST", f"/v1/campaigns/{campaign['id']}/recount")
    assert recount["drift"] == {}, recount


def test_the_concurrency_limit_holds_for_calls_under_way_until_their_last_event(
    harness: Harness, voice: EventBridge, provider: FakeProvider
) -> None:
    provider.voice.configure({"outcomes": {"completed": 1.0}, "event_delay_ms": 150})
    campaign = voice_campaign(harness, 12, max_concurrent=3)

    final = harness.run(campaign["id"], rounds=400, on_round=lambda _: voice.deliver(harness.tenant))

    assert final["status"] == "completed" and final["counters"]["succeeded"] == 12, final
    spans = sorted((c["placed_at"], c["ended_at"]) for c in provider.voice.calls())
    assert len(spans) == 12
    overlapping = max(sum(1 for start, end in spans if start <= at < end) for at, _ in spans)
    assert overlapping <= 3, spans


def test_unsigned_tampered_and_replayed_events_are_refused_and_change_nothing(
    harness: Harness, voice: EventBridge, provider: FakeProvider
) -> None:
    provider.voice.configure({"outcomes": {"silent": 1.0}})
    campaign = voice_campaign(harness, 1)
    for _ in range(40):
        harness.release()
        harness.dispatch()
        if provider.voice.calls():
            break
    (call,) = provider.voice.calls()
    path = call["event_url"].removeprefix(voice.url)  # where the provider posts the call's events
    event = json.dumps({"uuid": call["uuid"], "status": "completed", "duration": "30"}).encode()

    def post(body: bytes, token: str | None) -> Any:
        headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
        return harness.tenant.client.http.request("POST", path, headers=headers, body=body)

    assert post(event, None).status_code == 401
    assert post(event, sign(event, "another-secret-of-another-account-0000")).status_code == 401
    tampered = event.replace(b'"completed"', b'"busy"')
    assert post(tampered, sign(event, SIGNATURE_SECRET)).status_code == 401
    stale = post(event, sign(event, SIGNATURE_SECRET, now=time.time() - 3600))
    assert stale.status_code == 401 and "issued over" in json.loads(stale.body)["detail"]
    (still,) = harness.outcomes(campaign["id"])
    assert still["state"] == "in_flight"

    token = sign(event, SIGNATURE_SECRET)
    accepted = post(event, token)
    assert accepted.status_code == 200 and json.loads(accepted.body) == {"result": "ended"}
    replayed = post(event, token)
    assert replayed.status_code == 401 and "replay" in json.loads(replayed.body)["detail"]
    again = post(event, sign(event, SIGNATURE_SECRET))  # the same event, newly signed (a provider retry)
    assert again.status_code == 200 and json.loads(again.body) == {"result": "ignored"}
    (ended,) = harness.outcomes(campaign["id"])
    assert ended["state"] == "succeeded"


def test_a_voice_template_gives_the_call_its_text_and_voice(
    harness: Harness, voice: EventBridge, provider: FakeProvider
) -> None:
    tenant = harness.tenant
    template = tenant.ok(
        "POST",
        "/v1/templates",
        {
            "name": "reminder",
            "channel": "voice",
            "content": {"text": "Hello {{ first_name }}", "voice": {"language": "en-GB", "style": 3}},
            "locales": {"es": {"text": "Hola {{ first_name }}"}},
        },
        status=201,
    )
    listed = tenant.ok("POST", "/v1/lists", {"name": "calls"}, status=201)
    rows = [
        {
            "id": "ann",
            "destinations": [{"type": "phone", "address": valid_phone(1)}],
            "attributes": {"first_name": "Ann"},
        },
        {
            "id": "eva",
            "destinations": [{"type": "phone", "address": valid_phone(2)}],
            "attributes": {"first_name": "Eva"},
            "locale": "es-MX",
        },
    ]
    tenant.ok("POST", f"/v1/lists/{listed['id']}/recipients", {"recipients": rows})
    body = campaign_body(listed["id"], channel="voice", sender="14155550100", template_id=template["id"])
    body.pop("template")
    created = tenant.ok("POST", "/v1/campaigns", body, status=201)
    assert created["voice"]["language"] == "en-GB"
    tenant.ok("POST", f"/v1/campaigns/{created['id']}/start")

    final = harness.run(created["id"], rounds=400, on_round=lambda _: voice.deliver(harness.tenant))

    assert final["counters"]["succeeded"] == 2
    spoken = {c["to"]: c["ncco"][0] for c in provider.voice.calls()}
    assert spoken[number(1)] == {"action": "talk", "text": "Hello Ann", "language": "en-GB", "style": 3}
    assert spoken[number(2)] == {"action": "talk", "text": "Hola Eva", "language": "es-MX", "style": 3}


def test_recorded_calls_show_their_recording_and_transcript_links(
    harness: Harness, voice: EventBridge, provider: FakeProvider
) -> None:
    from pydantic import TypeAdapter

    from chalicelib.domain.ncco import NccoAction

    never = ["unanswered"] * 3  # every try of the retry policy
    script = {number(0): ["completed"], number(1): ["busy", "completed"], number(2): never}
    provider.voice.configure({"scripted_by_number": script})
    spoken = {"language": "en-GB", "ringing_timer": 1, "length_timer": 1, "record": {"transcribe": True}}
    campaign = voice_campaign(harness, 3, voice=spoken)
    assert campaign["voice"]["record"] == {
        "format": "mp3",
        "beep_start": False,
        "transcribe": True,
        "transcription_language": None,
    }

    final = harness.run(campaign["id"], rounds=400, on_round=lambda _: voice.deliver(harness.tenant))
    voice.deliver(harness.tenant, idle_seconds=0.5)  # the recordings come after the calls' last events

    assert final["status"] == "completed" and final["counters"]["succeeded"] == 2, final
    placed = provider.voice.calls()
    assert len(placed) == 6
    for call in placed:  # the whole call recorded: `record` first, its events to our route, then the speech
        record, talk = call["ncco"]
        TypeAdapter(list[NccoAction]).validate_python(call["ncco"])
        assert record == {
            "action": "record",
            "format": "mp3",
            "eventUrl": [call["event_url"] + "&event=recording"],
            "transcription": {"language": "en-GB", "eventUrl": [call["event_url"] + "&event=transcription"]},
        }
        assert talk["action"] == "talk"
    posted = [json.loads(body) for path, _, body in voice.seen if "event=" in path]
    recordings = {e["recording_uuid"]: e["recording_url"] for e in posted if "recording_url" in e}
    transcripts = {e["recording_uuid"]: e["transcription_url"] for e in posted if "transcription_url" in e}
    assert len(recordings) == len(transcripts) == 2  # one per answered call: the busy and unanswered ones have none
    assert voice.results[("completed", "noted")] >= 2  # the transcriptions' own status, not the call's

    listed = harness.tenant.ok("GET", f"/v1/calls?campaign_id={campaign['id']}&limit=100")["items"]
    links = {(c["to"].removeprefix("+"), c["recording_url"], c["transcript_url"]) for c in listed}
    uuid_of = {url: rid for rid, url in recordings.items()}
    answered = {(to, rec, transcripts[uuid_of[rec]]) for to, rec, _ in links if rec is not None}
    assert {to for to, _, _ in answered} == {number(0), number(1)}
    assert answered <= links
    assert (number(2), None, None) in links


def test_a_recording_event_is_signed_and_names_its_call(harness: Harness, voice: EventBridge) -> None:
    campaign = voice_campaign(harness, 1, voice={"language": "en-GB", "record": {"format": "wav"}})
    for _ in range(40):
        harness.release()
        harness.dispatch()
        voice.deliver(harness.tenant)
        if harness.tenant.ok("GET", f"/v1/calls?campaign_id={campaign['id']}")["items"]:
            break
    (call,) = harness.tenant.ok("GET", f"/v1/calls?campaign_id={campaign['id']}")["items"]
    assert harness.outcomes(campaign["id"])[0]["state"] in ("in_flight", "succeeded")
    path = next(p for p, _, _ in voice.seen)  # the call's own event URL
    body = json.dumps({"recording_url": "https://api.nexmo.com/v1/files/forged", "recording_uuid": "r"}).encode()

    def post(url: str, token: str | None) -> Any:
        headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
        return harness.tenant.client.http.request("POST", url, headers=headers, body=body)

    assert post(path + "&event=recording", None).status_code == 401
    assert post(path + "&event=recording", sign(body, "another-secret-of-another-account-0000")).status_code == 401
    wrong = post(path + "&event=voicemail", sign(body, SIGNATURE_SECRET))
    assert wrong.status_code == 422 and json.loads(wrong.body)["errors"][0]["field"] == "event"
    other_attempt = path.replace("attempt=1", "attempt=7") + "&event=recording"
    assert json.loads(post(other_attempt, sign(body, SIGNATURE_SECRET)).body) == {"result": "ignored"}
    (still,) = harness.tenant.ok("GET", f"/v1/calls?campaign_id={campaign['id']}")["items"]
    assert still["recording_url"] == call["recording_url"] and "forged" not in str(still["recording_url"])

    # A customer's own `record` action without an `eventUrl`: Vonage posts the recording to the call's URL.
    own = {"recording_url": "https://api.nexmo.com/v1/files/own", "recording_uuid": "o", "size": 9}
    body = json.dumps(own).encode()
    assert json.loads(post(path, sign(body, SIGNATURE_SECRET)).body) == {"result": "noted"}
    (linked,) = harness.tenant.ok("GET", f"/v1/calls?campaign_id={campaign['id']}")["items"]
    assert linked["recording_url"] == "https://api.nexmo.com/v1/files/own"
