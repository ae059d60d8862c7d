from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from billing.choices import BillingInterval
from billing.features import LIMIT_DESCRIPTIONS, Limit
from billing.models import Feature, Plan, Subscription
from billing.selectors import every_limit
from config.api.outputs import ModelOutput

# Every limit of the registry, always present: a number, or ``null`` for unlimited.
LimitsOutput = type(
    "LimitsOutput",
    (serializers.Serializer,),
    {
        "__doc__": "Every limit, always present: a number, or `null` when the limit does not apply (unlimited).",
        **{
            limit.value: serializers.IntegerField(
                allow_null=True, help_text=f"{LIMIT_DESCRIPTIONS[limit]}; `null`: unlimited."
            )
            for limit in Limit
        },
    },
)


class PlanOutput(ModelOutput):
    features: serializers.SlugRelatedField[Feature] = serializers.SlugRelatedField(
        slug_field="code", many=True, read_only=True
    )
    limits = serializers.SerializerMethodField()

    class Meta:
        model = Plan
        fields = ["code", "name", "monthly_price", "yearly_price", "currency", "trial_days", "features", "limits"]

    @extend_schema_field(LimitsOutput)
    def get_limits(self, obj) -> dict[str, int | None]:
        return every_limit({item.limit: item.value for item in obj.limits.all()})


class SubscriptionOutput(ModelOutput):
    plan = PlanOutput()
    features = serializers.SerializerMethodField()
    limits = serializers.SerializerMethodField()
    scheduled_plan: serializers.SlugRelatedField[Plan] = serializers.SlugRelatedField(
        slug_field="code",
        read_only=True,
        allow_null=True,
        help_text="The plan a downgrade moves to at `current_period_end`.",
    )

    class Meta:
        model = Subscription
        fields = [
            "plan",
            "status",
            "interval",
            "trial_ends_at",
            "current_period_start",
            "current_period_end",
            "canceled_at",
            "scheduled_plan",
            "scheduled_interval",
            "cancel_at_period_end",
            "past_due_since",
            "features",
            "limits",
        ]

    def get_features(self, obj) -> list[str]:
        """Effective features: the plan's with this organization's overrides."""
        return sorted(self.context["entitlements"].features)

    @extend_schema_field(LimitsOutput)
    def get_limits(self, obj) -> dict[str, int | None]:
        """Effective limits: the plan's with this organization's overrides."""
        return every_limit(self.context["entitlements"].limits)


class UsageOutput(serializers.Serializer):
    limit = serializers.CharField(help_text="One of the keys of a plan's `limits`.")
    value = serializers.IntegerField(allow_null=True, help_text="`null`: unlimited.")
    used = serializers.IntegerField(allow_null=True, help_text="`null`: not counted.")


class ChangePlanInput(serializers.Serializer):
    plan = serializers.SlugField()
    interval = serializers.ChoiceField(choices=BillingInterval.choices, required=False)


class PlanChangeOutput(SubscriptionOutput):
    """The subscription after a plan change request, and what the request did."""

    outcome = serializers.ChoiceField(
        choices=["changed", "scheduled", "checkout", "pending"],
        help_text="`changed`: now; `scheduled`: at `current_period_end`; `checkout`: pay at `checkout_url`, the "
        "plan applies once the payment provider confirms; `pending`: an upgrade invoiced, applied once paid.",
    )
    checkout_url = serializers.CharField(help_text="The payment provider's checkout page (`checkout` only).")

    class Meta(SubscriptionOutput.Meta):
        fields = [*SubscriptionOutput.Meta.fields, "outcome", "checkout_url"]


class PortalOutput(serializers.Serializer):
    url = serializers.URLField(help_text="The payment provider's customer portal: cards, invoices, cancellation.")


class InvoiceOutput(serializers.Serializer):
    id = serializers.CharField()
    number = serializers.CharField()
    status = serializers.CharField(help_text="draft, open, paid, uncollectible or void.")
    currency = serializers.CharField()
    amount_due = serializers.IntegerField(help_text="In the currency's smallest unit (cents).")
    amount_paid = serializers.IntegerField(help_text="In the currency's smallest unit (cents).")
    created = serializers.IntegerField(help_text="Unix time.")
    period_start = serializers.IntegerField(allow_null=True)
    period_end = serializers.IntegerField(allow_null=True)
    hosted_invoice_url = serializers.CharField()
    invoice_pdf = serializers.CharField()


class ProviderWebhookOutput(serializers.Serializer):
    received = serializers.BooleanField()
    outcome = serializers.ChoiceField(choices=["applied", "stale", "ignored", "duplicate"])
