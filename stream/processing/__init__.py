"""Processing of one micro-batch (decode, score, build outputs), per-entity alert
cooldown, and the serving model with its hot reload."""
