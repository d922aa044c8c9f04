"""bptd: supervisor daemon for bidirectional DC EV chargers (V2G / V2H / V2V)."""

__version__ = "0.1.0"
