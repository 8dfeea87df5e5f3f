//! Column charts as inline SVG, shared by the HTML reports and the console so a chart looks the same in both.
//!
//! Only presentation attributes are used (no `style` attribute, no script), so the drawings render under the
//! console's `style-src 'self'` policy as well as in a standalone file. Every label is escaped here.

use std::fmt::Write;

const W: f64 = 720.0;
const H: f64 = 260.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 56.0;

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A round upper bound for the y axis and its tick step.
fn axis(max: f64) -> (f64, f64) {
    if !(max.is_finite() && max > 0.0 && max < 1e300) {
        return (1.0, 0.25);
    }
    let raw = max / 4.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    ((max / step).ceil() * step, step)
}

fn tick_text(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e9 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// One group of columns per label: each series gives one value per label (non-finite values are drawn as 0).
/// `series` is `(name, colour, values)`; a legend names the series when there is more than one.
pub fn columns(
    title: &str,
    labels: &[String],
    series: &[(&str, &str, Vec<f64>)],
    y_label: &str,
) -> String {
    let mut s = String::with_capacity(4096);
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" role=\"img\" aria-label=\"{}\">",
        esc(title)
    );
    let _ = write!(s, "<title>{}</title>", esc(title));
    let max = series
        .iter()
        .flat_map(|(_, _, v)| v.iter().copied())
        .filter(|v| v.is_finite() && *v >= 0.0)
        .fold(0.0_f64, f64::max);
    let (top, step) = axis(max);
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let y = |v: f64| TOP + plot_h * (1.0 - (v / top).clamp(0.0, 1.0));
    // Grid and y ticks.
    // At most 20 ticks, whatever the values (a crafted report must not make this loop long).
    let mut t = 0.0;
    for _ in 0..20 {
        if t > top + step * 0.01 {
            break;
        }
        let _ = write!(
            s,
            "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#d0d7de\" stroke-width=\"1\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\" fill=\"#57606a\">{}</text>",
            W - RIGHT,
            y(t),
            y(t),
            LEFT - 6.0,
            y(t) + 4.0,
            tick_text(t)
        );
        t += step;
    }
    let _ = write!(
        s,
        "<text x=\"12\" y=\"{:.1}\" font-size=\"11\" fill=\"#57606a\" transform=\"rotate(-90 12 {:.1})\" text-anchor=\"middle\">{}</text>",
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0,
        esc(y_label)
    );
    if labels.is_empty() || series.is_empty() {
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"13\" text-anchor=\"middle\" fill=\"#57606a\">no data</text></svg>",
            LEFT + plot_w / 2.0,
            TOP + plot_h / 2.0
        );
        return s;
    }
    let group = plot_w / labels.len() as f64;
    let bar = (group * 0.8 / series.len() as f64).max(1.0);
    // Label every k-th column so the labels never overlap.
    let every = ((labels.len() as f64 * 7.0 * 6.0 / plot_w).ceil() as usize).max(1);
    for (i, label) in labels.iter().enumerate() {
        let x0 = LEFT + group * i as f64 + group * 0.1;
        for (j, (name, colour, values)) in series.iter().enumerate() {
            let v = values
                .get(i)
                .copied()
                .filter(|v| v.is_finite())
                .unwrap_or(0.0);
            let top_y = y(v);
            let _ = write!(
                s,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{colour}\"><title>{}: {} {}</title></rect>",
                x0 + bar * j as f64,
                top_y,
                bar,
                (TOP + plot_h - top_y).max(0.0),
                esc(label),
                esc(name),
                tick_text(v)
            );
        }
        if i % every == 0 {
            let _ = write!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\" fill=\"#1f2328\" transform=\"rotate(-35 {:.1} {:.1})\">{}</text>",
                x0 + group * 0.4,
                TOP + plot_h + 14.0,
                x0 + group * 0.4,
                TOP + plot_h + 14.0,
                esc(&clip(label, 14))
            );
        }
    }
    if series.len() > 1 {
        let mut lx = LEFT;
        for (name, colour, _) in series {
            let _ = write!(
                s,
                "<rect x=\"{lx:.1}\" y=\"8\" width=\"12\" height=\"12\" fill=\"{colour}\"/><text x=\"{:.1}\" y=\"18\" font-size=\"12\" fill=\"#1f2328\">{}</text>",
                lx + 16.0,
                esc(name)
            );
            lx += 24.0 + 7.0 * name.chars().count() as f64;
        }
    }
    s.push_str("</svg>");
    s
}

fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut t: String = text.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_scale_to_a_round_axis_and_escape_labels() {
        let svg = columns(
            "alerts <today>",
            &["<b>".to_string(), "b".to_string()],
            &[("high", "#b91c1c", vec![3.0, 7.0])],
            "alerts",
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(!svg.contains("<b>") && svg.contains("&lt;b&gt;"));
        assert!(!svg.contains("style="));
        assert_eq!(svg.matches("<rect").count(), 2);
        assert_eq!(axis(7.0), (8.0, 2.0));
        assert_eq!(axis(0.0), (1.0, 0.25));
        assert!((axis(0.3).0 - 0.3).abs() < 1e-9);
        assert_eq!(axis(1.7e308), (1.0, 0.25), "no overflow to infinity");
    }

    #[test]
    fn crafted_values_draw_a_bounded_chart() {
        let labels = vec!["a".to_string(), "b".to_string()];
        let svg = columns("t", &labels, &[("x", "#000", vec![1.7e308, -1.7e308])], "y");
        assert!(svg.ends_with("</svg>"));
        assert!(svg.matches("<line").count() <= 20);
    }

    #[test]
    fn an_empty_chart_says_so() {
        assert!(columns("t", &[], &[], "y").contains("no data"));
    }
}
