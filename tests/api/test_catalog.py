"""Health and the catalog: schemas and policies for everyone signed in, never rows."""

from __future__ import annotations

from tests.api.conftest import Api


def test_health_needs_no_token(api: Api, demo_catalog) -> None:
    response = api.get(None, "/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": response.json()["version"],
                               "datasets": len(demo_catalog.names())}


def test_the_catalog_lists_policies_not_rows(api: Api, demo_catalog) -> None:
    listed = api.get("developer", "/datasets").json()
    assert [d["name"] for d in listed] == demo_catalog.names()
    for dataset in listed:
        # no rows, and of the data only a public size class and the DP statistics released from
        # the policy's metadata allowance (sandbox/metadata.py)
        assert set(dataset) == {"name", "title", "description", "title_zh", "description_zh", "owner", "domain",
                                "public", "privacy_unit", "columns", "limits", "default_delta", "registered_at",
                                "size_class", "metadata_epsilon", "metadata", "warnings",
                                "certificate"}, dataset["name"]


def test_one_dataset(api: Api) -> None:
    residents = api.get("developer", "/datasets/residents").json()
    assert residents["privacy_unit"] == {"column": "person_id", "max_rows": 1, "max_groups": 1}
    assert residents["columns"]["district"]["keys"][:2] == ["Siming", "Huli"]
    assert residents["columns"]["monthly_income"]["bounds"] == [0, 200000]
    assert residents["limits"]["max_epsilon_per_query"] == 1.0
    public = api.get("developer", "/datasets/district_reference").json()
    assert public["public"] is True and public["privacy_unit"] is None


def test_an_unknown_dataset_suggests_the_right_name(api: Api) -> None:
    response = api.get("developer", "/datasets/residentz")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "dataset_not_found" and error["suggestion"] == "residents"
    assert "Did you mean 'residents'" in error["message"]


def test_each_dataset_has_a_signed_certificate_that_verifies_with_the_served_key(api: Api) -> None:
    from sandbox import certificates

    listed = {d["name"]: d for d in api.get("developer", "/datasets").json()}
    chain = api.get("developer", "/datasets/residents/certificate").json()
    assert chain["certificates"] and chain["certificates"][-1] == listed["residents"]["certificate"]
    assert chain["key_id"] == api.get("auditor", "/audit/checkpoints").json()["key_id"]  # the audit key
    for certificate in chain["certificates"]:
        assert certificates.verify(certificate, chain["public_key"]) == []
    assert api.get("developer", "/datasets/residnts/certificate").status_code == 404
