"""The CRD manifests of `charts/argora/crds/`, generated from the models in `argora_common.crds`, and the
`argora-crds` command that writes them or checks that the committed files match.
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import yaml
from pydantic import BaseModel

from argora_common.crds import ARGORA_RESOURCES, GROUP, VERSION, CustomResource

# JSON-schema keywords that a structural Kubernetes schema does not take.
_DROPPED_KEYWORDS: Final = {"title", "$defs", "additionalProperties"}


def openapi_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A structural OpenAPI v3 schema for `model`: refs inlined, optional fields as plain properties."""
    schema = model.model_json_schema(by_alias=True, mode="validation")
    structural: dict[str, Any] = _structural(schema, schema.get("$defs", {}))
    return structural


def _structural(node: Any, defs: Mapping[str, Any]) -> Any:
    if isinstance(node, list):
        return [_structural(item, defs) for item in node]
    if not isinstance(node, Mapping):
        return node
    if "$ref" in node:
        target = copy.deepcopy(defs[node["$ref"].rsplit("/", 1)[-1]])
        merged = {**target, **{key: value for key, value in node.items() if key != "$ref"}}
        return _structural(merged, defs)
    if "anyOf" in node:
        # `X | None`: Kubernetes expresses "may be absent" by leaving the property out of `required`.
        options = [option for option in node["anyOf"] if option.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"cannot express a union in a structural schema: {node}")
        rest = {key: value for key, value in node.items() if key not in {"anyOf", "default"}}
        return _structural({**options[0], **rest}, defs)
    result: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED_KEYWORDS or (key == "default" and value in (None, [], {})):
            continue
        if key == "const":
            result["enum"] = [value]
        elif key == "properties":
            result[key] = {name: _structural(prop, defs) for name, prop in value.items()}
        elif key == "format" and value == "date-time":
            result[key] = value
        else:
            result[key] = _structural(value, defs)
    if result.get("type") == "object" and "properties" in result:
        result.pop("default", None)
    return result


def crd_manifest(resource: CustomResource) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{resource.plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": resource.kind,
                "listKind": f"{resource.kind}List",
                "plural": resource.plural,
                "singular": resource.kind.lower(),
                "shortNames": resource.short_names,
                "categories": ["argora"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": resource.columns,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": openapi_schema(resource.spec),
                                "status": openapi_schema(resource.status),
                            },
                        }
                    },
                }
            ],
        },
    }


def kopf_peering_manifests() -> list[dict[str, Any]]:
    """kopf's own peering CRDs: several replicas of one operator agree on a single active one."""
    status_schema = {
        "type": "object",
        "properties": {"status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
    }
    return [
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.kopf.dev"},
            "spec": {
                "scope": scope,
                "group": "kopf.dev",
                "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
                "versions": [
                    {"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": status_schema}}
                ],
            },
        }
        for kind, plural, scope in (
            ("ClusterKopfPeering", "clusterkopfpeerings", "Cluster"),
            ("KopfPeering", "kopfpeerings", "Namespaced"),
        )
    ]


def rendered_files() -> dict[str, str]:
    """File name under charts/argora/crds/ -> YAML text."""
    manifests = {f"{GROUP}_{resource.plural}.yaml": crd_manifest(resource) for resource in ARGORA_RESOURCES}
    for manifest in kopf_peering_manifests():
        manifests[f"kopf.dev_{manifest['spec']['names']['plural']}.yaml"] = manifest
    header = "# Generated by `argora-crds` from argora_common/crds.py: edit the models, not this file.\n"
    return {name: header + yaml.safe_dump(body, sort_keys=False) for name, body in manifests.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="argora-crds", description="Write or check Argora's CRD manifests.")
    parser.add_argument("directory", type=Path, nargs="?", default=Path("charts/argora/crds"))
    parser.add_argument("--check", action="store_true", help="fail when the files differ from the models")
    args = parser.parse_args(argv)
    stale = []
    for name, text in rendered_files().items():
        path = args.directory / name
        if path.exists() and path.read_text() == text:
            continue
        stale.append(name)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if args.check and stale:
        print(f"argora-crds: out of date: {', '.join(stale)} (run argora-crds)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
