"""Receivers shared by the forwarding integration tests (one CA and one rsyslog per module)."""

from __future__ import annotations

import pytest

from tests.forwarding.receivers import Rsyslog, WebhookReceiver, make_ca


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory):
    return make_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def rsyslog(tmp_path_factory, test_ca):
    server = Rsyslog(tmp_path_factory.mktemp("rsyslog"), test_ca)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def webhook(test_ca):
    receiver = WebhookReceiver(test_ca)
    yield receiver
    receiver.close()
