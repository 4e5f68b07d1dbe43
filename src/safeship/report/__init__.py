"""`safeship report`: DORA keys and the plan's outcome targets from the deployment history.

Data flow: `period` turns the command line into a time range, `queries` aggregates the
store's tables in SQL (one pass over the period's deployments, plus the lead times for
percentiles, restore episodes, smoke tests, counters and a few canary traces), `build`
turns those aggregates into a `Report` (`dora` and `outcomes` hold the definitions and
targets), and the `render_*` modules print it as a terminal table, markdown, JSON or a
self-contained HTML page. `synthetic` fills a store with generated history for tests and
the benchmark.
"""
