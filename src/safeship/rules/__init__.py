"""Alert rules as code: generated from the config, unit-tested with promtool, linted, routed."""
