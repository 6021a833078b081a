from __future__ import annotations

import logging

import pytest
from starlette.testclient import TestClient

from service.log_filters import BENTOML_REQUEST_LOGGER, ClientErrorFilter


def _records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == BENTOML_REQUEST_LOGGER]


def test_our_refusal_is_one_info_line_of_ours(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        response = client.post("/predict", json={"instances": []})

    assert response.status_code == 400
    assert _records(caplog) == []
    (record,) = [r for r in caplog.records if r.name == "service.errors"]
    assert record.levelno == logging.INFO
    assert record.exc_info is None
    assert record.getMessage() == (
        "client error on POST /predict: 400 instances: expected at least 1 instance"
    )


def test_a_bad_request_is_one_info_line_without_traceback(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger=BENTOML_REQUEST_LOGGER):
        response = client.post("/predict", json={"instances": [{"nope": 1}]})

    assert response.status_code == 400
    (record,) = _records(caplog)
    assert record.levelno == logging.INFO
    assert record.exc_info is None
    assert record.getMessage().startswith("Exception on /predict [POST]: client error: ")


def test_server_errors_keep_their_level_and_traceback() -> None:
    try:
        raise RuntimeError("model exploded")
    except RuntimeError:
        import sys

        record = logging.LogRecord(
            BENTOML_REQUEST_LOGGER,
            logging.ERROR,
            __file__,
            1,
            "Exception on %s",
            ("/p",),
            sys.exc_info(),
        )
    assert ClientErrorFilter().filter(record) is True
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
