"""``tripwire replay``: re-score a range of a Kafka topic with one or more model versions.

``read`` reads the range (no consumer group, nothing committed or produced),
``run`` scores it with each version through the worker's own batch processor,
``report`` adds it up and writes rollout evidence, ``labels`` scores it against
known labels, ``table`` and ``plot`` show it, ``cli`` is the command.
"""
