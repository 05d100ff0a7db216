"""Grafana dashboards as code (:mod:`.boards`), their InfluxQL (:mod:`.influxql`), the files
Grafana provisions them from (:mod:`.export`) and the check of every query against an
InfluxDB (:mod:`.check`).

Only constants live here, so the command line's ``--help`` does not load the SDK.
"""

#: Where the dashboard provider looks for the JSON files in Grafana's file system.
DEFAULT_DASHBOARDS_PATH = "/var/lib/grafana/dashboards/vibewatch"
