//! An SVG plot of a sweep, written by hand (plain SVG text: no plotting
//! crate, no fonts): two panels side by side, relay CPU per packet and p99
//! one-way latency against load, one line per target (floor, legatod per
//! backend and call kind).
//!
//! Load is the floor-equivalent call count ([`Point::floor_calls`]: legs
//! sending / 2), so a conference of N members and a bridged call sit where
//! they move the same number of packets. Interleaved rounds plot the median
//! over the rounds of each load. Kinds without per-packet latency
//! (transcoded, conference) have no line in the latency panel.

use std::fmt::Write as _;

use crate::report::{Point, Spread};

/// One line of the plot.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// Points in load order.
    pub points: Vec<SeriesPoint>,
}

/// One load of a [`Series`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SeriesPoint {
    /// Floor-equivalent calls.
    pub load: f64,
    /// Relay CPU µs per forwarded packet (median over rounds).
    pub us_per_packet: f64,
    /// p99 one-way latency, µs (median over rounds), when measured.
    pub p99_us: Option<f64>,
}

/// Groups `points` into one series per (target, backend, call kind), with
/// the median over rounds (and phases) of each load.
pub fn series(points: &[Point]) -> Vec<Series> {
    let mut groups: Vec<(String, Vec<&Point>)> = Vec::new();
    for p in points {
        let label = if p.target == "floor" {
            "floor".to_owned()
        } else if p.call_kind == "relay" || p.call_kind.is_empty() {
            format!("{} {}", p.target, p.io)
        } else {
            format!("{} {} {}", p.target, p.io, p.call_kind)
        };
        match groups.iter_mut().find(|(l, _)| *l == label) {
            Some((_, g)) => g.push(p),
            None => groups.push((label, vec![p])),
        }
    }
    groups
        .into_iter()
        .map(|(label, group)| {
            let mut loads: Vec<usize> = group.iter().map(|p| load_of(p)).collect();
            loads.sort_unstable();
            // Loads within 1 % of a smaller one are the same point (a
            // conference of 3 rounds its legs up: 1,001 floor calls).
            loads.dedup_by(|b, a| *b * 100 <= *a * 101);
            let points = loads
                .into_iter()
                .filter_map(|load| {
                    let same = |p: &&&Point| {
                        let l = load_of(p);
                        l >= load && l * 100 <= load * 101
                    };
                    let at: Vec<&&Point> = group.iter().filter(same).collect();
                    let us: Vec<f64> = at.iter().map(|p| p.target_cpu.us_per_packet).collect();
                    let p99: Vec<f64> = at
                        .iter()
                        .filter_map(|p| p.latency.as_ref().map(|l| l.p99_us))
                        .collect();
                    Some(SeriesPoint {
                        load: load as f64,
                        us_per_packet: Spread::of(&us)?.median,
                        p99_us: Spread::of(&p99).map(|s| s.median),
                    })
                })
                .collect();
            Series { label, points }
        })
        .collect()
}

/// The load a point is plotted at (reports written before `floor_calls`
/// existed: its calls).
fn load_of(p: &Point) -> usize {
    if p.floor_calls == 0 {
        p.calls
    } else {
        p.floor_calls
    }
}

/// Plot size and panel layout, px.
const WIDTH: f64 = 1000.0;
const HEIGHT: f64 = 440.0;
const PANEL_W: f64 = 390.0;
const PANEL_H: f64 = 300.0;
const TOP: f64 = 50.0;
const LEFTS: [f64; 2] = [70.0, 560.0];
/// Line colours, in series order (cycled).
const COLOURS: [&str; 8] = [
    "#222222", "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf",
];

/// The SVG document: CPU per packet (linear) and p99 latency (log scale)
/// against load.
pub fn svg(series: &[Series], title: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{h}" viewBox="0 0 {WIDTH} {h}" font-family="sans-serif" font-size="12">"#,
        h = HEIGHT + 20.0 * series.len().div_ceil(2) as f64
    );
    let _ = writeln!(
        out,
        r#"<rect width="100%" height="100%" fill="white"/><text x="{}" y="24" text-anchor="middle" font-size="15">{}</text>"#,
        WIDTH / 2.0,
        escape(title)
    );
    let all = || series.iter().flat_map(|s| s.points.iter());
    let x_max = nice_max(all().map(|p| p.load).fold(0.0, f64::max));
    let us_max = nice_max(all().map(|p| p.us_per_packet).fold(0.0, f64::max));
    // Latency in ms on a log scale: one decade below the lowest value to
    // one above the highest.
    let lat: Vec<f64> = all().filter_map(|p| p.p99_us).map(|us| us / 1e3).collect();
    let lo = lat.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = lat.iter().copied().fold(0.0, f64::max);
    let (dec_lo, dec_hi) = if lat.is_empty() {
        (-1, 2)
    } else {
        (
            lo.max(1e-3).log10().floor() as i32,
            (hi.max(1e-3).log10().ceil() as i32).max(lo.max(1e-3).log10().floor() as i32 + 1),
        )
    };
    // Panel 0: CPU per packet.
    let left = LEFTS[0];
    frame(&mut out, left, "CPU per forwarded packet (µs)", x_max);
    for k in 0..=5 {
        let v = us_max * f64::from(k) / 5.0;
        let y = TOP + PANEL_H - PANEL_H * f64::from(k) / 5.0;
        tick_y(&mut out, left, y, &format!("{v:.1}"));
    }
    // Panel 1: p99 latency.
    let left1 = LEFTS[1];
    frame(&mut out, left1, "p99 one-way latency (ms, log)", x_max);
    let decades = f64::from(dec_hi - dec_lo);
    for d in dec_lo..=dec_hi {
        let y = TOP + PANEL_H - PANEL_H * f64::from(d - dec_lo) / decades;
        let v = 10f64.powi(d);
        let text = if d >= 0 {
            format!("{v:.0}")
        } else {
            format!("{v}")
        };
        tick_y(&mut out, left1, y, &text);
    }
    for (i, s) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let x = |load: f64, left: f64| left + PANEL_W * load / x_max;
        let cpu: Vec<(f64, f64)> = s
            .points
            .iter()
            .map(|p| {
                (
                    x(p.load, left),
                    TOP + PANEL_H - PANEL_H * p.us_per_packet / us_max,
                )
            })
            .collect();
        polyline(&mut out, &cpu, colour);
        let latency: Vec<(f64, f64)> = s
            .points
            .iter()
            .filter_map(|p| {
                let ms = (p.p99_us? / 1e3).max(10f64.powi(dec_lo));
                let y = TOP + PANEL_H - PANEL_H * (ms.log10() - f64::from(dec_lo)) / decades;
                Some((x(p.load, left1), y))
            })
            .collect();
        polyline(&mut out, &latency, colour);
        // Legend, two columns under the panels.
        let lx = LEFTS[i % 2];
        let ly = TOP + PANEL_H + 55.0 + 20.0 * (i / 2) as f64;
        let _ = writeln!(
            out,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{colour}" stroke-width="2"/><text x="{}" y="{}">{}</text>"#,
            lx + 24.0,
            lx + 30.0,
            ly + 4.0,
            escape(&s.label)
        );
    }
    out.push_str("</svg>\n");
    out
}

/// A panel's box, title and x axis (0..`x_max` floor-equivalent calls).
fn frame(out: &mut String, left: f64, title: &str, x_max: f64) {
    let _ = writeln!(
        out,
        r##"<rect x="{left}" y="{TOP}" width="{PANEL_W}" height="{PANEL_H}" fill="none" stroke="#888"/><text x="{}" y="{}" text-anchor="middle">{}</text>"##,
        left + PANEL_W / 2.0,
        TOP - 8.0,
        escape(title)
    );
    for k in 0..=5 {
        let v = x_max * f64::from(k) / 5.0;
        let x = left + PANEL_W * f64::from(k) / 5.0;
        let _ = writeln!(
            out,
            r##"<line x1="{x}" y1="{y0}" x2="{x}" y2="{y1}" stroke="#ddd"/><text x="{x}" y="{ty}" text-anchor="middle">{v:.0}</text>"##,
            y0 = TOP,
            y1 = TOP + PANEL_H,
            ty = TOP + PANEL_H + 16.0
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle">load (calls; conferences: legs / 2)</text>"#,
        left + PANEL_W / 2.0,
        TOP + PANEL_H + 34.0
    );
}

fn tick_y(out: &mut String, left: f64, y: f64, text: &str) {
    let _ = writeln!(
        out,
        r##"<line x1="{left}" y1="{y}" x2="{x2}" y2="{y}" stroke="#ddd"/><text x="{tx}" y="{ty}" text-anchor="end">{text}</text>"##,
        x2 = left + PANEL_W,
        tx = left - 6.0,
        ty = y + 4.0,
    );
}

fn polyline(out: &mut String, points: &[(f64, f64)], colour: &str) {
    if points.is_empty() {
        return;
    }
    let mut coords = String::new();
    for (x, y) in points {
        let _ = write!(coords, "{x:.1},{y:.1} ");
    }
    let _ = writeln!(
        out,
        r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"#,
        coords.trim_end()
    );
    for (x, y) in points {
        let _ = writeln!(
            out,
            r#"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="{colour}"/>"#
        );
    }
}

/// The smallest of 1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 × 10^k at or above
/// `v` (1 for nothing).
fn nice_max(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let base = 10f64.powf(v.log10().floor());
    [1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0]
        .iter()
        .map(|m| m * base)
        .find(|&m| m >= v)
        .unwrap_or(10.0 * base)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Cpu, Latency};

    fn point(target: &str, kind: &str, load: usize, us: f64, p99: Option<f64>) -> Point {
        Point {
            target: target.to_owned(),
            io: "io_uring".to_owned(),
            call_kind: kind.to_owned(),
            calls: load,
            floor_calls: load,
            target_cpu: Cpu {
                us_per_packet: us,
                ..Cpu::default()
            },
            latency: p99.map(|p99_us| Latency {
                p99_us,
                ..Latency::default()
            }),
            ..Point::default()
        }
    }

    #[test]
    fn one_series_per_target_with_medians() {
        let points = [
            point("floor", "relay", 100, 4.0, Some(100.0)),
            point("legatod", "relay", 100, 5.0, Some(150.0)),
            point("legatod", "pcmu-pcma", 100, 6.0, None),
            point("floor", "relay", 100, 6.0, Some(300.0)),
            point("floor", "relay", 100, 5.0, Some(200.0)),
            point("floor", "relay", 500, 4.5, Some(900.0)),
            // Within 1 % of 500: the same load.
            point("floor", "relay", 501, 4.5, Some(900.0)),
        ];
        let s = series(&points);
        let labels: Vec<&str> = s.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(
            labels,
            ["floor", "legatod io_uring", "legatod io_uring pcmu-pcma"]
        );
        assert_eq!(s[0].points.len(), 2);
        assert_eq!(s[0].points[0].us_per_packet, 5.0);
        assert_eq!(s[0].points[0].p99_us, Some(200.0));
        assert_eq!(s[2].points[0].p99_us, None);
        let doc = svg(&s, "sweep <test>");
        assert!(doc.starts_with("<svg"), "{doc}");
        assert!(doc.trim_end().ends_with("</svg>"));
        assert!(doc.contains("sweep &lt;test&gt;"));
        // Three CPU lines, two latency lines.
        assert_eq!(doc.matches("<polyline").count(), 5);
    }

    #[test]
    fn nice_maxima() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(4.3), 5.0);
        assert_eq!(nice_max(1001.0), 1200.0);
        assert_eq!(nice_max(2100.0), 2500.0);
        assert_eq!(nice_max(8.5), 10.0);
    }
}
