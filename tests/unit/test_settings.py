import os
from pathlib import Path

import pytest

from argora_common.settings import Settings, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("ARGORA_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("ARGORA_NETBOX_URL", "https://netbox.example.com")
    monkeypatch.setenv("ARGORA_NETBOX_TOKEN", "nbt_abc.def")


def test_defaults_match_the_original_operator() -> None:
    settings = Settings()
    assert settings.label_prefix == "kubernetes.metal.cloud.sap"
    assert settings.netbox_verify_tls is True
    assert settings.namespaces == []
    assert settings.default_bmc_credentials is None
    assert (settings.retry_base_seconds, settings.retry_max_seconds) == (30, 600)


def test_lists_and_secret_references_are_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARGORA_NAMESPACES", "metal, infra")
    monkeypatch.setenv("ARGORA_DEFAULT_BMC_CREDENTIALS", "argora-system/bmc")
    settings = Settings()
    assert settings.namespaces == ["metal", "infra"]
    assert str(settings.default_bmc_credentials) == "argora-system/bmc"


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("ARGORA_NETBOX_URL", "netbox", "ARGORA_NETBOX_URL: Input should be a valid URL"),
        ("ARGORA_NETBOX_PAGE_SIZE", "5000", "ARGORA_NETBOX_PAGE_SIZE: Input should be less than or equal to 1000"),
        ("ARGORA_DEFAULT_BMC_CREDENTIALS", "bmc", "ARGORA_DEFAULT_BMC_CREDENTIALS: expected 'namespace/name'"),
        ("ARGORA_NAMESPACES", "ok,Not_OK", "ARGORA_NAMESPACES: not a namespace name: Not_OK"),
        ("ARGORA_LABEL_PREFIX", "Bad Prefix", "ARGORA_LABEL_PREFIX: must be a DNS subdomain"),
        ("ARGORA_NETBOX_CA_BUNDLE", "/nonexistent/ca.pem", "ARGORA_NETBOX_CA_BUNDLE: cannot read file"),
        ("ARGORA_RETRY_BASE_SECONDS", "0", "ARGORA_RETRY_BASE_SECONDS: Input should be greater than or equal to 1"),
        ("ARGORA_RETRY_MAX_SECONDS", "10", "ARGORA_RETRY_BASE_SECONDS (30) exceeds ARGORA_RETRY_MAX_SECONDS (10)"),
        # HMAC with an empty key: anyone could sign. (An empty variable counts as unset: no webhook.)
        ("ARGORA_WEBHOOK_SECRET", " \t ", "ARGORA_WEBHOOK_SECRET: is empty"),
        ("ARGORA_WEBHOOK_SERVICE", "Rel_Hook", "ARGORA_WEBHOOK_SERVICE: not a Service name"),
    ],
)
def test_a_bad_setting_exits_with_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit) as stopped:
        load_settings(Settings, "argora-test")
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("argora-test: invalid configuration: ")
    assert expected in err


def test_exactly_one_token_source(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("x")
    monkeypatch.setenv("ARGORA_NETBOX_TOKEN_FILE", str(token_file))
    with pytest.raises(SystemExit):
        load_settings(Settings, "argora-test")
    assert "set exactly one of ARGORA_NETBOX_TOKEN and ARGORA_NETBOX_TOKEN_FILE" in capsys.readouterr().err


def test_the_token_never_appears_in_the_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ARGORA_NETBOX_TOKEN", "nbt_supersecret.value")
    monkeypatch.setenv("ARGORA_NETBOX_URL", "not a url")
    with pytest.raises(SystemExit):
        load_settings(Settings, "argora-test")
    assert "supersecret" not in capsys.readouterr().err


@pytest.mark.parametrize("content", ["", " \n\t\n"])
def test_an_empty_webhook_secret_file_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str
) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(content)
    monkeypatch.setenv("ARGORA_WEBHOOK_SECRET_FILE", str(secret_file))
    with pytest.raises(SystemExit):
        load_settings(Settings, "argora-test")
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"ARGORA_WEBHOOK_SECRET_FILE: {secret_file} is empty" in err
