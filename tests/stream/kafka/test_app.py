"""The faust app the worker builds: settings that carry the delivery guarantees."""

from __future__ import annotations

from tripwire.stream.kafka.app import create_app
from tripwire.stream.kafka.consumer import BatchConsumer, CommittingConsumer
from tripwire.stream.settings import WorkerSettings


def test_app_settings_and_consumer() -> None:
    settings = WorkerSettings(
        bootstrap="a:1,b:2", model_ref="m", group_id="grp", session_timeout=6.0,
        commit_interval=0.25, max_message_bytes=5_000_000, max_output_bytes=6_000_000,
    )  # fmt: skip
    app = create_app(settings)
    conf = app.conf
    assert conf.id == "grp" and [str(u) for u in conf.broker] == ["kafka://a:1", "kafka://b:2"]
    assert conf.producer_acks == -1 and conf.stream_wait_empty is True
    assert conf.broker_commit_interval == 0.25 and conf.broker_session_timeout == 6.0
    assert conf.broker_heartbeat_interval == 2.0
    assert conf.producer_max_request_size == 6_000_000  # the producer refuses what the broker would
    assert conf.topic_disable_leader and not conf.web_enabled
    assert type(app.consumer) is BatchConsumer and isinstance(app.consumer, CommittingConsumer)
