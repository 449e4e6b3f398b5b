"""The campaign lifecycle as a Hypothesis state machine over the API on moto: lists are created and grow,
campaigns are created (draft, or scheduled for later), changed (name, rate, template, list, start time set
or removed), started, paused, resumed, cancelled, deleted and started by their schedule, and the workers
run in between (the release tick and its jobs, the dispatch queue, the dead letters, the deliveries stream
into the counters) so campaigns really send and complete, in any interleaving with the API calls.

The model keeps each campaign's status (draft, scheduled, running, paused, completed, cancelled) and the
size of its audience. Every answer is checked against it: an illegal transition is a 409 problem+json
naming the current status, a legal one answers the modelled status. The workers may complete a running
campaign, or a paused one with nothing left in flight; that is the only change they may make, and it is
read back after each worker step. After every step, on every campaign:

- total = queued + in_flight + succeeded + failed + unknown + skipped (+ any other finished counter the
  API's Counters model has), none negative; total is the audience (the list as it stood when the campaign
  was created or its list changed, counted again at the start), all of it queued before the start;
  nothing queued or in flight once completed;
- the fake provider got no message twice, and none for a campaign that is not sending (not started,
  paused, cancelled or completed) beyond what it had when it stopped;
- the catalog (GET /v1/campaigns), the pacer's index of running campaigns and the start schedules agree
  with the model.

After a full round of the workers the counters are caught up: a recount finds no drift and the provider's
accepted messages equal the succeeded counter. `drain` runs rounds until nothing is running: every running
campaign must complete (the rates are above the list sizes, so nothing waits for pacing).

Campaign runs (sending a finished campaign again as a new run) do not exist yet, so there is no rule for
them; clone is covered by test_campaign_resource.py.

Each example is a fresh moto world (moto's reset, then the resources of infra/template.json again) with a
new account and a reset fake provider.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, TypeVar

import boto3
import pytest
import requests
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from chalicelib.domain.campaign import CampaignStatus
from chalicelib.domain.models import Counters
from infra.local.fake_provider import FakeProvider
from infra.local.resources import create_resources
from tests.faults.harness import Harness
from tests.utils import Api, campaign_body, recipient_rows

pytestmark = pytest.mark.integration

T = TypeVar("T")

NOT_STARTED = frozenset({"draft", "scheduled"})
STARTED = frozenset({"running", "paused"})
TERMINAL = frozenset({"completed", "cancelled"})
DELETABLE = NOT_STARTED | TERMINAL
# What each action does, from the statuses it is allowed in (for a running campaign pause comes before
# cancel, for a paused one resume: Hypothesis draws the first choices more often).
ACTIONS: dict[str, dict[str, str]] = {
    "pause": {"running": "paused"},
    "resume": {"paused": "running"},
    "start": {"draft": "running", "scheduled": "running"},
    "cancel": {"draft": "cancelled", "scheduled": "cancelled", "running": "cancelled", "paused": "cancelled"},
}
# What the workers may do on their own.
BY_WORKERS = {("running", "completed"), ("paused", "completed")}
# The counters as the API shows them (total = queued + in_flight + the finished ones); `not_included` is
# outside the total (recipients added to a `stop` campaign's list after its start).
COUNTERS = tuple(
    name for name, field in Counters.model_fields.items() if field.annotation is int and name != "not_included"
)
FINISHED = tuple(name for name in COUNTERS if name not in ("total", "queued", "in_flight"))
# At or above the largest list, so a whole audience goes in one chunk with no delay (campaigns complete
# within a round or two); 200 and 400 spread deliveries over 2 and 3 buckets (stream shards).
RATES = (50, 100, 200, 400)
MAX_LIST = 20
# Draft-only fields: a started campaign answers 409 naming the field.
PATCHES = ("name", "rate", "template", "list", "schedule", "unschedule", "stop", "continue")
DRAIN_ROUNDS = 60
MOTO_RESET = "http://motoapi.amazonaws.com/moto-api/reset"
# Any status the API knows, named in a problem's detail or reasons ("... that is paused", "not ... while running").
STATUS_NAMED = re.compile(rf"\b(?:is|while) ({'|'.join(s.value for s in CampaignStatus)})\b")


def bucket_count(rate: float) -> int:
    from chalicelib.store import keys

    return keys.bucket_count(rate)


def choose(data: st.DataObject, items: Sequence[T], label: str) -> T | None:
    """One of `items` (None if there are none), by one draw of the same shape whatever they are: the
    workers' timing can leave a state slightly different on a replay (a campaign completed a round
    later), and Hypothesis needs the same draws then (sorted ids would not do either: ids are random)."""
    index = data.draw(st.integers(0, 15), label=label)
    return items[index % len(items)] if items else None


def unstarted(audience: int) -> dict[str, Any]:
    """The counters of a campaign nothing was released for: its whole audience queued."""
    return {
        **dict.fromkeys(COUNTERS, 0), "skipped_by_reason": {}, "total": audience, "queued": audience, "not_included": 0,
        "delivered": 0, "read": 0, "undelivered": 0,
        "clicked": 0, "clicks": 0, "converted": 0, "conversions": 0, "replied": 0,
    }  # fmt: skip


def in_hours(hours: int) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


def problem_of(answer: Any, status: int) -> dict[str, Any]:
    assert answer.status_code == status, (answer.status_code, answer.body)
    assert answer.headers["Content-Type"] == "application/problem+json", answer.headers
    body: dict[str, Any] = json.loads(answer.body)
    assert body["status"] == status and body["title"] and body["detail"], body
    return body


def assert_conflict(answer: Any, current: str, field: str = "status") -> None:
    """A 409 problem+json that names `current` as the campaign's status (and no other status)."""
    body = problem_of(answer, 409)
    texts = [body["detail"], *(e["reason"] for e in body.get("errors", []))]
    named = {m for text in texts for m in STATUS_NAMED.findall(text)}
    assert named == {current}, (current, body)
    assert body["errors"][0]["field"] == field, body


@dataclass
class World:
    """The test's fixtures, and a fresh moto world for each example."""

    api: Api
    app: Any
    provider: FakeProvider
    monkeypatch: pytest.MonkeyPatch
    env: dict[str, str] = field(default_factory=dict)

    def fresh(self) -> None:
        """Empty moto (its reset API) and create the resources again, as the aws_env fixture did."""
        from chalicelib.store import aws

        requests.post(MOTO_RESET, timeout=10).raise_for_status()
        self.env = create_resources(prefix="it")
        for name, value in self.env.items():
            self.monkeypatch.setenv(name, value)
        aws.reset_clients()
        self.provider.reset()


@dataclass
class ListModel:
    id: str
    count: int


@dataclass
class CampaignModel:
    id: str
    list_id: str
    status: str
    rate: float
    buckets: int
    # The audience: the list's recipients when the campaign was created or its list changed, counted
    # again when it started.
    total: int = 0
    sent_when_stopped: int | None = None  # provider messages when it stopped sending (paused, cancelled, completed)
    end_handle: str = "stop"  # `continue`: recipients added to its list while it runs are in its audience
    not_included: int = 0  # recipients added to its list while it ran with `stop`


class CampaignLifecycle(RuleBasedStateMachine):
    # Every rule takes one argument, `data`, and draws the rest: Hypothesis orders rules by their number of
    # arguments, then by name, and generates the first ones more often, so `act` leads.

    world: ClassVar[World]

    def __init__(self) -> None:
        from chalicelib.store import accounts

        super().__init__()
        self.world.fresh()
        self.tenant = self.world.api.new_account()
        self.account = str(accounts.account_for_api_key(str(self.tenant.api_key)))
        self.harness = Harness(self.tenant, self.world.env, self.world.app, self.world.provider)
        self.lists: dict[str, ListModel] = {}
        self.campaigns: dict[str, CampaignModel] = {}
        self.deleted: dict[str, int] = {}  # campaign id -> messages the provider had for it when deleted
        self.scheduler = boto3.client("scheduler", region_name="us-east-1")

    # -- helpers ---------------------------------------------------------------------------------

    def _new_list(self, size: int) -> ListModel:
        created = self.tenant.ok("POST", "/v1/lists", {"name": "people"}, status=201)
        listed = ListModel(created["id"], 0)
        self.lists[listed.id] = listed
        if size:
            self._add(listed, size)
        return listed

    def _add(self, listed: ListModel, count: int) -> None:
        added = self.tenant.ok(
            "POST", f"/v1/lists/{listed.id}/recipients", {"recipients": recipient_rows(count, start=listed.count)}
        )
        assert added["accepted"] == count and added["recipient_count"] == listed.count + count, added
        listed.count += count
        for model in self.campaigns.values():
            if model.list_id == listed.id and model.status in STARTED:
                if model.end_handle == "continue":
                    model.total += count
                else:
                    model.not_included += count

    def _new_campaign(self, list_id: str, rate: float, scheduled: bool, end_handle: str = "stop") -> None:
        overrides: dict[str, Any] = {"rate_per_second": rate, "end_handle": end_handle}
        if scheduled:
            overrides["start_at"] = in_hours(2)
        created = self.tenant.ok("POST", "/v1/campaigns", campaign_body(list_id, **overrides), status=201)
        status = "scheduled" if scheduled else "draft"
        audience = self.lists[list_id].count
        assert created["status"] == status and created["counters"] == unstarted(audience), created
        self.campaigns[created["id"]] = CampaignModel(
            created["id"], list_id, status, rate, bucket_count(rate), total=audience, end_handle=end_handle
        )

    def _pick(self, data: st.DataObject, allowed: Collection[str] = ()) -> CampaignModel | None:
        """A campaign (None when there is none); mostly one whose status is in `allowed` when there is one
        (so sequences go somewhere), else any (an illegal call). Draws the same whatever the state."""
        any_status = data.draw(st.integers(0, 3), label="any status") == 3
        fitting = [m for m in self.campaigns.values() if m.status in allowed]
        return choose(data, fitting if fitting and not any_status else list(self.campaigns.values()), "campaign")

    def _sent(self) -> tuple[Counter[str], Counter[tuple[str, str]]]:
        """Messages the provider accepted, by campaign and by (campaign, number)."""
        by_campaign: Counter[str] = Counter()
        by_number: Counter[tuple[str, str]] = Counter()
        for message in self.world.provider.messages():
            campaign_id = str(message["client_ref"]).split(":", 1)[0]
            by_campaign[campaign_id] += 1
            by_number[(campaign_id, message["to"])] += 1
        return by_campaign, by_number

    def _still_going(self, model: CampaignModel) -> bool:
        """Running, and to complete (`stop`) or with recipients left to send (`continue`)."""
        return model.status == "running" and (model.end_handle == "stop" or not self._all_sent(model))

    def _all_sent(self, campaign: CampaignModel | dict[str, Any]) -> bool:
        """Whether a campaign's whole audience so far is sent (a `continue` one that is running waits for more)."""
        shown = self._get(campaign.id) if isinstance(campaign, CampaignModel) else campaign
        return bool(shown["counters"]["succeeded"] == shown["counters"]["total"])

    def _get(self, campaign_id: str) -> dict[str, Any]:
        return dict(self.tenant.ok("GET", f"/v1/campaigns/{campaign_id}"))

    def _act(self, action: str, model: CampaignModel) -> None:
        before = model.status
        answer = self.tenant.call("POST", f"/v1/campaigns/{model.id}/{action}")
        after = ACTIONS[action].get(before)
        if after is None:
            assert_conflict(answer, before)
            return
        audience = self.lists[model.list_id].count
        if action == "start" and audience == 0:
            assert problem_of(answer, 422)["errors"][0]["field"] == "list_id"
            return
        assert answer.status_code == 200, answer.body
        body = json.loads(answer.body)
        assert body["status"] == after, (before, action, body)
        model.status = after
        if action == "start":
            model.total = audience
            assert body["counters"] == unstarted(audience), body
        if after in ("paused", "cancelled"):
            model.sent_when_stopped = self._sent()[0][model.id]
        elif after == "running":
            model.sent_when_stopped = None

    def _sync(self) -> None:
        """Read back what the workers did: a running or paused campaign may have completed, nothing else."""
        for model in self.campaigns.values():
            actual = self._get(model.id)["status"]
            if actual != model.status:
                assert (model.status, actual) in BY_WORKERS, (
                    f"{model.id}: the workers moved it {model.status} -> {actual}"
                )
                model.status = actual
                model.sent_when_stopped = self._sent()[0][model.id]

    def _round(self) -> None:
        self.harness.release()
        self.harness.dispatch()
        self.harness.dead_letters()
        self.harness.stream()

    def _caught_up(self) -> None:
        """After a full round (the stream applied): the counters are what the deliveries say, and every
        message the provider accepted is counted as succeeded (the provider injects no faults here)."""
        sent = self._sent()[0]
        for model in self.campaigns.values():
            if model.status in NOT_STARTED:
                continue
            recount = self.tenant.ok("POST", f"/v1/campaigns/{model.id}/recount")
            assert recount["drift"] == {}, (model, recount)
            assert recount["after"]["succeeded"] == sent[model.id], (model, recount, sent[model.id])
        self._sync()  # a recount with no drift completes a campaign that is done

    # -- setting up ------------------------------------------------------------------------------

    @initialize()
    def a_list_and_a_draft(self) -> None:
        listed = self._new_list(3)
        self._new_campaign(listed.id, 100, scheduled=False)

    # -- lists -----------------------------------------------------------------------------------

    @rule(data=st.data())
    def add_recipients(self, data: st.DataObject) -> None:
        """Recipients added to a list (one that is used by campaigns or not), or a new list of a few."""
        count = data.draw(st.integers(0, 3), label="count")
        existing = data.draw(st.booleans(), label="to an existing list")
        growing = choose(data, [listed for listed in self.lists.values() if listed.count + count <= MAX_LIST], "list")
        if count and existing and growing:
            self._add(growing, count)
        else:
            self._new_list(count)

    # -- campaigns -------------------------------------------------------------------------------

    @rule(data=st.data())
    def create_campaign(self, data: st.DataObject) -> None:
        list_id = str(choose(data, list(self.lists), "list"))
        rate = data.draw(st.sampled_from(RATES), label="rate")
        scheduled = data.draw(st.booleans(), label="scheduled")
        end_handle = data.draw(st.sampled_from(("stop", "continue")), label="end_handle")
        self._new_campaign(list_id, rate, scheduled=scheduled, end_handle=end_handle)

    @rule(data=st.data())
    def patch(self, data: st.DataObject) -> None:
        change = data.draw(st.sampled_from(PATCHES), label="change")
        rate = data.draw(st.sampled_from(RATES), label="rate")
        other_list = str(choose(data, list(self.lists), "list"))
        model = self._pick(data, NOT_STARTED | STARTED)
        if model is None:
            return
        before = model.status
        bodies: dict[str, dict[str, Any]] = {
            "name": {"name": f"renamed {time.monotonic_ns()}"},
            "rate": {"rate_per_second": rate},
            "template": {"template": "Now {{ first_name }}"},
            "list": {"list_id": other_list},
            "schedule": {"start_at": in_hours(3)},
            "unschedule": {"start_at": None},
            "stop": {"end_handle": "stop"},
            "continue": {"end_handle": "continue"},
        }
        body = bodies[change]
        answer = self.tenant.call("PATCH", f"/v1/campaigns/{model.id}", body)
        if before in TERMINAL:
            assert_conflict(answer, before)
            return
        if before in STARTED and change not in ("name", "rate", "stop", "continue"):
            assert_conflict(answer, before, field=next(iter(body)))
            return
        if before in STARTED and change == "rate" and bucket_count(rate) > model.buckets:
            assert problem_of(answer, 422)["errors"][0]["field"] == "rate_per_second"
            return
        assert answer.status_code == 200, answer.body
        changed = json.loads(answer.body)
        if change == "rate":
            model.rate = rate
            if before in NOT_STARTED:  # nothing sent yet: the deliveries' spread follows the rate
                model.buckets = bucket_count(rate)
        elif change == "list":  # a draft's audience is the new list's, as it stands now
            model.list_id, model.total = other_list, self.lists[other_list].count
        elif change == "schedule":
            model.status = "scheduled"
        elif change == "unschedule":
            model.status = "draft"
        elif change in ("stop", "continue"):
            model.end_handle = change
            if changed["status"] == "completed" and before in STARTED and change == "stop":  # nothing was left
                model.status, model.sent_when_stopped = "completed", self._sent()[0][model.id]
        assert changed["status"] == model.status, (before, change, changed)
        assert changed["end_handle"] == model.end_handle, changed
        assert (changed["rate_per_second"], changed["list_id"]) == (model.rate, model.list_id), changed
        if model.status == "scheduled":
            assert changed["start_at"] is not None, changed
        if change == "unschedule":
            assert changed["start_at"] is None, changed

    @rule(data=st.data())
    def act(self, data: st.DataObject) -> None:
        """POST .../start, pause, resume or cancel: mostly one its status allows. Sometimes in the middle of
        a round: after the release and the sends, before the stream counted them (so a campaign paused
        then completes as paused, a cancelled one gets its last counts)."""
        model = self._pick(data, NOT_STARTED | STARTED)
        illegal = data.draw(st.integers(0, 3), label="illegal") == 3
        legal = [action for action, moves in ACTIONS.items() if model and model.status in moves]
        action = choose(data, legal if legal and not illegal else list(ACTIONS), "action")
        mid_round = data.draw(st.booleans(), label="mid-round")
        if model is None or action is None:
            return
        if mid_round:
            self.harness.release()
            self.harness.dispatch()
            self.harness.dead_letters()
            self._sync()
        self._act(action, model)
        if mid_round:
            self.harness.stream()
            self._sync()

    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        model = self._pick(data, DELETABLE)
        if model is None:
            return
        answer = self.tenant.call("DELETE", f"/v1/campaigns/{model.id}")
        if model.status not in DELETABLE:
            assert_conflict(answer, model.status)
            return
        assert answer.status_code == 204, answer.body
        del self.campaigns[model.id]
        self.deleted[model.id] = self._sent()[0][model.id]
        problem_of(self.tenant.call("GET", f"/v1/campaigns/{model.id}"), 404)
        assert self.tenant.call("DELETE", f"/v1/campaigns/{model.id}").status_code == 404

    @rule(data=st.data())
    def schedule_fires(self, data: st.DataObject) -> None:
        """What EventBridge Scheduler does at the start time: its target's input to the release queue, the
        schedule deleted; then a release round takes the job. The campaign starts, or (an empty list)
        goes back to draft with the reason on it."""
        model = choose(data, [m for m in self.campaigns.values() if m.status == "scheduled"], "campaign")
        if model is None:
            return
        group = self.world.env["SCHEDULE_GROUP"]
        schedule = self.scheduler.get_schedule(Name=model.id, GroupName=group)
        boto3.client("sqs", region_name="us-east-1").send_message(
            QueueUrl=self.world.env["RELEASE_QUEUE_URL"], MessageBody=schedule["Target"]["Input"]
        )
        self.scheduler.delete_schedule(Name=model.id, GroupName=group)
        audience = self.lists[model.list_id].count
        self.harness.release()
        started = self._get(model.id)
        if audience:
            assert started["status"] == "running" and started["counters"]["total"] == audience, started
            model.status, model.total, model.sent_when_stopped = "running", audience, None
        else:
            assert started["status"] == "draft" and "no recipients" in started["start_problem"], started
            model.status = "draft"
        self._sync()

    # -- the workers -----------------------------------------------------------------------------

    @rule(data=st.data())
    def work(self, data: st.DataObject) -> None:
        """One round of every event source, then the counters must have caught up."""
        self._round()
        self._sync()
        self._caught_up()

    @rule(data=st.data())
    def part_of_a_round(self, data: st.DataObject) -> None:
        """Some event sources alone, so API calls land between them: a pause or cancel after the release
        and before the dispatch, or after the sends and before the stream counted them..."""
        stages = data.draw(st.sampled_from(("release+dispatch", "release", "dispatch", "stream")), label="stages")
        if "release" in stages:
            self.harness.release()
        if "dispatch" in stages:
            self.harness.dispatch()
            self.harness.dead_letters()
        if stages == "stream":
            self.harness.stream()
        self._sync()

    @rule(data=st.data())
    def drain(self, data: st.DataObject) -> None:
        """Rounds until nothing is running (a chunk released with a second's delay needs a little time):
        every running campaign completes, each recipient once."""
        for _ in range(DRAIN_ROUNDS):
            self._round()
            self._sync()
            if not any(self._still_going(m) for m in self.campaigns.values()):
                break
            time.sleep(0.05)
        stuck = {m.id: self._get(m.id) for m in self.campaigns.values() if m.status == "running"}
        # A `continue` campaign stays running once everything it took is sent; every other one completes.
        stuck = {i: c for i, c in stuck.items() if self.campaigns[i].end_handle == "stop" or not self._all_sent(c)}
        assert not stuck, f"running campaigns that never completed or sent everything: {stuck}"
        self._caught_up()
        sent = self._sent()[0]
        for model in self.campaigns.values():
            if model.status == "completed":
                counters = self._get(model.id)["counters"]
                assert counters["succeeded"] == model.total == sent[model.id], (model, counters)

    # -- after every step ------------------------------------------------------------------------

    @invariant()
    def counters_add_up_and_nothing_is_sent_twice(self) -> None:
        """On every campaign, as the account's listing shows them all (with their counters)."""
        listed = self.tenant.ok("GET", "/v1/campaigns?limit=100")
        assert listed["next_page_token"] is None
        shown = {c["id"]: c for c in listed["items"]}
        assert {i: c["status"] for i, c in shown.items()} == {i: m.status for i, m in self.campaigns.items()}
        stats = self.world.provider.stats()
        assert stats["duplicates"] == 0, stats
        sent, by_number = self._sent()
        assert set(by_number.values()) <= {1}, f"a number got a campaign's message twice: {by_number}"
        assert set(sent) <= set(self.campaigns) | set(self.deleted), sent
        for campaign_id, when_deleted in self.deleted.items():
            assert sent[campaign_id] == when_deleted, f"{campaign_id} sent after it was deleted"
        for model in self.campaigns.values():
            counters = shown[model.id]["counters"]
            assert set(counters) == {*COUNTERS, "skipped_by_reason", "not_included"}, counters
            assert sum(counters["skipped_by_reason"].values()) == counters["skipped"], counters
            assert all(counters[name] >= 0 for name in COUNTERS), (model, counters)
            assert counters["total"] == sum(counters[name] for name in COUNTERS if name != "total"), counters
            assert counters["total"] == model.total, (model, counters)
            assert counters["not_included"] == model.not_included, (model, counters)
            if model.status in NOT_STARTED:
                assert counters == unstarted(model.total), (model, counters)
                assert sent[model.id] == 0, (model, sent[model.id])
                continue
            assert counters["succeeded"] <= sent[model.id] <= model.total, (model, counters, sent[model.id])
            if model.sent_when_stopped is not None:
                assert sent[model.id] == model.sent_when_stopped, f"{model.id} sent while {model.status}"
            if model.status == "completed":
                assert counters["queued"] == counters["in_flight"] == 0, (model, counters)
                assert sum(counters[name] for name in FINISHED) == model.total, (model, counters)

    @invariant()
    def pacer_and_schedules_agree(self) -> None:
        """The pacer's index holds the running campaigns, and only scheduled ones have a start schedule."""
        from chalicelib.store import campaigns, keys

        running = {keys.campaign_pk(self.account, i) for i, m in self.campaigns.items() if m.status == "running"}
        assert set(campaigns.running_campaign_pks()) == running
        schedules = self.scheduler.list_schedules(GroupName=self.world.env["SCHEDULE_GROUP"])["Schedules"]
        assert {s["Name"] for s in schedules} == {i for i, m in self.campaigns.items() if m.status == "scheduled"}


def test_the_campaign_lifecycle_holds_under_any_sequence_of_calls_and_worker_rounds(
    api: Api, chalice_app: Any, provider: FakeProvider, aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    CampaignLifecycle.world = World(api, chalice_app, provider, monkeypatch)
    run_state_machine_as_test(
        CampaignLifecycle,
        settings=settings(
            max_examples=int(os.environ.get("STATE_MACHINE_EXAMPLES", "15")),
            stateful_step_count=12,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
            print_blob=True,
        ),
    )
