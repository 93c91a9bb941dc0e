//! Users: argon2id password hashes, roles and stores; every change audited in the same
//! transaction.

use argon2::password_hash::SaltString;
use argon2::password_hash::rand_core::OsRng;
use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use schemas::StoreId;
use serde_json::json;
use service_kit::auth::Role;
use sqlx::PgPool;

/// Shortest password accepted.
pub const MIN_PASSWORD_LENGTH: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("a password needs at least {MIN_PASSWORD_LENGTH} characters")]
    WeakPassword,
    #[error("hashing the password failed: {0}")]
    Hash(argon2::password_hash::Error),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("the password hashing task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// The one password rule: long enough.
fn password_is_long_enough(password: &str) -> bool {
    password.chars().count() >= MIN_PASSWORD_LENGTH
}

/// What is wrong with `password` as a new password sent in `field`, if anything.
pub fn password_problem(field: &str, password: &str) -> Option<service_kit::problem::FieldError> {
    (!password_is_long_enough(password)).then(|| {
        service_kit::problem::FieldError::new(
            field,
            "too_short",
            format!("at least {MIN_PASSWORD_LENGTH} characters"),
        )
    })
}

/// Failures here are never the client's fault once input was validated.
impl From<UserError> for service_kit::problem::ApiError {
    fn from(error: UserError) -> Self {
        Self::Internal(error.into())
    }
}

/// A user as the login needs it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Credentials {
    pub id: i64,
    pub username: String,
    pub password_hash: String,
    pub role: String,
    pub store_ids: Vec<i64>,
    pub disabled: bool,
    pub token_version: i64,
}

/// Hashes with argon2id and a random salt; CPU-heavy, so off the async workers.
pub async fn hash_password(password: String) -> Result<String, UserError> {
    if !password_is_long_enough(&password) {
        return Err(UserError::WeakPassword);
    }
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(UserError::Hash)
    })
    .await?
}

/// Checks `password` against a stored PHC hash (constant-time inside argon2).
pub async fn verify_password(password: String, hash: String) -> Result<bool, UserError> {
    Ok(tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await?)
}

pub async fn find_credentials(
    pool: &PgPool,
    username: &str,
) -> Result<Option<Credentials>, sqlx::Error> {
    sqlx::query_as::<_, Credentials>(
        "SELECT id, username, password_hash, role, store_ids, disabled_at IS NOT NULL AS disabled,
                token_version
         FROM users WHERE username = $1",
    )
    .bind(username)
    .fetch_optional(pool)
    .await
}

/// What `ensure_admin` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bootstrap {
    Created,
    /// A user of that name exists; it was left exactly as it was.
    AlreadyThere,
}

/// The documented bootstrap of the first admin: creates `username` as an admin of all
/// stores unless a user of that name exists. Audited as actor `bootstrap`.
pub async fn ensure_admin(
    pool: &PgPool,
    username: &str,
    password: String,
) -> Result<Bootstrap, UserError> {
    let hash = hash_password(password).await?;
    let mut transaction = pool.begin().await?;
    let created: Option<i64> = sqlx::query_scalar(
        "INSERT INTO users (username, password_hash, role, store_ids) VALUES ($1, $2, 'admin', '{}')
         ON CONFLICT (username) DO NOTHING RETURNING id",
    )
    .bind(username)
    .bind(&hash)
    .fetch_optional(&mut *transaction)
    .await?;
    let Some(id) = created else {
        return Ok(Bootstrap::AlreadyThere);
    };
    let after = json!({"id": id, "username": username, "role": Role::Admin.as_str(), "store_ids": Vec::<StoreId>::new()});
    sqlx::query(
        "INSERT INTO audit_log (actor, action, entity_type, entity_id, before, after)
         VALUES ('bootstrap', 'create', 'user', $1, NULL, $2)",
    )
    .bind(id.to_string())
    .bind(after)
    .execute(&mut *transaction)
    .await?;
    transaction.commit().await?;
    Ok(Bootstrap::Created)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passwords_hash_with_argon2id_and_verify_only_themselves() {
        let hash = hash_password("correct horse battery".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(
            verify_password("correct horse battery".into(), hash.clone())
                .await
                .unwrap()
        );
        assert!(
            !verify_password("correct horse batterx".into(), hash.clone())
                .await
                .unwrap()
        );
        assert!(
            !verify_password("anything".into(), "not a hash".into())
                .await
                .unwrap()
        );
        let again = hash_password("correct horse battery".into()).await.unwrap();
        assert_ne!(hash, again, "each hash has its own salt");
    }

    #[tokio::test]
    async fn short_passwords_are_refused() {
        assert!(matches!(
            hash_password("short".into()).await,
            Err(UserError::WeakPassword)
        ));
    }
}
