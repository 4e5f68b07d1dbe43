"""A sample service and load generator, so a rollout can be tried and tested on one machine."""
