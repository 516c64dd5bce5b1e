"""The chaos runner: seeded fault injection against a whole stack, judged by the invariant
checker (docs/reliability.md)."""
