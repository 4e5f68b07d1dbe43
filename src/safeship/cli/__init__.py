"""The command line: thin wiring of the library, no logic a library user would miss."""
