"""The market-hours watch: the seeds' every-minute monitoring loop as rules over the platform's metrics
(:mod:`~tradeops.watch.rules`), evaluated in the triggerer (:mod:`~tradeops.watch.triggers`) by one deferrable
task per session (:mod:`~tradeops.watch.operators`)."""
