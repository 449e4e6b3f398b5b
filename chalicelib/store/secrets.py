"""Secrets kept in AWS Secrets Manager (an action's secret, the Vonage application's private key and
signature secret), read through Powertools parameters and cached for `SECRET_MAX_AGE` seconds per container."""

from __future__ import annotations

from aws_lambda_powertools.utilities.parameters import SecretsProvider

from chalicelib.once import made_once
from chalicelib.store import aws

SECRET_MAX_AGE = 300


class SecretGone(LookupError):
    """The secret is not (or no longer) in Secrets Manager (an action that was deleted, a name not set)."""


def read_secret(name: str) -> str:
    """The secret's value, cached per container (Powertools parameters)."""
    if not name:
        raise SecretGone("no secret name is configured")
    try:
        value = _secrets().get(name, max_age=SECRET_MAX_AGE)
    except Exception as exc:  # Powertools wraps the SDK's errors in GetParameterError
        raise SecretGone(f"the secret {name} cannot be read: {exc}") from exc
    return value if isinstance(value, str) else bytes(value or b"").decode()


@made_once(1)
def _secrets() -> SecretsProvider:
    """One provider (and its cache) per process, made once however many sends ask for it at the same moment."""
    return SecretsProvider(boto3_client=aws.client("secretsmanager"))


aws.on_reset(_secrets.cache_clear)
