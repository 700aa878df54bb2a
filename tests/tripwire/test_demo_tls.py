"""``tripwire demo --bootstrap`` against a TLS listener (tests/fixtures/tls.py).

The demo's own clients and its worker child read the same ``TRIPWIRE_*`` security
variables; a certificate that cannot verify ends the demo before it trains.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.tls import TlsBroker
from tripwire.core.errors import TripwireError
from tripwire.demo import DemoSettings, run_demo
from tripwire.stream.kafka.security import BrokerSecurityError

pytestmark = pytest.mark.integration


def _set_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)


@pytest.mark.slow
def test_the_demo_runs_over_tls(
    tls_broker: TlsBroker, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _set_env(monkeypatch, tls_broker.env())
    result = run_demo(
        DemoSettings(bootstrap=tls_broker.bootstrap, registry=str(tmp_path / "r"), timeout=180)
    )
    assert result.metrics["accuracy"] >= 0.99 and result.metrics["recall"] >= 0.99
    assert result.alerts >= 190  # 200 anomalies in the tutorial's test set


def test_a_wrong_ca_ends_the_demo_before_it_trains(
    tls_broker: TlsBroker, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _set_env(monkeypatch, tls_broker.env(tls_broker.pki.wrong_ca))
    registry = tmp_path / "r"
    with pytest.raises(BrokerSecurityError, match="is not signed by a CA in"):
        run_demo(DemoSettings(bootstrap=tls_broker.bootstrap, registry=str(registry)))
    assert not registry.exists()  # nothing trained or published


def test_the_embedded_broker_refuses_a_secured_protocol(
    tls_broker: TlsBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    _set_env(monkeypatch, tls_broker.env())
    with pytest.raises(TripwireError, match="the embedded broker speaks PLAINTEXT only"):
        run_demo(DemoSettings())
