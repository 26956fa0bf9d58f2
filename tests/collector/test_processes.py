"""Collector processes: several side by side, the writer process, restarts and shutdown."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading

from tests.conftest import passage, signed_event, start_collector, stored_count, wait_for


def log_of(process: subprocess.Popen[bytes]) -> str:
    return process.log_path.read_text()  # type: ignore[attr-defined]


def started_pids(log: str) -> dict[str, list[int]]:
    """Map each collector client id to the pids the supervisor started for it, in order."""
    found: dict[str, list[int]] = {}
    for client_id, pid in re.findall(r"Collector process (\S+) started \(pid (\d+)\)", log):
        found.setdefault(client_id, []).append(int(pid))
    return found


def writer_pids(log: str) -> list[int]:
    """List the pids of the batch writer processes a collector started, in order."""
    return [int(pid) for pid in re.findall(r"Batch writer process started \(pid (\d+)\)", log)]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def passages(lane, home, seqs: range) -> list[bytes]:  # noqa: ANN001
    return [signed_event(lane, home, seq, passage("CSQU3054383", passage_id=f"P{seq}")) for seq in seqs]


def distinct_seqs(db, device_id: str) -> int:  # noqa: ANN001
    (count,) = db.execute(
        "SELECT count(DISTINCT seq) FROM events WHERE device_id = %s", (device_id,)
    ).fetchone()
    return int(count)


def test_processes_share_load_and_restart(stack, db, site_id, make_device, processes, raw_publisher):
    lane = make_device(site_id, "IN01")
    client_id = f"collector-{site_id}"
    supervisor = processes.start(
        "collector",
        "--processes",
        "2",
        env={"KOUAN_SITE_FILTER": site_id, "KOUAN_SHARE_GROUP": f"g-{site_id}", "KOUAN_CLIENT_ID": client_id},
        log="collector",
    )
    wait_for(lambda: log_of(supervisor).count("subscribed in group") == 2, timeout=30)
    pids = started_pids(log_of(supervisor))
    assert sorted(pids) == [f"{client_id}-1", f"{client_id}-2"]
    assert f"as {client_id}-1 " in log_of(supervisor)
    assert f"as {client_id}-2 " in log_of(supervisor)

    publisher = raw_publisher(lane)
    topic = f"kouan/v1/{site_id}/{lane.device_id}/events"
    for event in passages(lane, stack.home, range(1, 41)):
        publisher.publish(topic, event)
    wait_for(lambda: stored_count(db, lane.device_id) == 40, timeout=30)

    os.kill(pids[f"{client_id}-1"][0], signal.SIGKILL)
    wait_for(lambda: len(started_pids(log_of(supervisor)).get(f"{client_id}-1", [])) == 2, timeout=20)
    wait_for(lambda: log_of(supervisor).count("subscribed in group") == 3, timeout=30)
    for event in passages(lane, stack.home, range(41, 81)):
        publisher.publish(topic, event)
    wait_for(lambda: stored_count(db, lane.device_id) == 80, timeout=30)

    assert distinct_seqs(db, lane.device_id) == 80
    assert "exited with code -9; starting it again" in log_of(supervisor)

    children = [pids_of[-1] for pids_of in started_pids(log_of(supervisor)).values()]
    assert all(alive(pid) for pid in children)
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(timeout=45) == 0
    assert not any(alive(pid) for pid in children)
    assert "Collector processes stopped" in log_of(supervisor)


def test_writer_killed_loses_nothing(stack, db, site_id, make_device, processes, raw_publisher):
    lane = make_device(site_id, "IN01")
    collector = start_collector(processes, site_id, 1)
    wait_for(lambda: writer_pids(log_of(collector)), timeout=20)
    publisher = raw_publisher(lane)
    topic = f"kouan/v1/{site_id}/{lane.device_id}/events"

    for event in passages(lane, stack.home, range(1, 201)):
        publisher.publish(topic, event)
    first_writer = writer_pids(log_of(collector))[0]
    os.kill(first_writer, signal.SIGKILL)
    for event in passages(lane, stack.home, range(201, 401)):
        publisher.publish(topic, event)
    wait_for(lambda: stored_count(db, lane.device_id) == 400, timeout=60)

    assert distinct_seqs(db, lane.device_id) == 400
    assert "Batch writer process died" in log_of(collector)
    started = writer_pids(log_of(collector))
    assert len(started) == 2
    assert not alive(started[0])
    assert alive(started[1])


def test_group_sigterm_stops_cleanly(stack, db, site_id, make_device, processes, raw_publisher):
    lane = make_device(site_id, "IN01")
    collector = start_collector(processes, site_id, 1)
    [writer] = writer_pids(log_of(collector))
    publisher = raw_publisher(lane)
    topic = f"kouan/v1/{site_id}/{lane.device_id}/events"
    events = passages(lane, stack.home, range(1, 2001))

    def send_all() -> None:
        for event in events:
            publisher.publish(topic, event)

    sending = threading.Thread(target=send_all, daemon=True)
    sending.start()
    wait_for(lambda: stored_count(db, lane.device_id) >= 100, timeout=30)

    # Ctrl-C in a terminal, or a service manager, signals the whole group, here while
    # batches are still being written.
    os.killpg(collector.pid, signal.SIGTERM)

    assert collector.wait(timeout=45) == 0
    wait_for(lambda: not alive(writer), timeout=10)
    assert "Batch writer process died" not in log_of(collector)
    assert "stopped" in log_of(collector).splitlines()[-1]
    sending.join(timeout=60)
