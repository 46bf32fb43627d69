"""Change safety shared by every runbook that changes deployments: dry-run plans (:mod:`.plans`), one change at a
time per deployment (:mod:`.locks`, a lease in TradeOps' state database) and the operators that take and release
that lease (:mod:`.operators`)."""
