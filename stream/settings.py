"""Settings of ``tripwire worker``: one frozen object, read from env vars and options.

Every field is a ``--kebab-case`` option and a ``TRIPWIRE_<FIELD>`` variable (see
:mod:`tripwire.core.config`); ``model_ref`` is ``--model`` / ``TRIPWIRE_MODEL_REF`` as for
``tripwire score``. There is no built-in broker address: ``--bootstrap`` (or
``TRIPWIRE_BOOTSTRAP``) is required.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tripwire.core.config import Secret
from tripwire.core.errors import ConfigError
from tripwire.stream.wire.limits import DEFAULT_MAX_OUTPUT_BYTES, MIN_MAX_OUTPUT_BYTES

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
OFFSET_RESETS = ("earliest", "latest")
#: Prometheus port registered for exporters of this kind of service (document it).
DEFAULT_METRICS_PORT = 9464


def _m(help_text: str, metavar: str | None = None) -> dict[str, str]:
    """``field`` metadata: the ``--help`` text and the option's metavar."""
    return {"help": help_text, "metavar": metavar} if metavar else {"help": help_text}


@dataclass(frozen=True)
class WorkerSettings:
    """What ``tripwire worker`` connects to, reads, writes and how it batches."""

    bootstrap: str = field(
        default="",
        metadata=_m("Kafka bootstrap servers, host:port[,host:port] (required)", "HOSTS"),
    )
    model_ref: str = field(
        default="",
        metadata={"help": "NAME or NAME@ALIAS to serve and follow (required)", "cli": False},
    )
    registry: str = field(default="./registry", metadata=_m("model registry directory", "DIR"))
    shadow_model: str = field(
        default="",
        metadata=_m(
            "NAME@ALIAS of a shadow version that also scores every batch, followed like "
            "--model; it never alerts (empty: off)",
            "REF",
        ),
    )
    shadow_topic: str = field(
        default="",
        metadata=_m("topic for the shadow's anomaly events (empty: none are written)", "TOPIC"),
    )
    input_topic: str = field(default="features", metadata=_m("topic of feature vectors", "TOPIC"))
    alert_topic: str = field(default="anomalies", metadata=_m("topic for anomaly events", "TOPIC"))
    dlq_topic: str = field(
        default="features.dlq", metadata=_m("dead-letter topic for bad input", "TOPIC")
    )
    scores_topic: str = field(
        default="", metadata=_m("topic for every score (empty: off)", "TOPIC")
    )
    group_id: str = field(
        default="tripwire-worker", metadata=_m("consumer group (also the Faust app id)", "ID")
    )
    max_batch: int = field(
        default=256,
        metadata=_m("most input records per micro-batch (scored in one model call)", "N"),
    )
    max_wait: float = field(
        default=0.01, metadata=_m("seconds to wait for a micro-batch to fill", "SECONDS")
    )
    top_k: int = field(default=5, metadata=_m("top contributing features named in each alert", "K"))
    cooldown: float = field(
        default=0.0, metadata=_m("seconds between two alerts of one entity (0: off)", "SECONDS")
    )
    cooldown_max_entities: int = field(
        default=100_000,
        metadata=_m("entities remembered by the cooldown (oldest forgotten first)", "N"),
    )
    max_message_bytes: int = field(
        default=1_000_000,
        metadata=_m("larger input values go to the dead-letter topic (truncated)", "BYTES"),
    )
    max_output_bytes: int = field(
        default=DEFAULT_MAX_OUTPUT_BYTES,
        metadata=_m(
            "largest record the worker produces (key, value, headers); set it to the "
            "brokers' message.max.bytes (or the output topics' max.message.bytes if lower)",
            "BYTES",
        ),
    )
    reload_interval: float = field(
        default=5.0,
        metadata=_m("seconds between checks of the model alias (0: never reload)", "SECONDS"),
    )
    metrics_host: str = field(
        # Prometheus scrapes the worker from other hosts/pods, hence all interfaces.
        default="0.0.0.0",  # noqa: S104
        metadata=_m("address of the /metrics endpoint", "ADDR"),
    )
    metrics_port: int = field(
        default=DEFAULT_METRICS_PORT,
        metadata=_m("port of the /metrics endpoint (0: any free port)", "PORT"),
    )
    wait_for_model: bool = field(
        default=False,
        metadata=_m(
            "wait (not ready) until the model alias is published, instead of refusing to start"
        ),
    )
    drain_timeout: float = field(
        default=25.0,
        metadata=_m(
            "after SIGTERM, seconds to deliver and commit the batches in flight before "
            "exiting anyway (0: no bound); keep the orchestrator's grace period above it",
            "SECONDS",
        ),
    )
    session_timeout: float = field(
        default=10.0,
        metadata=_m(
            "consumer group session timeout: a dead worker's partitions move after this",
            "SECONDS",
        ),
    )
    commit_interval: float = field(
        default=1.0,
        metadata=_m("seconds between offset commits (bounds re-scoring after a crash)", "SECONDS"),
    )
    auto_offset_reset: str = field(
        default="earliest",
        metadata=_m("where a new consumer group starts: earliest or latest", "WHERE"),
    )
    create_topics: bool = field(
        default=True,
        metadata=_m("create missing output topics (alert, dead-letter, scores) at start"),
    )
    topic_partitions: int = field(
        default=0,
        metadata=_m("partitions of created output topics (0: as many as the input topic)", "N"),
    )
    topic_replication: int = field(
        default=1,
        metadata=_m("replication factor of created output topics (use 3 on a real cluster)", "N"),
    )
    connect_timeout: float = field(
        default=0.0,
        metadata=_m(
            "give up if the broker is unreachable this long at start (0: wait forever)",
            "SECONDS",
        ),
    )
    drift: bool = field(
        default=True,
        metadata=_m("monitor drift against the serving version's reference (docs/runbook.md)"),
    )
    drift_window: int = field(default=5000, metadata=_m("events in the drift window", "N"))
    drift_step: int = field(default=1000, metadata=_m("events between drift evaluations", "N"))
    drift_false_alarm_rate: float = field(
        default=0.001,
        metadata=_m("chance that one evaluation of a stationary window alarms", "RATE"),
    )
    drift_expected_anomaly_rate: float = field(
        default=0.0,
        metadata=_m("share of true anomalies expected in the stream (centres the band)", "RATE"),
    )
    security_protocol: str = field(
        default="PLAINTEXT", metadata=_m("PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL", "PROTO")
    )
    sasl_mechanism: str = field(
        default="PLAIN", metadata=_m("PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", "MECH")
    )
    sasl_username: str = field(default="", metadata=_m("SASL user name", "USER"))
    sasl_password: Secret = field(default=Secret(""), metadata=_m("SASL password", "PASSWORD"))
    ssl_cafile: str = field(
        default="", metadata=_m("CA bundle to verify the brokers (SSL)", "PATH")
    )
    ssl_certfile: str = field(default="", metadata=_m("client certificate (mutual TLS)", "PATH"))
    ssl_keyfile: str = field(default="", metadata=_m("client private key (mutual TLS)", "PATH"))

    def validate(self) -> None:
        """Raise ``ConfigError`` naming the first option that makes no sense."""
        if not self.bootstrap.strip():
            raise ConfigError("--bootstrap (or TRIPWIRE_BOOTSTRAP) is required, e.g. kafka:9092")
        if not self.model_ref:
            raise ConfigError("--model NAME[@ALIAS] (or TRIPWIRE_MODEL_REF) is required")
        if self.model_ref.partition("@")[2].isdigit():
            raise ConfigError(
                f"--model {self.model_ref}: the worker follows an alias (NAME@ALIAS), "
                "not a fixed version; point an alias at the version instead"
            )
        self._check_ranges()
        self._check_choices()
        self._check_shadow()
        topics = [self.input_topic, self.alert_topic, self.dlq_topic]
        topics += [t for t in (self.scores_topic, self.shadow_topic) if t]
        if not all(topics) or len(set(topics)) != len(topics):
            raise ConfigError(f"topics must be set and distinct, got {topics}")

    def _check_ranges(self) -> None:
        positive: dict[str, float] = {
            "max_batch": self.max_batch,
            "max_message_bytes": self.max_message_bytes,
        }
        non_negative: dict[str, float] = {
            "max_wait": self.max_wait, "top_k": self.top_k, "cooldown": self.cooldown,
            "reload_interval": self.reload_interval, "metrics_port": self.metrics_port,
            "topic_partitions": self.topic_partitions, "connect_timeout": self.connect_timeout,
            "drain_timeout": self.drain_timeout,
        }  # fmt: skip
        for name, value in positive.items():
            if value <= 0:
                raise ConfigError(f"--{_opt(name)} must be > 0, got {value}")
        for name, value in non_negative.items():
            if value < 0:
                raise ConfigError(f"--{_opt(name)} must be >= 0, got {value}")
        if self.session_timeout < 3 or self.commit_interval <= 0:
            raise ConfigError("--session-timeout must be >= 3 and --commit-interval > 0")
        if self.max_output_bytes < MIN_MAX_OUTPUT_BYTES:
            raise ConfigError(
                f"--max-output-bytes must be >= {MIN_MAX_OUTPUT_BYTES} (room for a bounded "
                f"alert or dead letter), got {self.max_output_bytes}"
            )
        if self.topic_replication < 1 or self.cooldown_max_entities < 1:
            raise ConfigError("--topic-replication and --cooldown-max-entities must be >= 1")

    def _check_shadow(self) -> None:
        if self.shadow_topic and not self.shadow_model:
            raise ConfigError("--shadow-topic needs --shadow-model NAME@ALIAS")
        name, _, alias = self.shadow_model.partition("@")
        if self.shadow_model and (not name or alias.isdigit()):
            raise ConfigError(
                f"--shadow-model {self.shadow_model}: the shadow follows an alias (NAME@ALIAS, "
                "e.g. NAME@candidate), not a fixed version; point an alias at the version"
            )

    def _check_choices(self) -> None:
        choices = {
            "security_protocol": (self.security_protocol, SECURITY_PROTOCOLS),
            "sasl_mechanism": (self.sasl_mechanism, SASL_MECHANISMS),
            "auto_offset_reset": (self.auto_offset_reset, OFFSET_RESETS),
        }
        for name, (value, allowed) in choices.items():
            if value not in allowed:
                raise ConfigError(f"--{_opt(name)} must be one of {allowed}, got {value!r}")

    @property
    def bootstrap_servers(self) -> list[str]:
        """``bootstrap`` as a list of ``host:port`` (a ``kafka://`` prefix is dropped)."""
        hosts = [h.strip().removeprefix("kafka://") for h in self.bootstrap.split(",")]
        return [h for h in hosts if h]

    @property
    def model_name(self) -> str:
        return self.model_ref.partition("@")[0]

    @property
    def model_alias(self) -> str:
        return self.model_ref.partition("@")[2] or "production"

    @property
    def shadow_name(self) -> str:
        return self.shadow_model.partition("@")[0]

    @property
    def shadow_alias(self) -> str:
        return self.shadow_model.partition("@")[2] or "production"

    @property
    def heartbeat_interval(self) -> float:
        """A third of the session timeout, at most 3 s (the Kafka rule of thumb)."""
        return min(3.0, self.session_timeout / 3)


def _opt(name: str) -> str:
    return name.replace("_", "-")
