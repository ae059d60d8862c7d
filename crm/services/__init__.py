"""Writes of CRM records: plain functions, keyword-only, atomic, scope-checked, each recording its domain event
in the outbox in the same transaction. Views, tasks, admin actions and co-pilot tools all call these."""

from .activities import activity_complete, activity_create, activity_delete, activity_update
from .bulk import bulk_delete, bulk_update
from .contacts import (
    company_create,
    company_delete,
    company_update,
    contact_activate,
    contact_create,
    contact_deactivate,
    contact_delete,
    contact_update,
    normalize_domain,
    normalize_email,
)
from .conversion import Conversion, lead_convert
from .definitions import (
    custom_field_create,
    custom_field_delete,
    custom_field_update,
    tag_create,
    tag_delete,
    tag_update,
)
from .leads import LEAD_EDITABLE_STATUSES, lead_create, lead_delete, lead_disqualify, lead_qualify, lead_update
from .merging import company_merge, contact_merge

__all__ = [
    "LEAD_EDITABLE_STATUSES",
    "Conversion",
    "activity_complete",
    "activity_create",
    "activity_delete",
    "activity_update",
    "bulk_delete",
    "bulk_update",
    "company_create",
    "company_delete",
    "company_merge",
    "company_update",
    "contact_activate",
    "contact_create",
    "contact_deactivate",
    "contact_delete",
    "contact_merge",
    "contact_update",
    "custom_field_create",
    "custom_field_delete",
    "custom_field_update",
    "lead_convert",
    "lead_create",
    "lead_delete",
    "lead_disqualify",
    "lead_qualify",
    "lead_update",
    "normalize_domain",
    "normalize_email",
    "tag_create",
    "tag_delete",
    "tag_update",
]
