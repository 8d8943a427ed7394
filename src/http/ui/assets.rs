//! The console's files, embedded in the binary at compile time (`include_bytes!`): the
//! page, its ES modules, its style sheet, and the charting library (Chart.js 3.9.1 as
//! Debian's `libjs-chart.js` ships it, unmodified) with its licence. Each is
//! gzip-compressed once, the first time a client that accepts gzip asks for it.

use std::sync::OnceLock;

use crate::http::common::gzip;

/// One embedded file.
pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub bytes: &'static [u8],
    gzip: OnceLock<Vec<u8>>,
}

impl Asset {
    const fn new(name: &'static str, content_type: &'static str, bytes: &'static [u8]) -> Asset {
        Asset {
            name,
            content_type,
            bytes,
            gzip: OnceLock::new(),
        }
    }

    /// The file gzip-compressed (computed once).
    pub fn gzipped(&self) -> Vec<u8> {
        self.gzip
            .get_or_init(|| gzip::compress(self.bytes, 9))
            .clone()
    }
}

/// Revalidation tag of every asset: they change only with the binary.
pub const ETAG: &str = concat!("\"metacenter-", env!("CARGO_PKG_VERSION"), "\"");

const JS: &str = "text/javascript; charset=utf-8";

/// The page, served at `/ui/`.
pub static INDEX: Asset = Asset::new(
    "index.html",
    "text/html; charset=utf-8",
    include_bytes!("assets/index.html"),
);

/// Everything under `/ui/assets/`.
pub static ASSETS: [Asset; 12] = [
    Asset::new("app.js", JS, include_bytes!("assets/app.js")),
    Asset::new("api.js", JS, include_bytes!("assets/api.js")),
    Asset::new("cluster.js", JS, include_bytes!("assets/cluster.js")),
    Asset::new("services.js", JS, include_bytes!("assets/services.js")),
    Asset::new("load.js", JS, include_bytes!("assets/load.js")),
    Asset::new("runs.js", JS, include_bytes!("assets/runs.js")),
    Asset::new("run.js", JS, include_bytes!("assets/run.js")),
    Asset::new("search.js", JS, include_bytes!("assets/search.js")),
    Asset::new(
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("assets/style.css"),
    ),
    Asset::new("chart.min.js", JS, include_bytes!("assets/chart.min.js")),
    Asset::new(
        "chart.js.LICENSE",
        "text/plain; charset=utf-8",
        include_bytes!("assets/chart.js.LICENSE"),
    ),
    Asset::new(
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("assets/favicon.svg"),
    ),
];

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn assets_round_trip_through_gzip_and_stay_small() {
        let mut total_gz = 0;
        for a in ASSETS.iter().chain([&INDEX]) {
            let gz = a.gzipped();
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(gz.as_slice())
                .read_to_end(&mut back)
                .expect("gunzip");
            assert_eq!(back, a.bytes, "{}", a.name);
            total_gz += gz.len();
        }
        assert!(
            total_gz <= 300 * 1024,
            "page assets are {total_gz} bytes gzipped"
        );
    }
}
