"""Sealing camera credentials (vap_common.camera_secrets): what is sealed, what stays readable, keys."""

from __future__ import annotations

import pytest

from vap_common.camera_secrets import CameraKeyring, NoSealingKey, UnreadableCredentials, generate_key, key_ids
from vap_common.redact import has_credentials, redact_url
from vap_common.settings import CommonSettings

OLD, NEW = generate_key("old"), generate_key("new")
RING = CameraKeyring.parse([OLD])


@pytest.mark.parametrize(
    ("url", "secrets"),
    [
        ("rtsp://admin:s3cret@10.0.0.5:554/stream1", ["s3cret"]),
        ("rtsps://user:p%40ss@cam.example/live?channel=1", ["p%40ss"]),
        ("rtsp://admin:pa@ss@cam.example/s", ["pa@ss"]),
        ("http://cam.example/mjpeg?user=a&password=hunter2&x=1#top", ["hunter2"]),
        ("https://u:one@cam.example/snap?Token=two&size=hd&api%5Fkey=three", ["one", "two", "three"]),
    ],
)
def test_every_secret_is_sealed_in_place_and_opens_to_exactly_the_url_given(url: str, secrets: list[str]) -> None:
    sealed = RING.seal(url)
    for secret in secrets:
        assert secret not in sealed
    assert key_ids(sealed) == {"old"}
    assert RING.open(sealed) == url
    # What is not secret stays as it was: a redacted sealed URL reads like the redacted original.
    assert redact_url(sealed) == redact_url(url) and has_credentials(sealed)


@pytest.mark.parametrize(
    "url",
    ["rtsp://cam.example/s?channel=1", "rtsp://onlyuser@cam.example/s", "file:///media/clip.mp4", "http://h/x?token="],
)
def test_a_url_without_credentials_is_not_changed_and_needs_no_key(url: str) -> None:
    assert CameraKeyring({}).seal(url) == url == RING.open(url)


def test_credentials_are_never_stored_without_a_key() -> None:
    with pytest.raises(NoSealingKey):
        CameraKeyring({}).seal("rtsp://admin:pw@cam.example/s")


def test_rotation_opens_what_old_keys_sealed_and_seals_with_the_first_key() -> None:
    url = "rtsp://admin:pw@cam.example/s"
    sealed_before = RING.seal(url)
    rotated = CameraKeyring.parse([NEW, OLD])
    assert rotated.open(sealed_before) == url
    assert key_ids(rotated.seal(url)) == {"new"}
    # A replayed registration is recognised whichever key sealed the stored URL.
    assert rotated.same_camera(sealed_before, url) and rotated.same_camera(rotated.seal(url), url)
    assert not rotated.same_camera(sealed_before, url.replace("pw", "other"))
    with pytest.raises(UnreadableCredentials, match="'old'"):
        CameraKeyring.parse([NEW]).open(sealed_before)


def test_an_altered_or_misplaced_sealed_value_does_not_open() -> None:
    sealed = RING.seal("rtsp://admin:pw@cam.example/s")
    value = sealed.split(":")[2].split("@")[0]
    tampered = sealed.replace(value, value[:-2] + ("AA" if not value.endswith("AA") else "BB"))
    with pytest.raises(UnreadableCredentials):
        RING.open(tampered)
    # Sealed under one key id, claimed under another of the ring: the key id is authenticated too.
    both = CameraKeyring.parse([OLD, NEW.replace("new:", "new2:")])
    with pytest.raises(UnreadableCredentials):
        both.open(sealed.replace("vapenc.old.", "vapenc.new2."))


def test_sealing_is_deterministic_per_key() -> None:
    url = "rtsp://admin:pw@cam.example/s"
    assert RING.seal(url) == RING.seal(url) != CameraKeyring.parse([NEW]).seal(url)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("justakey", "<id>:<base64url key>"),
        ("a b:" + OLD.split(":")[1], "letters, digits"),
        ("short:AAAA", "64 bytes"),
        (f"{OLD},{OLD}", "appears twice"),
    ],
    ids=["no id", "bad id", "short key", "id twice"],  # not the keys: they differ in each pytest-xdist worker
)
def test_malformed_keys_are_refused_at_startup_without_showing_them(
    monkeypatch: pytest.MonkeyPatch, value: str, problem: str
) -> None:
    monkeypatch.setenv("VAP_CAMERA_KEYS", value)
    with pytest.raises(ValueError, match=problem) as error:
        CommonSettings()
    assert OLD.split(":")[1] not in str(error.value)


def test_keys_come_comma_separated_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAP_CAMERA_KEYS", f" {NEW} , {OLD} ")
    keyring = CommonSettings().camera_keyring()
    assert keyring.sealing_key_id == "new" and keyring.open(RING.seal("rtsp://a:b@h/s")) == "rtsp://a:b@h/s"
