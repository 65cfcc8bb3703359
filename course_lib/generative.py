"""generative: implementations for the generative chapter (in progress)."""
