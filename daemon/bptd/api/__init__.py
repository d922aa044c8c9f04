"""The ZeroMQ API: request / reply format, error codes and the client frontends import."""
