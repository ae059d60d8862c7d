"""Give every organization that has none its default pipeline (organizations provisioned before the pipeline was
made at provisioning, which listing pipelines used to make on first read). Idempotent: run it once after deploying."""

from django.core.management.base import BaseCommand
from django.db import transaction
from django_tenants.utils import tenant_context

from pipelines.models import Pipeline
from pipelines.services import pipeline_create_default
from rbac.actor import SystemActor
from tenants.selectors import tenant_organizations


class Command(BaseCommand):
    help = "Create the default pipeline of every organization that has none."

    def handle(self, *args, **options):
        created = 0
        for organization in tenant_organizations().order_by("pk"):
            with tenant_context(organization), transaction.atomic():
                if not Pipeline.objects.filter(is_default=True).exists():
                    pipeline_create_default(actor=SystemActor("ensure_default_pipelines"))
                    created += 1
        self.stdout.write(f"default pipelines created: {created}")
