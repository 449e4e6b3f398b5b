"""EventBridge Scheduler, as it delivers one-time schedules to SQS targets: every `schedule_tick_seconds`
of the runner, the schedules of the stack's group whose `at()` time has come send their target's Input to
the queue the target names, and are deleted (`ActionAfterCompletion: DELETE`; the product sets nothing
else). moto holds the schedules (`scheduler` API) but fires none; this loop is what does."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import boto3

if TYPE_CHECKING:
    from infra.local.runner import LocalEventRunner


def due_at(schedule: dict[str, Any]) -> float | None:
    """When a one-time schedule fires (epoch seconds); None for rate() and cron() schedules."""
    expression = str(schedule.get("ScheduleExpression", ""))
    if not (expression.startswith("at(") and expression.endswith(")")):
        return None
    local = datetime.fromisoformat(expression[3:-1])
    zone = ZoneInfo(str(schedule.get("ScheduleExpressionTimezone") or "UTC"))
    return local.replace(tzinfo=zone).astimezone(UTC).timestamp()


class ScheduleTargets:
    def __init__(self, runner: LocalEventRunner, group: str) -> None:
        self.runner, self.group = runner, group
        self.scheduler = boto3.client("scheduler", endpoint_url=runner.endpoint_url, region_name=runner.region)
        self.fired = 0

    def start(self) -> None:
        self.runner.spawn("scheduler", self.loop)

    def loop(self) -> None:
        while not self.runner.stopping.wait(self.runner.schedule_tick_seconds):
            self.fire_due(time.time())

    def fire_due(self, now: float) -> int:
        """Send and delete the schedules due by `now`; how many fired."""
        fired = 0
        for page in self.scheduler.get_paginator("list_schedules").paginate(GroupName=self.group, State="ENABLED"):
            for summary in page.get("Schedules", []):
                schedule = self.scheduler.get_schedule(Name=summary["Name"], GroupName=self.group)
                when = due_at(schedule)
                if when is None or when > now:
                    continue
                target = schedule["Target"]
                queue_name = str(target["Arn"]).rsplit(":", 1)[-1]
                url = self.runner.sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
                self.runner.sqs.send_message(QueueUrl=url, MessageBody=target.get("Input", "{}"))
                self.scheduler.delete_schedule(Name=summary["Name"], GroupName=self.group)
                fired += 1
        self.fired += fired
        return fired
