"""What the worker tells operators: its Prometheus metrics, the ``/metrics`` HTTP
server, consumer lag."""
