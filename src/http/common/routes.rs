//! What the shared layer knows of paths: the ones open without a token ([`is_open`]), and which
//! error envelope a path answers in ([`Shape::of`]), for the answers no area's handler
//! gives (no route, wrong method, a path that is no UTF-8, authentication) and for
//! the documentation of the authentication answers.

/// Paths open to everyone: probes of load balancers, Prometheus scrapes, the API's
/// description.
pub const OPEN: [&str; 4] = ["/health", "/ready", "/metrics", "/openapi.json"];

/// The web console's page and its static assets (no data: the page asks for a token
/// before it reads anything guarded).
const CONSOLE_PAGE: [&str; 2] = ["/ui", "/ui/"];
const CONSOLE_ASSETS: &str = "/ui/assets/";

/// Whether `path` (concrete, or an OpenAPI template) is open without a token: one of
/// [`OPEN`], or the console's page and assets.
pub fn is_open(path: &str) -> bool {
    OPEN.contains(&path) || CONSOLE_PAGE.contains(&path) || path.starts_with(CONSOLE_ASSETS)
}

/// The paths answered in Prometheus' envelope: the Prometheus-compatible discovery's
/// routes (a test of that area keeps the two in step).
const PROMETHEUS: [&str; 3] = ["/api/v1/series", "/api/v1/labels", "/api/v1/metadata"];
const PROMETHEUS_LABEL: &str = "/api/v1/label/";

/// The error envelope of a path, by the renderer that writes it ([`super::render`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// The envelope ([`super::envelope`]): `/v1/*` and `/log/level`.
    Envelope,
    /// Prometheus': its discovery paths.
    Prometheus,
    /// The Metric Service's ([`super::metric_error`]): the other `/api/*`, and `/ws/*`.
    MetricService,
    /// meta-core's ([`super::json_error`]): everything else.
    JsonError,
}

impl Shape {
    /// The envelope `path` answers in.
    pub fn of(path: &str) -> Shape {
        if path.starts_with("/v1/") || path == "/log/level" {
            Shape::Envelope
        } else if PROMETHEUS.contains(&path) || path.starts_with(PROMETHEUS_LABEL) {
            Shape::Prometheus
        } else if path.starts_with("/api/") || path.starts_with("/ws/") {
            Shape::MetricService
        } else {
            Shape::JsonError
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_of_paths() {
        assert_eq!(Shape::of("/v1/load/stats"), Shape::Envelope);
        assert_eq!(Shape::of("/log/level"), Shape::Envelope);
        assert_eq!(Shape::of("/api/v1/series"), Shape::Prometheus);
        assert_eq!(Shape::of("/api/v1/label/x/values"), Shape::Prometheus);
        assert_eq!(Shape::of("/api/v1/metrics/batch"), Shape::MetricService);
        assert_eq!(Shape::of("/ws/metrics/x"), Shape::MetricService);
        assert_eq!(Shape::of("/meta/x"), Shape::JsonError);
        assert_eq!(Shape::of("/v1"), Shape::JsonError);
    }

    #[test]
    fn open_paths() {
        for open in [
            "/health",
            "/ui",
            "/ui/",
            "/ui/assets/app.js",
            "/ui/assets/{file}",
        ] {
            assert!(is_open(open), "{open}");
        }
        for guarded in ["/status", "/ui/api/cluster", "/uix", "/api/v1/runs"] {
            assert!(!is_open(guarded), "{guarded}");
        }
    }
}
