from django.db import models


class Channel(models.TextChoices):
    EMAIL = "email", "E-mail"
    SMS = "sms", "SMS"
    WHATSAPP = "whatsapp", "WhatsApp"


class SegmentKind(models.TextChoices):
    STATIC = "static", "Static list"
    DYNAMIC = "dynamic", "Dynamic (saved contact filters)"


class ConsentStatus(models.TextChoices):
    OPTED_IN = "opted_in", "Opted in"
    OPTED_OUT = "opted_out", "Opted out"


class ConsentSource(models.TextChoices):
    API = "api", "Recorded through the API"
    FORM = "form", "Sign-up form"
    IMPORT = "import", "Import"
    UNSUBSCRIBE_LINK = "unsubscribe_link", "Unsubscribe link"
    ONE_CLICK = "one_click", "One-click unsubscribe (RFC 8058)"
    SMS_KEYWORD = "sms_keyword", "STOP / START reply"
    PROVIDER = "provider", "The e-mail provider's unsubscribe"
    COMPLAINT = "complaint", "Spam complaint"


# What a member records through the API; the others come from recipients and providers.
RECORDED_SOURCES = [
    (source.value, source.label) for source in (ConsentSource.API, ConsentSource.FORM, ConsentSource.IMPORT)
]


class SuppressionReason(models.TextChoices):
    HARD_BOUNCE = "hard_bounce", "Hard bounce"
    COMPLAINT = "complaint", "Spam complaint"
    INVALID_NUMBER = "invalid_number", "Invalid or unreachable number"


class CampaignStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    SCHEDULED = "scheduled", "Scheduled"
    SENDING = "sending", "Sending"
    PAUSED = "paused", "Paused"
    COMPLETED = "completed", "Completed"
    CANCELED = "canceled", "Canceled"


EDITABLE = frozenset({CampaignStatus.DRAFT, CampaignStatus.SCHEDULED})
FINISHED = frozenset({CampaignStatus.COMPLETED, CampaignStatus.CANCELED})


class DeliveryStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    SENDING = "sending", "Claimed by a runner"
    SENT = "sent", "Sent"
    DELIVERED = "delivered", "Delivered"
    BOUNCED = "bounced", "Bounced"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"


PENDING = (DeliveryStatus.QUEUED, DeliveryStatus.SENDING)


class SkipReason(models.TextChoices):
    NO_CONSENT = "no_consent", "No opt-in on the ledger, or opted out"
    SUPPRESSED = "suppressed", "Address suppressed (hard bounce, complaint)"
    DO_NOT_CONTACT = "do_not_contact", "The contact is marked do-not-contact"
    NO_ADDRESS = "no_address", "No e-mail address or phone number"
    CONTACT_DELETED = "contact_deleted", "The contact was deleted"
    CANCELED = "canceled", "The campaign was canceled"


# Buckets of a campaign's statistics over time.
STATS_INTERVALS = [("hour", "Hour"), ("day", "Day")]
