"""Create the demo organization and its owner, once; print how to sign in. It fills several apps (identity,
billing, crm), so it lives above them, in config."""

from decimal import Decimal

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django_tenants.utils import tenant_context

from billing.services import subscription_change_plan
from crm.services import lead_create
from identity.models import User
from identity.services import user_register
from rbac.actor import SystemActor

DEMO_LEADS = [
    ("Ada Lovelace", "ada@analytical.example", "Analytical Engines", "website", Decimal("12000")),
    ("Grace Hopper", "grace@cobol.example", "Compilers Inc", "referral", Decimal("45000")),
    ("Alan Turing", "alan@bletchley.example", "Bletchley Labs", "event", Decimal("8000")),
]


class Command(BaseCommand):
    help = "Create a demo organization (Enterprise plan, sample leads) with an owner login, unless it exists."

    def add_arguments(self, parser):
        parser.add_argument("--email", default="owner@demo.example")
        parser.add_argument("--password", default="demo-Password-2026")
        parser.add_argument("--organization", default="Demo Company")
        parser.add_argument("--operator-email", default="operator@demo.example")

    def handle(self, *args, email: str, password: str, organization: str, operator_email: str, **options):
        user = User.objects.filter(email=email.lower()).first()
        if user is None:
            with transaction.atomic():
                user, org = user_register(
                    email=email, password=password, first_name="Demo", last_name="Owner", organization_name=organization
                )
                subscription_change_plan(organization=org, plan_code="enterprise", actor=None)
                with tenant_context(org):
                    for name, lead_email, company, source, value in DEMO_LEADS:
                        lead_create(
                            actor=SystemActor("demo data"),
                            owner_id=user.pk,
                            name=name,
                            email=lead_email,
                            company_name=company,
                            source=source,
                            estimated_value=value,
                        )
            self.stdout.write(self.style.SUCCESS(f"Demo organization created: {org.name} ({org.slug})"))
        else:
            membership = user.memberships.select_related("organization").first()
            if membership is None:
                raise CommandError(f"{email} exists and belongs to no organization; choose another --email")
            org = membership.organization
            self.stdout.write(f"Demo organization: {org.name} ({org.slug}), created earlier")
        operator = User.objects.filter(email=operator_email.lower()).first()
        if operator is None:
            operator = User.objects.create_superuser(email=operator_email, password=password)
        self.stdout.write(f"  organization slug: {org.slug}   (send it as the X-Organization header)")
        self.stdout.write(f"  owner e-mail:      {email}")
        self.stdout.write(f"  owner password:    {self._password_of(user, password)}")
        self.stdout.write(f"  operator (admin):  {operator_email}, at /admin/")
        self.stdout.write(f"  operator password: {self._password_of(operator, password)}")

    @staticmethod
    def _password_of(user: User, password: str) -> str:
        """The demo password, every run, as long as it still signs the user in."""
        if user.check_password(password):
            return password
        return f"(changed since; `manage.py changepassword {user.email}` sets a new one)"
