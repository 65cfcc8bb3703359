"""rnn: implementations for the rnn chapter (in progress)."""
