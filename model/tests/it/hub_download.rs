//! The Hugging Face download path, for real, against a local HTTP server that answers like the hub
//! (`HF_ENDPOINT`): repository listing, `resolve` URLs with ranges, etags and commit headers. It
//! serves the sd1 fixture folder; a half-downloaded file is resumed with a Range request, the
//! cache gets the hub's layout, and the downloaded snapshot loads.

use model::device::{self, DeviceChoice};
use model::diffusers::DType;
use model::diffusers::common::folder::{self, Precision};
use model::diffusers::stable_diffusion::StableDiffusion;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const REPO: &str = "tiny/sd1";
const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sd/sd1")
}

fn files(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.path().is_dir() {
            files(root, &e.path(), out);
        } else {
            out.push(e.path().strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/"));
        }
    }
}

fn etag(name: &str) -> String {
    // Any stable per-file id will do; the hub uses the content's sha256 for LFS files.
    format!("{:016x}", name.bytes().fold(0xcbf29ce484222325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100000001b3)))
}

/// (path, range) of every request the fake hub served.
type RequestLog = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// Serves the fixture like the hub; records every request in `log`.
fn serve(log: RequestLog) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                let mut range = None;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap() == 0 || h == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':')
                        && k.eq_ignore_ascii_case("range")
                    {
                        range = Some(v.trim().to_string());
                    }
                }
                log.lock().unwrap().push((path.clone(), range.clone()));
                let mut stream = stream;
                let root = fixture();
                let respond =
                    |stream: &mut std::net::TcpStream, status: &str, headers: &[(String, String)], body: &[u8]| {
                        let mut head =
                            format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
                        for (k, v) in headers {
                            head.push_str(&format!("{k}: {v}\r\n"));
                        }
                        head.push_str("\r\n");
                        let _ = stream.write_all(head.as_bytes());
                        let _ = stream.write_all(body);
                    };
                if path == format!("/api/models/{REPO}/revision/main") {
                    let mut names = Vec::new();
                    files(&root, &root, &mut names);
                    names.retain(|n| !n.starts_with("expected"));
                    let siblings: Vec<_> = names.iter().map(|n| serde_json::json!({ "rfilename": n })).collect();
                    let body = serde_json::json!({ "id": REPO, "sha": COMMIT, "siblings": siblings }).to_string();
                    respond(
                        &mut stream,
                        "200 OK",
                        &[("Content-Type".into(), "application/json".into())],
                        body.as_bytes(),
                    );
                    return;
                }
                let prefix = format!("/{REPO}/resolve/main/");
                let Some(name) = path.strip_prefix(&prefix) else {
                    respond(&mut stream, "404 Not Found", &[], b"not found");
                    return;
                };
                let Ok(mut f) = std::fs::File::open(root.join(name)) else {
                    respond(&mut stream, "404 Not Found", &[], b"not found");
                    return;
                };
                let mut data = Vec::new();
                f.read_to_end(&mut data).unwrap();
                let size = data.len();
                let (start, end) = match range.as_deref().and_then(|r| r.strip_prefix("bytes=")) {
                    Some(r) => {
                        let (a, b) = r.split_once('-').unwrap();
                        let a: usize = a.parse().unwrap();
                        let b: usize = if b.is_empty() { size - 1 } else { b.parse().unwrap() };
                        (a, b.min(size - 1))
                    }
                    None => (0, size - 1),
                };
                let headers = vec![
                    ("X-Repo-Commit".to_string(), COMMIT.to_string()),
                    ("ETag".to_string(), format!("\"{}\"", etag(name))),
                    ("Content-Range".to_string(), format!("bytes {start}-{end}/{size}")),
                ];
                respond(&mut stream, "206 Partial Content", &headers, &data[start..=end]);
            });
        }
    });
    format!("http://{addr}")
}

#[test]
fn downloads_resumes_and_loads_from_the_hub_layout() {
    let home = std::env::temp_dir().join(format!("vidplay-hf-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    let log = Arc::new(Mutex::new(Vec::new()));
    let endpoint = serve(log.clone());
    // The cache and the server are given, not set in the environment: other tests of this binary
    // run beside this one.
    let hub = folder::Hub { cache: home.join("hub"), endpoint: Some(endpoint) };

    // Half of the UNet is already there from an interrupted download.
    let unet_name = "unet/diffusion_pytorch_model.safetensors";
    let unet = std::fs::read(fixture().join(unet_name)).unwrap();
    let blobs = home.join("hub").join("models--tiny--sd1").join("blobs");
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::write(blobs.join(format!("{}.part", etag(unet_name))), &unet[..unet.len() / 2]).unwrap();

    assert!(hub.cached_snapshot(REPO).is_none());
    let snapshot = hub.resolve(REPO, Precision::F32, true).unwrap_or_else(|e| panic!("{e}"));
    assert!(snapshot.ends_with(format!("snapshots/{COMMIT}")), "{}", snapshot.display());
    assert_eq!(std::fs::read(snapshot.join(unet_name)).unwrap(), unet, "resumed file is whole");
    let requests = log.lock().unwrap().clone();
    let resumed = format!("bytes={}-", unet.len() / 2);
    assert!(
        requests.iter().any(|(p, r)| p.ends_with(unet_name) && r.as_deref() == Some(resumed.as_str())),
        "no resume request in {requests:?}"
    );
    // Only what the pipeline needs: no fixture outputs.
    assert!(!requests.iter().any(|(p, _)| p.contains("expected")));

    // Found in the cache now (no download), listed as installed, and it loads.
    let n = log.lock().unwrap().len();
    assert_eq!(hub.resolve(REPO, Precision::F32, false).unwrap(), snapshot);
    assert_eq!(log.lock().unwrap().len(), n);
    let installed = folder::installed_in(&hub, None);
    assert!(installed.iter().any(|m| m.name == REPO && m.class_name == "StableDiffusionPipeline"), "{installed:?}");
    let device = device::open(DeviceChoice::Cpu).unwrap().device;
    StableDiffusion::load(&snapshot, &device, DType::F32).unwrap_or_else(|e| panic!("{e}"));

    // A repo that does not exist on the "hub": a clear error.
    let e = hub.resolve("tiny/missing", Precision::F32, true).unwrap_err().to_string();
    assert!(e.contains("tiny/missing"), "{e}");
    let _ = std::fs::remove_dir_all(&home);
}
