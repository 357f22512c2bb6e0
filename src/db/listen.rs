//! PostgreSQL notifications (`LISTEN`), for the server's background tasks: the SQL side of
//! `http::notifications`, kept here so that the HTTP layer issues none.

use sqlx::postgres::PgListener;

use crate::db::Db;

/// A connection listening on some channels.
pub struct Listener(PgListener);

/// What the listener heard.
pub enum Heard {
    /// A notification on `channel`.
    Notification { channel: String },
    /// The connection was lost and is reconnected by the next call: what was sent meanwhile
    /// is lost.
    Reconnecting,
}

impl Listener {
    /// Connects (to `listen_url` when given, else to the pool's server) and listens on
    /// `channels`; `None` on SQLite, which has no notifications.
    pub async fn connect(
        db: &Db,
        listen_url: Option<&str>,
        channels: &[&str],
    ) -> Option<Result<Self, sqlx::Error>> {
        let Db::Postgres(pool) = db else {
            return None;
        };
        let connected = match listen_url {
            Some(url) => PgListener::connect(url).await,
            None => PgListener::connect_with(pool).await,
        };
        Some(match connected {
            Ok(mut listener) => match listener.listen_all(channels.iter().copied()).await {
                Ok(()) => Ok(Self(listener)),
                Err(err) => Err(err),
            },
            Err(err) => Err(err),
        })
    }

    /// Waits for the next notification.
    pub async fn next(&mut self) -> Result<Heard, sqlx::Error> {
        Ok(match self.0.try_recv().await? {
            Some(notification) => Heard::Notification {
                channel: notification.channel().to_owned(),
            },
            None => Heard::Reconnecting,
        })
    }
}
