from hypothesis import given
from hypothesis import strategies as st

from vibewatch.influx import schema
from vibewatch.influx.lineprotocol import Point, encode_point
from vibewatch.ingest.points import lines_for
from vibewatch.protocol import (
    AnomalyEvent,
    DeviceState,
    EventKind,
    Features,
    FeatureVector,
    Reading,
    Status,
    Telemetry,
)

T0 = 1_700_000_000_000


def test_readings_match_the_generic_encoding_of_the_schema() -> None:
    reading = Reading(seq=7, t=T0, score=0.1 + 0.2, rms=1e-7, peak=2.0, crest=1e16, kurtosis=3.0)
    (line,) = lines_for(Telemetry(device="d-1", readings=(reading,)), site="Hall 1", received_ms=0)
    expected = Point(
        "reading",
        (("device", "d-1"), ("site", "Hall 1")),
        (
            ("score", 0.1 + 0.2),
            ("rms", 1e-7),
            ("peak", 2.0),
            ("crest", 1e16),
            ("kurtosis", 3.0),
            ("seq", 7),
        ),
        T0 * 1_000_000 + 7,
    )
    assert line == encode_point(expected)


def test_event_features_and_status_lines() -> None:
    event = AnomalyEvent(
        device="d",
        seq=1,
        t=T0,
        kind=EventKind.END,
        score=0.25,
        threshold=0.5,
        model_id="ae",
        model_version=2,
    )
    assert lines_for(event, site="", received_ms=0) == [
        "anomaly,device=d,kind=end,model_id=ae "
        f"score=0.25,threshold=0.5,model_version=2i,seq=1i {T0}000001"
    ]
    features = Features(device="d", spec="s", vectors=(FeatureVector(seq=3, t=T0, x=(1.0, -2.0)),))
    assert lines_for(features, site="", received_ms=0) == [
        f"features,device=d,spec=s seq=3i,f0=1.0,f1=-2.0 {T0}000003"
    ]
    offline = Status(device="d", state=DeviceState.OFFLINE)
    assert lines_for(offline, site="", received_ms=T0 + 5) == [
        f'device_status,device=d state="offline",online=false {T0 + 5}000000'
    ]


def _time(line: str) -> int:
    return int(line.rsplit(" ", 1)[1])


@given(
    t=st.integers(T0, T0 + 10**9),
    seq=st.integers(0, 2**63 - 1),
)
def test_every_point_is_keyed_by_device_time_and_sequence(t: int, seq: int) -> None:
    reading = Reading(seq=seq, t=t, score=0.5, rms=1.0, peak=2.0, crest=2.0, kurtosis=3.0)
    event = AnomalyEvent(
        device="d",
        seq=seq,
        t=t,
        kind=EventKind.START,
        score=0.5,
        threshold=0.25,
        model_id="ae",
        model_version=1,
    )
    vector = Features(device="d", spec="s", vectors=(FeatureVector(seq=seq, t=t, x=(1.0,)),))
    want = schema.point_time_ns(t, seq)
    assert want == t * 1_000_000 + seq % 1_000_000
    for message in (Telemetry(device="d", readings=(reading,)), event, vector):
        (line,) = lines_for(message, site="", received_ms=0)
        assert _time(line) == want


def test_readings_with_one_time_and_different_sequence_numbers_stay_apart() -> None:
    readings = tuple(
        Reading(seq=seq, t=T0, score=0.5, rms=1.0, peak=2.0, crest=2.0, kurtosis=3.0)
        for seq in (0, 1, 2, 999_999, 123_456_788)
    )
    lines = lines_for(Telemetry(device="d", readings=readings), site="", received_ms=0)
    assert len({_time(line) for line in lines}) == len(readings)
    # the same reading again (a redelivery) lands on the same point
    assert lines_for(Telemetry(device="d", readings=readings), site="", received_ms=0) == lines


def test_reading_lines_carry_the_schema_field_names() -> None:
    reading = Reading(seq=1, t=T0, score=0.5, rms=1.0, peak=2.0, crest=2.0, kurtosis=3.0)
    (line,) = lines_for(Telemetry(device="d", readings=(reading,)), site="", received_ms=0)
    fields = line.split(" ")[1].split(",")
    assert [f.split("=")[0] for f in fields] == [*schema.READING_FIELDS, schema.SEQ]
    assert line.startswith(f"{schema.READING},{schema.DEVICE}=d ")
