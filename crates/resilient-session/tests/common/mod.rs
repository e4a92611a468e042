//! Helpers shared by the integration tests of this crate.

use std::time::{Duration, Instant};

use resilient_session::RedisManager;

/// Waits (up to 10 s) until `manager` reports itself connected. The background task connects
/// at start-up; once it has, it sends nothing until the connection is lost, so a test that
/// counts commands starts from a quiet manager.
pub(crate) async fn until_connected(manager: &RedisManager) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !manager.health().is_healthy {
        assert!(
            Instant::now() < deadline,
            "not connected after 10 s: {:?}",
            manager.health()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
