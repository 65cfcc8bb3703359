"""transformer: implementations for the transformer chapter (in progress)."""
