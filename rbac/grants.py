"""Grants (permission code → ``own`` | ``all``), as a custom role stores them and an API key carries them:
checked against the catalogue, and never more than the member handing them out holds."""

from __future__ import annotations

from config.permissions import Scope, catalogue

from .errors import GrantExceedsOwn, UnknownPermission


def grants_validated(grants: dict[str, str], *, field: str) -> dict[str, str]:
    """The grants, sorted, when every code is known and every scope fits it (``own`` only for scoped
    permissions); else :class:`UnknownPermission` about ``field``."""
    known = catalogue()
    clean: dict[str, str] = {}
    for code, scope in grants.items():
        permission = known.get(code)
        if permission is None:
            raise UnknownPermission(f"Unknown permission {code!r}.", field=field)
        if scope not in (Scope.OWN, Scope.ALL) or (scope == Scope.OWN and not permission.scoped):
            raise UnknownPermission(f"{code} cannot have scope {scope!r}.", field=field, code="invalid_scope")
        clean[code] = str(scope)
    return dict(sorted(clean.items()))


def grants_check_held(grants: dict[str, str], *, held: dict[str, str] | None) -> None:
    """A member hands out only what they hold: :class:`GrantExceedsOwn` for the first grant beyond ``held`` (the
    granting member's grants; None: the system, which holds everything)."""
    if held is None:
        return
    for code, scope in grants.items():
        mine = held.get(code)
        if mine is None or (mine == Scope.OWN and scope == Scope.ALL):
            raise GrantExceedsOwn(f"You do not hold {code} ({scope}).", extra={"permission": code})
