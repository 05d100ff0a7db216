"""The paho adapter's property-table sharing decodes exactly what paho decodes."""

import struct

from paho.mqtt import _packet
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from vibewatch.mqtt import share_property_tables


def publish_packet(properties: Properties, payload: bytes, mid: int = 7) -> tuple[int, bytes]:
    topic = b"vw/v1/d/telemetry"
    body = struct.pack("!H", len(topic)) + topic + struct.pack("!H", mid)
    body += properties.pack() + payload
    return 0x32, body  # PUBLISH, QoS 1


def test_decoded_properties_are_unchanged_and_do_not_leak() -> None:
    with_props = Properties(PacketTypes.PUBLISH)
    with_props.MessageExpiryInterval = 60
    with_props.ContentType = "application/json"
    with_props.UserProperty = [("a", "1"), ("b", "2")]
    reference = _packet.decode_publish(*publish_packet(with_props, b"{}"), 5)

    assert share_property_tables()
    assert share_property_tables()  # idempotent
    decoded = _packet.decode_publish(*publish_packet(with_props, b'{"x":1}'), 5)
    assert type(decoded.properties) is not Properties
    assert decoded.payload == b'{"x":1}'
    assert decoded.mid == 7
    for name in ("MessageExpiryInterval", "ContentType", "UserProperty"):
        assert getattr(decoded.properties, name) == getattr(reference.properties, name)

    bare = _packet.decode_publish(*publish_packet(Properties(PacketTypes.PUBLISH), b"p"), 5)
    assert not hasattr(bare.properties, "MessageExpiryInterval")
    assert not hasattr(bare.properties, "UserProperty")
    assert bare.payload == b"p"
