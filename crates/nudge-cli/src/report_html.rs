//! `nudge report --format html`: one self-contained page (no network: the report's JSON, the
//! vendored Chart.js and the page's script are inside it) with the triggers table, a chart per
//! funnel and the experiments' intervals and verdicts. The page and its script are
//! `web/report/`; the library `web/vendor/chartjs/`.

use nudge_core::insights::Report;

const PAGE: &str = include_str!("../../../web/report/report.html");
const CHART_JS: &str = include_str!("../../../web/vendor/chartjs/chart.umd.min.js");
const SCRIPT: &str = include_str!("../../../web/report/report.js");

/// The page showing `report`.
pub fn page(report: &Report) -> Result<String, serde_json::Error> {
    // Inside <script>, a `</script>` or `<!--` in a string would end or bend the element;
    // `<` written as `\u003c` is the same JSON and cannot.
    let json = serde_json::to_string(report)?.replace('<', "\\u003c");
    let mut out =
        String::with_capacity(PAGE.len() + CHART_JS.len() + SCRIPT.len() + json.len() + 200);
    out.push_str(PAGE);
    out.push_str("<script id=\"report-data\" type=\"application/json\">");
    out.push_str(&json);
    out.push_str("</script>\n<script>");
    out.push_str(CHART_JS);
    out.push_str("</script>\n<script>");
    out.push_str(SCRIPT);
    out.push_str("</script>\n</body>\n</html>\n");
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_embedded_scripts_cannot_end_their_element_early() {
        for script in [super::CHART_JS, super::SCRIPT] {
            assert!(!script.to_ascii_lowercase().contains("</script"));
        }
        assert!(super::PAGE.trim_end().ends_with("</main>"));
    }
}
