"""The two baselines Kouan's ingest is compared with, run on the same stack and load.

- ``naive``: what an integrator typically writes first, a paho-mqtt callback that
  parses the JSON and inserts one row per message (autocommit, no validation, no
  signature check, the PUBACK goes out before the insert).
- ``floor``: Mosquitto's own subscriber piped into PostgreSQL ``COPY`` in one
  transaction, no parsing at all: what the broker and the database can do
  together without any Python in the path.

Run ``python -m bench.baselines naive SITE TABLE`` to start the naive subscriber.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from kouan.settings import CommonSettings

NAIVE_TABLE_DDL = """
CREATE TABLE IF NOT EXISTS {table} (
    device_id    text NOT NULL,
    seq          bigint NOT NULL,
    occurred_at  timestamptz NOT NULL,
    received_at  timestamptz NOT NULL,
    stored_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    envelope     jsonb NOT NULL
)
"""
FLOOR_TABLE_DDL = "CREATE TABLE IF NOT EXISTS {table} (line text NOT NULL)"


def create_tables(database_url: str, naive_table: str, floor_table: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(NAIVE_TABLE_DDL.format(table=naive_table))
        conn.execute(FLOOR_TABLE_DDL.format(table=floor_table))


def run_naive(site_id: str, table: str) -> None:
    """Subscribe to a site's events and insert one row per message until SIGTERM."""
    settings = CommonSettings()
    conn = psycopg.connect(settings.database_url, autocommit=True)
    stopping = threading.Event()

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        document = json.loads(message.payload)
        conn.execute(
            f"INSERT INTO {table} (device_id, seq, occurred_at, received_at, envelope) "
            "VALUES (%s, %s, %s, %s, %s)",
            (
                document["device_id"],
                document["seq"],
                document["occurred_at"],
                datetime.now(UTC),
                message.payload.decode(),
            ),
        )

    def on_connect(client: mqtt.Client, *args: object) -> None:
        client.subscribe(f"kouan/v1/{site_id}/+/events", qos=1)
        print("naive baseline subscribed", flush=True)

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-naive-{os.getpid()}")
    credentials = settings.mqtt_credentials()
    if credentials:
        client.username_pw_set(*credentials)
    client.on_message = on_message
    client.on_connect = on_connect
    client.connect(settings.mqtt_host, settings.mqtt_port)
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    client.loop_start()
    stopping.wait()
    client.disconnect()
    client.loop_stop()
    conn.close()


def start_floor(
    mqtt_port: int,
    credentials: tuple[str, str],
    site_id: str,
    count: int,
    database_url: str,
    table: str,
    log: Path,
) -> subprocess.Popen[bytes]:
    """Start ``mosquitto_sub -C count | psql COPY``; the pipeline exits after ``count`` messages.

    COPY commits once, at the end of the stream, so its rows become visible together.
    The pipeline's exit time is therefore the commit time of the last message.
    """
    username, password = credentials
    # CSV with control characters as quote and delimiter takes each JSON line as one
    # field unchanged, backslashes included.
    copy = f"COPY {table} (line) FROM STDIN WITH (FORMAT csv, QUOTE e'\\x01', DELIMITER e'\\x02')"
    script = (
        f'mosquitto_sub -h 127.0.0.1 -p {mqtt_port} -u {username} -P "$KOUAN_BENCH_MQTT_PASSWORD" '
        f"-q 1 -C {count} -t 'kouan/v1/{site_id}/+/events' "
        f"| psql -q -v ON_ERROR_STOP=1 '{database_url}' -c \"{copy}\""
    )
    return subprocess.Popen(
        ["bash", "-o", "pipefail", "-c", script],
        env={**os.environ, "KOUAN_BENCH_MQTT_PASSWORD": password},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "naive":
        sys.exit("usage: python -m bench.baselines naive SITE TABLE")
    run_naive(sys.argv[2], sys.argv[3])
