"""The public register (sandbox/register.py): no account needed."""

from __future__ import annotations

from fastapi import APIRouter

from sandbox import register
from sandbox.api.deps import ServicesDep
from sandbox.api.schemas import RegisterEntry

router = APIRouter(tags=["register"])


@router.get("/api/register", summary="The public register: every approved agreement (no token needed)",
            description="Organisation, purpose, legal basis, datasets, validity, status, budget granted and spent, "
                        "number of releases. Never SQL, results, developers' names, or requests that were not "
                        "approved. Being listed is a condition of access.")
def public_register(svc: ServicesDep) -> list[RegisterEntry]:
    return [RegisterEntry(**entry) for entry in register.entries(svc.store)]
