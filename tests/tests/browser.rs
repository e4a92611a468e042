//! The example page (`GET /`) in a real browser: headless Chromium, driven through chromedriver
//! with a WebDriver client. Log in, count, Redis killed (still logged in, counting on from the
//! cookie), log out. Needs Debian's `chromium` and `chromium-driver` (`bash scripts/test`
//! installs them); `CHROMEDRIVER` and `CHROMIUM` name other binaries.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use conformance::{Framework, TestApp, defaults};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use test_redis::{RedisServer, free_port, wait_for_listener};

conformance::scenarios!(log_in_count_lose_redis_stay_logged_in_log_out);

/// A chromedriver on a free loopback port, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Driver {
        let binary = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let port = free_port();
        let child = Command::new(&binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| {
                panic!(
                    "cannot start {binary} ({err}): install Chromium and its driver (Debian: \
                     `apt-get install chromium chromium-driver`; `bash scripts/test` does)"
                )
            });
        wait_for_listener(port, "chromedriver", Duration::from_secs(20));
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// A headless browser with an empty profile of its own.
    async fn browser(&self, profile: &std::path::Path) -> Client {
        let mut options = json!({
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                // This machine's network is closed: no calls home at start-up.
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-quic",
                "--no-first-run",
                format!("--user-data-dir={}", profile.display()),
            ]
        });
        if let Ok(binary) = std::env::var("CHROMIUM") {
            options["binary"] = json!(binary);
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".into(), options);
        ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("a Chromium session through chromedriver")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The text of the element with this id on the current page.
async fn text(browser: &Client, id: &str) -> String {
    browser
        .find(Locator::Id(id))
        .await
        .unwrap_or_else(|err| panic!("no #{id} on the page: {err}"))
        .text()
        .await
        .expect("element text")
}

/// Clicks the button with this id and waits for the page it leads back to.
async fn click(browser: &Client, id: &str) {
    browser
        .find(Locator::Id(id))
        .await
        .unwrap_or_else(|err| panic!("no #{id} button: {err}"))
        .click()
        .await
        .expect("click");
    wait_for(browser, "counter").await;
}

/// Waits (up to 10 s) for the element with this id: the page that a submit led to.
async fn wait_for(browser: &Client, id: &str) {
    browser
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id(id))
        .await
        .unwrap_or_else(|err| panic!("no #{id} on the page that followed: {err}"));
}

async fn log_in_count_lose_redis_stay_logged_in_log_out(framework: Framework) {
    let mut redis = RedisServer::start();
    let app = TestApp::start(framework, &redis, defaults).await;
    let driver = Driver::start();
    let profile = tempfile::tempdir().expect("a browser profile directory");
    let browser = driver.browser(profile.path()).await;

    browser
        .goto(&format!("{}/", app.base))
        .await
        .expect("open the page");
    assert_eq!(text(&browser, "source").await, "new");
    assert_eq!(text(&browser, "redis").await, "connected");
    // The form comes filled in: ada, admin.
    let login = browser
        .form(Locator::Id("login"))
        .await
        .expect("the login form");
    login.submit().await.expect("log in");
    wait_for(&browser, "user").await;
    assert_eq!(text(&browser, "user").await, "ada");
    assert!(
        text(&browser, "sessions").await.contains("this one"),
        "the page lists this session as the user's"
    );

    click(&browser, "count").await;
    click(&browser, "count").await;
    assert_eq!(text(&browser, "counter").await, "2");
    assert_eq!(text(&browser, "source").await, "redis");

    redis.kill();
    click(&browser, "count").await;
    assert_eq!(text(&browser, "user").await, "ada", "still logged in");
    assert_eq!(
        text(&browser, "counter").await,
        "3",
        "counting on from the cookie"
    );
    assert_eq!(text(&browser, "source").await, "cookie");
    assert_ne!(text(&browser, "redis").await, "connected");

    click(&browser, "logout").await;
    browser
        .find(Locator::Id("login"))
        .await
        .expect("logged out: the login form again");
    assert!(browser.find(Locator::Id("user")).await.is_err());

    browser.close().await.expect("close the browser");
}
