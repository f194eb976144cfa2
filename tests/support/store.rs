//! Test databases for the store suite: every test runs once on SQLite (a temp file)
//! and once on PostgreSQL (a fresh schema of `TONGDAI_TEST_DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`). PostgreSQL being unreachable FAILS the
//! postgres tests: CI installs it, and a silent skip would hide a broken backend.

use std::path::PathBuf;

use sqlx::Connection;
use tongdai::store::Store;

/// Which backend a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

pub const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

pub struct TestDb {
    pub store: Store,
    /// URL of this test's database (the schema-scoped one on PostgreSQL).
    pub url: String,
    kind: Kind,
}

enum Kind {
    Sqlite { dir: tempfile::TempDir },
    Postgres { admin_url: String, schema: String },
}

pub async fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().expect("temp dir");
    // A nested, not yet existing directory: connect must create it.
    let url = format!("sqlite://{}/data/tongdai.db", dir.path().display());
    let store = Store::connect(&url).await.expect("connect to SQLite");
    TestDb {
        store,
        url,
        kind: Kind::Sqlite { dir },
    }
}

pub async fn postgres() -> TestDb {
    let admin_url =
        std::env::var("TONGDAI_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_PG_URL.to_owned());
    let schema = format!("t_{:016x}", rand::random::<u64>());
    let mut conn = sqlx::PgConnection::connect(&admin_url)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL at {admin_url} is unreachable ({e}); the postgres store tests need it"
            )
        });
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut conn)
        .await
        .expect("create test schema");
    let _ = conn.close().await;
    let sep = if admin_url.contains('?') { '&' } else { '?' };
    let url = format!("{admin_url}{sep}options=-c%20search_path%3D{schema}");
    let store = Store::connect(&url).await.expect("connect to PostgreSQL");
    TestDb {
        store,
        url,
        kind: Kind::Postgres { admin_url, schema },
    }
}

impl TestDb {
    /// A second, independent Store (own pool) on the same data: a second service process.
    pub async fn another_store(&self) -> Store {
        Store::connect(&self.url)
            .await
            .expect("connect a second store")
    }

    /// The SQLite file's path (None on PostgreSQL).
    pub fn sqlite_file(&self) -> Option<PathBuf> {
        match &self.kind {
            Kind::Sqlite { dir } => Some(dir.path().join("data/tongdai.db")),
            Kind::Postgres { .. } => None,
        }
    }

    /// A scratch directory for files the test writes.
    pub fn scratch(&self) -> tempfile::TempDir {
        tempfile::tempdir().expect("temp dir")
    }

    pub async fn cleanup(self) {
        self.store.close().await;
        if let Kind::Postgres { admin_url, schema } = &self.kind {
            let mut conn = sqlx::PgConnection::connect(admin_url)
                .await
                .expect("reconnect to drop the schema");
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                .execute(&mut conn)
                .await
                .expect("drop test schema");
            let _ = conn.close().await;
        }
    }
}

/// Generates `<name>::sqlite` and `<name>::postgres` tests running `async fn <name>(&TestDb)`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = $crate::support::store::sqlite().await;
                super::$name(&db).await;
                db.cleanup().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let db = $crate::support::store::postgres().await;
                super::$name(&db).await;
                db.cleanup().await;
            }
        }
    )*};
}
