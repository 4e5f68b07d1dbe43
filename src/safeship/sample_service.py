"""The sample service's metric shape, shared by the demo service and the simulation.

The alert rules and the default PromQL templates assume these names; the
buckets are the histogram bounds (seconds) the sample service exposes.
"""

LATENCY_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.25,
    0.3,
    0.4,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    10.0,
)
