"""OpenAPI operation objects for the delivery API, in one shape: every route needs an API key (and
so may answer 401, or 429 to wrong keys past their limit) and its store (503 while it is away)."""

from __future__ import annotations

from typing import Any

from ...openapi import error_response
from ...openapi import json_response as doc_json

ERROR_MEANINGS = {
    400: "bad request",
    401: "no or unknown API key",
    403: "operator only",
    404: "no such id or line (or another enterprise's)",
    409: "exists / taken",
    413: "body too large",
    415: "not JSON",
    422: "invalid (problems name the JSON path)",
    429: "too many attempts (Retry-After)",
    503: "PostgreSQL or Redis does not answer; nothing was accepted (Retry-After)",
}
WRITE_ERRORS = (400, 413, 415, 422)  # what any request with a JSON body may get


def op(
    summary: str,
    ok: dict[str, Any],
    *codes: int,
    body: str | None = None,
    params: tuple[str, ...] = (),
    query: tuple[str | tuple[str, dict[str, Any]], ...] = (),
    body_schema: dict[str, Any] | None = None,
    body_type: str = "application/json",
) -> dict[str, Any]:
    responses: dict[str, Any] = {**ok}
    # 429: wrong keys past their limit (session.py); 503: a backend away (infra/outage.py)
    for c in sorted({401, 429, 503, *codes}):
        responses[str(c)] = error_response(ERROR_MEANINGS[c])
    o: dict[str, Any] = {
        "summary": summary,
        "tags": ["delivery"],
        "responses": responses,
        "security": [{"apiKey": []}],
    }
    params_doc = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in params]
    for q in query:  # a name (any text), or (name, its schema)
        name, schema = (q, {"type": "string"}) if isinstance(q, str) else q
        params_doc.append({"name": name, "in": "query", "required": False, "schema": schema})
    if params_doc:
        o["parameters"] = params_doc
    if body or body_schema:
        schema = body_schema or {"$ref": f"#/components/schemas/{body}"}
        o["requestBody"] = {"required": True, "content": {body_type: {"schema": schema}}}
    return o


def obj(desc: str) -> dict[str, Any]:
    return doc_json(desc, {"type": "object"})


OK, CREATED, DELETED = obj("OK"), obj("created"), {"description": "deleted"}
EID = ("eid",)
EXPOSED_SCHEMAS = {
    "enterprise": "DeliveryEnterprise",
    "call": "DeliveryCall",
    "verify": "DeliveryVerify",
    "reply": "DeliveryReply",
    "estimate": "DeliveryEstimate",
    "line": "DeliveryLine",
    "staff": "DeliveryStaff",
    "card": "DeliveryCard",
    "package": "DeliveryPackage",
    "brand_request": "DeliveryBrandRequest",
    "brand_decision": "DeliveryBrandDecision",
    "card_decision": "DeliveryCardDecision",
}
