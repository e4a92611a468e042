//! The auth examples' one user: `ferris`, password `hunter42`, kept as an Argon2 hash (through
//! `password-auth`) that is made when the app starts.

/// A user of the auth examples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The id the auth crates keep in the session.
    pub id: u64,
    /// The login name.
    pub name: String,
    /// The password's hash, in the PHC string format. axum-login also keys sessions to it: a
    /// changed password ends every session.
    pub password_hash: String,
}

/// The users, in memory.
#[derive(Debug, Clone)]
pub struct Users {
    ferris: User,
}

impl Users {
    /// `ferris` / `hunter42`, the password hashed now (a few milliseconds in a release build).
    pub fn new() -> Self {
        Self {
            ferris: User {
                id: 1,
                name: "ferris".into(),
                password_hash: password_auth::generate_hash("hunter42"),
            },
        }
    }

    /// The user `name`, if `password` is theirs. As slow as the hash is on purpose: call it off
    /// the async runtime's threads.
    ///
    /// ```
    /// let users = example_common::users::Users::new();
    /// assert!(users.check("ferris", "hunter42").is_some());
    /// assert!(users.check("ferris", "hunter43").is_none());
    /// ```
    pub fn check(&self, name: &str, password: &str) -> Option<User> {
        let user = self.by_name(name)?;
        password_auth::verify_password(password, &user.password_hash)
            .is_ok()
            .then(|| user.clone())
    }

    /// The user with `id`.
    pub fn by_id(&self, id: u64) -> Option<&User> {
        (self.ferris.id == id).then_some(&self.ferris)
    }

    /// The user called `name`.
    pub fn by_name(&self, name: &str) -> Option<&User> {
        (self.ferris.name == name).then_some(&self.ferris)
    }
}

impl Default for Users {
    fn default() -> Self {
        Self::new()
    }
}
