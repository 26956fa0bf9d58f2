"""``kouan edge DEVICE``: run one device's edge agent with its adapter."""

from __future__ import annotations

import logging
import random
import signal
import threading
from datetime import UTC, datetime

from edge.agent import EdgeAgent
from edge.outbox import OutboxFull
from edge.settings import EdgeSettings
from kouan.devices import DeviceIdentity
from simulators import reference

logger = logging.getLogger(__name__)


def simulated_passages(agent: EdgeAgent, stop: threading.Event, interval_s: float = 5.0) -> None:
    """Emit a plausible gate passage every ``interval_s`` seconds (the simulated adapter)."""
    rng = random.Random()
    lane = agent.identity.lane_id or "LANE"
    count = 0
    while not stop.wait(interval_s):
        count += 1
        kind = reference.size_type(rng)
        payload = {
            "passage_id": f"{lane}-{count}",
            "lane_id": lane,
            "direction": "in",
            "tractor_plate": {"raw": reference.tractor_plate(rng), "source": "lpr", "confidence": 0.96},
            "containers": [
                {
                    "container_number": {
                        "raw": reference.container_number(rng),
                        "source": "ocr",
                        "confidence": 0.97,
                    },
                    "size_type": {"raw": kind.code, "source": "ocr"},
                    "seals": [{"raw": reference.seal_number(rng), "source": "ocr"}],
                }
            ],
            "gross_weight": {"kg": reference.gross_weight_kg(rng, kind)},
        }
        try:
            seq = agent.emit("gate.passage", payload, occurred_at=datetime.now(UTC))
        except OutboxFull as exc:
            logger.error("Device %s: %s", agent.identity.device_id, exc)
            continue
        logger.info("Device %s: passage %s accepted as seq %d", agent.identity.device_id, count, seq)


def run(settings: EdgeSettings) -> None:
    identity = DeviceIdentity.load(settings.home, settings.device_id)
    agent = EdgeAgent(identity, settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    agent.start()
    logger.info("Edge agent for %s started (simulated adapter)", identity.device_id)
    simulated_passages(agent, stop)
    agent.stop()
