"""Master key, wrapped data key, field encryption and key rotation."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest

from appliance.settings import Settings
from appliance.store import connection
from appliance.store.keys import DataKeyFile, KeyMaterialError, load_master_key
from appliance.store.workspace import load_keys, open_workspace, rekey

MASTER = base64.b64encode(b"m" * 32).decode()


def settings_for(tmp_path: Path, **extra: object) -> Settings:
    return Settings(data_dir=tmp_path / "data", master_key=MASTER, **extra)


def test_dev_key_is_generated_once_with_mode_0600(tmp_path: Path) -> None:
    first = load_master_key(env_value=None, file_path=None, data_dir=tmp_path)
    second = load_master_key(env_value=None, file_path=None, data_dir=tmp_path)
    assert first.generated_dev_key and first.key == second.key
    assert stat.S_IMODE((tmp_path / "master.key").stat().st_mode) == 0o600


def test_configured_key_wins_and_no_file_is_written(tmp_path: Path) -> None:
    key = load_master_key(env_value=MASTER, file_path=None, data_dir=tmp_path)
    assert key.key == b"m" * 32 and not key.generated_dev_key
    assert not (tmp_path / "master.key").exists()


@pytest.mark.parametrize("value,problem", [
    ("not base64!", "not valid base64"),
    (base64.b64encode(b"short").decode(), "exactly 32 bytes"),
])
def test_bad_master_key_is_a_clear_error(tmp_path: Path, value: str, problem: str) -> None:
    with pytest.raises(KeyMaterialError, match=problem):
        load_master_key(env_value=value, file_path=None, data_dir=tmp_path)


def test_key_file_setting(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_text(MASTER + "\n")
    assert load_master_key(env_value=None, file_path=path, data_dir=tmp_path).key == b"m" * 32
    with pytest.raises(KeyMaterialError, match="cannot read"):
        load_master_key(env_value=None, file_path=tmp_path / "missing", data_dir=tmp_path)


def test_data_key_is_stored_only_wrapped(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    master, data_key = load_keys(settings)
    record = json.loads((settings.data_dir / "keys.json").read_text())
    raw = (settings.data_dir / "keys.json").read_bytes()
    assert record["algorithm"] == "AES-256-GCM"
    assert data_key not in raw and base64.b64encode(data_key) not in raw and data_key.hex().encode() not in raw
    assert DataKeyFile(settings.data_dir).load(master) == data_key
    assert stat.S_IMODE(settings.data_dir.stat().st_mode) == 0o700


def test_another_master_key_cannot_open_the_workspace(tmp_path: Path) -> None:
    open_workspace(settings_for(tmp_path)).close()
    other = Settings(data_dir=tmp_path / "data", master_key=base64.b64encode(b"x" * 32).decode())
    with pytest.raises(KeyMaterialError, match="does not unwrap"):
        open_workspace(other)


def test_field_cipher_binds_values_to_their_row(tmp_path: Path) -> None:
    fields = load_master_key(env_value=MASTER, file_path=None, data_dir=tmp_path).field_cipher()
    sealed = fields.encrypt("EAAG-token", "channels.access_token:messenger:1")
    assert "EAAG" not in sealed
    assert fields.decrypt(sealed, "channels.access_token:messenger:1") == "EAAG-token"
    with pytest.raises(KeyMaterialError):
        fields.decrypt(sealed, "channels.access_token:messenger:2")


def _write_marker(settings: Settings) -> None:
    ws = open_workspace(settings)
    ws.gateway.write_sync(lambda db: db.execute(
        "INSERT INTO workspace_settings (key, value) VALUES ('marker', 'kept')"))
    ws.close()


def _read_marker(settings: Settings) -> str:
    ws = open_workspace(settings)
    try:
        return ws.gateway.read_sync(lambda db: db.execute(
            "SELECT value FROM workspace_settings WHERE key = 'marker'").fetchone()[0])
    finally:
        ws.close()


def test_rekey_rotates_and_keeps_the_data(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    _write_marker(settings)
    _, old_key = load_keys(settings)
    rekey(settings)
    _, new_key = load_keys(settings)
    assert new_key != old_key
    assert _read_marker(settings) == "kept"
    with pytest.raises(connection.WrongKey):
        connection.connect(settings.database_path, old_key)
    assert not (settings.data_dir / "keys.json.next").exists()


def test_rotation_interrupted_before_reencryption_keeps_the_old_key(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    _write_marker(settings)
    master, old_key = load_keys(settings)
    DataKeyFile(settings.data_dir).stage_next(master)  # crash right after staging
    assert load_keys(settings)[1] == old_key
    assert not (settings.data_dir / "keys.json.next").exists()
    assert _read_marker(settings) == "kept"


def test_rotation_interrupted_after_reencryption_adopts_the_new_key(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    _write_marker(settings)
    master, old_key = load_keys(settings)
    new_key = DataKeyFile(settings.data_dir).stage_next(master)
    conn = connection.connect(settings.database_path, old_key)
    conn.execute(connection.rekey_pragma(new_key)).fetchall()
    conn.close()  # crash before keys.json.next replaced keys.json
    assert load_keys(settings)[1] == new_key
    assert _read_marker(settings) == "kept"
