-- daily_security_check's record of each API gateway's answers per UTC day, written for every day a run finds whole in
-- the gateway's access logs: the previous days' 401/403 shares outlive the logs' rotation and are the baseline the
-- last minutes are held to. A later reading of a day replaces the counts only when it saw more of the day.
CREATE TABLE tradeops.gateway_auth_daily (
    gateway  text    NOT NULL,                  -- "<namespace>/<deployment>"
    day      date    NOT NULL,                  -- UTC
    requests integer NOT NULL CHECK (requests > 0),
    denied   integer NOT NULL CHECK (denied BETWEEN 0 AND requests),  -- answered 401 or 403
    PRIMARY KEY (gateway, day)
);
