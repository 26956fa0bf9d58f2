"""Device adapters: e-seal status bits, weighbridge frames, lane fusion, and all of them end to end.

E-seal vectors are built from the status bit table of the Hi-G-Tek DataReader
user manual UM4710 (tampered 0x80000000, low battery 0x40000000, opened
0x20000000, approved opening 0x01000000, life counter 0x00800000) and the seal
id text format of its DataSeal manual (4 letters, 8 digits, e.g. QWER85723456).
"""

from __future__ import annotations

import socket
import threading
import time
from datetime import UTC, datetime

import pytest

from edge.adapters.eseal import ESealFrameError, parse_eseal_frame, seal_status_payload
from edge.adapters.lane import LaneFusion
from edge.adapters.weighbridge import StableWeight, WeightFrameError, parse_weight_frame
from kouan.contract import GatePassage, SealStatus
from tests.conftest import start_collector, wait_for
from tests.edge.conftest import post_frame

ESEAL_CASES = [
    # long status, state, sealed, opened, tampered, approved, battery low
    ("00000000", "SEALED", True, False, False, False, False),
    ("A0000000", "OPENED_TAMPERED", False, True, True, False, False),
    ("80000000", "TAMPERED", True, False, True, False, False),
    ("A1000000", "OPENED_APPROVED", False, True, True, True, False),
    ("40000000", "SEALED", True, False, False, False, True),
    ("00800000", "SEALED", True, False, False, False, False),
]


@pytest.mark.parametrize(
    ("status", "state", "sealed", "opened", "tampered", "approved", "battery"), ESEAL_CASES
)
def test_eseal_status_bits_decoded(status, state, sealed, opened, tampered, approved, battery):
    reading = parse_eseal_frame(f"ESEAL,QWER85723456,{status},202403151230,CSQU3054383")
    payload = seal_status_payload(reading, "reader-1")
    model = SealStatus.model_validate(payload)

    assert reading.state == state
    assert model.sealed is sealed
    assert model.opened is opened
    assert model.tampered is tampered
    assert model.approved_opening is approved
    assert model.battery_low is battery
    assert model.status_flags == status


def test_eseal_life_counter_flag_kept():
    reading = parse_eseal_frame("ESEAL,QWER85723456,00800000,202403151230")

    assert reading.life_counter_exhausted is True
    assert reading.container_number is None


def test_eseal_time_is_utc_minutes():
    reading = parse_eseal_frame("ESEAL,QWER85723456,00000000,202403151230")

    assert reading.read_at == datetime(2024, 3, 15, 12, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("line", "fault"),
    [
        ("ESEAL,QWER85723456,20000000,202403151230", "opened without tampered"),
        ("ESEAL,QWER8572345,00000000,202403151230", "4 letters and 8 digits"),
        ("ESEAL,QW1R85723456,00000000,202403151230", "4 letters and 8 digits"),
        ("ESEAL,QWER85723456,XYZ,202403151230", "hex"),
        ("ESEAL,QWER85723456,00000000,20240315123000", "CCYYMMDDHHMM"),
        ("ESEAL,QWER85723456,00000000,202413151230", "not a valid date"),
        ("SEAL,QWER85723456,00000000,202403151230", "is not 'ESEAL"),
    ],
)
def test_eseal_invalid_frame_rejected(line, fault):
    with pytest.raises(ESealFrameError, match=fault):
        parse_eseal_frame(line)


def test_weight_frame_parsed():
    frame = parse_weight_frame("ST,GS,+0035420kg")

    assert frame.stable is True
    assert frame.kind == "GS"
    assert frame.kg == 35420.0
    assert parse_weight_frame("ST,GS,+35.42t").kg == 35420.0
    assert parse_weight_frame("OL,GS,+9999999kg").overload is True


def test_weight_frame_garbage_rejected():
    with pytest.raises(WeightFrameError):
        parse_weight_frame("35420")


def test_weighbridge_uses_only_settled_stable_readings():
    weights: list[dict] = []
    stable = StableWeight("scale-1", 3, weights.append)
    stream = [
        "US,GS,+0012000kg",
        "US,GS,+0035380kg",
        "ST,GS,+0035400kg",
        "ST,GS,+0035420kg",
        "ST,GS,+0035420kg",
        "US,GS,+0035440kg",
        "ST,GS,+0035420kg",
        "ST,GS,+0035420kg",
        "ST,GS,+0035420kg",  # settles: third equal stable frame in a row
        "ST,GS,+0035420kg",  # same value: not reported again
        "ST,NT,+0020000kg",
        "OL,GS,+9999999kg",
        "garbage",
        "ST,GS,+0000000kg",  # empty bridge
        "ST,GS,+0035420kg",
        "ST,GS,+0035420kg",
        "ST,GS,+0035420kg",  # next truck, same weight: reported
    ]
    for line in stream:
        stable.feed(line)

    assert [weight["kg"] for weight in weights] == [35420.0, 35420.0]
    assert weights[0]["sensor_id"] == "scale-1"
    assert weights[0]["stable"] is True
    assert stable.invalid_frames == 1


def fusion_with_sink(timeout_s: float = 60.0):
    emitted: list[dict] = []

    def emit(payload, occurred_at):
        GatePassage.model_validate(payload)
        emitted.append(payload)
        return len(emitted)

    return LaneFusion("OUT01", "out", emit, timeout_s), emitted


def test_lane_fusion_joins_reads_into_one_passage():
    fusion, emitted = fusion_with_sink()
    passage_id = fusion.arrival(datetime(2026, 12, 3, 1, 30, tzinfo=UTC))
    fusion.add_container({"raw": "CSQU3O54383", "source": "ocr", "confidence": 0.81, "sensor_id": "ocr-left"})
    fusion.add_container(
        {"raw": "CSQU3054383", "source": "ocr", "confidence": 0.97, "sensor_id": "ocr-right"}
    )
    fusion.add_plate({"raw": "沪A12345", "source": "lpr", "confidence": 0.95, "sensor_id": "lpr-1"})
    fusion.add_weight({"kg": 35420.0, "source": "scale", "sensor_id": "scale-1", "stable": True})
    fusion.add_seal({"raw": "QWER85723456", "source": "eseal", "sensor_id": "eseal-1"}, "CSQU3054383")
    closed = fusion.departure()

    assert closed == (passage_id, 1)
    assert len(emitted) == 1
    payload = emitted[0]
    assert payload["passage_id"] == passage_id
    assert payload["decision_requested"] is True
    assert [item["container_number"]["sensor_id"] for item in payload["containers"]] == ["ocr-right"]
    assert payload["containers"][0]["seals"][0]["source"] == "eseal"
    assert payload["tractor_plate"]["sensor_id"] == "lpr-1"
    assert payload["gross_weight"]["kg"] == 35420.0
    assert fusion.passage_containers(passage_id) == {"CSQU3054383"}


def test_lane_fusion_closes_on_timeout():
    fusion, emitted = fusion_with_sink(timeout_s=0.05)
    fusion.add_container({"raw": "TCNU7200794", "source": "ocr", "confidence": 0.9})
    assert fusion.expire() is None
    time.sleep(0.1)
    closed = fusion.expire()

    assert closed is not None
    assert len(emitted) == 1
    assert emitted[0]["containers"][0]["container_number"]["raw"] == "TCNU7200794"
    assert fusion.departure() is None


def test_lane_fusion_weight_without_truck_ignored():
    fusion, emitted = fusion_with_sink()

    assert fusion.add_weight({"kg": 30000.0, "stable": True}) is None
    assert emitted == []


class LineServer:
    """A device on loopback that sends text lines to whoever connects: an indicator or a reader."""

    def __init__(self) -> None:
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(1)
        self.port = int(self._listener.getsockname()[1])
        self.connected = threading.Event()
        self._client: socket.socket | None = None
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self._client, _ = self._listener.accept()
        self.connected.set()

    def send(self, line: str) -> None:
        assert self._client is not None
        self._client.sendall(line.encode() + b"\r\n")

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        self._listener.close()


def test_lane_adapters_end_to_end(stack, db, site_id, make_device, processes, start_edge):
    identity = make_device(site_id, "OUT01")
    start_collector(processes, site_id, 1)
    scale, reader = LineServer(), LineServer()
    edge = start_edge(
        identity.device_id,
        lane_direction="out",
        weighbridge_host="127.0.0.1",
        weighbridge_port=scale.port,
        eseal_host="127.0.0.1",
        eseal_port=reader.port,
    )
    edge.wait_online()
    assert scale.connected.wait(10)
    assert reader.connected.wait(10)

    assert post_frame(edge.port, {"type": "arrival"})[0] == 202
    container = {
        "type": "container",
        "container_number": "CSQU3054383",
        "confidence": 0.97,
        "camera_id": "ocr-1",
        "image_ref": "img/1.jpg",
        "size_type": "45G1",
    }
    assert post_frame(edge.port, container)[0] == 202
    assert (
        post_frame(
            edge.port, {"type": "plate", "plate": "沪A12345", "confidence": 0.95, "camera_id": "lpr-1"}
        )[0]
        == 202
    )
    for line in ["US,GS,+0035380kg"] + ["ST,GS,+0035420kg"] * 4:
        scale.send(line)
    reader.send("ESEAL,QWER85723456,A0000000,202612030130,CSQU3054383")
    reader.send("ESEAL,QWER85723456,20000000,202612030130,CSQU3054383")  # contradictory: rejected
    time.sleep(1.0)
    status, body = post_frame(edge.port, {"type": "departure"})
    assert status == 201
    wait_for(
        lambda: (
            db.execute("SELECT count(*) FROM events WHERE device_id = %s", (identity.device_id,)).fetchone()[
                0
            ]
            == 2
        )
    )
    scale.close()
    reader.close()

    kinds = dict(
        db.execute(
            "SELECT kind, envelope->'payload' FROM events WHERE device_id = %s", (identity.device_id,)
        ).fetchall()
    )
    passage = kinds["gate.passage"]
    seal = kinds["seal.status"]
    assert passage["passage_id"] == body["passage_id"]
    assert passage["gross_weight"]["kg"] == 35420.0
    assert passage["containers"][0]["container_number"]["image_ref"] == "img/1.jpg"
    assert passage["containers"][0]["container_number"]["sensor_id"] == "ocr-1"
    assert passage["containers"][0]["seals"][0]["raw"] == "QWER85723456"
    assert passage["tractor_plate"]["raw"] == "沪A12345"
    assert seal["tampered"] is True
    assert seal["opened"] is True
    assert seal["approved_opening"] is False


def test_camera_endpoint_rejects_invalid_frames(stack, site_id, make_device, start_edge):
    identity = make_device(site_id, "IN01")
    edge = start_edge(identity.device_id)
    edge.wait_endpoint()

    assert post_frame(edge.port, {"type": "container"})[0] == 400
    assert post_frame(edge.port, {"type": "teleport"})[0] == 400
    assert (
        post_frame(edge.port, {"type": "scan", "container_number": "CSQU3054383", "result": "maybe"})[0]
        == 400
    )
    assert post_frame(edge.port, {"type": "arrival", "at": "2026-12-03T09:30:00"})[0] == 400
    assert post_frame(edge.port, {"type": "departure"}) == (200, {"passage_id": None})
