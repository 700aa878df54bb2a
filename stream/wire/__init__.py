"""Wire formats: input records and their decoding (JSON, f32, packed), anomaly events
and score records, dead letters."""
