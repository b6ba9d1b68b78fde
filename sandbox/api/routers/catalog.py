"""The catalog: schemas and policies, never rows."""

from __future__ import annotations

from fastapi import APIRouter

from sandbox import certificates
from sandbox.api.deps import Member, ServicesDep
from sandbox.api.schemas import CertificateChain, DatasetName, DatasetPublic, ErrorBody

router = APIRouter(prefix="/datasets", tags=["catalog"], responses={401: {"model": ErrorBody}})


@router.get("", summary="Registered datasets: schema and policy, never rows")
def list_datasets(svc: ServicesDep, _: Member) -> list[DatasetPublic]:
    return [DatasetPublic(**dataset.describe()) for dataset in svc.catalog.list()]


@router.get("/{name}", summary="One dataset's schema and policy",
            responses={404: {"model": ErrorBody}, 422: {"model": ErrorBody}})
def get_dataset(name: DatasetName, svc: ServicesDep, _: Member) -> DatasetPublic:
    return DatasetPublic(**svc.catalog.get(name).describe())


@router.get("/{name}/certificate", summary="A dataset's signed data asset certificates, every version, and the "
            "public key to verify them offline", responses={404: {"model": ErrorBody}, 422: {"model": ErrorBody}})
def get_certificates(name: DatasetName, svc: ServicesDep, _: Member) -> CertificateChain:
    dataset = svc.catalog.get(name)  # DatasetNotFound with a suggestion
    return CertificateChain(certificates=certificates.versions(svc.catalog.data_dir, dataset.name),
                            public_key=svc.signer.public_pem, key_id=svc.signer.key_id,
                            message_prefix=certificates.MESSAGE_PREFIX)
