"""bptd-ocpp: the OCPP 1.6J / 2.0.1 / 2.1 charging-station frontend of bptd.

A separate process that speaks OCPP to a CSMS and talks to bptd only through
``bptd.api.client``. See docs/ocpp.md.

- :mod:`bptd.ocpp.app`: the version-independent core (transactions, registers, sampling,
  smart charging applied to bptd's limits, the connection, resets)
- :mod:`bptd.ocpp.profiles`: charging profiles and their compositing (pure)
- :mod:`bptd.ocpp.queue`: the on-disk queue of transaction messages
- :mod:`bptd.ocpp.v16`, :mod:`bptd.ocpp.v2`: the version adapters
"""
