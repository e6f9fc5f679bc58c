import os
import time
from pathlib import Path
from typing import cast

import pytest
import requests
from pydantic import SecretStr
from pynetbox.core.query import RequestError

from argora_common.netbox import NetBox, NetBoxUnavailableError, NetBoxWriteForbiddenError, id_chunks
from argora_common.netbox.auth import TokenAuth, authorization_header
from argora_common.netbox.reads import ID_FILTER_BUDGET
from argora_common.netbox.session import _object_errors, endpoint_of, field_errors
from argora_common.netbox.writes import Write, bulk_chunks, etag
from argora_common.netbox_schema import IP_ADDRESSES, Device
from argora_common.settings import Settings


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


def test_the_etag_is_made_from_the_utc_time_netbox_shows() -> None:
    assert etag("2026-11-27T03:02:47.123456Z") == 'W/"2026-11-27T03:02:47.123456+00:00"'
    # NetBox renders times in its TIME_ZONE; the tag is the database's UTC value.
    assert etag("2026-11-27T04:02:47.123456+01:00") == 'W/"2026-11-27T03:02:47.123456+00:00"'
    assert etag("2026-11-27T03:02:47Z") == 'W/"2026-11-27T03:02:47+00:00"'


def test_a_conditional_write_names_the_versions_of_its_objects_only() -> None:
    write = Write("DELETE", IP_ADDRESSES, {1: "2026-11-27T03:02:47.1Z", 2: "2026-11-27T03:02:48.2Z"})
    assert write.if_match([{"id": 1}, {"id": 3}]) == 'W/"2026-11-27T03:02:47.100000+00:00"'
    assert write.if_match([{"id": 2}, {"id": 1}]) == (
        'W/"2026-11-27T03:02:48.200000+00:00", W/"2026-11-27T03:02:47.100000+00:00"'
    )
    assert write.if_match([{"id": 3}]) is None


class FailingNetBox(NetBox):
    """Answers a write 502 when it names an object of `unavailable`, 412 when it names one of `changed`
    (a conditional write), 403 naming the objects of `gone` (404 for one alone), 403 to everything when
    `forbidden`, 204 otherwise."""

    def __init__(
        self,
        unavailable: frozenset[int] = frozenset(),
        changed: frozenset[int] = frozenset(),
        gone: frozenset[int] = frozenset(),
        forbidden: bool = False,
    ) -> None:
        super().__init__(Settings(netbox_url="http://netbox.invalid", netbox_token=SecretStr("t"), netbox_retries=1))
        self.unavailable = unavailable
        self.changed = changed
        self.gone = gone
        self.forbidden = forbidden
        self.sent: list[tuple[set[int], str | None]] = []

    def _send(self, method: str, url: str, body: object | None, if_match: str | None = None) -> None:
        single = url.rstrip("/").rsplit("/", 1)[-1]
        items = cast(list[dict[str, int]], body)
        ids = {int(single)} if single.isdigit() else {item["id"] for item in items}
        self.sent.append((ids, if_match))
        status = 502 if ids & self.unavailable else 412 if ids & self.changed and if_match else 204
        body_text = b'{"detail": "no"}'
        if ids & self.gone:
            # NetBox's bulk answer for objects another request deleted meanwhile; 404 for one alone.
            status = 404 if len(ids) == 1 else 403
            errors = ", ".join(
                f'{{"id": {i}, "errors": {{"__all__": ["Permission denied."]}}}}' for i in ids & self.gone
            )
            body_text = f'{{"detail": "{len(ids & self.gone)} of {len(ids)} objects", "errors": [{errors}]}}'.encode()
        if self.forbidden:
            status, body_text = 403, b'{"detail": "You do not have permission to perform this action."}'
        if status >= 400:
            answer = netbox_answer(status, body_text)
            answer.request = requests.Request(method, url).prepare()
            raise RequestError(answer)


def test_a_bulk_write_failing_part_way_names_what_netbox_took_before() -> None:
    netbox = FailingNetBox(unavailable=frozenset({60}))
    with pytest.raises(NetBoxUnavailableError) as raised:
        netbox.delete_many(IP_ADDRESSES, list(range(1, 121)))
    # Three chunks at once: the first and the third are taken, the second (51-100) is not.
    assert raised.value.written == frozenset(range(1, 51)) | frozenset(range(101, 121))


def test_an_object_changed_since_the_read_is_refused_alone() -> None:
    versions = {i: "2026-11-27T03:02:47Z" for i in range(1, 5)}
    netbox = FailingNetBox(changed=frozenset({3}))
    refused = netbox.delete_many(IP_ADDRESSES, [1, 2, 3, 4], versions)
    assert refused == {3: "changed in NetBox since it was read (HTTP 412); left as it is"}
    assert all(if_match for _, if_match in netbox.sent)
    assert netbox.sent[0][0] == {1, 2, 3, 4}


def test_objects_gone_while_a_bulk_delete_ran_count_as_deleted_not_as_a_forbidden_token() -> None:
    netbox = FailingNetBox(gone=frozenset({2, 3}))
    assert netbox.delete_many(IP_ADDRESSES, [1, 2, 3, 4], {i: "2026-11-27T03:02:47Z" for i in range(1, 5)}) == {}
    assert [ids for ids, _ in netbox.sent] == [{1, 2, 3, 4}, {2}, {3}, {1, 4}]
    with pytest.raises(NetBoxWriteForbiddenError):
        FailingNetBox(forbidden=True).delete_many(IP_ADDRESSES, [1, 2])
