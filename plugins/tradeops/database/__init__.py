"""Care of the platform's live PostgreSQL database: retention, index and vacuum upkeep, its checks (long queries,
lock chains, connections, wraparound, the verified backup), the size report and the restore path. Every step keeps
its transactions short and its lock waits bounded, quotes every identifier (``psycopg.sql.Identifier``) and passes
every value as a parameter."""
