from django.db import models


class SubscriptionStatus(models.TextChoices):
    TRIALING = "trialing", "Trialing"
    ACTIVE = "active", "Active"
    PAST_DUE = "past_due", "Past due"
    CANCELED = "canceled", "Canceled"


class BillingInterval(models.TextChoices):
    MONTHLY = "monthly", "Monthly"
    YEARLY = "yearly", "Yearly"


class Meter(models.TextChoices):
    """Consumption that billing counts per calendar month (UTC) and reports to the payment provider where the
    organization's plan prices it (:mod:`billing.metering`)."""

    COPILOT_MESSAGES = "copilot_messages", "Co-pilot messages"
    CAMPAIGN_MESSAGES = "campaign_messages", "Campaign messages"


class UsageThreshold(models.IntegerChoices):
    """Percentages of a limit at which the organization's owners are told (once per calendar month)."""

    WARNING = 80, "80 %"
    REACHED = 100, "100 %"
