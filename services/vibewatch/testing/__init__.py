"""What the tests, the benchmarks, the fleet simulator and the demo share.

One copy of each helper that starts real parts, builds data for them or drives them:

* :mod:`vibewatch.testing.servers`: real Mosquitto and InfluxDB 1.x processes on free
  loopback ports (:class:`~vibewatch.testing.servers.LocalMosquitto`,
  :class:`~vibewatch.testing.servers.LocalInfluxDB`), and their data read back through
  the project's own InfluxDB client;
* :mod:`vibewatch.testing.ingest`: ``python -m vibewatch ingest`` as a real process
  (start, readiness, SIGTERM, SIGKILL, restart, its log and dead-letter log) and a
  publisher that retries every message until the broker acknowledges it;
* :mod:`vibewatch.testing.load`: telemetry streams and the load generator that
  publishes them at a rate, in this process or in its own;
* :mod:`vibewatch.testing.models`: random but valid ``.vwm`` models and small signed
  model packages;
* :mod:`vibewatch.testing.watch`: a third party on the broker that keeps every message
  of the fleet by device and kind;
* :mod:`vibewatch.testing.grafana`: a fake Grafana HTTP API that dashboards are pushed to;
* :mod:`vibewatch.testing.tflite`: ``.tflite`` files written field by field, or by the
  TF Lite converter (needs the ``dev`` extra: ``flatbuffers`` and TensorFlow).

Nothing here imports pytest, so the benchmarks and the demo use it as the tests do.
Submodules are imported on their own: this package imports none of them, so using one
does not load what the others need.
"""
