"""The plan's metrics API: deployment metrics without the rollout controller.

Run it in any directory: the history goes to ./.safeship/history.db (safeship's
default store, created if needed) and /metrics is served on 127.0.0.1:8001
(set SAFESHIP_METRICS_PORT for another port, 0 for a free one). While it serves:

    curl -s localhost:8001/metrics | grep deployment_total

The counts are running totals read from the history store: run it again in the
same directory and deployment_total{status="success"} reads 2.
"""

import contextlib
import threading

from safeship.metrics import (
    deployment_frequency,
    deployment_rollback_rate,
    deployment_success_rate,
    initialize_metrics,
    record_prometheus_query,
    record_rollback,
    server_address,
    shutdown_metrics,
    track_deployment,
    track_smoke_test,
    update_canary_traffic,
)

initialize_metrics()

# A deployment that goes well: promoted when the block ends without an exception.
with track_deployment("staging") as deployment:
    with track_smoke_test("staging"):
        pass  # e.g. GET the canary's /healthz: an exception here fails the smoke test
    update_canary_traffic("staging", deployment.id, 10)
    record_prometheus_query("canary_analysis", True, 0.05)
    update_canary_traffic("staging", deployment.id, 100)

# One the analysis rejects: rolled back, so its canary traffic reads 0 again.
with track_deployment("staging") as deployment:
    update_canary_traffic("staging", deployment.id, 10)
    record_prometheus_query("canary_analysis", False, 2.5)
    record_rollback("staging", "high_error_rate")

print(
    f"success rate {deployment_success_rate():.0%}, "
    f"rollback rate {deployment_rollback_rate():.0%}, "
    f"{deployment_frequency():.3f} promotions per hour over the last day"
)

address = server_address()
if address is None:  # the port is taken: initialize_metrics() logged a warning
    shutdown_metrics()
    raise SystemExit(1)
print(f"serving http://{address[0]}:{address[1]}/metrics (Ctrl-C to stop)", flush=True)
with contextlib.suppress(KeyboardInterrupt):
    threading.Event().wait()
shutdown_metrics()  # saves the query counts to the store and closes it
