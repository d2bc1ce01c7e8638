"""paperchat: cited answers about research papers (library; no UI imports)."""

__version__ = "0.1.0"
