"""Glue shared by every entry point: the settings object and the `bootpig` command line."""
