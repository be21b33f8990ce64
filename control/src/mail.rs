//! Outgoing email. With an SMTP URL configured, lettre sends it; otherwise
//! each message is written as an `.eml` file under `<data-dir>/outbox/`,
//! which is the embedded default and what the tests read.

use std::path::PathBuf;

use lettre::message::{header::ContentType, Mailbox};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("invalid SMTP URL {0}: expected smtp://[user:password@]host[:port]")]
    Url(String),
    #[error("invalid address {0}")]
    Address(String),
    #[error("cannot build message: {0}")]
    Build(#[from] lettre::error::Error),
    #[error("smtp: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
    #[error("outbox: {0}")]
    Io(#[from] std::io::Error),
}

/// Parses `smtp://[user:password@]host[:port]` (default port 25). The
/// connection is plain SMTP, meant for a relay on the same host or network
/// (postfix, a local MTA) that takes care of onward delivery.
fn smtp_transport(url: &str) -> Result<AsyncSmtpTransport<Tokio1Executor>, MailError> {
    let bad = || MailError::Url(url.to_string());
    let rest = url.strip_prefix("smtp://").ok_or_else(bad)?;
    let (auth, hostport) = match rest.rsplit_once('@') {
        Some((a, h)) => (Some(a), h),
        None => (None, rest),
    };
    let hostport = hostport.trim_end_matches('/');
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad())?),
        None => (hostport, 25),
    };
    if host.is_empty() {
        return Err(bad());
    }
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host).port(port);
    if let Some(auth) = auth {
        let (user, pass) = auth.split_once(':').ok_or_else(bad)?;
        builder = builder.credentials(lettre::transport::smtp::authentication::Credentials::new(
            user.to_string(),
            pass.to_string(),
        ));
    }
    Ok(builder.build())
}

pub enum Mailer {
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        from: Mailbox,
    },
    Outbox {
        dir: PathBuf,
        from: Mailbox,
    },
}

impl Mailer {
    pub fn new(smtp_url: Option<&str>, from: &str, outbox: PathBuf) -> Result<Mailer, MailError> {
        let from: Mailbox = from
            .parse()
            .map_err(|_| MailError::Address(from.to_string()))?;
        match smtp_url {
            Some(url) => Ok(Mailer::Smtp {
                transport: smtp_transport(url)?,
                from,
            }),
            None => {
                std::fs::create_dir_all(&outbox)?;
                Ok(Mailer::Outbox { dir: outbox, from })
            }
        }
    }

    fn from(&self) -> &Mailbox {
        match self {
            Mailer::Smtp { from, .. } | Mailer::Outbox { from, .. } => from,
        }
    }

    /// Sends a plain-text email.
    pub async fn send(&self, to: &str, subject: &str, body: &str) -> Result<(), MailError> {
        let to: Mailbox = to.parse().map_err(|_| MailError::Address(to.to_string()))?;
        let message = Message::builder()
            .from(self.from().clone())
            .to(to.clone())
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body.to_string())?;
        match self {
            Mailer::Smtp { transport, .. } => {
                transport.send(message).await?;
            }
            Mailer::Outbox { dir, .. } => {
                let name = format!(
                    "{}-{}.eml",
                    time::OffsetDateTime::now_utc().unix_timestamp_nanos(),
                    crate::wire::new_id()
                );
                let tmp = dir.join(format!(".{name}"));
                tokio::fs::write(&tmp, message.formatted()).await?;
                tokio::fs::rename(&tmp, dir.join(name)).await?;
            }
        }
        tracing::info!(to = %to.email, subject, "email sent");
        Ok(())
    }
}
