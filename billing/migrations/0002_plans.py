from decimal import Decimal

from django.db import migrations

FEATURES = {
    "rbac.custom_roles": "Define roles beyond the built-in ones",
    "crm.custom_fields": "Add custom fields to records",
    "crm.import_export": "Import records from CSV/XLSX and export lists",
    "crm.campaigns": "Run e-mail campaigns",
    "pipelines.multiple": "Run more than one sales pipeline",
    "analytics.forecast": "Revenue forecasts and insights",
    "assistant.copilot": "The AI co-pilot",
    "integrations.api_keys": "API keys for integrations",
    "integrations.webhooks": "Signed webhooks",
}

PRO_FEATURES = [
    "crm.custom_fields",
    "crm.import_export",
    "crm.campaigns",
    "pipelines.multiple",
    "analytics.forecast",
    "assistant.copilot",
    "integrations.api_keys",
    "integrations.webhooks",
]

PLANS = [
    {
        "code": "free",
        "name": "Free",
        "monthly_price": Decimal("0"),
        "yearly_price": Decimal("0"),
        "trial_days": 0,
        "sort_order": 10,
        "features": [],
        "limits": {
            "seats": 2,
            "contacts": 1000,
            "deals": 100,
            "api_calls_per_minute": 60,
            "api_calls_per_day": 1000,
            "copilot_messages_per_month": 0,
            "webhook_endpoints": 0,
            "custom_fields": 0,
        },
    },
    {
        "code": "pro",
        "name": "Pro",
        "monthly_price": Decimal("49"),
        "yearly_price": Decimal("490"),
        "trial_days": 14,
        "sort_order": 20,
        "features": PRO_FEATURES,
        "limits": {
            "seats": 25,
            "contacts": 100000,
            "deals": 50000,
            "api_calls_per_minute": 600,
            "api_calls_per_day": 100000,
            "copilot_messages_per_month": 1000,
            "webhook_endpoints": 10,
            "custom_fields": 50,
        },
    },
    {
        "code": "enterprise",
        "name": "Enterprise",
        "monthly_price": Decimal("199"),
        "yearly_price": Decimal("1990"),
        "trial_days": 14,
        "sort_order": 30,
        "features": [*PRO_FEATURES, "rbac.custom_roles"],
        "limits": {
            "api_calls_per_minute": 3000,
            "api_calls_per_day": 1000000,
            "copilot_messages_per_month": 10000,
            "webhook_endpoints": 100,
            "custom_fields": 500,
        },
    },
]


def create_plans(apps, schema_editor):
    Feature = apps.get_model("billing", "Feature")
    Plan = apps.get_model("billing", "Plan")
    PlanFeature = apps.get_model("billing", "PlanFeature")
    PlanLimit = apps.get_model("billing", "PlanLimit")
    features = {}
    for code, description in FEATURES.items():
        features[code], _ = Feature.objects.update_or_create(code=code, defaults={"description": description})
    for spec in PLANS:
        spec = dict(spec)
        feature_codes, limits = spec.pop("features"), spec.pop("limits")
        plan, _ = Plan.objects.update_or_create(code=spec.pop("code"), defaults=spec)
        for code in feature_codes:
            PlanFeature.objects.get_or_create(plan=plan, feature=features[code])
        for name, value in limits.items():
            PlanLimit.objects.update_or_create(plan=plan, limit=name, defaults={"value": value})


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]

    operations = [migrations.RunPython(create_plans, migrations.RunPython.noop)]
