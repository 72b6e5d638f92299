import pytest
from qstash import QStash

from compat import DEFAULT_TOKEN, QStashServer, Sink


@pytest.fixture(scope="session")
def server():
    srv = QStashServer().start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def sink():
    s = Sink()
    yield s
    s.close()


@pytest.fixture(scope="session")
def make_client(server):
    """QStash SDK client for a given dev-user token (SDK network retries off: fail fast)."""

    def make(token: str = DEFAULT_TOKEN) -> QStash:
        return QStash(token, base_url=server.base_url, retry=False)

    return make


@pytest.fixture(scope="session")
def client(make_client):
    return make_client(DEFAULT_TOKEN)
