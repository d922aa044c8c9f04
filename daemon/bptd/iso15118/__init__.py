"""bptd-iso15118: the ISO 15118-20 / ISO 15118-2 / DIN 70121 SECC frontend of bptd.

It runs in its own virtual environment (the ``iso15118`` package pins pydantic 1 and needs a
Java runtime for its EXI codec). :mod:`bptd.iso15118.bridge` is the part that talks to bptd
(``hlc_*`` commands through :mod:`bptd.api.client` only, no ``iso15118`` import);
:mod:`bptd.iso15118.controller` is the ``EVSEControllerInterface`` implementation on top of
it, and :mod:`bptd.iso15118.cli` the ``bptd-iso15118`` command line. See docs/iso15118.md.
"""
