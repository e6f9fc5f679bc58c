from pathlib import Path

import pytest
from pydantic import ValidationError

from argora_common.crd_manifests import main, openapi_schema, rendered_files
from argora_common.crds import ClusterImportSpec

CRD_DIR = Path(__file__).resolve().parents[2] / "charts" / "argora" / "crds"


def test_committed_crds_match_the_models() -> None:
    for name, text in rendered_files().items():
        assert (CRD_DIR / name).read_text() == text, f"{name} is stale: run argora-crds"
    assert main([str(CRD_DIR), "--check"]) == 0


def test_check_reports_stale_files(tmp_path: Path) -> None:
    assert main([str(tmp_path), "--check"]) == 1
    assert main([str(tmp_path)]) == 0
    assert main([str(tmp_path), "--check"]) == 0


def test_schema_is_structural() -> None:
    def walk(node: object) -> None:
        if isinstance(node, dict):
            assert not {"$ref", "anyOf", "oneOf", "allOf", "title", "$defs"} & node.keys(), node
            if "properties" in node:
                assert node.get("type") == "object"
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(openapi_schema(ClusterImportSpec))


def test_original_argora_spec_parses() -> None:
    spec = ClusterImportSpec.model_validate(
        {"clusters": [{"name": "cc-a1", "region": "qa-de-1", "type": "cc-k8s", "bmcCredentialsRef": {"name": "bmc"}}]}
    )
    assert spec.clusters[0].bmc_credentials_ref is not None
    assert spec.clusters[0].bmc_credentials_ref.name == "bmc"


def test_models_reject_what_the_schema_rejects() -> None:
    with pytest.raises(ValidationError):
        ClusterImportSpec.model_validate({"clusters": []})
    with pytest.raises(ValidationError):
        ClusterImportSpec.model_validate({"clusters": [{"name": "a", "statuses": ["running"]}]})
