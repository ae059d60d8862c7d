"""The co-pilot's errors, each with a stable code (decision 0010)."""

from __future__ import annotations

from rest_framework import status

from config.api.errors import Conflict, DomainError, NotFound


class AssistantNotConfigured(DomainError):
    code = "assistant_not_configured"
    status = status.HTTP_503_SERVICE_UNAVAILABLE
    title = "The co-pilot has no language model configured."

    def __init__(self):
        super().__init__(
            "Set ASSISTANT_MODEL and ASSISTANT_API_KEY (and ASSISTANT_BASE_URL for a server other than OpenAI's) "
            "in the server's environment, or give the organization its own key."
        )


class _Upstream(DomainError):
    """The language model did not answer as it should; ``retry_after`` seconds when it said (or we chose)."""

    def __init__(self, detail: str | None = None, *, retry_after: int | None = None):
        headers, extra = {}, {}
        if retry_after is not None:
            headers["Retry-After"] = str(max(1, int(retry_after)))
            extra["retry_after"] = max(1, int(retry_after))
        super().__init__(detail, headers=headers, extra=extra)


class UpstreamError(_Upstream):
    code = "assistant_upstream_error"
    status = status.HTTP_502_BAD_GATEWAY
    title = "The language model answered with an error."


class UpstreamUnavailable(_Upstream):
    code = "assistant_unavailable"
    status = status.HTTP_503_SERVICE_UNAVAILABLE
    title = "The language model is unreachable or overloaded; try again shortly."


class UpstreamRateLimited(_Upstream):
    code = "assistant_rate_limited"
    status = status.HTTP_503_SERVICE_UNAVAILABLE
    title = "The language model's rate limit is reached; try again after Retry-After."


class UpstreamTimeout(_Upstream):
    code = "assistant_timeout"
    status = status.HTTP_504_GATEWAY_TIMEOUT
    title = "The language model did not answer in time."


class AssistantBusy(_Upstream):
    code = "assistant_busy"
    status = status.HTTP_503_SERVICE_UNAVAILABLE
    title = "This server is answering as many co-pilot messages as it takes at once; try again after Retry-After."


class ConversationNotFound(NotFound):
    code = "not_found"


class ProposalNotPending(Conflict):
    code = "proposal_not_pending"
    title = "This proposed action was already confirmed or rejected."


class OwnKeyNotInPlan(DomainError):
    code = "feature_not_in_plan"
    status = status.HTTP_403_FORBIDDEN
    title = "Bringing the organization's own model key needs the Enterprise plan."
