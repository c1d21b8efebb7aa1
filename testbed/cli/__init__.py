"""The testbed command line."""
