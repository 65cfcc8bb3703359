"""attention: implementations for the attention chapter (in progress)."""
