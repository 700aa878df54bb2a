#!/bin/sh
# Entry point of the compose Prometheus: write the number of workers the alerts
# expect (TRIPWIRE_WORKERS, the same variable that sets the worker's replicas) as the
# recording rule tripwire:workers_expected, then run Prometheus with its arguments.
# Kubernetes derives the same series from kube-state-metrics instead
# (deploy/k8s/monitoring/workers-expected.rules.yml).
set -eu
workers=${TRIPWIRE_WORKERS:-1}
case $workers in
    '' | *[!0-9]*) echo "TRIPWIRE_WORKERS must be a whole number, got '$workers'" >&2; exit 2 ;;
esac
dir=${TRIPWIRE_GENERATED_RULES:-/etc/prometheus/generated}
mkdir -p "$dir"
cat > "$dir/expected.rules.yml" <<RULES
# Written by prometheus-entrypoint.sh from TRIPWIRE_WORKERS; do not edit.
groups:
  - name: tripwire.expected
    rules:
      - record: tripwire:workers_expected
        expr: vector($workers)
RULES
exec "${PROMETHEUS_BIN:-/bin/prometheus}" "$@"
