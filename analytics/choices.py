from django.db import models


class Metric(models.TextChoices):
    """What one row of the daily snapshot counts (``DailyMetric.metric``)."""

    DEALS_CREATED = "deals.created", "Deals created"
    DEALS_WON = "deals.won", "Deals won (key: source of the lead the deal came from)"
    DEALS_WON_FRESH = "deals.won_fresh", "Deals won in the month they were created"
    DEALS_LOST = "deals.lost", "Deals lost"
    DEALS_CLOSED = "deals.closed", "Deals closed (stage: furthest open stage reached; key: won or lost)"
    STAGE_EXITS = "deals.stage_exits", "Deals leaving an open stage (stage: the stage left)"
    DEALS_OPEN = "deals.open", "Open deals at the end of the day"
    LEADS_CREATED = "leads.created", "Leads created (key: source)"
    ACTIVITIES_CREATED = "activities.created", "Activities logged (key: kind)"


class Interval(models.TextChoices):
    DAY = "day", "Day"
    WEEK = "week", "Week (Monday to Sunday)"
    MONTH = "month", "Month"


class Outcome(models.TextChoices):
    WON = "won", "Won"
    LOST = "lost", "Lost"


class Direction(models.TextChoices):
    ABOVE = "above", "Above the expected range"
    BELOW = "below", "Below the expected range"


class ActionKind(models.TextChoices):
    HIGH_VALUE_AT_RISK = "high_value_at_risk", "High value at risk"
    CLOSE_DATE_PASSED = "close_date_passed", "Close date passed"
    ROTTING = "rotting", "Rotting in its stage"
    NO_NEXT_ACTIVITY = "no_next_activity", "No next activity scheduled"
    STALE = "stale", "No recent activity"
    NO_CONTACT = "no_contact", "No contact person"


class Priority(models.TextChoices):
    HIGH = "high", "High"
    MEDIUM = "medium", "Medium"
    LOW = "low", "Low"
