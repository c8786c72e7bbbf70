"""The storage host's HTTP API: request signing (auth), the server (server) and the client (client).

protocol/HTTP.md is the specification; this package is one implementation of it.
"""
