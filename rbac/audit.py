"""The audit trail: services call :func:`record` inside their transaction."""

from __future__ import annotations

from typing import Any

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
    label = getattr(actor, "email", None) or getattr(actor, "name", "") or ""
    user = actor if getattr(actor, "is_authenticated", False) and hasattr(actor, "email") else None
    return AuditEntry.objects.create(
        organization=organization,
        actor=user,
        actor_label=label,
        action=action,
        target_type=target_type,
        target_id=str(target_id or ""),
        before=before,
        after=after,
    )
