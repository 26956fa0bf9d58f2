"""Every role against every endpoint, with callers scoped to site A and objects at site B.

For a role the endpoint admits, an object of site B gets exactly the response of an object
that does not exist (404, same body once the requested key is swapped), and a list of
site B the response of a list of an unknown site. For a role it refuses, the answer is 403
``forbidden`` whatever the object. No error body names site B.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from api.security.roles import allowed
from tests.api.conftest import ROLES, World


@dataclass(frozen=True)
class ObjectEndpoint:
    name: str
    permission: str
    method: str
    # world -> (path of site B's object, path of a missing object, key in B's path, key in the missing path)
    paths: Callable[[World], tuple[str, str, str, str]]
    body: Callable[[World], dict[str, Any] | None] = lambda world: None
    missing_method: str | None = None  # when asking for a missing object differs (PUT creates)


def _reason(world: World) -> dict[str, Any]:
    return {"reason": "matrix test"}


MISSING_UUID = str(uuid.UUID(int=0x1234))
MISSING_ALERT = "4000000000000000000"

OBJECT_ENDPOINTS = [
    ObjectEndpoint(
        "container",
        "containers:read",
        "GET",
        lambda w: (
            f"/api/v1/containers/{w.b.container_number}",
            f"/api/v1/containers/{w.missing_container}",
            w.b.container_number,
            w.missing_container,
        ),
    ),
    ObjectEndpoint(
        "timeline",
        "containers:read",
        "GET",
        lambda w: (
            f"/api/v1/containers/{w.b.container_number}/timeline",
            f"/api/v1/containers/{w.missing_container}/timeline",
            w.b.container_number,
            w.missing_container,
        ),
    ),
    ObjectEndpoint(
        "declaration",
        "declarations:read",
        "GET",
        lambda w: (
            f"/api/v1/declarations/{w.b.declaration_number}",
            f"/api/v1/declarations/{w.missing_declaration}",
            w.b.declaration_number,
            w.missing_declaration,
        ),
    ),
    ObjectEndpoint(
        "declaration put",
        "declarations:write",
        "PUT",
        lambda w: (
            f"/api/v1/declarations/{w.b.declaration_number}",
            f"/api/v1/declarations/{w.missing_declaration}",
            w.b.declaration_number,
            w.missing_declaration,
        ),
        body=lambda w: {"site_id": w.a.site_id, "containers": [{"container_number": w.a.container_number}]},
        missing_method="GET",
    ),
    ObjectEndpoint(
        "declaration status",
        "declarations:status",
        "POST",
        lambda w: (
            f"/api/v1/declarations/{w.b.declaration_number}/status",
            f"/api/v1/declarations/{w.missing_declaration}/status",
            w.b.declaration_number,
            w.missing_declaration,
        ),
        body=lambda w: {"status": "held", "reason": "matrix test"},
    ),
    ObjectEndpoint(
        "alert",
        "alerts:read",
        "GET",
        lambda w: (
            f"/api/v1/alerts/{w.b.alert_ids[0]}",
            f"/api/v1/alerts/{MISSING_ALERT}",
            str(w.b.alert_ids[0]),
            MISSING_ALERT,
        ),
    ),
    ObjectEndpoint(
        "alert acknowledge",
        "alerts:act",
        "POST",
        lambda w: (
            f"/api/v1/alerts/{w.b.alert_ids[-1]}/acknowledge",
            f"/api/v1/alerts/{MISSING_ALERT}/acknowledge",
            str(w.b.alert_ids[-1]),
            MISSING_ALERT,
        ),
        body=_reason,
    ),
    ObjectEndpoint(
        "alert resolve",
        "alerts:act",
        "POST",
        lambda w: (
            f"/api/v1/alerts/{w.b.alert_ids[-1]}/resolve",
            f"/api/v1/alerts/{MISSING_ALERT}/resolve",
            str(w.b.alert_ids[-1]),
            MISSING_ALERT,
        ),
        body=_reason,
    ),
    ObjectEndpoint(
        "decision",
        "decisions:read",
        "GET",
        lambda w: (
            f"/api/v1/decisions/{w.b.command_ids[0]}",
            f"/api/v1/decisions/{MISSING_UUID}",
            w.b.command_ids[0],
            MISSING_UUID,
        ),
    ),
    ObjectEndpoint(
        "decision override",
        "decisions:override",
        "POST",
        lambda w: (
            f"/api/v1/decisions/{w.b.command_ids[0]}/override",
            f"/api/v1/decisions/{MISSING_UUID}/override",
            w.b.command_ids[0],
            MISSING_UUID,
        ),
        body=_reason,
    ),
    ObjectEndpoint(
        "device",
        "devices:read",
        "GET",
        lambda w: (
            f"/api/v1/devices/{w.b.lane_device}",
            f"/api/v1/devices/{w.a.site_id}-NOPE",
            w.b.lane_device,
            f"{w.a.site_id}-NOPE",
        ),
    ),
    ObjectEndpoint(
        "read correction",
        "reads:correct",
        "POST",
        lambda w: (
            f"/api/v1/events/{w.b.event_ids[0]}/corrections",
            f"/api/v1/events/{MISSING_UUID}/corrections",
            w.b.event_ids[0],
            MISSING_UUID,
        ),
        body=lambda w: {
            "site_id": w.b.site_id,
            "field": "container_number",
            "corrected": w.b.container_number,
            "reason": "matrix test",
        },
    ),
]


def _missing_body(world: World, endpoint: ObjectEndpoint) -> dict[str, Any] | None:
    """The body for the missing object: the same request, aimed at the caller's own site."""
    body = endpoint.body(world)
    if body is not None and body.get("site_id") == world.b.site_id:
        body = {**body, "site_id": world.a.site_id}
    return body


@pytest.fixture(scope="module")
def callers(world, make_key):
    """Per role: a key for site A only, and one for site B (the positive control)."""
    return {
        role: {"a": make_key(role, world.a.site_id), "b": make_key(role, world.b.site_id)} for role in ROLES
    }


@pytest.mark.parametrize("endpoint", OBJECT_ENDPOINTS, ids=lambda endpoint: endpoint.name)
@pytest.mark.parametrize("role", ROLES)
def test_foreign_object_invisible_or_forbidden(client, world, callers, role, endpoint):
    foreign_path, missing_path, foreign_key, missing_key = endpoint.paths(world)
    headers = callers[role]["a"]

    foreign = client.request(endpoint.method, foreign_path, json=endpoint.body(world), headers=headers)
    missing = client.request(
        endpoint.missing_method or endpoint.method,
        missing_path,
        json=_missing_body(world, endpoint),
        headers=headers,
    )

    assert world.b.site_id not in foreign.text.replace(foreign_key, "")
    if not allowed(role, endpoint.permission):
        assert foreign.status_code == 403, foreign.text
        assert foreign.json()["code"] == "forbidden"
        if endpoint.missing_method is None:
            assert missing.status_code == 403
            assert missing.json() == foreign.json()
        return

    assert foreign.status_code == 404, foreign.text
    assert missing.status_code == 404, missing.text
    assert foreign.json() == {
        **missing.json(),
        "message": missing.json()["message"].replace(missing_key, foreign_key),
    }


@pytest.mark.parametrize(
    "endpoint", [endpoint for endpoint in OBJECT_ENDPOINTS if endpoint.method == "GET"], ids=lambda e: e.name
)
@pytest.mark.parametrize("role", ROLES)
def test_own_site_object_visible(client, world, callers, role, endpoint):
    foreign_path, *_ = endpoint.paths(world)

    response = client.get(foreign_path, headers=callers[role]["b"])

    expected = 200 if allowed(role, endpoint.permission) else 403
    assert response.status_code == expected, response.text


LIST_ENDPOINTS = [
    ("/api/v1/containers", "containers:read"),
    ("/api/v1/declarations", "declarations:read"),
    ("/api/v1/alerts", "alerts:read"),
    ("/api/v1/decisions", "decisions:read"),
    ("/api/v1/devices", "devices:read"),
    ("/api/v1/lanes", "devices:read"),
    ("/api/v1/statistics", "statistics:read"),
    ("/api/v1/events", "events:read"),
    ("/api/v1/audit", "audit:read"),
    ("/api/v1/stream", "stream:read"),
]


@pytest.mark.parametrize(("path", "permission"), LIST_ENDPOINTS, ids=[path for path, _ in LIST_ENDPOINTS])
@pytest.mark.parametrize("role", ROLES)
def test_foreign_site_list_like_unknown_site(client, world, callers, role, path, permission):
    headers = callers[role]["a"]

    foreign = client.get(path, params={"site": world.b.site_id}, headers=headers)
    unknown = client.get(path, params={"site": "NO-SUCH-SITE"}, headers=headers)

    # Equal to the unknown site's body but for the site id the caller sent.
    if not allowed(role, permission):
        assert foreign.status_code == 403
        assert foreign.json()["code"] == "forbidden"
        return
    assert foreign.status_code == 404, foreign.text
    assert unknown.status_code == 404
    assert foreign.json() == {
        **unknown.json(),
        "message": unknown.json()["message"].replace("NO-SUCH-SITE", world.b.site_id),
    }


@pytest.mark.parametrize(
    ("path", "permission"),
    [item for item in LIST_ENDPOINTS if item[0] not in ("/api/v1/stream", "/api/v1/statistics")],
    ids=[path for path, _ in LIST_ENDPOINTS if path not in ("/api/v1/stream", "/api/v1/statistics")],
)
@pytest.mark.parametrize("role", ROLES)
def test_unfiltered_list_shows_own_sites_only(client, world, callers, role, path, permission):
    response = client.get(path, headers=callers[role]["a"])

    if not allowed(role, permission):
        assert response.status_code == 403
        return
    assert response.status_code == 200, response.text
    assert world.b.site_id not in response.text
    assert world.b.container_number not in response.text


@pytest.mark.parametrize("role", ROLES)
def test_put_for_foreign_site_like_unknown(client, world, callers, role):
    headers = callers[role]["a"]
    body = {"site_id": world.b.site_id, "containers": [{"container_number": world.a.container_number}]}

    foreign = client.put(f"/api/v1/declarations/{world.missing_declaration}", json=body, headers=headers)
    unknown = client.put(
        f"/api/v1/declarations/{world.missing_declaration}",
        json={**body, "site_id": "NO-SUCH-SITE"},
        headers=headers,
    )

    assert world.b.site_id not in foreign.text.replace(f"Site {world.b.site_id}", "")
    if not allowed(role, "declarations:write"):
        assert foreign.status_code == 403
        return
    assert foreign.status_code == 422
    assert foreign.json()["code"] == "unknown_site"
    assert foreign.json() == {
        **unknown.json(),
        "message": unknown.json()["message"].replace("NO-SUCH-SITE", world.b.site_id),
    }


@pytest.mark.parametrize("role", ROLES)
def test_metrics_cover_own_sites_only(client, world, callers, role):
    response = client.get("/metrics", headers=callers[role]["a"])

    if not allowed(role, "metrics:read"):
        assert response.status_code == 403
        return
    assert response.status_code == 200
    assert f'site="{world.a.site_id}"' in response.text
    assert world.b.site_id not in response.text


@pytest.mark.parametrize("role", ROLES)
def test_audit_verify_for_auditors_only(client, world, callers, role):
    response = client.get("/api/v1/audit/verify", headers=callers[role]["a"])

    if not allowed(role, "audit:read"):
        assert response.status_code == 403
        return
    assert response.status_code == 200
    assert response.json()["intact"] is True
