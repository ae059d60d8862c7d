"""The audit trail: services call :func:`record` inside their transaction."""

from __future__ import annotations

from typing import Any

from .actor import actor_identity
from .models import AuditEntry


def record(
    *,
    organization,
    actor,
    action: str,
    target_type: str,
    target_id: Any = "",
    before: dict | None = None,
    after: dict | None = None,
) -> AuditEntry:
    user_id, label = actor_identity(actor)
    return AuditEntry.objects.create(
        organization=organization,
        actor_id=user_id,
        actor_label=label,
        action=action,
        target_type=target_type,
        target_id=str(target_id or ""),
        before=before,
        after=after,
    )
