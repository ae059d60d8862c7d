from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from tenants.models import Organization

from .choices import BillingInterval, Meter, SubscriptionStatus
from .features import Limit


class Feature(models.Model):
    """A plan-gated capability. Rows mirror billing.features.Feature (kept in sync by migrations)."""

    code = models.CharField(max_length=64, unique=True)
    description = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.code


class Plan(models.Model):
    code = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=100)
    monthly_price = models.DecimalField(max_digits=10, decimal_places=2, default=0)
    yearly_price = models.DecimalField(max_digits=10, decimal_places=2, default=0)
    currency = models.CharField(max_length=3, default="USD")
    trial_days = models.PositiveSmallIntegerField(default=0)
    is_public = models.BooleanField(default=True)
    sort_order = models.PositiveSmallIntegerField(default=0)
    features = models.ManyToManyField(Feature, through="PlanFeature", related_name="plans", blank=True)
    # The payment provider's recurring prices of this plan (Stripe ``price_...``). A paid plan without the
    # interval's price cannot be bought (409 plan_not_purchasable); operators still grant it in the admin.
    provider_monthly_price = models.CharField(max_length=100, blank=True, help_text="Stripe price id, monthly")
    provider_yearly_price = models.CharField(max_length=100, blank=True, help_text="Stripe price id, yearly")

    class Meta:
        ordering = ["sort_order", "monthly_price", "code"]

    def __str__(self) -> str:
        return self.name


class PlanFeature(models.Model):
    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="plan_features")
    feature = models.ForeignKey(Feature, on_delete=models.CASCADE, related_name="plan_features")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["plan", "feature"], name="plan_feature_unique")]

    def __str__(self) -> str:
        return f"{self.plan} · {self.feature}"


class PlanLimit(models.Model):
    """A numeric limit of a plan. No row means unlimited."""

    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="limits")
    limit = models.CharField(max_length=64, choices=[(item.value, item.value) for item in Limit])
    value = models.PositiveBigIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["plan", "limit"], name="plan_limit_unique")]

    def __str__(self) -> str:
        return f"{self.plan} · {self.limit} = {self.value}"


class PlanMeter(models.Model):
    """A plan that prices a meter: its metered price (added to the provider subscription at checkout) and the
    provider meter's event name that usage is reported under."""

    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="meters")
    meter = models.CharField(max_length=32, choices=Meter.choices)
    provider_price = models.CharField(max_length=100, help_text="Stripe metered price id")
    provider_event_name = models.CharField(max_length=100, help_text="Stripe billing meter event name")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["plan", "meter"], name="plan_meter_unique")]

    def __str__(self) -> str:
        return f"{self.plan} · {self.meter}"


class Subscription(models.Model):
    organization = models.OneToOneField(Organization, on_delete=models.CASCADE, related_name="subscription")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="subscriptions")
    status = models.CharField(max_length=16, choices=SubscriptionStatus.choices, default=SubscriptionStatus.ACTIVE)
    interval = models.CharField(max_length=16, choices=BillingInterval.choices, default=BillingInterval.MONTHLY)
    trial_ends_at = models.DateTimeField(null=True, blank=True)
    current_period_start = models.DateTimeField()
    current_period_end = models.DateTimeField(null=True, blank=True)
    canceled_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    # The payment provider's side (Stripe): customer and subscription ids, and the creation time of the newest
    # provider event applied (older ones arriving late change nothing).
    provider_customer_id = models.CharField(max_length=100, blank=True, db_index=True)
    provider_subscription_id = models.CharField(max_length=100, blank=True, db_index=True)
    provider_event_at = models.DateTimeField(null=True, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    # A downgrade asked for: it takes effect at ``current_period_end``.
    scheduled_plan = models.ForeignKey(Plan, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    scheduled_interval = models.CharField(max_length=16, choices=BillingInterval.choices, blank=True)
    # When the subscription became past due: dunning downgrades it BILLING_GRACE_DAYS later.
    past_due_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["status", "trial_ends_at"], name="subscription_trial_idx"),
            models.Index(fields=["status", "past_due_since"], name="subscription_dunning_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.organization} on {self.plan} ({self.status})"


class Override(models.Model):
    """A per-organization exception to its plan: grant or revoke a feature, or set a limit, optionally until."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="plan_overrides")
    feature = models.ForeignKey(Feature, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    enabled = models.BooleanField(default=True, help_text="For a feature: grant (on) or revoke (off).")
    limit = models.CharField(
        max_length=64, blank=True, choices=[(item.value, item.value) for item in Limit], help_text="Limit to set."
    )
    limit_value = models.PositiveBigIntegerField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(Q(feature__isnull=False) & Q(limit=""))
                | (Q(feature__isnull=True) & ~Q(limit="") & Q(limit_value__isnull=False)),
                name="override_feature_xor_limit",
            )
        ]

    def __str__(self) -> str:
        if self.feature_id:
            return f"{self.organization}: {self.feature} {'on' if self.enabled else 'off'}"
        return f"{self.organization}: {self.limit} = {self.limit_value}"

    def clean(self) -> None:
        if bool(self.feature_id) == bool(self.limit):
            raise ValidationError("An override changes either one feature or one limit.")
        if self.limit and self.limit_value is None:
            raise ValidationError({"limit_value": "Give the limit's new value."})


class ProviderEvent(models.Model):
    """A payment provider event, stored when it is processed: a second delivery of the same id changes nothing."""

    event_id = models.CharField(max_length=100, unique=True)
    type = models.CharField(max_length=100)
    created = models.DateTimeField(help_text="When the provider created the event")
    organization = models.ForeignKey(Organization, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    outcome = models.CharField(max_length=32, help_text="applied, stale (older than what was applied), ignored")
    processed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.event_id} {self.type} ({self.outcome})"


class UsageAlert(models.Model):
    """An organization reached a threshold of a limit; one row per limit, threshold and calendar month (UTC), so
    owners are told once."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="usage_alerts")
    limit = models.CharField(max_length=64, choices=[(item.value, item.value) for item in Limit])
    threshold = models.PositiveSmallIntegerField()
    period_start = models.DateField()
    used = models.PositiveBigIntegerField()
    value = models.PositiveBigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "limit", "threshold", "period_start"], name="usage_alert_once_per_period"
            )
        ]

    def __str__(self) -> str:
        return f"{self.organization}: {self.limit} {self.threshold}% ({self.period_start:%Y-%m})"


class MeteredUsage(models.Model):
    """What an organization consumed of a meter in a calendar month (UTC), and how much of it the provider has
    been told (``reported``; ``reporting`` is the total being reported, so a retry resends the same range)."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="metered_usage")
    meter = models.CharField(max_length=32, choices=Meter.choices)
    period_start = models.DateField()
    quantity = models.PositiveBigIntegerField(default=0)
    reported = models.PositiveBigIntegerField(default=0)
    reporting = models.PositiveBigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "meter", "period_start"], name="metered_usage_unique")
        ]

    def __str__(self) -> str:
        return f"{self.organization}: {self.meter} {self.quantity} ({self.period_start:%Y-%m})"
