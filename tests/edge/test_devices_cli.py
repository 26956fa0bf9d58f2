"""``kouan device add | list | revoke`` against the session's broker and database."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from tests.edge.test_security import connect_result


def kouan(*args: str) -> subprocess.CompletedProcess[str]:
    # A wide terminal keeps rich from wrapping device ids across table lines.
    return subprocess.run(
        [sys.executable, "-m", "kouan", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_device_add_writes_acl_for_own_topics_only(stack, site_id):
    device_id = f"{site_id}-IN01"
    result = kouan("device", "add", device_id, "--site", site_id, "--lane", "IN01")
    acl = (stack.mosquitto_dir / "acl").read_text()
    block = acl[acl.index(f"user {device_id}\n") :].split("\n\n")[0].splitlines()

    assert result.returncode == 0, result.stderr
    assert block == [
        f"user {device_id}",
        f"topic write kouan/v1/{site_id}/{device_id}/events",
        f"topic readwrite kouan/v1/{site_id}/{device_id}/status",
        f"topic read kouan/v1/{site_id}/{device_id}/receipts",
        f"topic read kouan/v1/{site_id}/{device_id}/commands",
    ]
    assert (stack.home / "devices" / device_id / "key.pem").stat().st_mode & 0o077 == 0


def test_device_list_shows_device(stack, site_id):
    device_id = f"{site_id}-IN01"
    kouan("device", "add", device_id, "--site", site_id, "--lane", "IN01")
    result = kouan("device", "list", "--site", site_id)

    assert result.returncode == 0, result.stderr
    assert device_id in result.stdout


def test_device_revoke_disables_and_refuses_login(stack, db, site_id):
    device_id = f"{site_id}-IN01"
    kouan("device", "add", device_id, "--site", site_id, "--lane", "IN01")
    from kouan.devices import DeviceIdentity

    identity = DeviceIdentity.load(stack.home, device_id)
    time.sleep(0.3)
    before = connect_result(stack, identity.mqtt_username, identity.mqtt_password)
    result = kouan("device", "revoke", device_id)
    time.sleep(0.3)
    after = connect_result(stack, identity.mqtt_username, identity.mqtt_password)
    enabled = db.execute("SELECT enabled FROM devices WHERE device_id = %s", (device_id,)).fetchone()[0]

    assert result.returncode == 0, result.stderr
    assert before == "Success"
    assert after in {"Not authorized", "Bad user name or password"}
    assert enabled is False
