"""Kubernetes object names and label values: which strings are names, and names and label values made from
NetBox's names (sanitised, shortened with a hash, never two things under one name).
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections import defaultdict
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Final

_LABEL_VALUE_INVALID = re.compile(r"[^A-Za-z0-9_.-]+")
_LABEL_VALUE: Final = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_LABEL_VALUE_MAX: Final = 63
_NAME_HASH_LENGTH: Final = 16  # hex digits of sha256: 64 bits, two long names will not share one
_NAME_INVALID = re.compile(r"[^a-z0-9.-]+")
# What an object's name or namespace in a request path may be: a DNS-1123 subdomain, as every kind we read
# names its objects. Anything else (`..`, a slash, a percent sign) could make the path name another object.
_OBJECT_NAME: Final = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def is_object_name(raw: str) -> bool:
    return len(raw) <= 253 and bool(_OBJECT_NAME.match(raw))


# Every pass plans every device again, from mostly the same NetBox names: the two pure conversions below
# keep their answers rather than run the same regular expressions on 10,000 devices each pass.
@functools.lru_cache(maxsize=1 << 16)
def label_value(raw: str) -> str:
    """A label value (<= 63 chars of [A-Za-z0-9_.-], alphanumeric at both ends) carrying `raw`."""
    value = _LABEL_VALUE_INVALID.sub("-", raw)[:_LABEL_VALUE_MAX]
    return value.strip("-_.")


def name_label_value(name: str) -> str:
    """An object's name as a label value that stands for it alone: the name itself when it is a label
    value (objects labelled so far keep their labels), else its start, '_' and a hash of the whole name.
    No object name holds a '_' (DNS-1123), so a shortened value never equals another object's name."""
    if len(name) <= _LABEL_VALUE_MAX and _LABEL_VALUE.fullmatch(name):
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:_NAME_HASH_LENGTH]
    return f"{label_value(name[: _LABEL_VALUE_MAX - 1 - _NAME_HASH_LENGTH])}_{digest}"


@functools.lru_cache(maxsize=1 << 16)
def dns1123_name(raw: str, max_length: int = 253) -> str | None:
    """`raw` as a DNS-1123 subdomain (lower case, [a-z0-9.-]); None when nothing usable is left."""
    name = _NAME_INVALID.sub("-", raw.strip().lower())
    name = re.sub(r"\.{2,}", ".", name)
    name = re.sub(r"(^[-.]+|[-.]+$)", "", name[:max_length])
    name = re.sub(r"[-.]+(?=\.)|(?<=\.)[-.]+", "", name)
    return name or None


@dataclass
class NameAssignment[K: Hashable]:
    """Kubernetes names for a set of things: the usable ones, the collisions and the unusable ones."""

    names: dict[K, str] = field(default_factory=dict)
    collisions: dict[str, list[K]] = field(default_factory=dict)
    unusable: list[K] = field(default_factory=list)


def assign_names[K: Hashable](raw_names: Mapping[K, str], max_length: int = 253) -> NameAssignment[K]:
    """Sanitise every name; things whose sanitised names collide get no name at all (never a guess)."""
    by_name: dict[str, list[K]] = defaultdict(list)
    result: NameAssignment[K] = NameAssignment()
    for key, raw in raw_names.items():
        name = dns1123_name(raw, max_length)
        if name is None:
            result.unusable.append(key)
        else:
            by_name[name].append(key)
    for name, keys in by_name.items():
        if len(keys) == 1:
            result.names[keys[0]] = name
        else:
            result.collisions[name] = keys
    return result
