"""Creates the DynamoDB tables, SQS queues and S3 buckets of infra/template.json in moto (or any endpoint).

The CloudFormation template is the single source of truth: a resource `LogicalId` becomes
`{prefix}-{LogicalId}`, and the Lambda environment variables are the template's
`Globals.Function.Environment.Variables` with `Ref`/`Fn::GetAtt` resolved against what was created.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TEMPLATE_PATH = REPO_ROOT / "infra" / "template.json"
DEFAULT_PREFIX = "bulk-local"

TABLE_TYPE = "AWS::DynamoDB::Table"
QUEUE_TYPE = "AWS::SQS::Queue"
BUCKET_TYPE = "AWS::S3::Bucket"
SCHEDULE_GROUP_TYPE = "AWS::Scheduler::ScheduleGroup"
ROLE_TYPE = "AWS::IAM::Role"
LOCAL_ACCOUNT_ID = "123456789012"

# CloudFormation property -> SQS attribute, for the properties that have one.
_QUEUE_ATTRIBUTES = (
    "VisibilityTimeout",
    "MessageRetentionPeriod",
    "DelaySeconds",
    "MaximumMessageSize",
    "ReceiveMessageWaitTimeSeconds",
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "SqsManagedSseEnabled",
)
_JSON_QUEUE_ATTRIBUTES = ("RedrivePolicy", "RedriveAllowPolicy")


class TemplateError(ValueError):
    """The template asks for something the local stack cannot resolve."""


def load_template(template_path: Path = DEFAULT_TEMPLATE_PATH) -> dict[str, Any]:
    with Path(template_path).open(encoding="utf-8") as f:
        template: dict[str, Any] = json.load(f)
    return template


def resources_of_type(template: Mapping[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {
        logical_id: resource
        for logical_id, resource in template.get("Resources", {}).items()
        if isinstance(resource, dict) and resource.get("Type") == resource_type
    }


def table_name(prefix: str, logical_id: str) -> str:
    return f"{prefix}-{logical_id}"


def queue_name(prefix: str, logical_id: str, properties: Mapping[str, Any] | None = None) -> str:
    name = f"{prefix}-{logical_id}"
    if properties and _truthy(properties.get("FifoQueue")):
        name += ".fifo"  # SQS requires it of FIFO queues
    return name


def bucket_name(prefix: str, logical_id: str) -> str:
    """S3 bucket names are lower case, as CloudFormation's generated ones are (`stack-uploadsbucket-x`)."""
    return f"{prefix}-{logical_id}".lower()


def function_logical_id(function_name: str) -> str:
    """Chalice's CloudFormation name of a function: `dispatch` -> `Dispatch`, `send_all` -> `SendAll`."""
    from chalice.utils import to_cfn_resource_name

    return to_cfn_resource_name(function_name)


def event_source_resource(template: Mapping[str, Any], function_logical_id: str, event_name: str) -> str | None:
    """Logical id of the resource an event source override points at, e.g. `DispatchQueue`.

    Reads `Resources.<Fn>.Properties.Events.<event_name>.Properties.{Queue|Stream}`, written as
    `{"Fn::GetAtt": [X, "Arn" | "StreamArn"]}` (or `{"Ref": X}`) in the template's overrides.
    """
    function = template.get("Resources", {}).get(function_logical_id) or {}
    event = function.get("Properties", {}).get("Events", {}).get(event_name) or {}
    properties = event.get("Properties", {})
    for key in ("Queue", "Stream"):
        target = _referenced_logical_id(properties.get(key))
        if target is not None:
            return target
    return None


def sqs_event_source_queue(template: Mapping[str, Any], function_name: str) -> str | None:
    """Logical id of the queue feeding `@app.on_sqs_message` function `function_name`."""
    logical_id = function_logical_id(function_name)
    return event_source_resource(template, logical_id, f"{logical_id}SqsEventSource")


def dynamodb_event_source_table(template: Mapping[str, Any], function_name: str) -> str | None:
    """Logical id of the table whose stream feeds `@app.on_dynamodb_record` function `function_name`."""
    logical_id = function_logical_id(function_name)
    return event_source_resource(template, logical_id, f"{logical_id}DynamodbEventSource")


def queue_url_for_event_source(
    template: Mapping[str, Any],
    function_logical_id: str,
    event_name: str,
    *,
    prefix: str = DEFAULT_PREFIX,
    endpoint_url: str | None = None,
    region: str = "us-east-1",
) -> str | None:
    """URL of the created queue an SQS event source override points at (None when there is no override)."""
    target = event_source_resource(template, function_logical_id, event_name)
    queues = resources_of_type(template, QUEUE_TYPE)
    if target is None or target not in queues:
        return None
    sqs = boto3.client("sqs", endpoint_url=endpoint_url, region_name=region)
    name = queue_name(prefix, target, queues[target].get("Properties"))
    url: str = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    return url


def create_resources(
    template_path: Path = DEFAULT_TEMPLATE_PATH,
    prefix: str = DEFAULT_PREFIX,
    endpoint_url: str | None = None,
    region: str = "us-east-1",
) -> dict[str, str]:
    """Create every table and queue of the template (idempotently); return the functions' env vars."""
    template = load_template(template_path)
    dynamodb = boto3.client("dynamodb", endpoint_url=endpoint_url, region_name=region)
    sqs = boto3.client("sqs", endpoint_url=endpoint_url, region_name=region)

    # logical id -> {"Ref": ..., "Arn": ..., ...}: what Ref and Fn::GetAtt resolve to.
    attributes: dict[str, dict[str, str]] = {}
    for logical_id, resource in resources_of_type(template, TABLE_TYPE).items():
        attributes[logical_id] = _create_table(dynamodb, table_name(prefix, logical_id), resource)

    queues = resources_of_type(template, QUEUE_TYPE)
    for logical_id in _dependency_order(queues):
        properties = _resolve(queues[logical_id].get("Properties", {}), attributes)
        attributes[logical_id] = _create_queue(sqs, queue_name(prefix, logical_id, properties), properties)

    buckets = resources_of_type(template, BUCKET_TYPE)
    if buckets:
        s3 = boto3.client("s3", endpoint_url=endpoint_url, region_name=region)
        for logical_id, resource in buckets.items():
            properties = _resolve(resource.get("Properties", {}), attributes)
            attributes[logical_id] = _create_bucket(s3, bucket_name(prefix, logical_id), properties)

    groups = resources_of_type(template, SCHEDULE_GROUP_TYPE)
    if groups:
        scheduler = boto3.client("scheduler", endpoint_url=endpoint_url, region_name=region)
        for logical_id in groups:
            attributes[logical_id] = _create_schedule_group(scheduler, f"{prefix}-{logical_id}")
    # Roles are what AWS services assume; nothing checks them locally, so they are named, not created.
    for logical_id in resources_of_type(template, ROLE_TYPE):
        name = f"{prefix}-{logical_id}"
        attributes[logical_id] = {"Ref": name, "Arn": f"arn:aws:iam::{LOCAL_ACCOUNT_ID}:role/{name}"}

    # The pseudo parameters `Fn::Sub` names, as the local stack's account and region.
    attributes["AWS::Partition"] = {"Ref": "aws"}
    attributes["AWS::Region"] = {"Ref": region}
    attributes["AWS::AccountId"] = {"Ref": LOCAL_ACCOUNT_ID}
    variables = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    return {name: str(_resolve(value, attributes)) for name, value in variables.items()}


def _create_schedule_group(scheduler: Any, name: str) -> dict[str, str]:
    try:
        arn = scheduler.create_schedule_group(Name=name)["ScheduleGroupArn"]
    except scheduler.exceptions.ConflictException:
        arn = scheduler.get_schedule_group(Name=name)["Arn"]
    return {"Ref": name, "Arn": arn}


def _create_table(dynamodb: Any, name: str, resource: Mapping[str, Any]) -> dict[str, str]:
    properties = resource.get("Properties", {})
    request: dict[str, Any] = {
        "TableName": name,
        "KeySchema": properties["KeySchema"],
        "AttributeDefinitions": properties["AttributeDefinitions"],
        "BillingMode": properties.get("BillingMode", "PROVISIONED"),
    }
    for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes", "ProvisionedThroughput"):
        if key in properties:
            request[key] = properties[key]
    if request["BillingMode"] == "PROVISIONED" and "ProvisionedThroughput" not in request:
        request["ProvisionedThroughput"] = {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
    stream = properties.get("StreamSpecification")
    if stream:
        request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}

    try:
        description = dynamodb.create_table(**request)["TableDescription"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceInUseException":
            raise
        description = dynamodb.describe_table(TableName=name)["Table"]
    dynamodb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})

    ttl = properties.get("TimeToLiveSpecification")
    if ttl and _truthy(ttl.get("Enabled")):
        current = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        if current.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            dynamodb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
            )

    attributes = {"Ref": name, "Arn": description["TableArn"]}
    if description.get("LatestStreamArn"):
        attributes["StreamArn"] = description["LatestStreamArn"]
    return attributes


def _create_queue(sqs: Any, name: str, properties: Mapping[str, Any]) -> dict[str, str]:
    queue_attributes: dict[str, str] = {}
    for key in _QUEUE_ATTRIBUTES:
        if key in properties:
            queue_attributes[key] = _attribute_string(properties[key])
    for key in _JSON_QUEUE_ATTRIBUTES:
        if key in properties:
            value = properties[key]
            queue_attributes[key] = value if isinstance(value, str) else json.dumps(value)

    try:
        url: str = sqs.create_queue(QueueName=name, Attributes=queue_attributes)["QueueUrl"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("QueueAlreadyExists", "QueueNameExists"):
            raise
        # It exists with other attributes (the template changed): bring it up to date.
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        settable = {k: v for k, v in queue_attributes.items() if k != "FifoQueue"}
        if settable:
            sqs.set_queue_attributes(QueueUrl=url, Attributes=settable)
    arn: str = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return {"Ref": url, "Arn": arn, "QueueName": name, "QueueUrl": url}


def _create_bucket(s3: Any, name: str, properties: Mapping[str, Any]) -> dict[str, str]:
    """Create the bucket (idempotently) and put its queue notifications (moto delivers them to SQS)."""
    try:
        s3.create_bucket(Bucket=name)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    queue_configurations = [
        _queue_notification(config)
        for config in properties.get("NotificationConfiguration", {}).get("QueueConfigurations", [])
    ]
    if queue_configurations:
        s3.put_bucket_notification_configuration(
            Bucket=name, NotificationConfiguration={"QueueConfigurations": queue_configurations}
        )
    return {"Ref": name, "Arn": f"arn:aws:s3:::{name}", "DomainName": f"{name}.s3.amazonaws.com"}


def _queue_notification(config: Mapping[str, Any]) -> dict[str, Any]:
    """CloudFormation's `QueueConfigurations` item -> the S3 API's (`Event` -> `Events`, key filter rules)."""
    notification: dict[str, Any] = {"QueueArn": config["Queue"], "Events": [config["Event"]]}
    rules = config.get("Filter", {}).get("S3Key", {}).get("Rules")
    if rules:
        notification["Filter"] = {"Key": {"FilterRules": [{"Name": r["Name"], "Value": r["Value"]} for r in rules]}}
    return notification


def _dependency_order(queues: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Queues ordered so that a dead-letter queue is created before the queues that redrive to it."""
    ordered: list[str] = []
    visiting: set[str] = set()

    def visit(logical_id: str) -> None:
        if logical_id in ordered:
            return
        if logical_id in visiting:
            raise TemplateError(f"circular reference between queues at {logical_id}")
        visiting.add(logical_id)
        for dependency in sorted(_references(queues[logical_id].get("Properties", {}))):
            if dependency in queues:
                visit(dependency)
        visiting.discard(logical_id)
        ordered.append(logical_id)

    for logical_id in queues:
        visit(logical_id)
    return ordered


def _references(value: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(value, dict):
        target = _referenced_logical_id(value)
        if target is not None:
            found.add(target)
        for item in value.values():
            found |= _references(item)
    elif isinstance(value, list):
        for item in value:
            found |= _references(item)
    return found


def _referenced_logical_id(value: Any) -> str | None:
    if not isinstance(value, dict) or len(value) != 1:
        return None
    if isinstance(value.get("Ref"), str):
        return str(value["Ref"])
    get_att = value.get("Fn::GetAtt")
    if isinstance(get_att, list) and get_att:
        return str(get_att[0])
    if isinstance(get_att, str):
        return get_att.split(".", 1)[0]
    return None


def _resolve(value: Any, attributes: Mapping[str, Mapping[str, str]]) -> Any:
    """Replace `Ref`, `Fn::GetAtt` and `Fn::Sub` of created resources (and pseudo parameters) by their values."""
    if isinstance(value, list):
        return [_resolve(item, attributes) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1 and "Ref" in value:
        return _attribute(attributes, value["Ref"], "Ref")
    if len(value) == 1 and isinstance(value.get("Fn::Sub"), str):  # `${Name}` of a resource's Ref, no `.Attr`
        return re.sub(r"\$\{([^}.]+)\}", lambda found: _attribute(attributes, found.group(1), "Ref"), value["Fn::Sub"])
    if len(value) == 1 and "Fn::GetAtt" in value:
        get_att = value["Fn::GetAtt"]
        logical_id, attribute = get_att if isinstance(get_att, list) else get_att.split(".", 1)
        return _attribute(attributes, logical_id, attribute)
    return {key: _resolve(item, attributes) for key, item in value.items()}


def _attribute(attributes: Mapping[str, Mapping[str, str]], logical_id: str, attribute: str) -> str:
    try:
        return attributes[logical_id][attribute]
    except KeyError:
        raise TemplateError(f"cannot resolve {attribute} of {logical_id} locally") from None


def _attribute_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")
