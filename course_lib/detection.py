"""detection: implementations for the detection chapter (in progress)."""
