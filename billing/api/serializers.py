from rest_framework import serializers

from billing.choices import BillingInterval
from billing.models import Plan, Subscription


class PlanOutput(serializers.ModelSerializer):
    features = serializers.SlugRelatedField(slug_field="code", many=True, read_only=True)
    limits = serializers.SerializerMethodField()

    class Meta:
        model = Plan
        fields = ["code", "name", "monthly_price", "yearly_price", "currency", "trial_days", "features", "limits"]

    def get_limits(self, obj) -> dict[str, int]:
        return {item.limit: item.value for item in obj.limits.all()}


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

    def get_limits(self, obj) -> dict[str, int]:
        return self.context["entitlements"].limits


class UsageOutput(serializers.Serializer):
    limit = serializers.CharField()
    value = serializers.IntegerField(allow_null=True, help_text="None: unlimited.")
    used = serializers.IntegerField(allow_null=True, help_text="None: not counted.")


class ChangePlanInput(serializers.Serializer):
    plan = serializers.SlugField()
    interval = serializers.ChoiceField(choices=BillingInterval.choices, required=False)
