"""bptd-http: the vendor supervisor's REST paths, a REST API mirroring the ZeroMQ commands
(with its OpenAPI document), telemetry as server-sent events and a live station page.

A separate process that talks to bptd through :mod:`bptd.api.client` only (docs/http.md).
"""
