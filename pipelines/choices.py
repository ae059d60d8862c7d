from django.db import models


class StageKind(models.TextChoices):
    OPEN = "open", "Open"
    WON = "won", "Won"
    LOST = "lost", "Lost"


class DealStatus(models.TextChoices):
    OPEN = "open", "Open"
    WON = "won", "Won"
    LOST = "lost", "Lost"


# The stages every new organization's first pipeline starts with: (name, probability, kind, rotting days).
DEFAULT_STAGES: list[tuple[str, int, str, int | None]] = [
    ("Qualification", 10, StageKind.OPEN, 14),
    ("Needs analysis", 25, StageKind.OPEN, 14),
    ("Proposal", 50, StageKind.OPEN, 21),
    ("Negotiation", 75, StageKind.OPEN, 21),
    ("Won", 100, StageKind.WON, None),
    ("Lost", 0, StageKind.LOST, None),
]
DEFAULT_PIPELINE_NAME = "Sales pipeline"

STATUS_BY_KIND = {StageKind.OPEN: DealStatus.OPEN, StageKind.WON: DealStatus.WON, StageKind.LOST: DealStatus.LOST}
