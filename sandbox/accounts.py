"""Accounts, roles and developer licences. Tokens are shown once and stored as SHA-256."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select, update

from sandbox import audit
from sandbox.errors import Conflict, Forbidden, InvalidParameter, NotFound, Unauthorized
from sandbox.store import now
from sandbox.store.schema import licences, users

__all__ = [
    "ROLES",
    "User",
    "authenticate",
    "create_licence",
    "create_user",
    "hash_token",
    "licence_of",
    "list_licences",
    "require_licence",
    "suspend_licence",
]

ROLES = ("developer", "operator", "auditor", "admin")


@dataclass(frozen=True)
class User:
    id: str
    name: str
    role: str

    @property
    def manages(self) -> bool:
        """Operators (and the bootstrap admin) decide agreements and licences."""
        return self.role in ("operator", "admin")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_user(conn: Connection, name: str, role: str, *, by: User | None = None) -> tuple[User, str]:
    if role not in ROLES:
        raise InvalidParameter(f"unknown role {role!r}; use one of {', '.join(ROLES)}", parameter="role")
    token = "sbx_" + secrets.token_urlsafe(32)
    user = User(str(uuid.uuid4()), name, role)
    conn.execute(
        insert(users).values(
            id=user.id, name=name, role=role, token_hash=hash_token(token), active=True, created_at=now()
        )
    )
    audit.append(
        conn,
        action="user.created",
        actor=by.id if by else None,
        role=by.role if by else "system",
        details={"user_id": user.id, "name": name, "user_role": role},
    )
    return user, token


def authenticate(conn: Connection, token: str | None) -> User:
    if not token:
        raise Unauthorized("No bearer token. Send 'Authorization: Bearer <token>'; ask an operator for one.")
    row = conn.execute(select(users).where(users.c.token_hash == hash_token(token))).first()
    if row is None or not row.active:
        raise Unauthorized(
            "Unknown or disabled token. Check the token you were given, or ask an operator for a new one."
        )
    return User(row.id, row.name, row.role)


def create_licence(
    conn: Connection,
    by: User,
    *,
    name: str,
    organisation: str,
    licence_number: str,
    valid_from: str,
    valid_to: str,
) -> tuple[dict[str, Any], User, str]:
    """A licensed developer: an account plus the licence that lets it request agreements."""
    if not by.manages:
        raise Forbidden("Only operators create developer licences.")
    if valid_to <= valid_from:
        raise InvalidParameter("valid_to must be after valid_from.", parameter="valid_to")
    if conn.execute(select(licences.c.id).where(licences.c.licence_number == licence_number)).first():
        raise Conflict(f"Licence number {licence_number!r} is already registered; licence numbers are unique.")
    developer, token = create_user(conn, name, "developer", by=by)
    licence = {
        "id": str(uuid.uuid4()),
        "user_id": developer.id,
        "organisation": organisation,
        "licence_number": licence_number,
        "valid_from": valid_from,
        "valid_to": valid_to,
        "status": "active",
        "created_by": by.id,
        "created_at": now(),
    }
    conn.execute(insert(licences).values(**licence))
    audit.append(
        conn,
        action="licence.created",
        actor=by.id,
        role=by.role,
        details={
            "licence_id": licence["id"],
            "developer_id": developer.id,
            "organisation": organisation,
            "licence_number": licence_number,
            "valid_from": valid_from,
            "valid_to": valid_to,
        },
    )
    return licence, developer, token


def suspend_licence(conn: Connection, by: User, licence_id: str, reason: str) -> dict[str, Any]:
    if not by.manages:
        raise Forbidden("Only operators suspend licences.")
    row = conn.execute(select(licences).where(licences.c.id == licence_id).with_for_update()).first()
    if row is None:
        raise NotFound(f"No licence {licence_id}.")
    if row.status != "active":
        raise Conflict(f"Licence {licence_id} is {row.status}; only an active licence can be suspended.")
    conn.execute(update(licences).where(licences.c.id == licence_id).values(status="suspended"))
    audit.append(
        conn,
        action="licence.suspended",
        actor=by.id,
        role=by.role,
        details={"licence_id": licence_id, "developer_id": row.user_id, "reason": reason},
    )
    return dict(row._mapping) | {"status": "suspended"}


def licence_of(conn: Connection, user_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(licences).where(licences.c.user_id == user_id)).first()
    return dict(row._mapping) if row else None


def list_licences(conn: Connection) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in conn.execute(select(licences).order_by(licences.c.created_at))]


def require_licence(conn: Connection, user: User, at: str | None = None) -> dict[str, Any]:
    """A developer acts only under an active licence valid today."""
    at = at or now()
    licence = licence_of(conn, user.id)
    if licence is None:
        raise Forbidden("Your account has no developer licence; ask an operator to license your organisation.")
    if licence["status"] != "active":
        raise Forbidden(f"Your licence {licence['licence_number']} is {licence['status']}; contact the operator.")
    if not licence["valid_from"] <= at < licence["valid_to"]:
        raise Forbidden(
            f"Your licence {licence['licence_number']} is valid from {licence['valid_from']} to "
            f"{licence['valid_to']}; ask the operator to renew it."
        )
    return licence
