"""Login, API keys, error language, request body and rate limits."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.security.accounts import AccountError, add_user, create_api_key, revoke_api_key

PASSWORD = "correct-horse-battery"


@pytest.fixture
def officer(db, site_id):
    username = f"officer-{site_id}".lower()
    add_user(db, username, PASSWORD, "customs_officer", [site_id], actor="test")
    return username


def _login(client, username, password, language="en"):
    return client.post(
        "/api/v1/auth/token",
        data={"username": username, "password": password},
        headers={"Accept-Language": language},
    )


def test_login_issues_token_for_me(client, officer, site_id):
    response = _login(client, officer, PASSWORD)

    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    assert response.json()["token_type"] == "bearer"
    me = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    assert me.json()["name"] == officer
    assert me.json()["role"] == "customs_officer"
    assert me.json()["sites"] == [site_id]
    assert "decisions:override" in me.json()["permissions"]


def test_login_wrong_password_and_unknown_user_same_body(client, officer):
    wrong = _login(client, officer, "not-the-password")
    unknown = _login(client, "nobody-at-all", "not-the-password")

    assert wrong.status_code == 401
    assert unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.json()["code"] == "invalid_credentials"


def test_disabled_user_token_rejected(client, db, officer):
    token = _login(client, officer, PASSWORD).json()["access_token"]
    db.execute("UPDATE api_users SET enabled = false WHERE username = %s", (officer,))

    response = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 401
    assert response.json()["code"] == "invalid_credentials"


def test_tampered_token_rejected(client, officer):
    token = _login(client, officer, PASSWORD).json()["access_token"]
    header, payload, signature = token.split(".")
    forged = f"{header}.{payload}.{signature[:-2]}AA"

    response = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {forged}"})

    assert response.status_code == 401


def test_missing_credentials_answer_401_in_chinese_by_default(client):
    response = client.get("/api/v1/alerts")

    assert response.status_code == 401
    assert response.json()["code"] == "unauthenticated"
    assert response.json()["message"] == "需要身份认证：请提供 Bearer 令牌或 X-API-Key 请求头。"
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_error_message_follows_accept_language(client, make_key, site_id):
    headers = make_key("supervisor", site_id)

    english = client.get(
        "/api/v1/containers/CSQU3054384", headers={**headers, "Accept-Language": "en-US,en;q=0.9"}
    )
    chinese = client.get("/api/v1/containers/CSQU3054384", headers={**headers, "Accept-Language": "zh-CN"})

    assert english.status_code == 422
    assert english.json()["code"] == chinese.json()["code"] == "invalid_container_number"
    assert english.json()["message"].isascii()
    assert not chinese.json()["message"].isascii()


def test_revoked_key_rejected(client, db, site_id):
    name = f"revoked-{site_id}"
    key = create_api_key(db, name, "integrator", [site_id], actor="test")
    assert client.get("/api/v1/auth/me", headers={"X-API-Key": key}).status_code == 200

    revoke_api_key(db, name, actor="test")

    response = client.get("/api/v1/auth/me", headers={"X-API-Key": key})
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_credentials"


def test_key_with_wrong_secret_rejected(client, db, site_id):
    key = create_api_key(db, f"guessed-{site_id}", "integrator", [site_id], actor="test")

    response = client.get("/api/v1/auth/me", headers={"X-API-Key": key[:-4] + "AAAA"})

    assert response.status_code == 401


def test_account_for_unknown_site_rejected(db):
    with pytest.raises(AccountError, match="not registered"):
        create_api_key(db, "nowhere", "integrator", ["NO-SUCH-SITE"], actor="test")
    with pytest.raises(AccountError, match="Role"):
        create_api_key(db, "bad-role", "superuser", ["NO-SUCH-SITE"], actor="test")


def test_account_changes_audited(db, site_id):
    name = f"audited-{site_id}"
    create_api_key(db, name, "auditor", [site_id], actor="cli:root")

    row = db.execute(
        "SELECT actor, action, details FROM audit_log WHERE subject = %s", (f"apikey:{name}",)
    ).fetchone()

    assert row[0] == "cli:root"
    assert row[1] == "apikey.create"
    assert row[2]["role"] == "auditor"


def test_body_over_limit_returns_413(client, make_key, site_id):
    headers = make_key("integrator", site_id, language="en")
    body = b'{"site_id": "' + b"x" * 1_100_000 + b'"}'

    declared = client.put(
        "/api/v1/declarations/224820261000000001",
        content=body,
        headers={**headers, "Content-Type": "application/json"},
    )
    chunked = client.put(
        "/api/v1/declarations/224820261000000001",
        content=iter([body[:600_000], body[600_000:]]),
        headers={**headers, "Content-Type": "application/json"},
    )

    assert declared.status_code == 413
    assert declared.json()["code"] == "body_too_large"
    assert "1000000 bytes" in declared.json()["message"]
    assert chunked.status_code == 413
    assert chunked.json()["code"] == "body_too_large"


def test_rate_limit_returns_429_with_retry_after(api_settings, db, site_id):
    settings = api_settings.model_copy(update={"rate_limit_per_minute": 3})
    key = create_api_key(db, f"limited-{site_id}", "supervisor", [site_id], actor="test")
    with TestClient(create_app(settings)) as limited:
        statuses = [
            limited.get("/api/v1/lanes", headers={"X-API-Key": key, "Accept-Language": "zh-CN"}).status_code
            for _ in range(4)
        ]
        refused = limited.get("/api/v1/lanes", headers={"X-API-Key": key, "Accept-Language": "en"})

    assert statuses == [200, 200, 200, 429]
    assert refused.status_code == 429
    assert refused.json()["code"] == "rate_limited"
    assert refused.json()["message"].startswith("Too many requests")
    assert int(refused.headers["Retry-After"]) >= 1


def test_login_attempts_limited(api_settings, officer):
    settings = api_settings.model_copy(update={"login_limit_per_minute": 2})
    with TestClient(create_app(settings)) as limited:
        statuses = [_login(limited, officer, "wrong-password-x").status_code for _ in range(3)]

    assert statuses == [401, 401, 429]


def test_demo_accounts_give_key_and_login(client, stack):
    from kouan.demo import DEMO_USERNAME, _demo_accounts

    key, password = _demo_accounts(stack.database_url)

    me = client.get("/api/v1/auth/me", headers={"X-API-Key": key})
    assert me.status_code == 200
    assert me.json()["role"] == "integrator"
    assert me.json()["sites"] == ["CNSHA-YS"]
    login = _login(client, DEMO_USERNAME, password)
    assert login.status_code == 200


def test_unknown_route_returns_stable_code(client):
    response = client.get("/api/v1/nothing-here", headers={"Accept-Language": "en"})

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_cli_creates_key_and_user(client, site_id):
    import subprocess
    import sys

    created = subprocess.run(
        [
            sys.executable,
            "-m",
            "kouan",
            "apikey",
            "create",
            f"cli-{site_id}",
            "--role",
            "integrator",
            "--site",
            site_id,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    added = subprocess.run(
        [sys.executable, "-m", "kouan", "user", "add", f"cli-{site_id}".lower(), "--role", "auditor"]
        + ["--site", site_id, "--password", PASSWORD],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("kouan_")
    me = client.get("/api/v1/auth/me", headers={"X-API-Key": key})
    assert me.json()["role"] == "integrator"
    assert added.returncode == 0, added.stderr
    assert _login(client, f"cli-{site_id}".lower(), PASSWORD).status_code == 200
