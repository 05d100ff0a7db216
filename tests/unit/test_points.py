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
        T0,
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
        f"score=0.25,threshold=0.5,model_version=2i,seq=1i {T0}"
    ]
    features = Features(device="d", spec="s", vectors=(FeatureVector(seq=3, t=T0, x=(1.0, -2.0)),))
    assert lines_for(features, site="", received_ms=0) == [
        f"features,device=d,spec=s seq=3i,f0=1.0,f1=-2.0 {T0}"
    ]
    offline = Status(device="d", state=DeviceState.OFFLINE)
    assert lines_for(offline, site="", received_ms=T0 + 5) == [
        f'device_status,device=d state="offline",online=false {T0 + 5}'
    ]
