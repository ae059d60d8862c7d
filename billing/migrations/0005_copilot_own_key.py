from django.db import migrations

# Enterprise organizations may bring their own model key for the co-pilot (docs/decisions/0019).
CODE = "assistant.own_model_key"
DESCRIPTION = "The co-pilot with the organization's own model key"


def add_feature(apps, schema_editor):
    Feature = apps.get_model("billing", "Feature")
    Plan = apps.get_model("billing", "Plan")
    PlanFeature = apps.get_model("billing", "PlanFeature")
    feature, _ = Feature.objects.update_or_create(code=CODE, defaults={"description": DESCRIPTION})
    plan = Plan.objects.filter(code="enterprise").first()
    if plan is not None:
        PlanFeature.objects.get_or_create(plan=plan, feature=feature)


def remove_feature(apps, schema_editor):
    apps.get_model("billing", "Feature").objects.filter(code=CODE).delete()


class Migration(migrations.Migration):
    dependencies = [("billing", "0004_payments")]

    operations = [migrations.RunPython(add_feature, remove_feature)]
