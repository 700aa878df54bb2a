"""Tripwire streaming: the ``tripwire worker`` that scores a Kafka topic.

Grouped by concern, in the order an event meets them: :mod:`.kafka` (fetch records,
produce outputs), :mod:`.wire` (decode inputs, encode alerts and dead letters),
:mod:`.processing` (score a micro-batch with the serving model), :mod:`.observability`
(metrics, lag). :mod:`.worker` runs the loop, :mod:`.settings` holds its settings,
:mod:`.cli` is the command; :mod:`.compat` is the one place that touches private
internals of faust, mode, aiokafka and prometheus_client.

Installed as ``tripwire.stream``. It reads the registry through
:mod:`tripwire.core` and never imports ``tripwire.training``.
"""
