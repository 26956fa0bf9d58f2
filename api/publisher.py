"""The API process's MQTT connection, used to send officers' override commands to lanes."""

from __future__ import annotations

import logging
import threading
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from kouan.contract import Command, commands_topic
from kouan.settings import CommonSettings

logger = logging.getLogger(__name__)

PUBLISH_TIMEOUT_S = 5.0


class CommandPublisher:
    """A paho MQTT v5 client with the service credentials, connected in the background."""

    def __init__(self, settings: CommonSettings) -> None:
        self.settings = settings
        self.connected = threading.Event()
        self.stopping = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"kouan-api-{uuid.uuid4().hex[:12]}", protocol=mqtt.MQTTv5
        )
        credentials = settings.mqtt_credentials()
        if credentials:
            self.client.username_pw_set(*credentials)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
        if reason_code.is_failure:
            logger.error("API command publisher: MQTT connection refused: %s", reason_code)
            return
        self.connected.set()
        logger.info(
            "API command publisher connected to %s:%d", self.settings.mqtt_host, self.settings.mqtt_port
        )

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
        self.connected.clear()
        if not self.stopping.is_set():
            logger.warning("API command publisher disconnected (%s); reconnecting", reason_code)

    def start(self) -> None:
        self.client.connect_async(self.settings.mqtt_host, self.settings.mqtt_port, keepalive=30)
        self.client.loop_start()

    def stop(self) -> None:
        self.stopping.set()
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, site_id: str, command: Command) -> bool:
        """Publish a command with QoS 1; return whether the broker acknowledged it in time."""
        if not self.connected.wait(PUBLISH_TIMEOUT_S):
            logger.error("Command %s not published: no broker connection", command.command_id)
            return False

        topic = commands_topic(site_id, command.device_id)
        info = self.client.publish(topic, command.model_dump_json(), qos=1)
        try:
            info.wait_for_publish(timeout=PUBLISH_TIMEOUT_S)
        except (RuntimeError, ValueError) as exc:
            logger.error("Command %s not published on %s: %s", command.command_id, topic, exc)
            return False
        if not info.is_published():
            logger.error("Command %s not acknowledged by the broker on %s in time", command.command_id, topic)
            return False
        logger.info("Command %s (%s) published on %s", command.command_id, command.decision, topic)
        return True
