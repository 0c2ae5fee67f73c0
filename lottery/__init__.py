"""lottery: a reproducible, auditable study of the Lottery Ticket Hypothesis."""

__version__ = "0.1.0"
