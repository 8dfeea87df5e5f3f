use super::*;

fn chrome() -> Chrome {
    Chrome {
        base: "/aegis".into(),
        user: "ada".into(),
        role: "auditor".into(),
        csrf: "00ff".into(),
        section: "findings",
        can_audit: true,
        ..Chrome::default()
    }
}

fn row() -> FindingRow {
    FindingRow {
        fingerprint: "fp1".into(),
        severity: "high".into(),
        rule: "AEG-SCAN-101".into(),
        title: "<script>alert(1)</script>".into(),
        asset: "fraud".into(),
        source: "scan".into(),
        state: "new, not yet looked at".into(),
        accepted: String::new(),
        owner: String::new(),
        age: "2 h ago".into(),
    }
}

fn findings(chrome: Chrome) -> String {
    render(&Findings {
        chrome,
        filter: FindingFilterView::default(),
        assets: vec!["fraud".into()],
        sources: vec!["scan".into()],
        rows: vec![row()],
        next: String::new(),
        query: "state=open".into(),
    })
}

#[test]
fn pages_escape_what_they_print_and_carry_no_inline_script_or_style() {
    let html = findings(chrome());
    assert!(!html.contains("<script>alert"));
    assert!(html.contains("alert(1)"));
    // Every script is a same-origin file; no element carries a style attribute or an event handler.
    for (i, _) in html.match_indices("<script") {
        assert!(
            html[i..].starts_with("<script src=\"/aegis/static/"),
            "{}",
            &html[i..i + 60]
        );
    }
    assert!(!html.contains(" style="));
    assert!(!html.contains("<style"));
    assert!(!html.contains(" onclick=") && !html.contains(" onsubmit="));
}

#[test]
fn links_and_forms_live_under_the_base_path() {
    let html = findings(Chrome {
        can_change: true,
        ..chrome()
    });
    for attr in ["href=\"/", "action=\"/", "src=\"/"] {
        for (i, _) in html.match_indices(attr) {
            let rest = &html[i + attr.len() - 1..];
            assert!(
                rest.starts_with("/aegis/"),
                "{}",
                &rest[..rest.len().min(50)]
            );
        }
    }
}

#[test]
fn an_auditor_sees_no_form_that_changes_anything() {
    let html = findings(chrome());
    assert!(!html.contains("findings/bulk"));
    assert!(
        html.contains("name=\"csrf\""),
        "sign-out still needs its token"
    );
    let html = findings(Chrome {
        can_change: true,
        ..chrome()
    });
    assert!(html.contains("findings/bulk?state=open"));
}

#[test]
fn the_overview_of_an_empty_installation_is_the_checklist() {
    let step = |done: bool| Step {
        done,
        title: "Add a model".into(),
        text: "x".into(),
        href: "/aegis/assets".into(),
    };
    let page = |steps: Vec<Step>| {
        render(&Overview {
            chrome: chrome(),
            checklist: steps,
            tiles: vec![],
            first: vec![],
            timeline: Chart::default(),
        })
    };
    assert!(page(vec![step(true), step(false)]).contains("Set up Aegis"));
    assert!(!page(vec![step(true), step(true)]).contains("Set up Aegis"));
}
