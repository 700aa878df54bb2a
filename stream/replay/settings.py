"""Settings of ``tripwire replay``: one frozen object, read from env vars and options.

Fields are ``TRIPWIRE_<FIELD>`` variables as for the worker, so a replay run where a
worker runs reads the same broker, topic and ``max_message_bytes`` (the size limit
decides which records are refused, so it must be the worker's for the replay to be
exact). The broker's TLS/SASL settings are the worker's ``TRIPWIRE_SECURITY_*``,
``TRIPWIRE_SASL_*`` and ``TRIPWIRE_SSL_*`` variables. ``--model`` (repeated),
``--from`` and ``--to`` are options of their own (``models``, ``range_from``,
``range_to``).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field

from tripwire.core.errors import ConfigError


def _m(help_text: str, metavar: str | None = None, **more: object) -> dict[str, object]:
    """``field`` metadata: the ``--help`` text and the option's metavar."""
    out: dict[str, object] = {"help": help_text, **more}
    if metavar:
        out["metavar"] = metavar
    return out


@dataclass(frozen=True)
class ReplaySettings:
    """What ``tripwire replay`` reads, with which versions, and where it reports."""

    bootstrap: str = field(
        default="",
        metadata=_m("Kafka bootstrap servers, host:port[,host:port] (required)", "HOSTS"),
    )
    models: tuple[str, ...] = field(
        default=(),
        metadata=_m("model versions to replay with, NAME@VERSION or NAME@ALIAS, "
                    "comma-separated (or --model repeated); the first is the baseline",
                    cli=False),
    )  # fmt: skip
    range_from: str = field(
        default="",
        metadata=_m("start of the range: an offset (every partition) or an ISO-8601 time "
                    "with a UTC offset (empty: the beginning)", cli=False),
    )  # fmt: skip
    range_to: str = field(
        default="",
        metadata=_m("end of the range, excluded: an offset or an ISO-8601 time "
                    "(empty: the end of the log when the replay starts)", cli=False),
    )  # fmt: skip
    registry: str = field(default="./registry", metadata=_m("model registry directory", "DIR"))
    input_topic: str = field(default="features", metadata=_m("topic to replay", "TOPIC"))
    partitions: tuple[str, ...] = field(
        default=(), metadata=_m("partitions to replay, e.g. 0,2 (empty: all)", "LIST")
    )
    labels: str = field(
        default="",
        metadata=_m("CSV or JSON of input ids with 0/1 labels, or incident time ranges "
                    "(docs/formats.md, 'Replay labels')", "FILE"),
    )  # fmt: skip
    json: str = field(
        default="",
        metadata=_m("write the report as rollout evidence JSON here "
                    "(docs/formats.md, 'Rollout evidence')", "FILE"),
    )  # fmt: skip
    png: str = field(
        default="",
        metadata=_m("plot score distributions and the alert diff over time here "
                    "(needs matplotlib: pip install 'tripwire[replay]')", "FILE"),
    )  # fmt: skip
    max_batch: int = field(
        default=1024, metadata=_m("input records per micro-batch (scores do not depend on it)", "N")
    )
    max_message_bytes: int = field(
        default=1_000_000,
        metadata=_m("larger input values are refused (oversize), as by the worker: "
                    "use the worker's value", "BYTES"),
    )  # fmt: skip
    top_entities: int = field(
        default=10, metadata=_m("entities listed per comparison, most affected first", "N")
    )
    progress: bool = field(default=True, metadata=_m("a progress line on stderr"))

    def validate(self) -> None:
        """Raise ``ConfigError`` naming the first option that makes no sense."""
        if not self.bootstrap.strip():
            raise ConfigError("--bootstrap (or TRIPWIRE_BOOTSTRAP) is required, e.g. kafka:9092")
        if not self.models:
            raise ConfigError("--model NAME@VERSION|NAME@ALIAS is required (repeat it to compare)")
        if not self.input_topic:
            raise ConfigError("--input-topic must be set")
        if self.max_batch <= 0 or self.max_message_bytes <= 0:
            raise ConfigError("--max-batch and --max-message-bytes must be > 0")
        if not 0 <= self.top_entities <= 100:
            raise ConfigError(f"--top-entities must be in 0..100, got {self.top_entities}")
        self.partition_list()
        if self.png and importlib.util.find_spec("matplotlib") is None:
            raise ConfigError(
                "--png needs matplotlib, which is not installed: pip install 'tripwire[replay]'"
            )

    def partition_list(self) -> list[int] | None:
        """``partitions`` as integers (``None``: all)."""
        try:
            parts = [int(p) for p in self.partitions]
        except ValueError:
            shown = ",".join(self.partitions)
            raise ConfigError(f"--partitions must be integers, got {shown}") from None
        if any(p < 0 for p in parts) or len(set(parts)) != len(parts):
            raise ConfigError(f"--partitions must be distinct and >= 0, got {parts}")
        return sorted(parts) or None

    @property
    def bootstrap_servers(self) -> list[str]:
        """``bootstrap`` as a list of ``host:port`` (a ``kafka://`` prefix is dropped)."""
        hosts = [h.strip().removeprefix("kafka://") for h in self.bootstrap.split(",")]
        return [h for h in hosts if h]
