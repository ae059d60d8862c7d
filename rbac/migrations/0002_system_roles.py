from django.db import migrations

SYSTEM_ROLES = [
    ("owner", "Owner", "Everything, including the plan and the organization's ownership."),
    ("admin", "Admin", "Everything except the plan and ownership."),
    ("manager", "Manager", "All records, pipelines and reports; no member administration."),
    ("sales_rep", "Sales Rep", "Their own records; creates records and deals."),
    ("support", "Support", "Sees customers, edits contacts and companies, logs activities."),
    ("viewer", "Viewer", "Read-only access."),
]


def create_system_roles(apps, schema_editor):
    Role = apps.get_model("rbac", "Role")
    for key, name, description in SYSTEM_ROLES:
        Role.objects.update_or_create(
            organization=None, key=key, defaults={"name": name, "description": description, "grants": {}}
        )


class Migration(migrations.Migration):
    dependencies = [("rbac", "0001_initial")]

    operations = [migrations.RunPython(create_system_roles, migrations.RunPython.noop)]
