"""Seeded generators of realistic exports for tests and benchmarks; production never imports it."""
