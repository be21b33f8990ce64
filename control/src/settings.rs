//! Settings of `hoody-api serve`: each one a flag, a `HOODY_*` environment
//! variable, or a key of the optional TOML file, in that order of precedence.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use serde::Deserialize;

/// Flags and environment variables. Every field is optional so that the
/// TOML file and the defaults can fill what the command line leaves out.
#[derive(Args, Debug, Default, Clone)]
pub struct ServeArgs {
    /// TOML file with any of the settings below (keys are the flag names with `_`).
    #[arg(long, env = "HOODY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory for the sled store, keys, outbox and container state [default: ./data]
    #[arg(long, env = "HOODY_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address of the REST API [default: 127.0.0.1:8080]
    #[arg(long, env = "HOODY_API_LISTEN")]
    pub api_listen: Option<SocketAddr>,
    /// Address of the HTTP proxy for container traffic [default: 127.0.0.1:8000]
    #[arg(long, env = "HOODY_PROXY_LISTEN")]
    pub proxy_listen: Option<SocketAddr>,
    /// Base domain of container and alias hostnames [default: localhost]
    #[arg(long, env = "HOODY_BASE_DOMAIN")]
    pub base_domain: Option<String>,
    /// Name of this node, the second label of hostnames [default: local]
    #[arg(long, env = "HOODY_NODE_NAME")]
    pub node_name: Option<String>,
    /// Public URL of the API, used in email links [default: http://<api-listen>]
    #[arg(long, env = "HOODY_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// SMTP server URL (smtp://user:pass@host:port); without it emails go to <data-dir>/outbox
    #[arg(long, env = "HOODY_SMTP_URL")]
    pub smtp_url: Option<String>,
    /// Sender address of outgoing emails [default: hoody@localhost]
    #[arg(long, env = "HOODY_MAIL_FROM")]
    pub mail_from: Option<String>,
    /// Log format: json or pretty [default: json]
    #[arg(long, env = "HOODY_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Signups allowed per client IP per hour [default: 5]
    #[arg(long, env = "HOODY_RATE_SIGNUP_PER_HOUR")]
    pub rate_signup_per_hour: Option<u32>,
    /// Failed logins allowed per client IP per 30 minutes [default: 1000]
    #[arg(long, env = "HOODY_RATE_LOGIN_FAILURES")]
    pub rate_login_failures: Option<u32>,
    /// Token refreshes allowed per client IP per 30 minutes [default: 30]
    #[arg(long, env = "HOODY_RATE_REFRESH")]
    pub rate_refresh: Option<u32>,
    /// Requests per minute per authenticated credential [default: 1000]
    #[arg(long, env = "HOODY_RATE_PER_TOKEN")]
    pub rate_per_token: Option<u32>,
    /// Requests per minute per IP without credentials [default: 100]
    #[arg(long, env = "HOODY_RATE_PER_IP")]
    pub rate_per_ip: Option<u32>,
    /// Length in seconds of the general per-token and per-IP windows [default: 60]
    #[arg(long, env = "HOODY_RATE_WINDOW_SECS")]
    pub rate_window_secs: Option<u64>,
    /// Days of activity log kept [default: 90]
    #[arg(long, env = "HOODY_ACTIVITY_RETENTION_DAYS")]
    pub activity_retention_days: Option<u32>,
    /// Reject proxy-document writes without If-Match (428) [default: false]
    #[arg(long, env = "HOODY_REQUIRE_IF_MATCH")]
    pub require_if_match: Option<bool>,
    /// Seconds in-flight requests get to finish at shutdown [default: 10]
    #[arg(long, env = "HOODY_SHUTDOWN_GRACE_SECS")]
    pub shutdown_grace_secs: Option<u64>,
    /// Host bridge the containers attach to [default: hoody0]
    #[arg(long, env = "HOODY_RUNTIME_BRIDGE")]
    pub runtime_bridge: Option<String>,
    /// Private IPv4 subnet of the container bridge [default: 10.213.0.0/24]
    #[arg(long, env = "HOODY_RUNTIME_SUBNET")]
    pub runtime_subnet: Option<ipnet::Ipv4Net>,
}

/// The same keys, as read from the TOML file.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    data_dir: Option<PathBuf>,
    api_listen: Option<SocketAddr>,
    proxy_listen: Option<SocketAddr>,
    base_domain: Option<String>,
    node_name: Option<String>,
    public_url: Option<String>,
    smtp_url: Option<String>,
    mail_from: Option<String>,
    log_format: Option<String>,
    rate_signup_per_hour: Option<u32>,
    rate_login_failures: Option<u32>,
    rate_refresh: Option<u32>,
    rate_per_token: Option<u32>,
    rate_per_ip: Option<u32>,
    rate_window_secs: Option<u64>,
    activity_retention_days: Option<u32>,
    require_if_match: Option<bool>,
    shutdown_grace_secs: Option<u64>,
    runtime_bridge: Option<String>,
    runtime_subnet: Option<ipnet::Ipv4Net>,
}

/// Request budgets; each is a count per window.
#[derive(Debug, Clone)]
pub struct RateLimits {
    pub signup_per_hour: u32,
    pub login_failures_per_30min: u32,
    pub refresh_per_30min: u32,
    pub per_token_per_min: u32,
    pub per_ip_per_min: u32,
    /// The "minute" of the two general budgets, in seconds.
    pub window_secs: u64,
}

/// Resolved settings: what the running server uses.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub api_listen: SocketAddr,
    pub proxy_listen: SocketAddr,
    pub base_domain: String,
    pub node_name: String,
    pub public_url: String,
    pub smtp_url: Option<String>,
    pub mail_from: String,
    pub log_format: String,
    pub rate: RateLimits,
    pub activity_retention_days: u32,
    pub require_if_match: bool,
    pub shutdown_grace_secs: u64,
    pub runtime_bridge: String,
    pub runtime_subnet: ipnet::Ipv4Net,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid settings file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("invalid setting {0}")]
    Invalid(String),
}

impl Settings {
    /// Flags and env first, then the file, then defaults.
    pub fn resolve(args: &ServeArgs) -> Result<Settings, SettingsError> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
                    path: path.clone(),
                    source,
                })?;
                toml::from_str(&text).map_err(|source| SettingsError::Parse {
                    path: path.clone(),
                    source,
                })?
            }
            None => FileSettings::default(),
        };
        let a = args.clone();
        let api_listen = a
            .api_listen
            .or(file.api_listen)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
        let log_format = a
            .log_format
            .or(file.log_format)
            .unwrap_or_else(|| "json".into());
        if log_format != "json" && log_format != "pretty" {
            return Err(SettingsError::Invalid(format!(
                "log_format {log_format:?}: expected json or pretty"
            )));
        }
        Ok(Settings {
            data_dir: a
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("./data")),
            api_listen,
            proxy_listen: a
                .proxy_listen
                .or(file.proxy_listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8000))),
            base_domain: a
                .base_domain
                .or(file.base_domain)
                .unwrap_or_else(|| "localhost".into()),
            node_name: a
                .node_name
                .or(file.node_name)
                .unwrap_or_else(|| "local".into()),
            public_url: a
                .public_url
                .or(file.public_url)
                .unwrap_or_else(|| format!("http://{api_listen}")),
            smtp_url: a.smtp_url.or(file.smtp_url),
            mail_from: a
                .mail_from
                .or(file.mail_from)
                .unwrap_or_else(|| "hoody@localhost".into()),
            log_format,
            rate: RateLimits {
                signup_per_hour: a
                    .rate_signup_per_hour
                    .or(file.rate_signup_per_hour)
                    .unwrap_or(5),
                login_failures_per_30min: a
                    .rate_login_failures
                    .or(file.rate_login_failures)
                    .unwrap_or(1000),
                refresh_per_30min: a.rate_refresh.or(file.rate_refresh).unwrap_or(30),
                per_token_per_min: a.rate_per_token.or(file.rate_per_token).unwrap_or(1000),
                per_ip_per_min: a.rate_per_ip.or(file.rate_per_ip).unwrap_or(100),
                window_secs: a
                    .rate_window_secs
                    .or(file.rate_window_secs)
                    .unwrap_or(60)
                    .max(1),
            },
            activity_retention_days: a
                .activity_retention_days
                .or(file.activity_retention_days)
                .unwrap_or(90),
            require_if_match: a
                .require_if_match
                .or(file.require_if_match)
                .unwrap_or(false),
            shutdown_grace_secs: a
                .shutdown_grace_secs
                .or(file.shutdown_grace_secs)
                .unwrap_or(10),
            runtime_bridge: a
                .runtime_bridge
                .or(file.runtime_bridge)
                .unwrap_or_else(|| "hoody0".into()),
            runtime_subnet: a.runtime_subnet.or(file.runtime_subnet).unwrap_or_else(|| {
                ipnet::Ipv4Net::new(std::net::Ipv4Addr::new(10, 213, 0, 0), 24).unwrap_or_default()
            }),
        })
    }

    /// Settings for tests: everything default but the data directory.
    pub fn for_data_dir(dir: impl Into<PathBuf>) -> Settings {
        let args = ServeArgs {
            data_dir: Some(dir.into()),
            ..ServeArgs::default()
        };
        // Defaults alone cannot fail to resolve.
        Self::resolve(&args).unwrap_or_else(|e| unreachable!("default settings: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_file_and_file_over_defaults() {
        let dir = std::env::temp_dir().join(format!("hoody-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("hoody.toml");
        std::fs::write(
            &path,
            "node_name = \"edge\"\nbase_domain = \"example.test\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path),
            base_domain: Some("flag.test".into()),
            ..ServeArgs::default()
        };
        let s = Settings::resolve(&args).unwrap();
        assert_eq!(s.base_domain, "flag.test");
        assert_eq!(s.node_name, "edge");
        assert_eq!(s.api_listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.rate.signup_per_hour, 5);
    }

    #[test]
    fn unknown_file_keys_are_rejected() {
        let dir = std::env::temp_dir().join(format!("hoody-settings2-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.toml");
        std::fs::write(&path, "nodename = \"x\"\n").unwrap();
        let args = ServeArgs {
            config: Some(path),
            ..ServeArgs::default()
        };
        assert!(matches!(
            Settings::resolve(&args),
            Err(SettingsError::Parse { .. })
        ));
    }
}
