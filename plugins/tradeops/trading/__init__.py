"""The trading day's runbooks: pre-market startup gates and steps (the seeds' "Trading Day Startup Procedure")."""
