"""Prometheus: an API client that classifies failures, and PromQL templates for analysis."""
