"""Reading problem documents in tests, by the API's rule for codes: the top-level ``code`` is the class of error,
and an error about a field names it in ``errors[]`` with the field's own code (docs/decisions/0010-api-edge.md)."""

FIELD_ERROR_CLASSES = {400: "validation_error", 409: ("duplicate", "conflict")}


def field_error(response, *, status: int = 400) -> dict:
    """The first of ``errors[]`` of an error about input fields, after checking its status and top-level class."""
    body = response.json()
    assert response.status_code == status, body
    expected = FIELD_ERROR_CLASSES[status]
    assert body["code"] in (expected if isinstance(expected, tuple) else (expected,)), body
    assert body["errors"], body
    return body["errors"][0]
