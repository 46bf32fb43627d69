"""The trading platform's HTTP API, as the runbooks call it (``/v1/...``, bearer token).

Positions, balances and trade counts come from the platform database; component and feed figures are derived
deterministically from the names in the TradeOps config, so two runs of the sandbox answer the same.
The ``unhealthy`` fault knob marks any component, agent, data feed or model as unhealthy.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
from fastapi import Depends, FastAPI, Header, HTTPException, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from sandbox import platform_auth, platform_eod, platform_metrics, platform_trading
from sandbox.faults import FaultState
from tradeops.config import TradeOpsConfig

DATA_FEEDS = ["rithmic-md", "cme-mdp3", "news-sentiment"]
GIB = 1024**3


def _unit(name: str, salt: str = "") -> float:
    """A stable number in [0, 1) for a name: the sandbox's source of 'random but repeatable' figures."""
    digest = hashlib.sha256(f"{salt}:{name}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _money(value: Decimal | float) -> float:
    return float(round(Decimal(value), 2))


class CloseAllRequest(BaseModel):
    reason: str = Field(min_length=3, max_length=500)
    dry_run: bool = False


class LogCleanupRequest(BaseModel):
    older_than_days: int = Field(ge=1, le=3650)
    dry_run: bool = True


class SecurityScanRequest(BaseModel):
    images: list[str] = Field(min_length=1)
    fail_on: list[str] = ["critical"]


class PlatformState:
    def __init__(self, config: TradeOpsConfig, dsn: str, token: str):
        self.config = config
        self.dsn = dsn
        self.token = token
        self.started_at = datetime.now(UTC)
        self.faults = FaultState()
        self.idempotent_responses: dict[str, dict] = {}
        today = self.started_at.date()
        # The platform's log indices (Elasticsearch-style, one per day) and their sizes, for the weekly cleanup.
        self.log_indices = {
            f"grandmodel-logs-{today - timedelta(days=n):%Y.%m.%d}": 150_000_000 + n * 1_000_000 for n in range(45)
        }

    def is_unhealthy(self, name: str) -> bool:
        return self.faults.is_unhealthy(name)

    async def connect(self) -> psycopg.AsyncConnection:
        return await psycopg.AsyncConnection.connect(self.dsn)


def create_app(state: PlatformState) -> FastAPI:
    app = FastAPI(title="GrandModel trading platform API (TradeOps sandbox)", version="1.0")
    state.faults.install(app)

    async def authorized(authorization: str | None = Header(default=None)) -> None:
        expected = f"Bearer {state.token}"
        if authorization is None or not secrets.compare_digest(authorization.encode(), expected.encode()):
            raise HTTPException(401, detail="missing or invalid bearer token")

    auth = [Depends(authorized)]
    config = state.config

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok"}

    @app.get("/v1/system/status", dependencies=auth)
    async def system_status():
        now = datetime.now(UTC)
        components = []
        for deployment in config.kubernetes.deployments:
            limit = (1 + int(_unit(deployment.name, "mem") * 4)) * GIB
            healthy = not state.is_unhealthy(deployment.name)
            components.append(
                {
                    "name": deployment.name,
                    "kind": "deployment",
                    "status": "healthy" if healthy else "unhealthy",
                    "version": deployment.image.rsplit(":", 1)[-1],
                    "uptime_s": int((now - state.started_at).total_seconds()) + int(_unit(deployment.name) * 86400),
                    "cpu_pct": round(20 + _unit(deployment.name, "cpu") * 35, 1),
                    "memory_used_bytes": int(limit * (0.30 + _unit(deployment.name, "used") * 0.35)),
                    "memory_limit_bytes": limit,
                }
            )
        for infra in ("postgres", "redis"):
            components.append(
                {
                    "name": infra,
                    "kind": "infrastructure",
                    "status": "unhealthy" if state.is_unhealthy(infra) else "healthy",
                }
            )
        overall = "healthy" if all(c["status"] == "healthy" for c in components) else "degraded"
        return {"status": overall, "checked_at": _iso(now), "components": components}

    @app.get("/v1/agents/status", dependencies=auth)
    async def agents_status():
        now = datetime.now(UTC)
        agents = []
        for deployment in config.kubernetes.deployments:
            if deployment.role != "agent":
                continue
            healthy = not state.is_unhealthy(deployment.name)
            heartbeat = now - (timedelta(seconds=2) if healthy else timedelta(minutes=7))
            agents.append(
                {
                    "name": deployment.name,
                    "status": "healthy" if healthy else "unhealthy",
                    "last_heartbeat": _iso(heartbeat),
                    "model_version": deployment.image.rsplit(":", 1)[-1],
                    "decisions_last_5m": int(10 + _unit(deployment.name, "dec") * 50) if healthy else 0,
                }
            )
        return {"agents": agents, "checked_at": _iso(now)}

    async def _account_row() -> dict:
        async with await state.connect() as conn:
            cur = await conn.execute(
                "SELECT id, name, currency, balance, margin_used, status, trading_enabled FROM accounts LIMIT 1"
            )
            row = await cur.fetchone()
        keys = ("id", "name", "currency", "balance", "margin_used", "status", "trading_enabled")
        return dict(zip(keys, row, strict=True))

    @app.get("/v1/account/status", dependencies=auth)
    async def account_status():
        account = await _account_row()
        return {
            "account_id": account["id"],
            "name": account["name"],
            "status": "restricted" if state.is_unhealthy("account") else account["status"],
            "trading_enabled": account["trading_enabled"] and not state.is_unhealthy("account"),
            "broker": "rithmic",
        }

    @app.get("/v1/account/balance", dependencies=auth)
    async def account_balance():
        account = await _account_row()
        return {
            "account_id": account["id"],
            "currency": account["currency"],
            "balance": _money(account["balance"]),
            "as_of": _iso(datetime.now(UTC)),
        }

    @app.get("/v1/account/margin", dependencies=auth)
    async def account_margin():
        account = await _account_row()
        balance, used = account["balance"], account["margin_used"]
        available = balance - used
        if state.faults.faults.margin_available_pct is not None:  # the fault knob: the margin that is left
            available = balance * Decimal(str(state.faults.faults.margin_available_pct)) / 100
            used = balance - available
        return {
            "account_id": account["id"],
            "currency": account["currency"],
            "margin_used": _money(used),
            "margin_available": _money(available),
            "margin_available_pct": round(float(available / balance * 100), 2) if balance else 0.0,
        }

    async def _open_positions(conn) -> list[dict]:
        cur = await conn.execute(
            "SELECT symbol, qty, avg_price, last_price FROM positions WHERE qty <> 0 ORDER BY symbol"
        )
        return [
            {
                "symbol": symbol,
                "qty": float(qty),
                "avg_price": float(avg),
                "last_price": float(last),
                "market_value": _money(qty * last),
                "unrealized_pnl": _money(qty * (last - avg)),
            }
            for symbol, qty, avg, last in await cur.fetchall()
        ]

    @app.get("/v1/positions", dependencies=auth)
    async def positions():
        async with await state.connect() as conn:
            open_positions = await _open_positions(conn)
        return {"positions": open_positions, "count": len(open_positions)}

    @app.post("/v1/positions/close-all", dependencies=auth)
    async def close_all(body: CloseAllRequest, idempotency_key: str | None = Header(default=None)):
        if idempotency_key and idempotency_key in state.idempotent_responses:
            return JSONResponse(state.idempotent_responses[idempotency_key], headers={"Idempotent-Replayed": "true"})
        async with await state.connect() as conn, conn.transaction():
            await conn.execute("SELECT 1 FROM positions FOR UPDATE")
            open_positions = await _open_positions(conn)
            stuck = set(state.faults.faults.stuck_positions)  # the exchange rejects their orders
            orders = [
                {
                    "symbol": p["symbol"],
                    "side": "sell" if p["qty"] > 0 else "buy",
                    "qty": abs(p["qty"]),
                    "price": p["last_price"],
                }
                for p in open_positions
                if p["symbol"] not in stuck
            ]
            rejected = [{"symbol": p["symbol"], "qty": p["qty"]} for p in open_positions if p["symbol"] in stuck]
            if not body.dry_run:
                now = datetime.now(UTC)
                for order in orders:
                    await conn.execute(
                        "INSERT INTO trades (trade_ts, account, symbol, side, qty, price, strategy) "
                        "SELECT %s, account, symbol, %s, %s, %s, 'flatten' FROM positions WHERE symbol = %s",
                        (now, order["side"], order["qty"], order["price"], order["symbol"]),
                    )
                await conn.execute(
                    "UPDATE positions SET qty = 0, updated_at = %s WHERE qty <> 0 AND symbol <> ALL(%s)",
                    (now, sorted(stuck)),
                )
        response = {
            "dry_run": body.dry_run,
            "reason": body.reason,
            "orders": orders,
            "closed": len(orders),
            "rejected": rejected,
        }
        if idempotency_key:
            state.idempotent_responses[idempotency_key] = response
        return response

    @app.get("/v1/risk/limits", dependencies=auth)
    async def risk_limits():
        async with await state.connect() as conn:
            cur = await conn.execute(
                "SELECT coalesce(sum(abs(qty * last_price)), 0), coalesce(max(abs(qty)), 0) FROM positions"
            )
            gross, largest = await cur.fetchone()
        limits = [
            {"name": "max_gross_exposure_usd", "limit": 25_000_000.0, "current": _money(gross)},
            {"name": "max_position_contracts", "limit": 50.0, "current": float(largest)},
            {
                "name": "max_daily_drawdown_pct",
                "limit": 5.0,
                "current": 6.2 if state.is_unhealthy("risk-limits") else 1.3,
            },
        ]
        for limit in limits:
            limit["utilization_pct"] = round(limit["current"] / limit["limit"] * 100, 2)
            limit["breached"] = limit["current"] > limit["limit"]
        return {"limits": limits, "breached": [lim["name"] for lim in limits if lim["breached"]]}

    @app.get("/v1/models/validation", dependencies=auth)
    async def model_validation():
        models = []
        for deployment in config.kubernetes.deployments:
            if deployment.role != "agent":
                continue
            version = deployment.image.rsplit(":", 1)[-1]
            expected = hashlib.sha256(f"{deployment.name}:{version}".encode()).hexdigest()
            actual = (
                hashlib.sha256(b"corrupted").hexdigest() if state.is_unhealthy(f"model:{deployment.name}") else expected
            )
            models.append(
                {
                    "name": deployment.name,
                    "version": version,
                    "path": f"/models/{deployment.name.replace('-', '_')}-{version}.pt",
                    "sha256": actual,
                    "expected_sha256": expected,
                    "valid": actual == expected,
                }
            )
        return {"models": models, "valid": all(m["valid"] for m in models)}

    @app.get("/v1/data-feeds/status", dependencies=auth)
    async def data_feeds():
        now = datetime.now(UTC)
        feeds = []
        for name in DATA_FEEDS:
            down = state.is_unhealthy(name)
            lag_ms = 45_000 if down else int(40 + _unit(name, "lag") * 400)
            feeds.append(
                {
                    "name": name,
                    "status": "disconnected" if down else "connected",
                    "lag_ms": lag_ms,
                    "messages_per_s": 0 if down else int(800 + _unit(name, "mps") * 9000),
                    "last_message_at": _iso(now - timedelta(milliseconds=lag_ms)),
                }
            )
        return {"feeds": feeds, "checked_at": _iso(now)}

    @app.get("/v1/performance/metrics", dependencies=auth)
    async def performance_metrics(timeframe: str = Query(default="1d", pattern=r"^(1h|1d|7d)$")):
        window = {"1h": timedelta(hours=1), "1d": timedelta(days=1), "7d": timedelta(days=7)}[timeframe]
        async with await state.connect() as conn:
            cur = await conn.execute("SELECT count(*) FROM trades WHERE trade_ts > now() - %s", (window,))
            (trades,) = await cur.fetchone()
        degraded = state.is_unhealthy("performance")
        return {
            "timeframe": timeframe,
            "response_time_p50_ms": 180.0 if degraded else 11.5,
            "response_time_p95_ms": 640.0 if degraded else 42.0,
            "response_time_p99_ms": 1900.0 if degraded else 87.0,
            "throughput_rps": 3100 if degraded else 12400,
            "error_rate_pct": 2.4 if degraded else 0.02,
            "availability_pct": 99.1 if degraded else 99.97,
            "total_trades": trades,
        }

    @app.post("/v1/maintenance/logs/cleanup", dependencies=auth)
    async def logs_cleanup(body: LogCleanupRequest, idempotency_key: str | None = Header(default=None)):
        if idempotency_key and idempotency_key in state.idempotent_responses:
            return state.idempotent_responses[idempotency_key]
        cutoff = f"grandmodel-logs-{datetime.now(UTC).date() - timedelta(days=body.older_than_days):%Y.%m.%d}"
        expired = sorted(name for name in state.log_indices if name < cutoff)
        freed = sum(state.log_indices[name] for name in expired)
        if not body.dry_run:
            for name in expired:
                del state.log_indices[name]
        response = {
            "deleted" if not body.dry_run else "would_delete": expired,
            "bytes_freed": freed,
            "kept": len(state.log_indices) - (len(expired) if body.dry_run else 0),
            "dry_run": body.dry_run,
        }
        if idempotency_key:
            state.idempotent_responses[idempotency_key] = response
        return response

    @app.post("/v1/security/scan", dependencies=auth)
    async def security_scan(body: SecurityScanRequest):
        # Deterministic findings per image: the sandbox's images have medium/low ones only, unless a fault says so.
        findings = [
            {
                "image": image,
                "id": f"CVE-2026-{int(_unit(image, 'cve') * 9000) + 1000}",
                "severity": "critical"
                if state.is_unhealthy(f"scan:{image}")
                else ("medium" if _unit(image, "sev") > 0.5 else "low"),
            }
            for image in body.images
        ]
        blocking = [f for f in findings if f["severity"] in body.fail_on]
        return {"scanned": len(body.images), "findings": findings, "blocking": blocking}

    platform_auth.install(app, state, auth)
    platform_eod.install(app, state, auth)
    platform_trading.install(app, state, auth)
    platform_metrics.install(app, state, auth)
    return app
