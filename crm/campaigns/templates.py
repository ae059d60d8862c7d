"""The safe template language of campaign subjects and bodies.

Only ``{{ variable }}`` with a name from :data:`VARIABLES` (no attribute walking: ``contact.company`` is the
company's name, declared as such), optionally followed by declared filters
(``{{ contact.first_name|default:"there" }}``).
No tags, no comments, no expressions. A template is compiled once per campaign into literal text and variable
slots, so rendering a message is a join.

Errors are 400 ``validation_error`` on the template's field: ``template_syntax_error`` with the position
(``line``, ``column``, ``offset``, 1-based line and column), or ``unknown_variable`` naming every unknown one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from config.api.errors import ValidationFailed

VARIABLES: dict[str, str] = {
    "contact.first_name": "The contact's first name",
    "contact.last_name": "The contact's last name",
    "contact.full_name": "First and last name",
    "contact.email": "The contact's e-mail address",
    "contact.phone": "The contact's phone number",
    "contact.job_title": "The contact's job title",
    "contact.company": "The name of the contact's company",
    "organization.name": "Your organization's name",
    "unsubscribe_url": "The recipient's own unsubscribe link (e-mail)",
}


def _default(value: str, argument: str | None) -> str:
    return value or (argument or "")


FILTERS: dict[str, tuple[Callable[[str, str | None], str], bool]] = {
    # name: (function, takes an argument)
    "upper": (lambda value, _arg: value.upper(), False),
    "lower": (lambda value, _arg: value.lower(), False),
    "title": (lambda value, _arg: value.title(), False),
    "default": (_default, True),
}

_NAME = re.compile(r"[a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)*\Z")
_FILTER = re.compile(r'\s*([a-z_]+)\s*(?::\s*"((?:[^"\\]|\\.)*)")?\s*\Z')


@dataclass(frozen=True)
class Slot:
    name: str
    filters: tuple[tuple[str, str | None], ...] = ()


@dataclass(frozen=True)
class Template:
    parts: tuple[str | Slot, ...]

    @property
    def variables(self) -> set[str]:
        return {part.name for part in self.parts if isinstance(part, Slot)}

    def render(self, context: Mapping[str, str]) -> str:
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = context.get(part.name) or ""
            for name, argument in part.filters:
                value = FILTERS[name][0](value, argument)
            out.append(value)
        return "".join(out)


class TemplateSyntaxError(ValidationFailed):
    code = "template_syntax_error"
    title = "The template has a syntax error."


class UnknownVariables(ValidationFailed):
    code = "unknown_variable"
    title = "The template uses variables that do not exist."


def _position(text: str, offset: int) -> dict[str, int]:
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return {"line": line, "column": column, "offset": offset}


def _syntax_error(field: str, text: str, offset: int, detail: str) -> TemplateSyntaxError:
    position = _position(text, offset)
    detail = f"{detail} (line {position['line']}, column {position['column']})"
    entry = {"field": field, "code": TemplateSyntaxError.code, "detail": detail, **position}
    return TemplateSyntaxError(detail, field=field, extra={"errors": [entry], "position": position})


def compile_template(text: str, *, field: str = "body") -> Template:
    """Parse ``text``; raise a 400 naming ``field`` on a syntax error or unknown variables."""
    parts: list[str | Slot] = []
    unknown: list[str] = []
    index = 0
    while True:
        start = text.find("{", index)
        while start != -1 and text[start + 1 : start + 2] not in ("{", "%", "#"):
            start = text.find("{", start + 1)
        if start == -1:
            parts.append(text[index:])
            break
        parts.append(text[index:start])
        if text[start + 1] in "%#":
            kind = "Tags ({% %})" if text[start + 1] == "%" else "Comments ({# #})"
            raise _syntax_error(field, text, start, f"{kind} are not supported; only {{{{ variable }}}}")
        end = text.find("}}", start + 2)
        if end == -1:
            raise _syntax_error(field, text, start, "Unclosed '{{'")
        inner = text[start + 2 : end]
        if "{{" in inner:
            raise _syntax_error(field, text, start + 2 + inner.index("{{"), "'{{' inside a variable")
        head, *filter_specs = inner.split("|")
        name = head.strip()
        if not name:
            raise _syntax_error(field, text, start, "Empty variable")
        if not _NAME.match(name):
            raise _syntax_error(field, text, start, f"Invalid variable name {name!r}")
        filters = []
        for spec in filter_specs:
            match = _FILTER.match(spec)
            if match is None or match.group(1) not in FILTERS:
                raise _syntax_error(
                    field, text, start, f"Unknown filter {spec.strip()!r}; available: {', '.join(sorted(FILTERS))}"
                )
            filter_name, argument = match.group(1), match.group(2)
            takes_argument = FILTERS[filter_name][1]
            if takes_argument != (argument is not None):
                need = 'an argument, e.g. |default:"text"' if takes_argument else "no argument"
                raise _syntax_error(field, text, start, f"The filter {filter_name!r} takes {need}")
            filters.append((filter_name, argument.replace('\\"', '"') if argument is not None else None))
        if name not in VARIABLES and name not in unknown:
            unknown.append(name)
        parts.append(Slot(name, tuple(filters)))
        index = end + 2
    if unknown:
        detail = f"Unknown variables: {', '.join(unknown)}. Available: {', '.join(VARIABLES)}."
        raise UnknownVariables(
            detail,
            field=field,
            extra={
                "errors": [{"field": field, "code": UnknownVariables.code, "detail": detail, "variables": unknown}],
                "variables": unknown,
            },
        )
    return Template(tuple(part for part in parts if part != ""))
