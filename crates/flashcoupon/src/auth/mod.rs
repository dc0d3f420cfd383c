//! Authentication: argon2id password hashes, HS256 tokens, service keys,
//! and the request extractors that turn a bearer credential into a caller.

mod extract;
mod password;
mod revocations;
pub mod service_keys;
mod token;

pub use extract::{AdminUser, AuthUser, Caller, ShopCaller, WritingUser, admin_in_record};
pub use password::{HashError, HashPriority, PasswordHasher, hash_password};
pub use revocations::{POLL as REVOCATION_POLL, Revocations};
pub use token::{Claims, TokenKeys, load_or_create_secret};
