"""GitHub Actions integration: the only place that reads the GITHUB_* variables."""
