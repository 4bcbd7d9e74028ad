"""AAT Systems appliance: one customer workspace in one process with one encrypted file."""

__version__ = "0.1.0"
