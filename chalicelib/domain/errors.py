"""Domain errors; the API turns each into an RFC 9457 problem response."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FieldError:
    field: str
    reason: str


@dataclass
class DomainError(Exception):
    detail: str
    errors: list[FieldError] = field(default_factory=list)
    status = 400
    title = "Bad request"
    type_slug = "bad-request"

    def __str__(self) -> str:
        return self.detail


class InvalidInput(DomainError):
    status = 422
    title = "Invalid input"
    type_slug = "invalid-input"

    @classmethod
    def on(cls, field_name: str, reason: str) -> InvalidInput:
        return cls(detail=f"{field_name}: {reason}", errors=[FieldError(field_name, reason)])


class MalformedRequest(DomainError):
    status = 400
    title = "Malformed request"
    type_slug = "malformed-request"


class Unauthorized(DomainError):
    status = 401
    title = "Unauthorized"
    type_slug = "unauthorized"


class NotFound(DomainError):
    status = 404
    title = "Not found"
    type_slug = "not-found"


class Conflict(DomainError):
    status = 409
    title = "Conflict"
    type_slug = "conflict"


class IdempotencyKeyReused(DomainError):
    status = 422
    title = "Idempotency-Key reused with another request"
    type_slug = "idempotency-key-reused"


class TooManyRequests(DomainError):
    status = 429
    title = "Too many requests"
    type_slug = "too-many-requests"


class PayloadTooLarge(DomainError):
    status = 413
    title = "Payload too large"
    type_slug = "payload-too-large"
