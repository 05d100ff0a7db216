"""The Grafana dashboards, as code: every panel an InfluxQL query over the ingest schema.

Each function returns a dashboard builder of the foundation SDK (typed panels, variables
and annotations); :data:`DASHBOARDS` names them by uid. Measurement, tag and field names
come from :mod:`vibewatch.influx.schema`, never retyped, so a renamed field breaks the
build, not a dashboard in production. The queries are raw InfluxQL, which InfluxDB 1.x,
2.x (through a DBRP mapping) and 3.x all answer.

- **Fleet overview** (:func:`fleet_overview`): devices online, anomaly events per hour,
  firing alerts, rollouts in progress, the devices with most events, model versions in the
  fleet.
- **Device detail** (:func:`device_detail`, the ``device`` variable): score, RMS, crest and
  kurtosis of one or more devices, the threshold of their anomaly events, and their
  anomaly events and model changes as annotations.
- **Ingestion health** (:func:`ingestion_health`): messages and points per second,
  rejects by reason, batch latency, spool depth, per ingest process.
- **Rollouts** (:func:`rollouts`, the ``rollout`` variable): each rollout's phase and
  devices per state, the progress of each wave, failures by reason and the failed devices.
"""

from __future__ import annotations

from collections.abc import Callable

from grafana_foundation_sdk.builders import bargauge, stat, table, timeseries
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders.dashboard import AnnotationQuery, Dashboard, QueryVariable, Row
from grafana_foundation_sdk.models.common import (
    BarGaugeDisplayMode,
    BigValueGraphMode,
    GraphDrawStyle,
    VizOrientation,
)
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    DataTransformerConfig,
    VariableRefresh,
    VariableSort,
)

from vibewatch.dashboards.influxql import InfluxQL, InfluxQLAnnotation
from vibewatch.influx import schema
from vibewatch.influx.query import quote_identifier as ident
from vibewatch.influx.query import quote_string
from vibewatch.ota.rollout import FAILURES, DeviceState

__all__ = [
    "DASHBOARDS",
    "DATASOURCE_UID",
    "EVENT_QUERIES",
    "FOLDER_TITLE",
    "FOLDER_UID",
    "TAGS",
    "device_detail",
    "fleet_overview",
    "ingestion_health",
    "rollouts",
]

#: The uid of the InfluxDB data source the panels query (the provisioning file's).
DATASOURCE_UID = "vibewatch-influxdb"
#: The Grafana folder the dashboards go into.
FOLDER_UID = "vibewatch"
FOLDER_TITLE = "vibewatch"
#: Tags of every dashboard.
TAGS = ["vibewatch", "generated"]

_DS = DataSourceRef(type_val="influxdb", uid=DATASOURCE_UID)
_DEVICE_FILTER = f"{ident(schema.DEVICE)} =~ /^$device$/"
_STARTS = f"{ident(schema.KIND)} = {quote_string('start')}"
_ROLLOUT_FILTER = f"{ident(schema.ROLLOUT_ID)} =~ /^$rollout$/"
#: Hides the time column of a table whose rows are each series' last values (their time
#: is the start of the range).
_NO_TIME = DataTransformerConfig(id_val="organize", options={"excludeByName": {"Time": True}})


def _dashboard(uid: str, title: str, description: str) -> Dashboard:
    return (
        Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(TAGS)
        .time("now-6h", "now")
        .refresh("30s")
        .timezone("browser")
    )


def _timeseries(title: str, description: str, *queries: InfluxQL) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(_DS)
        .legend(common_builders.VizLegendOptions().show_legend(True))
        .line_width(1)
        .fill_opacity(10)
    )
    for query in queries:
        panel = panel.with_target(query)
    return panel


def _over_time(
    select: str,
    measurement: str,
    *,
    by: str | tuple[str, ...],
    where: str = "",
    fill: str = "null",
) -> InfluxQL:
    """A query of one value per ``$__interval`` in the dashboard's range, a series per tag
    ``by`` (per combination of the tags)."""
    condition = f"{where} AND $timeFilter" if where else "$timeFilter"
    tags = ", ".join(ident(tag) for tag in ((by,) if isinstance(by, str) else by))
    return InfluxQL(
        f"SELECT {select} FROM {ident(measurement)} WHERE {condition} "
        f"GROUP BY time($__interval), {tags} fill({fill})"
    )


def _mean_by_device(field: str, alias: str = "$tag_device") -> InfluxQL:
    """The mean of a ``reading`` field per interval, per selected device."""
    return _over_time(
        f"mean({ident(field)})", schema.READING, by=schema.DEVICE, where=_DEVICE_FILTER
    ).alias(alias)


def _stat(title: str, description: str, query: InfluxQL) -> stat.Panel:
    """A quarter-width number without a graph."""
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(_DS)
        .graph_mode(BigValueGraphMode.NONE)
        .with_target(query.ref_id("A"))
        .span(6)
        .height(6)
    )


def _rollouts_in_progress() -> InfluxQL:
    """How many rollouts run or are paused: the sum of each one's last ``in_progress``."""
    return InfluxQL(
        f"SELECT sum({ident(schema.IN_PROGRESS)}) FROM "
        f"(SELECT last({ident(schema.IN_PROGRESS)}) AS {ident(schema.IN_PROGRESS)} "
        f"FROM {ident(schema.ROLLOUT)} WHERE $timeFilter GROUP BY {ident(schema.ROLLOUT_ID)})"
    ).alias("in progress")


def _firing_alerts() -> InfluxQL:
    """How many alerts fire, per severity: the sum of each rule's last count."""
    return InfluxQL(
        f"SELECT sum({ident(schema.ALERTS)}) FROM "
        f"(SELECT last({ident(schema.ALERTS)}) AS {ident(schema.ALERTS)} "
        f"FROM {ident(schema.ALERTS_FIRING)} WHERE $timeFilter "
        f"GROUP BY {ident(schema.ALERTNAME)}, {ident(schema.SEVERITY)}) "
        f"GROUP BY {ident(schema.SEVERITY)}"
    ).alias("$tag_severity")


def fleet_overview() -> Dashboard:
    """The fleet at a glance: who is online, how many anomaly events, where, which models."""
    online = InfluxQL(
        f"SELECT count({ident(schema.ONLINE)}) FROM "
        f"(SELECT last({ident(schema.ONLINE)}) AS {ident(schema.ONLINE)} "
        f"FROM {ident(schema.DEVICE_STATUS)} GROUP BY {ident(schema.DEVICE)}) "
        f"WHERE {ident(schema.ONLINE)} = true"
    )
    known = InfluxQL(
        f"SELECT count({ident(schema.STATE)}) FROM "
        f"(SELECT last({ident(schema.STATE)}) AS {ident(schema.STATE)} "
        f"FROM {ident(schema.DEVICE_STATUS)} GROUP BY {ident(schema.DEVICE)})"
    )
    events_per_hour = InfluxQL(
        f"SELECT count({ident(schema.SCORE)}) AS {ident('events')} FROM {ident(schema.ANOMALY)} "
        f"WHERE {_STARTS} AND $timeFilter GROUP BY time(1h) fill(0)"
    ).alias("anomaly events")
    events_in_range = InfluxQL(
        f"SELECT count({ident(schema.SCORE)}) FROM {ident(schema.ANOMALY)} "
        f"WHERE {_STARTS} AND $timeFilter"
    )
    top_devices = InfluxQL(
        f"SELECT top({ident('events')}, {ident(schema.DEVICE)}, 10) AS {ident('events')} FROM "
        f"(SELECT count({ident(schema.SCORE)}) AS {ident('events')} FROM {ident(schema.ANOMALY)} "
        f"WHERE {_STARTS} AND $timeFilter GROUP BY {ident(schema.DEVICE)})"
    ).result_format("table")
    models = InfluxQL(
        f"SELECT last({ident(schema.MODEL_VERSION)}) AS {ident('version')}, "
        f"last({ident(schema.MODEL_ID)}) AS {ident('model')} "
        f"FROM {ident(schema.DEVICE_STATUS)} GROUP BY {ident(schema.DEVICE)}"
    ).result_format("table")
    count_by_version = DataTransformerConfig(
        id_val="groupBy",
        options={
            "fields": {
                "model": {"aggregations": [], "operation": "groupby"},
                "version": {"aggregations": [], "operation": "groupby"},
                schema.DEVICE: {"aggregations": ["count"], "operation": "aggregate"},
            }
        },
    )
    return (
        _dashboard(
            "vibewatch-fleet",
            "vibewatch: fleet overview",
            "Devices online, anomaly events and models across the fleet.",
        )
        .with_row(Row("Fleet"))
        .with_panel(
            stat.Panel()
            .title("Devices online")
            .description(
                "Devices whose last status message says online, of all that ever sent one."
            )
            .datasource(_DS)
            .graph_mode(BigValueGraphMode.NONE)
            .with_target(online.ref_id("A").alias("online"))
            .with_target(known.ref_id("B").alias("known"))
            .span(6)
            .height(6)
        )
        .with_panel(
            _stat(
                "Firing alerts",
                "Alerts firing now (silenced ones too), by severity: each rule's last count "
                "in the time range.",
                _firing_alerts(),
            )
        )
        .with_panel(
            _stat(
                "Rollouts in progress",
                "Model rollouts running or paused now: each rollout's last state in the time "
                "range.",
                _rollouts_in_progress(),
            )
        )
        .with_panel(
            stat.Panel()
            .title("Anomaly events")
            .description("Anomaly events started in the time range, all devices.")
            .datasource(_DS)
            .graph_mode(BigValueGraphMode.NONE)
            .with_target(events_in_range.ref_id("A").alias("events"))
            .span(6)
            .height(6)
        )
        .with_panel(
            _timeseries(
                "Anomaly events per hour",
                "Anomaly events started per hour, all devices.",
                events_per_hour.ref_id("A"),
            )
            .draw_style(GraphDrawStyle.BARS)
            .span(24)
            .height(6)
        )
        .with_row(Row("Where and what"))
        .with_panel(
            bargauge.Panel()
            .title("Devices with most anomaly events")
            .description("The ten devices that started most anomaly events in the time range.")
            .datasource(_DS)
            .display_mode(BarGaugeDisplayMode.GRADIENT)
            .orientation(VizOrientation.HORIZONTAL)
            .reduce_options(common_builders.ReduceDataOptions().values(True).calcs([]))
            .with_target(top_devices.ref_id("A"))
            .span(12)
            .height(9)
        )
        .with_panel(
            table.Panel()
            .title("Model versions in the fleet")
            .description("Devices per model and version, from each device's last status message.")
            .datasource(_DS)
            .show_header(True)
            .with_target(models.ref_id("A"))
            .with_transformation(count_by_version)
            .span(12)
            .height(9)
        )
    )


def device_detail() -> Dashboard:
    """One device (or a few): its scores against the threshold, its vibration statistics,
    its anomaly events and model changes."""
    device = (
        QueryVariable("device")
        .label("Device")
        .datasource(_DS)
        .query(f"SHOW TAG VALUES FROM {ident(schema.READING)} WITH KEY = {ident(schema.DEVICE)}")
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(False)
    )
    threshold = _over_time(
        f"last({ident(schema.THRESHOLD)})",
        schema.ANOMALY,
        by=schema.DEVICE,
        where=_DEVICE_FILTER,
        fill="previous",
    ).alias("threshold $tag_device")
    events = (
        AnnotationQuery()
        .name("Anomaly events")
        .datasource(_DS)
        .enable(True)
        .icon_color("red")
        .target(
            InfluxQLAnnotation(
                f"SELECT {ident(schema.SCORE)}, {ident(schema.THRESHOLD)}, "
                f"{ident(schema.KIND)}, {ident(schema.DEVICE)} FROM {ident(schema.ANOMALY)} "
                f"WHERE {_DEVICE_FILTER} AND $timeFilter",
                text_column=schema.KIND,
                tags_column=f"{schema.DEVICE},{schema.KIND}",
            )
        )
    )
    model_changes = (
        AnnotationQuery()
        .name("Model changes")
        .datasource(_DS)
        .enable(True)
        .icon_color("blue")
        .target(
            InfluxQLAnnotation(
                f"SELECT {ident(schema.MODEL_VERSION)}, {ident(schema.MODEL_ID)}, "
                f"{ident(schema.DEVICE)} FROM {ident(schema.DEVICE_STATUS)} "
                f"WHERE {_DEVICE_FILTER} AND {ident(schema.MODEL_VERSION)} > 0 AND $timeFilter",
                text_column=schema.MODEL_VERSION,
                tags_column=f"{schema.DEVICE},{schema.MODEL_ID}",
            )
        )
    )

    def statistic(field: str, what: str) -> timeseries.Panel:
        title = "RMS" if field == schema.RMS else field.capitalize()
        return _timeseries(title, what, _mean_by_device(field).ref_id("A"))

    return (
        _dashboard(
            "vibewatch-device",
            "vibewatch: device detail",
            "Scores, threshold and vibration statistics of the selected devices.",
        )
        .with_variable(device)
        .annotation(events)
        .annotation(model_changes)
        .with_row(Row("Anomaly score"))
        .with_panel(
            _timeseries(
                "Score and threshold",
                "The model's anomaly score of each window (mean per interval) and the "
                "threshold the device's anomaly events reported.",
                _mean_by_device(schema.SCORE, "score $tag_device").ref_id("A"),
                threshold.ref_id("B"),
            )
            .span(24)
            .height(9)
        )
        .with_row(Row("Vibration"))
        .with_panel(
            statistic(schema.RMS, "Root mean square of each window, in g (mean per interval).")
            .unit("none")
            .span(8)
            .height(8)
        )
        .with_panel(
            statistic(schema.CREST, "Peak over RMS of each window (mean per interval).")
            .span(8)
            .height(8)
        )
        .with_panel(
            statistic(
                schema.KURTOSIS, "Kurtosis of each window: 3 for Gaussian noise, more for impacts."
            )
            .span(8)
            .height(8)
        )
    )


def _per_process(select: str, alias: str) -> InfluxQL:
    """Ingest statistics per interval, a series per ingest process."""
    return _over_time(select, schema.INGEST_STATS, by=schema.INSTANCE).alias(alias)


def _ingest_counter_rate(field: str, alias: str) -> InfluxQL:
    """A cumulative counter of the ingest statistics as a rate per second, per process."""
    return _per_process(
        f"non_negative_derivative(last({ident(field)}), 1s) AS {ident(field)}", alias
    )


def ingestion_health() -> Dashboard:
    """The ingestion service: throughput, rejects by reason, latency, spool."""
    rejects = _per_process(
        f"non_negative_difference(last(/^{schema.rejected_field('')}/))", "$col $tag_instance"
    )
    latency = _per_process(
        f"max({ident(schema.BATCH_LATENCY_MS_MAX)}) AS {ident('max')}, "
        f"mean({ident(schema.BATCH_LATENCY_MS_AVG)}) AS {ident('mean')}",
        "$col $tag_instance",
    )
    spool = _per_process(
        f"last({ident(schema.SPOOL_RECORDS)}) AS {ident('spooled batches')}, "
        f"last({ident(schema.BUFFER_POINTS)}) AS {ident('buffered points')}",
        "$col $tag_instance",
    )
    return (
        _dashboard(
            "vibewatch-ingest",
            "vibewatch: ingestion health",
            "Throughput, rejects, latency and spool of the ingestion processes.",
        )
        .with_row(Row("Throughput"))
        .with_panel(
            _timeseries(
                "Messages per second",
                "MQTT messages received and decoded per second, per ingest process.",
                _ingest_counter_rate(schema.MESSAGES_IN, "received $tag_instance").ref_id("A"),
                _ingest_counter_rate(schema.MESSAGES_OK, "decoded $tag_instance").ref_id("B"),
            )
            .unit("reqps")
            .span(12)
            .height(8)
        )
        .with_panel(
            _timeseries(
                "Points per second",
                "Points InfluxDB accepted per second, and points appended to the spool.",
                _ingest_counter_rate(schema.POINTS_WRITTEN, "written $tag_instance").ref_id("A"),
                _ingest_counter_rate(schema.POINTS_SPOOLED, "spooled $tag_instance").ref_id("B"),
            )
            .span(12)
            .height(8)
        )
        .with_row(Row("Problems"))
        .with_panel(
            _timeseries(
                "Rejects by reason",
                "Messages rejected per interval, by reason (docs/protocol/README.md).",
                rejects.ref_id("A"),
            )
            .draw_style(GraphDrawStyle.BARS)
            .span(8)
            .height(8)
        )
        .with_panel(
            _timeseries(
                "Batch latency",
                "From a batch's first line to durable (written or spooled), in ms.",
                latency.ref_id("A"),
            )
            .unit("ms")
            .span(8)
            .height(8)
        )
        .with_panel(
            _timeseries(
                "Spool depth",
                "Batches waiting in the on-disk spool, and points held in memory.",
                spool.ref_id("A"),
            )
            .span(8)
            .height(8)
        )
    )


def _per_state(measurement: str, *, by: str | tuple[str, ...]) -> InfluxQL:
    """Each state's devices per interval (its last count), a series per state and tag
    ``by`` of the selected rollouts."""
    select = ", ".join(
        f"last({ident(schema.devices_field(state.value))}) AS {ident(state.value)}"
        for state in DeviceState
    )
    return _over_time(select, measurement, by=by, where=_ROLLOUT_FILTER, fill="previous")


def rollouts() -> Dashboard:
    """The model rollouts: phase and devices per state, each wave's progress, failures."""
    rollout = (
        QueryVariable("rollout")
        .label("Rollout")
        .datasource(_DS)
        .query(
            f"SHOW TAG VALUES FROM {ident(schema.ROLLOUT)} WITH KEY = {ident(schema.ROLLOUT_ID)}"
        )
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.NUMERICAL_DESC)
        .multi(True)
        .include_all(True)
    )
    columns = [
        (schema.PHASE, "phase"),
        (schema.MODEL_VERSION, "version"),
        (schema.WAVE, "wave"),
        (schema.WAVES, "waves"),
        (schema.DEVICES, "devices"),
        *(
            (schema.devices_field(state), state)
            for state in [DeviceState.CONFIRMED, *sorted(FAILURES)]
        ),
    ]
    latest = InfluxQL(
        "SELECT "
        + ", ".join(f"last({ident(field)}) AS {ident(alias)}" for field, alias in columns)
        + f" FROM {ident(schema.ROLLOUT)} WHERE {_ROLLOUT_FILTER} AND $timeFilter "
        f"GROUP BY {ident(schema.ROLLOUT_ID)}, {ident(schema.MODEL_ID)}"
    ).result_format("table")
    by_reason = InfluxQL(
        f"SELECT count({ident(schema.DETAIL)}) AS {ident('failures')} "
        f"FROM {ident(schema.ROLLOUT_FAILURE)} WHERE {_ROLLOUT_FILTER} AND $timeFilter "
        f"GROUP BY {ident(schema.REASON)}"
    ).alias("$tag_reason")
    failed_devices = InfluxQL(
        f"SELECT {ident(schema.ROLLOUT_ID)}, {ident(schema.WAVE)}, {ident(schema.DEVICE)}, "
        f"{ident(schema.OUTCOME)}, {ident(schema.REASON)}, {ident(schema.DETAIL)} "
        f"FROM {ident(schema.ROLLOUT_FAILURE)} WHERE {_ROLLOUT_FILTER} AND $timeFilter"
    ).result_format("table")
    return (
        _dashboard(
            "vibewatch-rollouts",
            "vibewatch: rollouts",
            "Model rollouts: phase, devices per state, each wave's progress, failures.",
        )
        .with_variable(rollout)
        .with_row(Row("Rollouts"))
        .with_panel(
            _stat(
                "Rollouts in progress",
                "Rollouts running or paused now, of all: each rollout's last state in the "
                "time range.",
                _rollouts_in_progress(),
            )
        )
        .with_panel(
            table.Panel()
            .title("Rollouts")
            .description(
                "Each selected rollout as last written: phase, model version, the wave "
                "that started last (0: the canaries) of its waves, its devices, and those "
                "confirmed and failed."
            )
            .datasource(_DS)
            .show_header(True)
            .with_target(latest.ref_id("A"))
            .with_transformation(_NO_TIME)
            .span(18)
            .height(6)
        )
        .with_row(Row("Progress"))
        .with_panel(
            _timeseries(
                "Devices per state",
                "The devices of each selected rollout in each state (queued, sent, "
                "downloading, verifying, on trial, confirmed, and the outcomes).",
                _per_state(schema.ROLLOUT, by=schema.ROLLOUT_ID)
                .alias("$tag_rollout $col")
                .ref_id("A"),
            )
            .span(24)
            .height(8)
        )
        .with_panel(
            _timeseries(
                "Progress per wave",
                "The devices of each wave (0: the canaries) in each state, per selected rollout.",
                _per_state(schema.ROLLOUT_WAVE, by=(schema.ROLLOUT_ID, schema.WAVE))
                .alias("$tag_rollout wave $tag_wave $col")
                .ref_id("A"),
            )
            .span(24)
            .height(9)
        )
        .with_row(Row("Failures"))
        .with_panel(
            bargauge.Panel()
            .title("Failures by reason")
            .description(
                "Devices that failed in the selected rollouts, by reason: the device's own "
                "(signature, hash, golden ...), timeout, or sent_back (an abort or the "
                "operator's rollback sent it back to its previous model)."
            )
            .datasource(_DS)
            .display_mode(BarGaugeDisplayMode.GRADIENT)
            .orientation(VizOrientation.HORIZONTAL)
            .with_target(by_reason.ref_id("A"))
            .span(8)
            .height(8)
        )
        .with_panel(
            table.Panel()
            .title("Failed devices")
            .description("Each device that failed in the selected rollouts, when and why.")
            .datasource(_DS)
            .show_header(True)
            .with_target(failed_devices.ref_id("A"))
            .span(16)
            .height(8)
        )
    )


#: The queries of events a healthy fleet may have none of in a time range (anomaly events,
#: devices that failed a rollout), by dashboard uid: ``where`` of their
#: :class:`~vibewatch.dashboards.check.QueryCheck` (``panel <title> <refId>``,
#: ``annotation <name>``). ``vibewatch dashboards check`` says such a query found none
#: instead of failing it.
EVENT_QUERIES: dict[str, frozenset[str]] = {
    "vibewatch-fleet": frozenset(
        {
            "panel 'Anomaly events' A",
            "panel 'Anomaly events per hour' A",
            "panel 'Devices with most anomaly events' A",
        }
    ),
    "vibewatch-device": frozenset({"panel 'Score and threshold' B", "annotation 'Anomaly events'"}),
    "vibewatch-rollouts": frozenset({"panel 'Failures by reason' A", "panel 'Failed devices' A"}),
}

#: Every dashboard, by uid.
DASHBOARDS: dict[str, Callable[[], Dashboard]] = {
    "vibewatch-fleet": fleet_overview,
    "vibewatch-device": device_detail,
    "vibewatch-ingest": ingestion_health,
    "vibewatch-rollouts": rollouts,
}
