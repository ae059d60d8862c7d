"""Business-rule errors of webhooks, each with a stable code."""

from config.api.errors import Conflict, ValidationFailed


class InvalidWebhookUrl(ValidationFailed):
    code = "invalid_url"
    title = "Give an absolute http(s) URL without credentials."


class UnsafeUrl(ValidationFailed):
    code = "unsafe_url"
    title = "Webhooks are only sent to public internet addresses."


class UnknownEventType(ValidationFailed):
    code = "unknown_event_type"
    title = "Unknown event type; see GET /api/v1/webhooks/event-types/."


class WebhookEndpointDisabled(Conflict):
    code = "webhook_endpoint_disabled"
    title = "The endpoint is disabled; enable it first."


class ReplayTooLarge(ValidationFailed):
    code = "replay_too_large"
    title = "Too many events to replay at once; choose a later start."
