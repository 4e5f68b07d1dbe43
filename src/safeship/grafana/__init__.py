"""Grafana: dashboards as code, pushed with each deployment, versioned, rolled back, annotated."""
