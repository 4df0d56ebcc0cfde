"""Looking at a run: loading its tables, the report page."""
