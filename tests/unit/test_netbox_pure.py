import os
import time
from pathlib import Path

import requests
from pydantic import SecretStr

from argora_common.netbox import (
    ID_FILTER_BUDGET,
    TokenAuth,
    _object_errors,
    authorization_header,
    bulk_chunks,
    endpoint_of,
    field_errors,
    id_chunks,
)
from argora_common.netbox_schema import Device


def test_id_chunks_fit_the_request_line_and_keep_every_id() -> None:
    ids = list(range(1_000_000, 1_002_000))
    chunks = list(id_chunks(ids, "device_id"))
    assert sorted(i for chunk in chunks for i in chunk) == ids
    for chunk in chunks:
        query = "&".join(f"device_id={i}" for i in chunk)
        assert len(query) <= ID_FILTER_BUDGET
    assert len(chunks) > 1


def test_id_chunks_drop_duplicates_and_handle_nothing() -> None:
    assert list(id_chunks([3, 1, 3], "id")) == [[1, 3]]
    assert list(id_chunks([], "id")) == []


def test_authorization_header_by_token_version() -> None:
    assert authorization_header("0123456789abcdef0123456789abcdef01234567") == (
        "Token 0123456789abcdef0123456789abcdef01234567"
    )
    assert authorization_header("nbt_key.secret") == "Bearer nbt_key.secret"


def test_token_file_is_reread_when_rotated(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("nbt_old.one\n")
    auth = TokenAuth(None, token_file)
    request = auth(requests.Request("GET", "http://nb/api/").prepare())
    assert request.headers["Authorization"] == "Bearer nbt_old.one"
    # A mounted Secret is replaced by a new file (new inode), as kubelet's atomic writer does.
    rotated = tmp_path / "token.new"
    rotated.write_text("nbt_new.two")
    os.replace(rotated, token_file)
    time.sleep(0.01)
    request = auth(requests.Request("GET", "http://nb/api/").prepare())
    assert request.headers["Authorization"] == "Bearer nbt_new.two"


def test_direct_token_is_used_as_given() -> None:
    auth = TokenAuth(SecretStr("a" * 40), None)
    assert auth.current_token() == "a" * 40


def test_endpoint_of_folds_ids() -> None:
    assert endpoint_of("http://nb:8000/api/dcim/devices/?limit=5") == "dcim/devices"
    assert endpoint_of("http://nb/api/dcim/interfaces/17/") == "dcim/interfaces"
    assert endpoint_of("http://nb/api/status/") == "status"


def test_device_model_reads_netbox_choice_fields() -> None:
    device = Device.model_validate(
        {
            "id": 7,
            "name": "node001",
            "status": {"value": "active", "label": "Active"},
            "site": {"id": 1, "slug": "qa-de-1a", "name": "QA DE 1a"},
            "device_type": {"id": 3, "slug": "poweredge-r660", "manufacturer": {"id": 1, "slug": "dell"}},
            "oob_ip": {"id": 9, "address": "10.0.0.5/24", "dns_name": "node001-r.example.com"},
        }
    )
    assert device.status == "active"
    assert device.oob_ip is not None and device.oob_ip.dns_name == "node001-r.example.com"
    assert device.device_type.manufacturer.slug == "dell"


def test_bulk_chunks_keep_the_order_and_the_size() -> None:
    assert list(bulk_chunks(list(range(7)), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(bulk_chunks([], 3)) == []


def netbox_answer(status: int, body: bytes) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = body
    return response


def test_a_refused_bulk_write_says_which_objects_and_why() -> None:
    body = (
        b'{"detail": "2 of 10 objects could not be updated.", "errors": ['
        b'{"id": 24, "errors": {"__all__": ["Interface with this Device and Name already exists."]}},'
        b'{"id": 28, "errors": {"oob_ip": ["The specified IP address (10.0.0.1/24) is not assigned to this device."]}}'
        b"]}"
    )
    assert _object_errors(netbox_answer(400, body)) == {
        24: "Interface with this Device and Name already exists.",
        28: "oob_ip: The specified IP address (10.0.0.1/24) is not assigned to this device.",
    }
    assert _object_errors(netbox_answer(400, b'{"detail": "bad request"}')) == {}
    assert _object_errors(netbox_answer(502, b"<html>Bad Gateway</html>")) == {}


def test_field_errors_are_one_line() -> None:
    assert field_errors({"name": ["too long", "bad"], "non_field_errors": ["taken"]}) == "name: too long bad; taken"
