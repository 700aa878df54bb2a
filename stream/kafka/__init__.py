"""Kafka I/O of the worker: the faust app, the batch consumer and its feed, the producer
of outputs, topic preparation and broker security."""
