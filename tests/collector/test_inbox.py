"""The collector's inbox: related events found by container number, order and bounds kept."""

from __future__ import annotations

import json
import random
import re
import threading
from datetime import UTC, datetime

from collector.inbox import IndexedInbox, mentioned_containers
from collector.ingest import Message


def item(mid: int, payload: dict | bytes, topic: str = "kouan/v1/S/D/events") -> tuple[Message, int]:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    mentions = mentioned_containers(raw) if topic.endswith("/events") else frozenset()
    return Message(topic, raw, mid, datetime.now(UTC), mentions), 1


def seal_report(number: str) -> dict:
    return {"kind": "seal.status", "payload": {"container_number": {"raw": number}, "tampered": True}}


def test_mentions_normalise_case_and_separators():
    raw = b'{"a":"csqu 305438-3","b":"TCNU7200794","c":"XMSKU1234565","d":"MSKU12345651"}'

    assert mentioned_containers(raw) == {"CSQU3054383", "TCNU7200794"}


def test_mentions_equal_plain_regex():
    # The same search written directly on the raw bytes: slower, and plain to read.
    plain = re.compile(rb"(?<![A-Za-z])([A-Za-z]{4})[ -]?([0-9]{6})[ -]?([0-9])(?![0-9])")
    rng = random.Random(20261205)
    pieces = [
        b"CSQU",
        b"tcnu",
        b"Q",
        b"305438",
        b"3",
        b"720079",
        b"4",
        b"1",
        b" ",
        b"-",
        b'"',
        b"\xe6\xb2\xaa",
    ]
    matched = 0
    for _ in range(3_000):
        raw = b"".join(rng.choice(pieces) for _ in range(rng.randrange(1, 10)))
        expected = {(owner + serial + check).decode().upper() for owner, serial, check in plain.findall(raw)}

        assert mentioned_containers(raw) == expected, raw
        matched += bool(expected)

    assert matched > 50


def test_take_naming_keeps_order():
    inbox = IndexedInbox(10)
    queued = [
        item(1, seal_report("TCNU7200794")),
        item(2, seal_report("CSQU3054383")),
        item(3, b"not json at all"),
        item(4, {"payload": {"containers": ["csqu3054383", "TCNU7200794"]}}),
        item(5, seal_report("CSQU3054383"), topic="kouan/v1/S/D/status"),
    ]
    for entry in queued:
        inbox.put(entry)

    related = inbox.take_naming(["CSQU3054383"])

    assert [message.mid for message, _ in related] == [2, 4]
    assert [inbox.get_nowait()[0].mid for _ in range(inbox.qsize())] == [1, 3, 5]
    assert inbox.take_naming(["TCNU7200794"]) == []
    assert inbox._by_container == {}


def test_take_naming_unblocks_producer():
    inbox = IndexedInbox(2)
    inbox.put(item(1, seal_report("CSQU3054383")))
    inbox.put(item(2, seal_report("TCNU7200794")))
    producer = threading.Thread(target=inbox.put, args=(item(3, seal_report("MSKU1234565")),))
    producer.start()

    assert [message.mid for message, _ in inbox.take_naming(["CSQU3054383"])] == [1]
    producer.join(timeout=5)

    assert not producer.is_alive()
    assert [inbox.get_nowait()[0].mid for _ in range(2)] == [2, 3]
