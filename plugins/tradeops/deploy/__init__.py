"""Deployments TradeOps makes itself: blue-green (:mod:`.bluegreen` for the rules, :mod:`.forms` for the trigger
form, :mod:`.operators` and :mod:`.sensors` for the steps)."""
