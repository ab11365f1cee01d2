"""The judge's settings and answers as a careless or hostile user meets them: a base_url that does not
parse or holds a password is refused at params load (never echoed); plain http to another machine
warns that the key goes unencrypted; a response of deep nesting or huge integers is a judge failure."""

import io
import logging
import urllib.request

import pytest
import yaml

from deceptionlab.core.errors import ConfigError
from deceptionlab.evaluation.judge import JudgeClient, JudgeError, JudgeSettings


def load_with_base_url(tmp_path, base_url: str):
    from deceptionlab.core.params import load_params

    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"evaluate": {"reader": "judge", "judge": {"base_url": base_url, "model": "m"}}}))
    return load_params(path)


@pytest.mark.parametrize(("base_url", "message"), [
    ("http://[::1", "is not a valid URL (Invalid IPv6 URL)"),
    ("http://user:s3cret-pw@judge.example/v1", "must not hold a user name or password"),
    ("https://s3cret-pw@judge.example/v1", "must not hold a user name or password"),
    ("http://judge.example:99999/v1", "is not a valid URL (Port out of range"),
    ("http://judge.example:port/v1", "is not a valid URL (Port could not be cast"),
    ("ftp://s3cret-pw@judge.example/v1", "must start with http:// or https://, not ftp:"),
    ("http:///v1", "names no host"),
    ("http://judge example/v1", "must not contain spaces or control characters"),
    ("http://judge.example/v1\n", "must not contain spaces or control characters"),
])
def test_a_bad_base_url_is_refused_without_echoing_it(tmp_path, base_url, message):
    with pytest.raises(ConfigError, match="evaluate.judge.base_url") as raised:
        load_with_base_url(tmp_path, base_url)
    assert message in str(raised.value) and "\n" not in str(raised.value)
    assert "s3cret-pw" not in str(raised.value)


@pytest.mark.parametrize(("base_url", "warned"), [
    ("http://judge.example/v1", True),
    ("http://10.0.0.7:8000/v1", True),
    ("https://judge.example/v1", False),
    ("http://127.0.0.1:8000/v1", False),
    ("http://localhost:8000/v1", False),
    ("http://[::1]:8000/v1", False),
])
def test_a_key_over_plain_http_to_another_machine_is_warned_about(monkeypatch, caplog, base_url, warned):
    monkeypatch.setenv("DECEPTIONLAB_JUDGE_API_KEY", "sk-secret-key")
    with caplog.at_level(logging.WARNING, logger="deceptionlab.evaluation.judge"):
        JudgeClient(JudgeSettings(base_url=base_url, model="m"))
    warnings = [r.getMessage() for r in caplog.records if "unencrypted" in r.getMessage()]
    assert bool(warnings) == warned
    assert all("sk-secret-key" not in w for w in warnings)


@pytest.mark.parametrize(("body", "message"), [
    (b"[" * 100_000 + b"]" * 100_000, "nested deeper than"),
    (b'{"choices": [{"message": {"content": ' + b"9" * 5000 + b"}}]}", "Exceeds the limit (4300 digits)"),
    (b"\xff\xfe\x00garbage", "JSON ("),
])
def test_a_hostile_judge_response_is_a_judge_failure_on_one_line(monkeypatch, body, message):
    monkeypatch.setenv("DECEPTIONLAB_JUDGE_API_KEY", "sk-test")
    monkeypatch.setattr(urllib.request, "urlopen", lambda request, timeout: io.BytesIO(body))
    client = JudgeClient(JudgeSettings(base_url="http://127.0.0.1:9/v1", model="m", max_retries=0))
    with pytest.raises(JudgeError) as raised:
        client.classify([{"role": "user", "content": "q"}], "reply", ("a", "b"))
    assert message in str(raised.value) and "\n" not in str(raised.value)
    assert str(raised.value).startswith(f"judge endpoint {client.settings.endpoint}")


def test_judge_settings_are_strict(tmp_path):
    from deceptionlab.core.params import load_params

    path = tmp_path / "params.yaml"
    for bad, message in [({"max_retries": True}, "max_retries: Input should be a valid integer"),
                         ({"timeout_s": ".inf"}, "timeout_s: Input should be a valid number"),
                         ({"max_failure_share": float("nan")}, "max_failure_share: Input should be a finite number")]:
        judge = {"base_url": "http://127.0.0.1:1/v1", "model": "m"} | bad
        path.write_text(yaml.safe_dump({"evaluate": {"reader": "judge", "judge": judge}}))
        with pytest.raises(ConfigError, match=message):
            load_params(path)
