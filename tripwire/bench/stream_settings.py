"""Options of ``tripwire bench stream``: one frozen object (:mod:`tripwire.bench.stream`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from tripwire.bench.stream_variants import VARIANTS
from tripwire.core.errors import ConfigError


@dataclass(frozen=True)
class StreamBenchSettings:
    """Options of ``tripwire bench stream`` (each also a ``TRIPWIRE_BENCH_*`` env var)."""

    #: its own variables: TRIPWIRE_OUT is score's file, not this folder
    ENV_PREFIX: ClassVar[str] = "TRIPWIRE_BENCH_"

    bootstrap: str = field(
        default="", metadata={"help": "Kafka cluster to use (empty: the embedded broker)"}
    )
    out: str = field(
        default="out/bench/stream",
        metadata={"help": "directory for stream.md, stream.json and logs", "metavar": "DIR"},
    )
    events: int = field(
        default=300_000, metadata={"help": "events of the JSON and binary runs (and ceiling A)"}
    )
    packed_events: int = field(
        default=1_000_000, metadata={"help": "feature vectors of the packed run"}
    )
    packed_size: int = field(default=100, metadata={"help": "vectors per packed record"})
    partitions: int = field(default=3, metadata={"help": "partitions of every input topic"})
    anomaly_fraction: float = field(
        default=0.01, metadata={"help": "share of anomalous events (they make alerts)"}
    )
    rates: tuple[str, ...] = field(
        default=("1000", "5000", "80%"),
        metadata={
            "help": "offered rates of the latency runs, events/s or N%% of the measured "
            "binary maximum",
            "metavar": "LIST",
        },
    )
    rate_seconds: float = field(default=6.0, metadata={"help": "seconds of each latency run"})
    max_batch: int = field(default=256, metadata={"help": "the worker's --max-batch"})
    seed: int = field(default=0, metadata={"help": "seed of the data and the models"})
    detectors: tuple[str, ...] = field(
        default=("ae", "ensemble", "knn", "vae", "pyod:IForest"),
        metadata={
            "help": "detector specs measured one after another, each by a worker of its own "
            "on binary events and in-process; empty = none",
            "metavar": "LIST",
        },
    )
    detector_seconds: float = field(
        default=8.0,
        metadata={"help": "size of each detector's backlog: its in-process rate x this many "
                  "seconds (at most --events)"},
    )  # fmt: skip
    detector_rate: float = field(
        default=5000.0,
        metadata={"help": "offered events/s of each detector's latency run (--rate-seconds long)"},
    )
    detectors_only: bool = field(
        default=False,
        metadata={"help": "only the per-detector table: no JSON/binary/packed runs, no latency "
                  "at --rates, no memory, no variants (with small --events, a quick run)"},
    )  # fmt: skip
    variants: tuple[str, ...] = field(
        default=tuple(VARIANTS),
        metadata={"help": f"worker variants measured side by side ({', '.join(VARIANTS)}), "
                  "each on a backlog of --events binary events then at --variant-rate; "
                  "empty = none", "metavar": "LIST"},
    )  # fmt: skip
    variant_repeats: int = field(
        default=3, metadata={"help": "rounds of the variants (interleaved; medians)"}
    )
    variant_rate: float = field(
        default=5000.0, metadata={"help": "offered events/s of each variant's latency run"}
    )

    def __post_init__(self) -> None:
        self._check_counts("events", "packed_events", "packed_size", "partitions", "max_batch",
                           "variant_repeats")  # fmt: skip
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown:
            raise ConfigError(f"variants: unknown {unknown}, known: {', '.join(VARIANTS)}")
        if not 0.0 < self.anomaly_fraction < 1.0 or self.rate_seconds <= 0:
            raise ConfigError("anomaly_fraction must be in (0, 1) and rate_seconds > 0")
        if self.detector_seconds <= 0 or self.detector_rate <= 0 or self.variant_rate <= 0:
            raise ConfigError("detector_seconds, detector_rate and variant_rate must be > 0")
        self.parse_rates(1.0)

    def _check_counts(self, *names: str) -> None:
        for name in names:
            value = getattr(self, name)
            if value < 1:
                raise ConfigError(f"{name} must be >= 1, got {value}")

    def parse_rates(self, maximum: float) -> list[float]:
        """``rates`` in events/s, ``N%`` taken of ``maximum``."""
        out = []
        for raw in self.rates:
            try:
                rate = maximum * float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
            except ValueError:
                raise ConfigError(f"rates: {raw!r} is neither events/s nor N%") from None
            if rate <= 0:
                raise ConfigError(f"rates: {raw!r} must be > 0")
            out.append(rate)
        return out
