"""Schema revisions of the history store, oldest first by number."""
