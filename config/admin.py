"""Shared plumbing of the operators' admin."""

from collections.abc import Callable, Iterable

from django.contrib import admin, messages

from config.api.errors import DomainError


def apply_to_each(modeladmin, request, objects: Iterable, change: Callable, *, done: str, label=str) -> None:
    """Run an admin action's ``change`` on each object through the services; report how many succeeded and, one
    message per object, what a service refused (an organization's rule never aborts the others)."""
    succeeded = 0
    for obj in objects:
        try:
            change(obj)
        except DomainError as exc:
            modeladmin.message_user(request, f"{label(obj)}: {exc.detail}", messages.ERROR)
        else:
            succeeded += 1
    if succeeded:
        modeladmin.message_user(request, f"{succeeded} organization(s) {done}.", messages.SUCCESS)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows operators look at but change only through the services (or never: a log)."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
