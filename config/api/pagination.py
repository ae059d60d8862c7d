"""One list shape for the whole API: every collection is a page ``{count, next, previous, results}`` of at most
``page_size`` items (25 by default, 100 at most), selected with ``page`` and ``page_size``."""

from typing import Any

from rest_framework import pagination


class PageNumberPagination(pagination.PageNumberPagination):
    page_size = 25
    page_size_query_param = "page_size"
    max_page_size = 100


def paginated_response(view, items, serializer_class=None, *, load=None, context: dict | None = None):
    """A page of ``items`` (a queryset or a list), what every collection endpoint answers. ``load`` turns the page's
    rows into what is serialized (or, without ``serializer_class``, into the results themselves)."""
    paginator = PageNumberPagination()
    page: Any = paginator.paginate_queryset(items, view.request, view=view)
    rows = load(page) if load is not None else page
    if serializer_class is not None:
        context = {"request": view.request, "view": view, **(context or {})}
        rows = serializer_class(rows, many=True, context=context).data
    return paginator.get_paginated_response(rows)
