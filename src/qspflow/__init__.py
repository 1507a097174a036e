"""qspflow: a Quantitative Systems Pharmacology study, from measurements to a rebuildable package."""

__version__ = "0.1.0"
