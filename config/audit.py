"""The audit trail's door for the apps below ``rbac``, which owns the trail (``AuditEntry``, ``/audit-log/``).

``billing`` records subscription, override and plan changes in the trail but sits below ``rbac`` (``rbac``
decides from its entitlements). It records through :func:`record`; ``rbac`` registers the writer when Django
starts (``RbacConfig.ready``). Apps above ``rbac`` call ``rbac.audit.record`` directly: it is the same function.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_writer: Callable[..., Any] | None = None


def register_writer(writer: Callable[..., Any]) -> None:
    global _writer
    _writer = writer


def record(**change: Any) -> Any:
    """Record one change in the audit trail, in the caller's transaction. Keyword arguments as
    ``rbac.audit.record``: ``organization``, ``actor``, ``action``, ``target_type``, ``target_id``, ``before``,
    ``after``."""
    if _writer is None:
        raise RuntimeError("the audit trail has no writer: rbac registers it when Django starts")
    return _writer(**change)
