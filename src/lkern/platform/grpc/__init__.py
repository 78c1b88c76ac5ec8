"""gRPC between services: servers with health and error mapping, clients that retry."""
