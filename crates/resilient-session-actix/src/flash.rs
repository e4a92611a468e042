//! [`FlashStore`]: actix-web-flash-messages' messages kept in the session.

use actix_session::SessionExt as _;
use actix_web::HttpRequest;
use actix_web::dev::ResponseHead;
use actix_web_flash_messages::FlashMessage;
use actix_web_flash_messages::storage::{FlashMessageStore, LoadError, StoreError};

/// A [`FlashMessageStore`] that keeps the pending messages in the session, at one key
/// (`_flash` by default), through the actix-session session that
/// [`ActixSessionBridge`](crate::actix_session::ActixSessionBridge) provides: flash messages on
/// our middleware, also while Redis is down (written then, they ride in the cookie until read).
///
/// actix-web-flash-messages 0.5's own session store is built on actix-session 0.10, which is
/// not the actix-session of actix-identity 0.9 and of the bridge (0.11); this one is.
///
/// ```
/// use actix_web_flash_messages::FlashMessagesFramework;
/// use resilient_session_actix::flash::FlashStore;
///
/// let flash = FlashMessagesFramework::builder(FlashStore::default()).build();
/// // App::new().wrap(flash).wrap(ActixSessionBridge::new()).wrap(SessionMiddleware::new(engine))
/// # let _ = flash;
/// ```
#[derive(Debug, Clone)]
pub struct FlashStore {
    key: String,
}

impl FlashStore {
    /// Messages kept at `key`.
    pub fn new(key: impl Into<String>) -> Self {
        Self { key: key.into() }
    }
}

impl Default for FlashStore {
    fn default() -> Self {
        Self::new("_flash")
    }
}

impl FlashMessageStore for FlashStore {
    fn load(&self, request: &HttpRequest) -> Result<Vec<FlashMessage>, LoadError> {
        request
            .get_session()
            .get::<Vec<FlashMessage>>(&self.key)
            .map(Option::unwrap_or_default)
            .map_err(|err| LoadError::DeserializationError(err.into()))
    }

    fn store(
        &self,
        messages: &[FlashMessage],
        request: HttpRequest,
        _response: &mut ResponseHead,
    ) -> Result<(), StoreError> {
        let session = request.get_session();
        if messages.is_empty() {
            session.remove(&self.key);
            return Ok(());
        }
        session
            .insert(self.key.clone(), messages)
            .map_err(|err| StoreError::SerializationError(err.into()))
    }
}
