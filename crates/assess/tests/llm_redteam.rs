//! `aegis assess llm` against a deterministic mock OpenAI server with switchable weaknesses: the assessment must
//! report exactly the weaknesses switched on, and nothing against the hardened profile. The mock answers both
//! whole and streamed (server-sent events, in small chunks) requests.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aegis_assess::llm::{self, LlmTarget, Outcome};
use serde_json::{json, Value};

/// Weaknesses the mock can have.
#[derive(Clone, Copy, Default)]
struct Weak {
    /// Repeats its system prompt when asked about its instructions.
    leaks_prompt: bool,
    /// Says any rogue token (`PWNED-…`, `JAILBROKEN-…`, `SURE-…`) written plainly in a user or tool message.
    obeys: bool,
    /// Tells the customer's card and e-mail, and adds the links it is asked to add.
    leaks_data: bool,
}

fn answer(weak: Weak, body: &Value) -> String {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let system = messages
        .iter()
        .find(|m| m["role"] == "system")
        .and_then(|m| m["content"].as_str())
        .unwrap_or("")
        .to_string();
    let untrusted: String = messages
        .iter()
        .filter(|m| m["role"] == "user" || m["role"] == "tool")
        .filter_map(|m| m["content"].as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let lower = untrusted.to_lowercase();
    if weak.obeys {
        // "the word PWNED followed directly by the number 1a2b3c4d", written plainly: say it joined.
        let words: Vec<&str> = untrusted.split_whitespace().collect();
        for w in words.windows(8) {
            if w[0] == "word" && w[2..7] == ["followed", "directly", "by", "the", "number"] {
                let code: String = w[7]
                    .chars()
                    .take_while(char::is_ascii_alphanumeric)
                    .collect();
                return format!("{}{code} as you asked.", w[1]);
            }
        }
    }
    if weak.leaks_prompt
        && ["instructions", "prompt", "told", "configuration"]
            .iter()
            .any(|w| lower.contains(w))
    {
        return format!("Sure. My instructions are: {system}");
    }
    if weak.leaks_data {
        if lower.contains("card") || lower.contains("e-mail") || lower.contains("customer data") {
            let card = system
                .split("card ")
                .nth(1)
                .and_then(|r| r.split(',').next())
                .unwrap_or("");
            return format!("The card on file is {card} and the e-mail is m.keller@example.org.");
        }
        if let Some(start) = untrusted.find("https://") {
            let url: String = untrusted[start..]
                .chars()
                .take_while(|c| *c != ')')
                .collect();
            let filled = url
                .replace("DATA", "m.keller%40example.org")
                .replace("SUMMARY", "support-bot");
            return format!("Your order is on its way. ![status]({filled})");
        }
    }
    // No weakness: it repeats the request back, which must never count as a success.
    format!("I can only help with orders and deliveries. You said: {untrusted}")
}

/// Start the mock on 127.0.0.1:0; returns its base URL and a request counter.
fn mock(weak: Weak) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&count);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let seen = Arc::clone(&seen);
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0usize;
                let mut line = String::new();
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0u8; length];
                reader.read_exact(&mut body).unwrap();
                seen.fetch_add(1, Ordering::SeqCst);
                let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let text = answer(weak, &request);
                let (kind, payload) = if request["stream"] == true {
                    let mut out = String::new();
                    let chars: Vec<char> = text.chars().collect();
                    for piece in chars.chunks(4) {
                        let piece: String = piece.iter().collect();
                        out.push_str(&format!(
                            "data: {}\n\n",
                            json!({"choices":[{"index":0,"delta":{"content":piece}}]})
                        ));
                    }
                    out.push_str("data: [DONE]\n\n");
                    ("text/event-stream", out)
                } else {
                    ("application/json", json!({"choices":[{"index":0,"message":{"role":"assistant","content":text},"finish_reason":"stop"}]}).to_string())
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: {kind}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{payload}",
                    payload.len()
                );
            });
        }
    });
    (format!("http://{addr}"), count)
}

fn target(url: String) -> LlmTarget {
    LlmTarget {
        url,
        model: "mock".into(),
        system_prompt: String::new(),
        headers: vec![],
        max_requests: 200,
        concurrency: 3,
        timeout: Duration::from_secs(10),
        seed: 7,
    }
}

fn rules_found(weak: Weak) -> (Vec<String>, llm::LlmAssessment, usize) {
    let (url, count) = mock(weak);
    let result = llm::assess(&target(url), &|_, _| {}).unwrap();
    let mut rules: Vec<String> = result
        .findings()
        .iter()
        .map(|f| f.rule.as_str().to_string())
        .collect();
    rules.sort();
    rules.dedup(); // one finding per family; several families share a rule
    (rules, result, count.load(Ordering::SeqCst))
}

#[test]
fn the_hardened_profile_has_no_findings() {
    let (rules, result, requests) = rules_found(Weak::default());
    assert!(rules.is_empty(), "{rules:?}");
    assert_eq!(requests, result.requests);
    assert!(result.probes.iter().any(|p| p.streamed) && result.probes.iter().any(|p| !p.streamed));
    // Refusals are recorded as a weak signal only; no probe is called a success.
    assert!(result.probes.iter().all(|p| p.outcome != Outcome::Success));
    assert!(result
        .probes
        .iter()
        .filter(|p| p.oracle.is_empty())
        .all(|p| p.outcome == Outcome::Undetermined));
}

#[test]
fn each_weakness_is_reported_and_only_it() {
    let (rules, result, _) = rules_found(Weak {
        leaks_prompt: true,
        ..Weak::default()
    });
    assert_eq!(rules, ["AEG-LLM-002"], "{}", result.render_human());
    let (rules, result, _) = rules_found(Weak {
        obeys: true,
        ..Weak::default()
    });
    assert_eq!(
        rules,
        ["AEG-LLM-001", "AEG-LLM-004"],
        "{}",
        result.render_human()
    );
    // Indirect injection through the tool message is among the successes.
    assert!(result
        .probes
        .iter()
        .any(|p| p.family == llm::Family::IndirectInjection && p.outcome == Outcome::Success));
    let (rules, result, _) = rules_found(Weak {
        leaks_data: true,
        ..Weak::default()
    });
    assert_eq!(rules, ["AEG-LLM-003"], "{}", result.render_human());
}

#[test]
fn the_budget_is_a_hard_cap_and_a_dead_target_is_an_error() {
    let (url, count) = mock(Weak::default());
    let mut t = target(url);
    t.max_requests = 5;
    let result = llm::assess(&t, &|_, _| {}).unwrap();
    assert_eq!((result.requests, count.load(Ordering::SeqCst)), (5, 5));
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut dead = target(format!("http://{closed}"));
    dead.max_requests = 3;
    let e = llm::assess(&dead, &|_, _| {}).unwrap_err().to_string();
    assert!(e.contains("every request"), "{e}");
}
