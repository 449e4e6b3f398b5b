"""What moto's SES v2 lacks and the service calls (decision 44): a configuration set's event destinations.

moto 5.2 answers CreateConfigurationSetEventDestination with NotImplementedError. This adds it (and
GetConfigurationSetEventDestinations, to look at what was made) as SES v2 answers them: the configuration set
must exist (NotFoundException), a destination name is taken once per set (AlreadyExistsException), and
botocore has already checked the request against the service's model on the client's side. It holds no
events: SES's own events are made by tests from SES's documented records (tests/fixtures/ses_events)."""

from __future__ import annotations

import json
from typing import Any

from moto.core.exceptions import JsonRESTError
from moto.sesv2.responses import SESV2Response

# (account, region, configuration set) -> {destination name: destination}
_destinations: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = {}


def _set_key(response: SESV2Response) -> tuple[str, str, str]:
    name = str(response._get_param("ConfigurationSetName"))
    try:
        response.sesv2_backend.get_configuration_set(configuration_set_name=name)
    except Exception:  # moto's own NotFound, whatever its class
        raise JsonRESTError("NotFoundException", f"Configuration set <{name}> does not exist.") from None
    return response.current_account, response.region, name


def _create(self: SESV2Response) -> str:
    body = json.loads(self.body or "{}")
    found = _destinations.setdefault(_set_key(self), {})
    name = str(body["EventDestinationName"])
    if name in found:
        raise JsonRESTError("AlreadyExistsException", f"Event destination {name} already exists.")
    found[name] = {"Name": name, **body["EventDestination"]}
    return json.dumps({})


def _get(self: SESV2Response) -> str:
    return json.dumps({"EventDestinations": list(_destinations.get(_set_key(self), {}).values())})


def install() -> None:
    """Add the actions to moto's SES v2 (idempotent; in this process, for mock_aws and the local server)."""
    SESV2Response.create_configuration_set_event_destination = _create  # type: ignore[attr-defined]
    SESV2Response.get_configuration_set_event_destinations = _get  # type: ignore[attr-defined]


def reset() -> None:
    _destinations.clear()
