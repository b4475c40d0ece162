"""creative-hub: an event hub for creative work, on SQLite, Redis, Kafka or NATS."""
