"""The `kouan import` commands as an operator runs them, against the real stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import free_port, start_collector, stored_count, wait_for

FIXTURES = Path(__file__).parent / "fixtures"


def test_tos_feed_command_takes_http_drop_to_database(db, site_id, make_device, processes, tmp_path):
    identity = make_device(site_id, "TOS", kind="tos_feed")
    start_collector(processes, site_id, 1)
    port = free_port()
    processes.start(
        "import",
        "tos-feed",
        identity.device_id,
        "--drop-dir",
        str(tmp_path / "drop"),
        "--sender-zone",
        "ITGOAVTE=Europe/Rome",
        "--http-port",
        str(port),
        log="tos-feed",
    )

    def accepted() -> bool:
        """the HTTP drop accepted the COARRI file"""
        try:
            response = httpx.post(
                f"http://127.0.0.1:{port}/drop/coarri.edi",
                content=(FIXTURES / "coarri_genoa_d95b.edi").read_bytes(),
            )
        except httpx.ConnectError:
            return False
        return response.status_code == 202

    wait_for(accepted, timeout=30)
    wait_for(lambda: stored_count(db, identity.device_id) == 21, timeout=60)
    assert (tmp_path / "drop" / "done" / "coarri.edi").exists()
    report = json.loads((tmp_path / "drop" / "done" / "coarri.edi.report.json").read_text())
    assert report["events_emitted"] == 21


def test_tos_feed_http_drop_refuses_hidden_names(site_id, make_device, processes, tmp_path):
    identity = make_device(site_id, "TOS", kind="tos_feed")
    port = free_port()
    processes.start(
        "import",
        "tos-feed",
        identity.device_id,
        "--drop-dir",
        str(tmp_path / "drop"),
        "--http-port",
        str(port),
    )

    def answered() -> httpx.Response | None:
        """the HTTP drop returns a response"""
        try:
            return httpx.post(f"http://127.0.0.1:{port}/drop/.hidden", content=b"UNH")
        except httpx.ConnectError:
            return None

    assert wait_for(answered, timeout=30).status_code == 404


def test_import_customs_command_reports_and_exits_1_on_a_bad_message(stack, db, site_id):
    db.execute("DELETE FROM declarations WHERE declaration_number LIKE '22482024100001234_'")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kouan",
            "import",
            "customs",
            str(FIXTURES / "cusdec_kouan_import.edi"),
            "--site",
            site_id,
        ],
        capture_output=True,
        text=True,
        env=os.environ,
        timeout=120,
    )

    report = json.loads(result.stdout)
    assert result.returncode == 1
    assert [item["declaration_number"] for item in report["declarations"]] == [
        "224820241000012345",
        "224820241000012347",
    ]
    assert report["problems"][0]["message_ref"] == "M2"
