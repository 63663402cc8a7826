"""The application layer: use cases with no HTTP in them (docs/architecture.md)."""
