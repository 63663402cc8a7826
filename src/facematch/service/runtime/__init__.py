"""Serving machinery around the routes: no business rule lives here (docs/architecture.md)."""
