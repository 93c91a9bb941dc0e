-- Sessions: one per login, carried forward by its refresh tokens. Revoking a session
-- (logout, a refresh token used twice, a disabled user, a password change or reset) ends
-- its refresh tokens here and its access tokens on every API instance, which follow
-- `revoked_at` (service_kit::auth::revocations).
CREATE TABLE sessions (
    id          uuid PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- Absolute end: refreshing never carries a session past it.
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz,
    revoked_why text CONSTRAINT sessions_revoked_why_check CHECK (revoked_why IN
                    ('logout', 'refresh_reused', 'user_disabled', 'password_changed', 'password_reset')),
    CONSTRAINT sessions_revoked_check CHECK ((revoked_at IS NULL) = (revoked_why IS NULL))
);
CREATE INDEX sessions_user_idx ON sessions (user_id);
CREATE INDEX sessions_revoked_at_idx ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;

-- Refresh tokens: 256 random bits each, so only their SHA-256 is stored (a slow hash buys
-- nothing against a guess that cannot succeed). Each is used once: presenting a used one
-- again means a copy exists, and revokes the session.
CREATE TABLE refresh_tokens (
    token_hash bytea PRIMARY KEY CONSTRAINT refresh_tokens_hash_check CHECK (length(token_hash) = 32),
    session_id uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    issued_at  timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX refresh_tokens_session_idx ON refresh_tokens (session_id);

-- Raised by every change that must end a user's access tokens at once (disabled, role,
-- stores, password reset): an access token carries the version it was issued under, and
-- every API instance refuses a version older than the user's.
ALTER TABLE users ADD COLUMN token_version bigint NOT NULL DEFAULT 0;
CREATE INDEX users_updated_at_idx ON users (updated_at);
