"""``kouan collector --processes N``: processes side by side, restarted when one dies."""

from __future__ import annotations

import os
import re
import signal
import threading

from tests.conftest import passage, signed_event, start_collector, stored_count, wait_for


def started_pids(log: str) -> dict[str, list[int]]:
    """Map each collector client id to the pids the supervisor started for it, in order."""
    found: dict[str, list[int]] = {}
    for client_id, pid in re.findall(r"Collector process (\S+) started \(pid (\d+)\)", log):
        found.setdefault(client_id, []).append(int(pid))
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_processes_share_the_load_and_restart(stack, db, site_id, make_device, processes, raw_publisher):
    lane = make_device(site_id, "IN01")
    client_id = f"collector-{site_id}"
    supervisor = processes.start(
        "collector",
        "--processes",
        "2",
        env={"KOUAN_SITE_FILTER": site_id, "KOUAN_SHARE_GROUP": f"g-{site_id}", "KOUAN_CLIENT_ID": client_id},
        log="collector",
    )

    def log() -> str:
        return supervisor.log_path.read_text()  # type: ignore[attr-defined]

    wait_for(lambda: log().count("subscribed in group") == 2, timeout=30)
    pids = started_pids(log())
    assert sorted(pids) == [f"{client_id}-1", f"{client_id}-2"]
    assert f"as {client_id}-1 " in log() and f"as {client_id}-2 " in log()

    publisher = raw_publisher(lane)
    topic = f"kouan/v1/{site_id}/{lane.device_id}/events"
    for seq in range(1, 41):
        publisher.publish(
            topic, signed_event(lane, stack.home, seq, passage("CSQU3054383", passage_id=f"P{seq}"))
        )
    wait_for(lambda: stored_count(db, lane.device_id) == 40, timeout=30)

    first = pids[f"{client_id}-1"][0]
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: len(started_pids(log()).get(f"{client_id}-1", [])) == 2, timeout=20)
    wait_for(lambda: log().count("subscribed in group") == 3, timeout=30)
    for seq in range(41, 81):
        publisher.publish(
            topic, signed_event(lane, stack.home, seq, passage("CSQU3054383", passage_id=f"P{seq}"))
        )
    wait_for(lambda: stored_count(db, lane.device_id) == 80, timeout=30)

    (distinct,) = db.execute(
        "SELECT count(DISTINCT seq) FROM events WHERE device_id = %s", (lane.device_id,)
    ).fetchone()
    assert distinct == 80
    assert "exited with code -9; starting it again" in log()

    children = [pids_of[-1] for pids_of in started_pids(log()).values()]
    assert all(alive(pid) for pid in children)
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(timeout=45) == 0
    assert not any(alive(pid) for pid in children)
    assert "Collector processes stopped" in log()


def test_writer_process_killed_mid_stream_loses_nothing(
    stack, db, site_id, make_device, processes, raw_publisher
):
    lane = make_device(site_id, "IN01")
    collector = start_collector(processes, site_id, 1)

    def log() -> str:
        return collector.log_path.read_text()  # type: ignore[attr-defined]

    def writer_pids() -> list[int]:
        return [int(pid) for pid in re.findall(r"Batch writer process started \(pid (\d+)\)", log())]

    wait_for(writer_pids, timeout=20)
    publisher = raw_publisher(lane)
    topic = f"kouan/v1/{site_id}/{lane.device_id}/events"

    def publish(seqs: range) -> None:
        for seq in seqs:
            event = signed_event(lane, stack.home, seq, passage("CSQU3054383", passage_id=f"P{seq}"))
            publisher.publish(topic, event)

    publish(range(1, 201))
    os.kill(writer_pids()[0], signal.SIGKILL)
    publish(range(201, 401))
    wait_for(lambda: stored_count(db, lane.device_id) == 400, timeout=60)

    (distinct,) = db.execute(
        "SELECT count(DISTINCT seq) FROM events WHERE device_id = %s", (lane.device_id,)
    ).fetchone()
    assert distinct == 400
    assert len(writer_pids()) == 2
    assert "Batch writer process died" in log()
    assert alive(writer_pids()[1]) and not alive(writer_pids()[0])


def test_group_sigterm_stops_collector_and_writer_cleanly(
    stack, db, site_id, make_device, processes, raw_publisher
):
    lane = make_device(site_id, "IN01")
    collector = start_collector(processes, site_id, 1)

    def log() -> str:
        return collector.log_path.read_text()  # type: ignore[attr-defined]

    [writer] = [int(pid) for pid in re.findall(r"Batch writer process started \(pid (\d+)\)", log())]
    publisher = raw_publisher(lane)
    topic = f"kouan/v1/{site_id}/{lane.device_id}/events"
    events = [
        signed_event(lane, stack.home, seq, passage("CSQU3054383", passage_id=f"P{seq}"))
        for seq in range(1, 2001)
    ]
    sending = threading.Thread(
        target=lambda: [publisher.publish(topic, event) for event in events], daemon=True
    )
    sending.start()
    wait_for(lambda: stored_count(db, lane.device_id) >= 100, timeout=30)

    # What Ctrl-C in a terminal, or a service manager, does: signal the whole group,
    # here while batches are still being written.
    os.killpg(collector.pid, signal.SIGTERM)

    assert collector.wait(timeout=45) == 0
    wait_for(lambda: not alive(writer), timeout=10)
    assert "Batch writer process died" not in log()
    assert "stopped" in log().splitlines()[-1]
    sending.join(timeout=60)
