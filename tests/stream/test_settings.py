"""``WorkerSettings``: validation, env vars, secrets."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

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


def test_secrets_from_files(tmp_path: Path) -> None:
    secret = tmp_path / "sasl_password"
    secret.write_text("hunter2\n")
    s = load_env(WorkerSettings, {"TRIPWIRE_SASL_PASSWORD_FILE": str(secret)})
    assert isinstance(s.sasl_password, Secret) and s.sasl_password.reveal() == "hunter2"
    assert "hunter2" not in repr(s)
    with pytest.raises(ConfigError, match="not both"):
        load_env(WorkerSettings, {"TRIPWIRE_SASL_PASSWORD_FILE": str(secret),
                                  "TRIPWIRE_SASL_PASSWORD": "x"})  # fmt: skip
    with pytest.raises(ConfigError, match="cannot read the secret file"):
        load_env(WorkerSettings, {"TRIPWIRE_SASL_PASSWORD_FILE": str(secret) + ".missing"})
    # only secrets come from files: other fields ignore a _FILE variable
    assert load_env(WorkerSettings, {"TRIPWIRE_BOOTSTRAP_FILE": str(secret)}).bootstrap == ""


def test_the_output_limit_must_leave_room_for_a_bounded_record() -> None:
    ok = WorkerSettings(bootstrap="k:9092", model_ref="m", max_output_bytes=65_536)
    ok.validate()
    with pytest.raises(ConfigError, match="--max-output-bytes must be >= 65536"):
        WorkerSettings(bootstrap="k:9092", model_ref="m", max_output_bytes=65_535).validate()
    assert WorkerSettings().max_output_bytes == 1_048_576  # Kafka's message.max.bytes default
