//! A real nginx (Debian's package, `make test` installs it) in front of a paywatch, configured
//! as nginx's docs show for a proxied application: `X-Forwarded-For
//! $proxy_add_x_forwarded_for`, every other client header passed through as sent.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Nginx {
    pub base: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Nginx {
    /// nginx on a free loopback port, proxying everything to `upstream` (`host:port`).
    pub async fn start(upstream: &str) -> Nginx {
        let binary =
            which("nginx").expect("nginx is not installed: `make test` installs it (scripts/ensure-debian.sh)");
        let dir = tempfile::tempdir().unwrap();
        // Workers may run as another user when the test runs as root: they need the dir too.
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        let port = paywatch::devnet::anvil::free_port().unwrap();
        let d = dir.path().display();
        let conf = format!(
            "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
               upstream paywatch {{ server {upstream}; keepalive 16; }}\n\
               server {{\n    listen 127.0.0.1:{port};\n    location / {{\n      proxy_pass http://paywatch;\n\
                 proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n      proxy_set_header Host $host;\n\
                 proxy_set_header X-Real-IP $remote_addr;\n\
                 proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n    }}\n  }}\n}}\n"
        );
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, conf).unwrap();
        let child = Command::new(binary)
            .args(["-e", &format!("{d}/error.log"), "-p", &d.to_string(), "-c"])
            .arg(&path)
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nginx starts");
        let started = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            let log = std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
            assert!(started.elapsed() < Duration::from_secs(10), "nginx never listened: {log}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Nginx { base: format!("http://127.0.0.1:{port}"), child, _dir: dir }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: the master stops its workers (SIGKILL would leave them running).
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}

fn which(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    ["/usr/sbin", "/usr/local/sbin"]
        .into_iter()
        .map(std::path::PathBuf::from)
        .chain(std::env::split_paths(&path))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}
