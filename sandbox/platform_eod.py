"""The platform API's end-of-day endpoints (installed by :func:`sandbox.platform_api.create_app`):

- ``GET /v1/trades/summary?since=&until=``: the trades of a window from the platform database, counted, their
  volume (contracts and notional) and realised P&L (the cash flow of the window's trades: sells minus buys), per
  symbol and per strategy;
- ``POST /v1/logs/archive``: archive one day's log index (``grandmodel-logs-YYYY.MM.DD``), returning the archive's
  name, size and sha256. Archiving a day twice answers the same archive (with an ``Idempotency-Key``, the first
  answer is replayed).
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Header, HTTPException, Query
from pydantic import BaseModel

if TYPE_CHECKING:
    from sandbox.platform_api import PlatformState

COMPRESSION = 0.12  # what zstd leaves of a day's JSON log lines

TRADES_BY = """
SELECT {key} AS name, count(*) AS trades, coalesce(sum(qty), 0) AS contracts,
       coalesce(sum(qty * price), 0) AS notional,
       coalesce(sum(CASE WHEN side = 'sell' THEN qty * price ELSE -qty * price END), 0) AS realized_pnl
FROM trades WHERE trade_ts >= %s AND trade_ts < %s GROUP BY {key} ORDER BY {key}
"""


class LogArchiveRequest(BaseModel):
    day: date


def _rows(rows: list[tuple]) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "trades": trades,
            "contracts": float(contracts),
            "notional": round(float(notional), 2),
            "realized_pnl": round(float(pnl), 2),
        }
        for name, trades, contracts, notional, pnl in rows
    ]


def install(app: FastAPI, state: PlatformState, auth: list) -> None:
    archives: dict[date, dict[str, Any]] = {}

    @app.get("/v1/trades/summary", dependencies=auth)
    async def trades_summary(since: datetime = Query(), until: datetime = Query()):
        if until <= since:
            raise HTTPException(422, detail="until must be after since")
        async with await state.connect() as conn:
            by_symbol = await (await conn.execute(TRADES_BY.format(key="symbol"), (since, until))).fetchall()
            by_strategy = await (await conn.execute(TRADES_BY.format(key="strategy"), (since, until))).fetchall()
        symbols = _rows(by_symbol)
        return {
            "since": since.isoformat(),
            "until": until.isoformat(),
            "trades": sum(s["trades"] for s in symbols),
            "contracts": sum(s["contracts"] for s in symbols),
            "notional": round(sum(s["notional"] for s in symbols), 2),
            "realized_pnl": round(sum(s["realized_pnl"] for s in symbols), 2),
            "by_symbol": symbols,
            "by_strategy": _rows(by_strategy),
        }

    @app.post("/v1/logs/archive", dependencies=auth)
    async def archive_logs(body: LogArchiveRequest, idempotency_key: str | None = Header(default=None)):
        if idempotency_key and idempotency_key in state.idempotent_responses:
            return state.idempotent_responses[idempotency_key]
        if body.day not in archives:
            index = f"grandmodel-logs-{body.day:%Y.%m.%d}"
            if index not in state.log_indices:
                raise HTTPException(404, detail=f"no log index {index}")
            size = int(state.log_indices[index] * COMPRESSION)
            archives[body.day] = {
                "index": index,
                "name": f"{index}.tar.zst",
                "bytes": size,
                "sha256": hashlib.sha256(f"{index}:{size}".encode()).hexdigest(),
                "location": f"s3://grandmodel-log-archive/{body.day:%Y/%m}/{index}.tar.zst",
                "archived_at": datetime.now().astimezone().isoformat(),
            }
        response = archives[body.day]
        if idempotency_key:
            state.idempotent_responses[idempotency_key] = response
        return response
