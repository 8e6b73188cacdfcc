"""Tests for checking a WhatsApp channel config and splitting it into settings and secrets."""

from __future__ import annotations

from typing import Any

import pytest

from rundfunk.services.channel_config import split_whatsapp, wa_digits
from rundfunk.services.errors import Invalid

SECRETS = ("access_token", "app_secret", "verify_token")
_DROP = object()  # config(field=_DROP) leaves the field out


def config(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "phone_number_id": "106540352242922",
        "waba_id": "102290129340398",
        "access_token": "EAAG-secret-token",
        "app_secret": "app-secret-0123",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not _DROP}


def refused(cfg: dict[str, Any], **kwargs: Any) -> str:
    with pytest.raises(Invalid) as caught:
        split_whatsapp(cfg, **kwargs)
    return caught.value.message


# --- where each field goes ---------------------------------------------------------


def test_secrets_go_only_into_credentials() -> None:
    settings, credentials = split_whatsapp(config(verify_token="my-verify-token"))
    assert credentials == {
        "access_token": "EAAG-secret-token",
        "app_secret": "app-secret-0123",
        "verify_token": "my-verify-token",
    }
    for key in SECRETS:
        assert key not in settings
    flat = repr(settings)
    for value in credentials.values():
        assert value not in flat


def test_settings_with_defaults() -> None:
    settings, _ = split_whatsapp(config())
    assert settings == {
        "phone_number_id": "106540352242922",
        "waba_id": "102290129340398",
        "api_version": "v23.0",
        "throughput": 80.0,
        "pair_interval_seconds": 6.0,
        "pair_burst": 3,
    }


def test_given_settings_are_kept() -> None:
    settings, _ = split_whatsapp(
        config(
            api_version="v21.0",
            throughput=250,
            pair_interval_seconds=0,
            pair_burst=10,
            daily_recipient_cap=2000,
            display_phone_number="+49 151 2345-678",
        )
    )
    assert settings["api_version"] == "v21.0"
    assert settings["throughput"] == 250.0
    assert settings["pair_interval_seconds"] == 0.0
    assert settings["pair_burst"] == 10
    assert settings["daily_recipient_cap"] == 2000
    assert settings["display_phone_number"] == "+49 151 2345-678"


def test_values_are_stripped() -> None:
    settings, credentials = split_whatsapp(
        config(phone_number_id=" 106540352242922 ", access_token=" t ")
    )
    assert settings["phone_number_id"] == "106540352242922"
    assert credentials["access_token"] == "t"


# --- verify_token ------------------------------------------------------------------


def test_verify_token_is_generated_when_missing() -> None:
    _, first = split_whatsapp(config())
    _, second = split_whatsapp(config())
    assert len(first["verify_token"]) >= 24
    assert len(second["verify_token"]) >= 24
    assert first["verify_token"] != second["verify_token"]


def test_given_verify_token_is_kept() -> None:
    _, credentials = split_whatsapp(config(verify_token="hub-verify-1234"))
    assert credentials["verify_token"] == "hub-verify-1234"


@pytest.mark.parametrize("token", ["short", "x" * 201])
def test_verify_token_length_is_checked(token: str) -> None:
    assert refused(config(verify_token=token)).startswith("config.verify_token:")


# --- required fields ---------------------------------------------------------------


@pytest.mark.parametrize("field", ["phone_number_id", "waba_id", "access_token", "app_secret"])
def test_each_required_field_missing_is_refused(field: str) -> None:
    message = refused(config(**{field: _DROP}))
    assert message.startswith(f"config.{field}:")
    assert "required" in message


@pytest.mark.parametrize("field", ["phone_number_id", "waba_id", "access_token", "app_secret"])
@pytest.mark.parametrize("value", ["", "   ", None, 12345])
def test_each_required_field_empty_or_not_a_string_is_refused(field: str, value: Any) -> None:
    assert refused(config(**{field: value})).startswith(f"config.{field}:")


@pytest.mark.parametrize("field", ["phone_number_id", "waba_id"])
@pytest.mark.parametrize("value", ["+49151234", "1065-4035", "abc", "12 34"])
def test_ids_must_be_digits(field: str, value: str) -> None:
    message = refused(config(**{field: value}))
    assert message.startswith(f"config.{field}:")
    assert "digits only" in message


# --- numbers -----------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 0.5, 1001, 1000.5, -80, "fast", "80", True, None])
def test_bad_throughput_is_refused(value: Any) -> None:
    assert refused(config(throughput=value)) == "config.throughput: must be a number from 1 to 1000"


@pytest.mark.parametrize("value", [1, 20, 80.5, 1000])
def test_throughput_in_range_is_accepted(value: float) -> None:
    settings, _ = split_whatsapp(config(throughput=value))
    assert settings["throughput"] == float(value)


@pytest.mark.parametrize("value", [-1, 3601, "6", False])
def test_bad_pair_interval_is_refused(value: Any) -> None:
    assert refused(config(pair_interval_seconds=value)).startswith("config.pair_interval_seconds:")


@pytest.mark.parametrize("value", [0, 101, 2.5, True, "3"])
def test_bad_pair_burst_is_refused(value: Any) -> None:
    assert refused(config(pair_burst=value)).startswith("config.pair_burst:")


@pytest.mark.parametrize("value", [0, -1, 2.5, True, "250"])
def test_bad_daily_recipient_cap_is_refused(value: Any) -> None:
    assert refused(config(daily_recipient_cap=value)).startswith("config.daily_recipient_cap:")


def test_daily_recipient_cap_accepted() -> None:
    settings, _ = split_whatsapp(config(daily_recipient_cap=250))
    assert settings["daily_recipient_cap"] == 250


def test_daily_recipient_cap_none_means_no_cap() -> None:
    settings, _ = split_whatsapp(config(daily_recipient_cap=None))
    assert "daily_recipient_cap" not in settings


# --- api_base_url (the operator's) / api_version ------------------------------------


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:5432", "http://169.254.169.254/latest", "https://graph.facebook.com"]
)
def test_api_base_url_is_an_operator_setting(url: str) -> None:
    """No workspace chooses where the server sends its requests, whatever the address."""
    message = refused(config(api_base_url=url))
    assert message.startswith("config.api_base_url: an operator setting")
    assert "RUNDFUNK_WHATSAPP_API_BASE_URL" in message


def test_an_update_drops_a_stored_api_base_url() -> None:
    existing = {**config(), "api_base_url": "http://127.0.0.1:5432"}
    settings, _ = split_whatsapp({"throughput": 90}, existing=existing)
    assert "api_base_url" not in settings


@pytest.mark.parametrize("version", ["23", "23.0", "v23", "V23.0", "v23.0.1", "latest"])
def test_bad_api_version_is_refused(version: str) -> None:
    assert refused(config(api_version=version)) == "config.api_version: like v23.0"


def test_good_api_version_is_accepted() -> None:
    settings, _ = split_whatsapp(config(api_version="v23.0"))
    assert settings["api_version"] == "v23.0"


# --- other fields ------------------------------------------------------------------


def test_unknown_config_key_is_refused_with_its_name() -> None:
    message = refused(config(acces_token="typo", colour="blue"))
    assert message.startswith("config: unknown field(s) acces_token, colour;")


@pytest.mark.parametrize("number", ["49151", "call me", 4915112345678])
def test_bad_display_phone_number_is_refused(number: Any) -> None:
    assert refused(config(display_phone_number=number)).startswith("config.display_phone_number:")


# --- updates -----------------------------------------------------------------------


def existing() -> dict[str, Any]:
    settings, credentials = split_whatsapp(
        config(verify_token="old-verify-token", throughput=200, daily_recipient_cap=2000)
    )
    return {**settings, **credentials}


def test_update_keeps_secrets_and_settings_not_given() -> None:
    settings, credentials = split_whatsapp({"throughput": 300}, existing=existing())
    assert credentials == {
        "access_token": "EAAG-secret-token",
        "app_secret": "app-secret-0123",
        "verify_token": "old-verify-token",
    }
    assert settings["throughput"] == 300.0
    assert settings["daily_recipient_cap"] == 2000
    assert settings["phone_number_id"] == "106540352242922"
    for key in SECRETS:
        assert key not in settings


def test_update_replaces_the_token_when_given() -> None:
    _, credentials = split_whatsapp({"access_token": "EAAG-new-token"}, existing=existing())
    assert credentials["access_token"] == "EAAG-new-token"
    assert credentials["app_secret"] == "app-secret-0123"
    assert credentials["verify_token"] == "old-verify-token"


def test_update_can_clear_the_daily_cap() -> None:
    settings, _ = split_whatsapp({"daily_recipient_cap": None}, existing=existing())
    assert "daily_recipient_cap" not in settings


def test_update_with_an_empty_token_is_refused() -> None:
    assert refused({"access_token": ""}, existing=existing()).startswith("config.access_token:")


def test_update_checks_unknown_fields_too() -> None:
    assert "nope" in refused({"nope": 1}, existing=existing())


# --- wa_digits ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "digits"),
    [
        ("+49 151 2345-678", "491512345678"),
        ("+49 (30) 1234567", "49301234567"),
        ("491512345678", "491512345678"),
        (None, None),
        ("", None),
        ("+ -", None),
    ],
)
def test_wa_digits(number: str | None, digits: str | None) -> None:
    assert wa_digits(number) == digits
