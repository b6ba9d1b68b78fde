"""Accounts, roles, developer licences and console sessions: who may act, and how they prove it.

API tokens are shown once and stored as SHA-256. A console session is a random id in an HttpOnly
cookie, stored as SHA-256 too, with an expiry, ended in the database when its user signs out: a
leaked cookie is not the API token, and it stops working at sign-out or expiry.

Each action is one function that takes a `Database` (sandbox/store): a Store, and it runs in its
own transaction; a Connection, and it runs in the caller's. Every change is audited in it.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select, update

from sandbox import audit
from sandbox.errors import Conflict, Forbidden, InvalidParameter, NotFound, Unauthorized
from sandbox.store import Database, now, reading, writing
from sandbox.store.schema import console_sessions, licences, users

__all__ = [
    "ROLES",
    "User",
    "authenticate",
    "close_session",
    "create_licence",
    "create_user",
    "hash_token",
    "licence_of",
    "list_licences",
    "list_users",
    "open_session",
    "people",
    "reinstate_licence",
    "require_licence",
    "session_user",
    "suspend_licence",
]

ROLES = ("developer", "operator", "auditor", "admin", "steward")


@dataclass(frozen=True)
class User:
    id: str
    name: str
    role: str
    organisation: str | None = None  # a steward's: the `owner` of the policies they decide for

    @property
    def manages(self) -> bool:
        """Operators (and the bootstrap admin) decide agreements and licences."""
        return self.role in ("operator", "admin")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_user(db: Database, name: str, role: str, *, by: User | None = None,
                organisation: str | None = None, owners: set[str] | None = None) -> tuple[User, str]:
    """A staff account. A data steward (`role="steward"`) is bound to one `organisation`: the
    `owner` of the dataset policies they decide for (`owners`, when given, are the catalog's)."""
    if role not in ROLES:
        raise InvalidParameter(f"unknown role {role!r}; use one of {', '.join(ROLES)}", parameter="role")
    organisation = (organisation or "").strip() or None
    if role == "steward":
        if organisation is None:
            raise InvalidParameter("A data steward decides for one organisation: give `organisation`, the owner "
                                   "named in that organisation's dataset policies.", parameter="organisation")
        if owners is not None and organisation not in owners:
            raise InvalidParameter(f"No dataset policy names the owner {organisation!r}; give the owner exactly as a "
                                   f"policy names it ({'; '.join(sorted(owners))}).", parameter="organisation")
    elif organisation is not None:
        raise InvalidParameter("Only a data steward is bound to an organisation; leave `organisation` out.",
                               parameter="organisation")
    with writing(db) as conn:
        return _create_user(conn, name, role, by, organisation)


def _create_user(conn, name: str, role: str, by: User | None, organisation: str | None = None) -> tuple[User, str]:
    token = "sbx_" + secrets.token_urlsafe(32)
    user = User(str(uuid.uuid4()), name, role, organisation)
    conn.execute(
        insert(users).values(
            id=user.id, name=name, role=role, token_hash=hash_token(token), active=True, created_at=now(),
            organisation=organisation,
        )
    )
    details = {"user_id": user.id, "name": name, "user_role": role}
    if organisation is not None:
        details["organisation"] = organisation
    audit.append(
        conn,
        action="user.created",
        actor=by.id if by else None,
        role=by.role if by else "system",
        details=details,
    )
    return user, token


def authenticate(db: Database, token: str | None) -> User:
    if not token:
        raise Unauthorized("No bearer token. Send 'Authorization: Bearer <token>'; ask an operator for one.")
    with reading(db) as conn:
        row = conn.execute(select(users).where(users.c.token_hash == hash_token(token))).first()
    if row is None or not row.active:
        raise Unauthorized(
            "Unknown or disabled token. Check the token you were given, or ask an operator for a new one."
        )
    return User(row.id, row.name, row.role, row.organisation)


def create_licence(
    db: Database,
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
    with writing(db) as conn:
        if conn.execute(select(licences.c.id).where(licences.c.licence_number == licence_number)).first():
            raise Conflict(f"Licence number {licence_number!r} is already registered; licence numbers are unique.")
        developer, token = _create_user(conn, name, "developer", by)
        licence = _insert_licence(conn, by, developer, organisation, licence_number, valid_from, valid_to)
    return licence, developer, token


def _insert_licence(conn, by: User, developer: User, organisation: str, licence_number: str, valid_from: str,
                    valid_to: str) -> dict[str, Any]:
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
    return licence


def suspend_licence(db: Database, by: User, licence_id: str, reason: str) -> dict[str, Any]:
    """The developer's jobs and requests are refused from now on, with this reason."""
    return _licence_status(db, by, licence_id, reason, to="suspended", allowed="active", verb="suspend",
                           done="suspended")


def reinstate_licence(db: Database, by: User, licence_id: str, reason: str) -> dict[str, Any]:
    """A suspended licence active again (its agreements are as they were; expired ones stay so)."""
    return _licence_status(db, by, licence_id, reason, to="active", allowed="suspended", verb="reinstate",
                           done="reinstated")


def _licence_status(db: Database, by: User, licence_id: str, reason: str, *, to: str, allowed: str,
                    verb: str, done: str) -> dict[str, Any]:
    if not by.manages:
        raise Forbidden(f"Only operators {verb} licences.")
    if not reason.strip():
        raise InvalidParameter(f"Give a reason to {verb} the licence; the developer and the auditors will read it.",
                               parameter="reason")
    with writing(db) as conn:
        row = conn.execute(select(licences).where(licences.c.id == licence_id).with_for_update()).first()
        if row is None:
            raise NotFound(f"No licence {licence_id}; `GET /licences` lists them.")
        if row.status != allowed:
            raise Conflict(f"Licence {row.licence_number} is {row.status}; only {'an' if allowed == 'active' else 'a'}"
                           f" {allowed} licence can be {done}.")
        conn.execute(update(licences).where(licences.c.id == licence_id).values(status=to, status_reason=reason))
        audit.append(
            conn,
            action=f"licence.{done}",
            actor=by.id,
            role=by.role,
            details={"licence_id": licence_id, "developer_id": row.user_id, "reason": reason},
        )
    return dict(row._mapping) | {"status": to, "status_reason": reason}


def licence_of(db: Database, user_id: str) -> dict[str, Any] | None:
    with reading(db) as conn:
        row = conn.execute(select(licences).where(licences.c.user_id == user_id)).first()
    return dict(row._mapping) if row else None


def list_licences(db: Database) -> list[dict[str, Any]]:
    with reading(db) as conn:
        return [dict(r._mapping) for r in conn.execute(select(licences).order_by(licences.c.created_at))]


def list_users(db: Database) -> list[dict[str, Any]]:
    """Every account: id, name, role, organisation (stewards), active, created_at (never its token)."""
    columns = (users.c.id, users.c.name, users.c.role, users.c.organisation, users.c.active, users.c.created_at)
    with reading(db) as conn:
        return [dict(r._mapping) for r in conn.execute(select(*columns).order_by(users.c.created_at))]


def people(db: Database) -> dict[str, dict[str, str]]:
    """Every account's name and role by id, to show names instead of ids."""
    return {u["id"]: {"name": u["name"], "role": u["role"]} for u in list_users(db)}


def require_licence(db: Database, user: User, at: str | None = None) -> dict[str, Any]:
    """A developer acts only under an active licence valid today."""
    at = at or now()
    licence = licence_of(db, user.id)
    if licence is None:
        raise Forbidden("Your account has no developer licence; ask an operator to license your organisation.")
    if licence["status"] != "active":
        why = f" (the operator's reason: {licence['status_reason']})" if licence.get("status_reason") else ""
        raise Forbidden(f"Your licence {licence['licence_number']} is {licence['status']}{why}; contact the operator "
                        "to have it reinstated.")
    if not licence["valid_from"] <= at < licence["valid_to"]:
        raise Forbidden(
            f"Your licence {licence['licence_number']} is valid from {licence['valid_from']} to "
            f"{licence['valid_to']}; ask the operator to renew it."
        )
    return licence


# -- console sessions ---------------------------------------------------------------------------


def open_session(db: Database, user: User, *, hours: float) -> str:
    """A new console session for `user`, valid `hours`; returns its id (the cookie), shown once.
    Sessions that ended or expired more than a day ago are forgotten here."""
    session_id = secrets.token_urlsafe(32)
    with writing(db) as conn:
        conn.execute(delete(console_sessions).where(console_sessions.c.expires_at < now(-86_400)))
        conn.execute(insert(console_sessions).values(id_hash=hash_token(session_id), user_id=user.id,
                                                     created_at=now(), expires_at=now(hours * 3600)))
        audit.append(conn, action="session.opened", actor=user.id, role=user.role, details={"hours": hours})
    return session_id


def session_user(db: Database, session_id: str | None) -> User:
    """The account of a live console session; Unauthorized if it ended, expired or never was."""
    stale = Unauthorized("Your console session has ended or expired. Sign in again with your token.")
    if not session_id:
        raise Unauthorized("Sign in with your token.")
    with reading(db) as conn:
        row = conn.execute(
            select(users, console_sessions.c.expires_at, console_sessions.c.ended_at)
            .join(console_sessions, console_sessions.c.user_id == users.c.id)
            .where(console_sessions.c.id_hash == hash_token(session_id))
        ).first()
    if row is None or row.ended_at is not None or row.expires_at <= now() or not row.active:
        raise stale
    return User(row.id, row.name, row.role, row.organisation)


def close_session(db: Database, session_id: str | None) -> None:
    """End a console session in the database (sign-out): its cookie no longer works anywhere."""
    if not session_id:
        return
    with writing(db) as conn:
        row = conn.execute(select(console_sessions).where(console_sessions.c.id_hash == hash_token(session_id),
                                                          console_sessions.c.ended_at.is_(None))).first()
        if row is None:
            return
        conn.execute(update(console_sessions).where(console_sessions.c.id_hash == row.id_hash).values(ended_at=now()))
        user = conn.execute(select(users.c.role).where(users.c.id == row.user_id)).scalar_one()
        audit.append(conn, action="session.closed", actor=row.user_id, role=user, details={})
