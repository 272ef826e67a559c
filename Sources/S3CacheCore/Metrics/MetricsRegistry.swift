import CoreMetrics
import Prometheus

/// Creates swift-metrics instruments backed by one Prometheus registry, each with its help text.
///
/// Going through the registry rather than `PrometheusMetricsFactory` is what gives every metric
/// a `# HELP` line; the code that records still speaks swift-metrics (`Counter`, `Timer`,
/// `Meter`). The registry is injected, never the global `MetricsSystem`, so tests each get
/// their own.
struct MetricsRegistry: Sendable {
    let prometheus: PrometheusCollectorRegistry

    func counter(_ name: String, help: String, labels: [(String, String)] = []) -> CoreMetrics.Counter {
        CoreMetrics.Counter(label: name, dimensions: labels, handler: prometheus.makeCounter(descriptor: Self.descriptor(name, help), labels: labels))
    }

    /// A histogram of durations in seconds.
    func timer(_ name: String, help: String, labels: [(String, String)] = [], buckets: [Duration]) -> CoreMetrics.Timer {
        CoreMetrics.Timer(
            label: name, dimensions: labels,
            handler: prometheus.makeDurationHistogram(descriptor: Self.descriptor(name, help), labels: labels, buckets: buckets))
    }

    func gauge(_ name: String, help: String, labels: [(String, String)] = []) -> CoreMetrics.Meter {
        CoreMetrics.Meter(label: name, dimensions: labels, handler: prometheus.makeGauge(descriptor: Self.descriptor(name, help), labels: labels))
    }

    /// Our names already carry their unit suffix (`_total`, `_seconds`, `_bytes`).
    private static func descriptor(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

    /// The text exposition format, version 0.0.4.
    func exposition() -> [UInt8] {
        prometheus.emitToBuffer()
    }

    /// Latency buckets from half a millisecond (a cache hit) to 30 s (a slow S3 transfer).
    static let latencyBuckets: [Duration] = [
        .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
        .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
        .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10), .seconds(30),
    ]
}
