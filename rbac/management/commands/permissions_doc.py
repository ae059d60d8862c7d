from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from rbac.docs import permissions_markdown

TARGET = Path(settings.BASE_DIR) / "docs" / "permissions.md"


class Command(BaseCommand):
    help = "Write docs/permissions.md (endpoints × permissions × features × default roles) from the declarations."

    def add_arguments(self, parser):
        parser.add_argument("--check", action="store_true", help="Fail if the committed file is stale.")

    def handle(self, *args, check: bool = False, **options):
        content = permissions_markdown()
        if check:
            if not TARGET.exists() or TARGET.read_text() != content:
                raise CommandError("docs/permissions.md is stale: run `manage.py permissions_doc`")
            self.stdout.write("docs/permissions.md is current")
            return
        TARGET.write_text(content)
        self.stdout.write(f"wrote {TARGET.relative_to(settings.BASE_DIR)}")
