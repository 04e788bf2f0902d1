import Host
import Testing

@Suite("Prometheus text exposition")
struct MetricsTests {
    @Test("a family renders HELP, TYPE and samples with escaped label values")
    func rendersAndEscapes() {
        let family = MetricFamily(
            name: "tenki_runner_queue_depth", help: "Jobs waiting\nper workspace", kind: .gauge,
            samples: [
                .init(labels: [("workspace", #"a"b\c"#), ("sku", "x64\n2c")], value: 3),
                .init(labels: [], value: 0.25),
            ])
        #expect(
            family.text == """
                # HELP tenki_runner_queue_depth Jobs waiting\\nper workspace
                # TYPE tenki_runner_queue_depth gauge
                tenki_runner_queue_depth{workspace="a\\"b\\\\c",sku="x64\\n2c"} 3
                tenki_runner_queue_depth 0.25

                """)
    }

    @Test("summary suffixes and special values", arguments: [(Double.nan, "NaN"), (.infinity, "+Inf"), (-.infinity, "-Inf"), (1e20, "1e+20")])
    func specialValues(_ value: Double, _ text: String) {
        let family = MetricFamily(name: "x", help: "h", kind: .summary, samples: [.init(suffix: "_count", value: value)])
        #expect(family.text.hasSuffix("x_count \(text)\n"))
    }
}
