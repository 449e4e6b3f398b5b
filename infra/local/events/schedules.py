"""`@app.schedule`, as an EventBridge rule fires it: every `schedule_tick_seconds` of the runner (faster
than the rate in AWS), never two at once, and without a burst of catch-ups after a slow run."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

from chalice.app import ScheduledEventConfig

from infra.local.events.base import ACCOUNT_ID, EventSource, Function


class ScheduleEventSource(EventSource):
    config_type = ScheduledEventConfig
    config: ScheduledEventConfig

    def rule_arn(self) -> str:
        runner = self.runner
        app_name = runner.app_module.app.app_name
        return f"arn:aws:events:{runner.region}:{ACCOUNT_ID}:rule/{app_name}-{runner.stage}-{self.config.name}-event"

    def start(self) -> None:
        function = self.runner.function(self.config)
        self.runner.spawn(f"schedule-{self.config.name}", self.loop, function, self.rule_arn())

    def loop(self, function: Function, rule_arn: str) -> None:
        tick = self.runner.schedule_tick_seconds
        stopping = self.runner.stopping
        next_fire = time.monotonic() + tick
        while not stopping.wait(max(0.0, next_fire - time.monotonic())):
            next_fire = max(next_fire + tick, time.monotonic())
            self.runner.invoke(function, self.event(rule_arn), work=False)

    def event(self, rule_arn: str) -> dict[str, Any]:
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": ACCOUNT_ID,
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": self.runner.region,
            "resources": [rule_arn],
            "detail": {},
        }
