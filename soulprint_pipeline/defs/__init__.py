"""The Dagster layer: thin glue around the library (assets, IO manager, resources, sensors)."""
