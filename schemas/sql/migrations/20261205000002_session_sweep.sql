-- Ingest forgets sessions and refresh tokens a day after they ended or expired (every
-- access token of theirs expired long before); these indexes find them without a scan.
CREATE INDEX refresh_tokens_expires_at_idx ON refresh_tokens (expires_at);
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);
