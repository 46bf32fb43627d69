"""The platform API's users' tokens (sessions and API keys), as an identity service exposes them.

- ``GET /v1/auth/tokens`` (``user``, ``scope``, ``kind``, ``active``: exact matches): each token's id, user, kind,
  scope and times; never its value (stored as a hash, as a real service keeps it).
- ``POST /v1/auth/tokens`` (``{user, scope, kind}``): issue a token; its value is in this answer only.
- ``POST /v1/auth/tokens/revoke`` (``{reason, ids | user | scope | all}``, ``Idempotency-Key``): revoke the active
  tokens matching every selector given (literal matches; ``all: true`` must be said, never implied by no
  selector); answers the revoked ids. A revoked token stays listed, with ``revoked_at``.
- ``GET /v1/auth/sessions`` and ``POST /v1/auth/tokens/revoke-all``: the active sessions' count, and revoking every
  session.

The sandbox starts with 1 to 3 sessions for each of ``user01``..``user35`` and an API key per trading service.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from fastapi import FastAPI, Header, HTTPException
from pydantic import BaseModel, Field, model_validator

NAME = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$"


class IssueRequest(BaseModel):
    user: str = Field(pattern=NAME)
    scope: str = Field(pattern=NAME)
    kind: Literal["session", "api_key"] = "session"


class RevokeRequest(BaseModel):
    reason: str = Field(min_length=3, max_length=500)


class RevokeMatching(RevokeRequest):
    ids: list[str] | None = Field(default=None, min_length=1)
    user: str | None = Field(default=None, pattern=NAME)
    scope: str | None = Field(default=None, pattern=NAME)
    all: bool = False

    @model_validator(mode="after")
    def _one_selector(self) -> RevokeMatching:
        if self.all == any(v is not None for v in (self.ids, self.user, self.scope)):
            raise ValueError("say which tokens: ids, user and/or scope, or all: true (alone)")
        return self


@dataclass
class Token:
    id: str
    user: str
    kind: str
    scope: str
    digest: str  # SHA-256 of the value: the value itself is never kept
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None
    revoked_reason: str | None = None

    def public(self) -> dict:
        return {
            "id": self.id,
            "user": self.user,
            "kind": self.kind,
            "scope": self.scope,
            "created_at": _iso(self.created_at),
            "last_used_at": _iso(self.last_used_at),
            "revoked_at": _iso(self.revoked_at),
            "revoked_reason": self.revoked_reason,
            "active": self.revoked_at is None,
        }


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else None


def issue(tokens: dict[str, Token], user: str, scope: str, kind: str, now: datetime) -> tuple[Token, str]:
    value = f"gm_{secrets.token_urlsafe(32)}"
    token = Token(f"tok_{secrets.token_hex(8)}", user, kind, scope, hashlib.sha256(value.encode()).hexdigest(), now)
    tokens[token.id] = token
    return token, value


def seed(tokens: dict[str, Token], config, now: datetime) -> None:
    for n in range(1, 36):
        for k in range(1 + n % 3):
            token, _ = issue(tokens, f"user{n:02d}", "trading" if n % 4 else "read", "session", now)
            token.created_at = now - timedelta(hours=n + k)
            token.last_used_at = now - timedelta(minutes=n * 3 + k)
    for deployment in config.kubernetes.deployments:
        if deployment.role in config.trading_day.scale_roles:
            issue(tokens, f"svc-{deployment.name}", "trading", "api_key", now - timedelta(days=30))


def install(app: FastAPI, state, auth: list) -> None:
    """Add the token endpoints to the platform API ``app`` (``state``: its PlatformState)."""
    state.tokens = {}
    seed(state.tokens, state.config, datetime.now(UTC))

    def active(kind: str | None = None) -> list[Token]:
        return [t for t in state.tokens.values() if t.revoked_at is None and kind in (None, t.kind)]

    def revoke(tokens: list[Token], reason: str) -> dict:
        now = datetime.now(UTC)
        for token in tokens:
            token.revoked_at, token.revoked_reason = now, reason
        return {"revoked": [t.id for t in tokens], "reason": reason, "revoked_at": _iso(now)}

    @app.get("/v1/auth/tokens", dependencies=auth)
    async def list_tokens(
        user: str | None = None, scope: str | None = None, kind: str | None = None, active: bool | None = None
    ):
        wanted = {"user": user, "scope": scope, "kind": kind}
        found = [
            t.public()
            for t in state.tokens.values()
            if all(v is None or getattr(t, k) == v for k, v in wanted.items())
            and (active is None or (t.revoked_at is None) == active)
        ]
        return {"tokens": found, "count": len(found)}

    @app.post("/v1/auth/tokens", dependencies=auth, status_code=201)
    async def issue_token(body: IssueRequest):
        token, value = issue(state.tokens, body.user, body.scope, body.kind, datetime.now(UTC))
        return {**token.public(), "token": value}

    @app.post("/v1/auth/tokens/revoke", dependencies=auth)
    async def revoke_matching(body: RevokeMatching, idempotency_key: str | None = Header(default=None)):
        if idempotency_key and idempotency_key in state.idempotent_responses:
            return state.idempotent_responses[idempotency_key]
        if body.ids and (unknown := sorted(set(body.ids) - set(state.tokens))):
            raise HTTPException(404, detail=f"no such token(s): {unknown}")
        matching = [
            t
            for t in active()
            if (body.ids is None or t.id in body.ids)
            and (body.user is None or t.user == body.user)
            and (body.scope is None or t.scope == body.scope)
        ]
        response = revoke(matching, body.reason)
        if idempotency_key:
            state.idempotent_responses[idempotency_key] = response
        return response

    @app.get("/v1/auth/sessions", dependencies=auth)
    async def sessions():
        live = active("session")
        return {"active_sessions": len(live), "users": len({t.user for t in live})}

    @app.post("/v1/auth/tokens/revoke-all", dependencies=auth)
    async def revoke_all(body: RevokeRequest):
        response = revoke(active("session"), body.reason)
        return {**response, "revoked": len(response["revoked"])}
