"""Voice providers: what actually places a call."""
