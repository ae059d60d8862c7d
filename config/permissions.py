"""The permission catalogue: every permission code the product knows, declared by the app that owns it.

Each app lists its codes in ``<app>/permissions.py`` with :func:`declare`; the catalogue is complete once
Django's apps are ready (``rbac.apps`` imports every app's module). Codes read ``<app>.<resource>.<verb>``.
A *scoped* permission applies to records with an owner: a role grants it for ``own`` records or ``all``.

Plumbing, below every app: any app declares its codes and its viewsets name them (``action_permissions``,
or :data:`MEMBER`); ``rbac`` grants them to roles and decides (``rbac/policy.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Scope(StrEnum):
    OWN = "own"
    ALL = "all"


@dataclass(frozen=True)
class Permission:
    code: str
    description: str
    scoped: bool = False

    def __str__(self) -> str:
        return self.code


# Declares an action any member may run (their own profile, leaving the organization).
MEMBER = "member"

_CATALOGUE: dict[str, Permission] = {}


def declare(code: str, description: str, *, scoped: bool = False) -> str:
    """Register a permission code and return it, so modules can keep it as a constant."""
    existing = _CATALOGUE.get(code)
    if existing and existing != Permission(code, description, scoped):
        raise ValueError(f"permission {code} declared twice with different definitions")
    _CATALOGUE[code] = Permission(code, description, scoped)
    return code


def catalogue() -> dict[str, Permission]:
    return dict(sorted(_CATALOGUE.items()))


def get(code: str) -> Permission | None:
    return _CATALOGUE.get(code)
