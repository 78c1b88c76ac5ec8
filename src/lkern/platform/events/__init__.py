"""Events as a platform capability: envelope, outbox and relay, brokers, consumers."""
