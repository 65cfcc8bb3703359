"""visualization: implementations for the visualization chapter (in progress)."""
