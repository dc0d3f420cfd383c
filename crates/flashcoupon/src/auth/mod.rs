//! Authentication: argon2id password hashes, HS256 tokens, and the request
//! extractors that turn a bearer token into a caller.

mod extract;
mod password;
mod revocations;
mod token;

pub use extract::{AdminUser, AuthUser, WritingUser};
pub use password::{HashError, PasswordHasher, hash_password};
pub use revocations::{POLL as REVOCATION_POLL, Revocations};
pub use token::{Claims, TokenKeys, load_or_create_secret};
