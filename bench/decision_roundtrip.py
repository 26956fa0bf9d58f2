"""Gate decision round trip: exit passage published -> decision received at the lane.

Run on its own, not as a test:

    .venv/bin/python -m bench.decision_roundtrip [--seconds 20] [--rate 5000]

It starts a private stack (broker and database on free ports under a temporary
KOUAN_HOME) and one collector, and declares the probe's containers as released.
An exit-lane device then sends one asking exit passage every ``--interval``
seconds, each timed until its command arrives on the lane's commands topic.
Before the collector starts, an echo client that replies to each passage on the
commands topic without any work gives the baseline: the broker hops and process
scheduling of this machine at this moment. The collector is then timed at rest,
and while 20 other devices publish gate-in passages at ``--rate`` events/s. The
script prints p50, p99 and max per phase, and how many background events were
stored.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import time
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from bench.harness import BenchStack
from bench.probes import DecisionProbe, decision_prober, percentiles_ms
from kouan.contract import commands_topic, events_topic
from kouan.identifiers import iso6346_check_digit

LOAD_SITE = "BENCHLOAD"
EXIT_SITE = "BENCHEXIT"
LOAD_DEVICES = 20
PROBE_CONTAINERS = 50


def probe_containers() -> tuple[str, ...]:
    numbers = []
    for serial in range(PROBE_CONTAINERS):
        first10 = f"KOUU{900_000 + serial:06d}"
        numbers.append(first10 + iso6346_check_digit(first10))
    return tuple(numbers)


def declare_released(database_url: str, numbers: tuple[str, ...]) -> None:
    """Insert one released declaration per probe container, so every decision is a real release."""
    now = datetime.now(UTC)
    with psycopg.connect(database_url, autocommit=True) as conn, conn.transaction():
        for index, number in enumerate(numbers):
            declaration = f"224820261{990_000_000 + index:09d}"
            conn.execute(
                """
                INSERT INTO declarations (declaration_number, site_id, customs_district, direction, status,
                    declared_at, status_changed_at, document)
                VALUES (%s, %s, '2248', 'import', 'released', %s, %s, '{}')
                """,
                (declaration, EXIT_SITE, now, now),
            )
            conn.execute(
                "INSERT INTO declaration_containers (declaration_number, container_number) VALUES (%s, %s)",
                (declaration, number),
            )


def run_echo(port: int, credentials: tuple[str, str], site_id: str, device_id: str, stop: mp.Event) -> None:
    """Reply to every event of the device on its commands topic at once, without a database."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-echo", protocol=mqtt.MQTTv5)
    client.username_pw_set(*credentials)

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        passage_id = json.loads(message.payload)["payload"]["passage_id"]
        body = json.dumps({"passage_id": passage_id, "decision": "echo"})
        client.publish(commands_topic(site_id, device_id), body, qos=1)

    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.subscribe(events_topic(site_id, device_id), qos=1)
    client.loop_start()
    stop.wait()
    client.disconnect()
    client.loop_stop()


def stored_events(database_url: str, site_id: str) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM events WHERE site_id = %s", (site_id,)).fetchone()
    return int(row[0]) if row else 0


def report(name: str, result: dict) -> None:
    numbers = percentiles_ms(result["latencies"])
    print(
        f"{name:<28} p50 {numbers['p50_ms']:7.2f} ms   p99 {numbers['p99_ms']:7.2f} ms   "
        f"max {numbers['max_ms']:7.2f} ms   answered {numbers['n']}/{result['sent']}   "
        f"decisions {', '.join(result['decisions'])}"
    )


def main() -> None:
    from bench.run import load_generator

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="Length of each phase, in seconds")
    parser.add_argument("--rate", type=float, default=5000.0, help="Background gate-in events per second")
    parser.add_argument("--interval", type=float, default=0.1, help="Seconds between asking passages")
    arguments = parser.parse_args()

    bench = BenchStack.start()
    try:
        load_devices = bench.provision_devices(LOAD_SITE, LOAD_DEVICES)
        [exit_lane] = bench.provision_devices(EXIT_SITE, 1, direction="out")
        numbers = probe_containers()
        declare_released(bench.stack.database_url, numbers)
        probe = DecisionProbe(bench.home, bench.stack.mqtt_port, exit_lane, numbers, arguments.interval)

        context = mp.get_context("fork")
        stop_echo = context.Event()
        echo = context.Process(
            target=run_echo,
            args=(
                bench.stack.mqtt_port,
                bench.service_credentials(),
                EXIT_SITE,
                exit_lane.device_id,
                stop_echo,
            ),
        )
        echo.start()
        time.sleep(0.5)
        prober = decision_prober(probe, first_seq=1).start()
        time.sleep(arguments.seconds)
        baseline = prober.finish()
        stop_echo.set()
        echo.join(timeout=10)

        bench.spawn_kouan("collector", "collector", ready_text=b"subscribed in group")
        prober = decision_prober(probe, first_seq=baseline["next_seq"]).start()
        time.sleep(arguments.seconds)
        at_rest = prober.finish()

        load = load_generator(bench, LOAD_SITE, load_devices)
        prober = decision_prober(probe, first_seq=at_rest["next_seq"]).start()
        step = load.run_step(arguments.rate, arguments.seconds)
        under_load = prober.finish()
        load.close()
        deadline = time.monotonic() + 60
        while stored_events(bench.stack.database_url, LOAD_SITE) < step.sent and time.monotonic() < deadline:
            time.sleep(0.5)

        print(f"decision round trip, one collector, {LOAD_DEVICES} load devices")
        report("echo baseline, no collector", baseline)
        report("at rest", at_rest)
        assert step.log is not None
        report(f"under {step.log.offered_rate:,.0f} events/s", under_load)
        print(
            f"background events published {step.sent}, "
            f"stored {stored_events(bench.stack.database_url, LOAD_SITE)}"
        )
    finally:
        bench.close()


if __name__ == "__main__":
    main()
