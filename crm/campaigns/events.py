"""The domain events campaigns record (their JSON Schemas are in integrations/events.py, the catalogue)."""

CAMPAIGN_EVENTS = (
    "campaign.scheduled",
    "campaign.started",
    "campaign.paused",
    "campaign.resumed",
    "campaign.canceled",
    "campaign.completed",
    "delivery.bounced",
    "contact.unsubscribed",
    "contact.subscribed",
)
