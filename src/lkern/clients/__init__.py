"""Typed clients of the services' gRPC APIs, shared like the proto files they speak.

A service that needs another asks through the small protocol here (what it
needs to know, not how it is asked) and gets the gRPC adapter in production
and a fake in unit tests. Nothing here imports a service's own package.
"""
