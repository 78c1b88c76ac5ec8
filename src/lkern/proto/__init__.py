"""Generated protobuf and gRPC code (scripts/generate-proto); the contract services share."""
