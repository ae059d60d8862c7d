from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from billing.choices import BillingInterval
from billing.features import LIMIT_DESCRIPTIONS, Limit
from billing.models import Feature, Plan, Subscription
from billing.selectors import every_limit

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


class PlanOutput(serializers.ModelSerializer):
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


class SubscriptionOutput(serializers.ModelSerializer):
    plan = PlanOutput()
    features = serializers.SerializerMethodField()
    limits = serializers.SerializerMethodField()

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
