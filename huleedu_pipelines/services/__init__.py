"""Use cases, one module each, called alike by assets, the CLI and benchmarks. No Dagster here:
a service takes a warehouse engine or connection, a registry and plain values, and returns
plain values; the Dagster layer attaches them as metadata."""
