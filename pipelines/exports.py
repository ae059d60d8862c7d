"""Deals, exported like crm's records: the columns, registered with crm's export registry at start-up
(``PipelinesConfig.ready``). crm never imports pipelines; pipelines uses crm's exports."""

from __future__ import annotations

from crm import exports
from crm.choices import RecordType

DEAL_COLUMNS: list[tuple[str, str]] = [
    ("id", "id"),
    ("title", "title"),
    ("amount", "amount"),
    ("currency", "currency"),
    ("pipeline", "pipeline__name"),
    ("stage", "stage__name"),
    ("status", "status"),
    ("contact", "contact__email"),
    ("company", "company__name"),
    ("expected_close_date", "expected_close_date"),
    ("owner", "owner__email"),
    ("tags", "export_tags"),
    ("lost_reason", "lost_reason"),
    ("stage_entered_at", "stage_entered_at"),
    ("won_at", "won_at"),
    ("lost_at", "lost_at"),
]
DEAL_PDF_COLUMNS = ["title", "amount", "currency", "stage", "status", "expected_close_date", "owner"]


def register() -> None:
    exports.register(RecordType.DEAL, columns=DEAL_COLUMNS, pdf_columns=DEAL_PDF_COLUMNS)
