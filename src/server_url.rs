//! Where the running server listens, left in the data folder for `spotter chat`.
//!
//! `serve` binds `server.listen` (or `SPOTTER_LISTEN`, port 0 included) and writes the address it
//! actually got to `<data_dir>/server-url`, next to the API token. `spotter chat` on the same
//! machine reads it, so it finds the server whatever address it was started on; `--url` still
//! wins, and without the file `server.public_url` is used.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub const SERVER_URL_FILE: &str = "server-url";

pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(SERVER_URL_FILE)
}

/// The URL a client on this machine uses for a bound address: an unspecified address (`0.0.0.0`,
/// `[::]`) is reached through loopback.
pub fn local_url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

/// Writes the file (whole, through a rename, so a reader never sees half a URL). A failure is
/// logged, not fatal: the server works without it, only `chat` then needs `--url`.
pub fn write(data_dir: &Path, addr: SocketAddr) {
    let target = path(data_dir);
    let tmp = data_dir.join(format!(".{SERVER_URL_FILE}.{}", std::process::id()));
    let result = std::fs::create_dir_all(data_dir)
        .and_then(|_| std::fs::write(&tmp, format!("{}\n", local_url(addr))))
        .and_then(|_| std::fs::rename(&tmp, &target));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        tracing::warn!(
            "cannot write {} ({e}); `spotter chat` will need --url",
            target.display()
        );
    }
}

/// The URL `serve` left, if any.
///
/// # Errors
/// The file exists but cannot be read.
pub fn read(data_dir: &Path) -> anyhow::Result<Option<String>> {
    let p = path(data_dir);
    match std::fs::read_to_string(&p) {
        Ok(s) if !s.trim().is_empty() => Ok(Some(s.trim().to_string())),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow::Error::new(e).context(format!("cannot read {}", p.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_addresses_are_reached_through_loopback() {
        assert_eq!(
            local_url("0.0.0.0:9090".parse().unwrap()),
            "http://127.0.0.1:9090"
        );
        assert_eq!(local_url("[::]:9090".parse().unwrap()), "http://[::1]:9090");
        assert_eq!(
            local_url("10.1.2.3:80".parse().unwrap()),
            "http://10.1.2.3:80"
        );
    }
}
