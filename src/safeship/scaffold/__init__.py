"""`safeship init`: a new project's files for the setup it chose, each one working as written."""
