//! The QR code of an authenticator enrolment, drawn as inline SVG on the server (no script, no image request),
//! so a person can scan it instead of typing a 32-character secret.

/// The QR code of `text` as an SVG element, or an empty string if it cannot be encoded (the page then shows
/// only the typed secret).
pub fn qr_svg(text: &str) -> String {
    let Ok(code) = qrcode::QrCode::with_error_correction_level(text, qrcode::EcLevel::M) else {
        return String::new();
    };
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build();
    // Drop the XML declaration: the drawing is inlined in HTML.
    let start = svg.find("<svg").unwrap_or(0);
    svg[start..].replacen(
        "<svg ",
        "<svg role=\"img\" aria-label=\"QR code of the authenticator key\" ",
        1,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_is_inline_svg_without_style_attributes() {
        let svg = qr_svg("otpauth://totp/Aegis:ada?secret=JBSWY3DPEHPK3PXP&issuer=Aegis");
        assert!(svg.starts_with("<svg"), "{}", &svg[..40]);
        assert!(svg.ends_with("</svg>") || svg.trim_end().ends_with("</svg>"));
        assert!(
            !svg.contains("style="),
            "the console's CSP forbids inline style"
        );
        assert!(svg.contains("<path") || svg.contains("<rect"));
    }
}
