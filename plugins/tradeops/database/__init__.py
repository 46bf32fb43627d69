"""Care of the platform's live PostgreSQL database: retention, index and vacuum upkeep, health queries, the size
report and verified backups. Every step keeps its transactions short and its lock waits bounded, quotes every
identifier (``psycopg.sql.Identifier``) and passes every value as a parameter."""
