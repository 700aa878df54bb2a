"""``WorkerSettings``: validation, env vars, secrets."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tripwire.core.config import Secret, load_env
from tripwire.core.errors import ConfigError
from tripwire.stream.settings import WorkerSettings


def valid(**changes: object) -> WorkerSettings:
    return replace(WorkerSettings(bootstrap="h:9092", model_ref="m"), **changes)  # type: ignore[arg-type]


def test_settings_validate() -> None:
    valid().validate()
    assert valid(bootstrap="kafka://a:1, b:2").bootstrap_servers == ["a:1", "b:2"]
    assert (valid().model_name, valid().model_alias) == ("m", "production")
    assert valid(model_ref="m@canary").model_alias == "canary"
    bad = [
        {"bootstrap": ""}, {"model_ref": ""}, {"model_ref": "m@3"}, {"max_batch": 0},
        {"max_wait": -1.0}, {"session_timeout": 1.0}, {"security_protocol": "TLS"},
        {"sasl_mechanism": "GSSAPI"}, {"auto_offset_reset": "middle"},
        {"alert_topic": "features"}, {"scores_topic": "anomalies"}, {"dlq_topic": ""},
    ]  # fmt: skip
    for change in bad:
        with pytest.raises(ConfigError):
            valid(**change).validate()


def test_settings_from_env_and_secret_masking() -> None:
    s = load_env(WorkerSettings, {"TRIPWIRE_MAX_BATCH": "64", "TRIPWIRE_SASL_PASSWORD": "hunter2"})
    assert s.max_batch == 64 and isinstance(s.sasl_password, Secret)
    assert "hunter2" not in repr(s) and s.sasl_password.reveal() == "hunter2"
