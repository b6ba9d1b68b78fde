"""Who am I, staff accounts (admin) and developer licences (operators)."""

from __future__ import annotations

from fastapi import APIRouter, status

from sandbox import accounts
from sandbox.api.deps import Admin, CurrentUser, Manager, Overseer, ServicesDep
from sandbox.api.schemas import (
    ErrorBody,
    LicenceCreate,
    LicenceCreated,
    LicenceId,
    LicencePublic,
    Reason,
    UserCreate,
    UserCreated,
    UserListed,
    UserPublic,
)

router = APIRouter(tags=["accounts"], responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody},
                                                 422: {"model": ErrorBody}})


@router.get("/me", summary="The account behind the token")
def me(user: CurrentUser) -> UserPublic:
    return UserPublic(id=user.id, name=user.name, role=user.role, organisation=user.organisation)


@router.post("/users", status_code=status.HTTP_201_CREATED,
             summary="Create an operator, auditor or data steward (admin)")
def create_user(body: UserCreate, svc: ServicesDep, admin: Admin) -> UserCreated:
    user, token = accounts.create_user(svc.store, body.name, body.role, by=admin, organisation=body.organisation,
                                       owners=set(svc.catalog.owners().values()))
    return UserCreated(id=user.id, name=user.name, role=user.role, organisation=user.organisation, token=token)


@router.get("/users", summary="Accounts and their roles, never tokens (admin, operators, auditors)")
def list_users(svc: ServicesDep, _: Overseer) -> list[UserListed]:
    return [UserListed(**user) for user in accounts.list_users(svc.store)]


@router.post("/licences", status_code=status.HTTP_201_CREATED, summary="License a developer (operator)",
             responses={409: {"model": ErrorBody}})
def create_licence(body: LicenceCreate, svc: ServicesDep, operator: Manager) -> LicenceCreated:
    licence, developer, token = accounts.create_licence(svc.store, operator, **body.model_dump())
    return LicenceCreated(licence=LicencePublic(**licence), token=token,
                          developer=UserPublic(id=developer.id, name=developer.name, role=developer.role))


@router.get("/licences", summary="Developer licences (operators, auditors)")
def list_licences(svc: ServicesDep, _: Overseer) -> list[LicencePublic]:
    return [LicencePublic(**row) for row in accounts.list_licences(svc.store)]


@router.post("/licences/{licence_id}/suspend", summary="Suspend a licence (operator)",
             responses={404: {"model": ErrorBody}, 409: {"model": ErrorBody}})
def suspend_licence(licence_id: LicenceId, body: Reason, svc: ServicesDep, operator: Manager) -> LicencePublic:
    return LicencePublic(**accounts.suspend_licence(svc.store, operator, licence_id, body.reason))


@router.post("/licences/{licence_id}/reinstate", summary="Reinstate a suspended licence (operator)",
             responses={404: {"model": ErrorBody}, 409: {"model": ErrorBody}})
def reinstate_licence(licence_id: LicenceId, body: Reason, svc: ServicesDep, operator: Manager) -> LicencePublic:
    return LicencePublic(**accounts.reinstate_licence(svc.store, operator, licence_id, body.reason))
