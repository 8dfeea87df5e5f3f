//! The OpenAI wire format as the guard sees it: the texts of a request (chat messages with their roles, legacy
//! completion prompts, embedding inputs), the system prompt where a canary goes, the texts of an answer, and a
//! filter over a streamed answer (server-sent events).
//!
//! [`StreamFilter`] rewrites a stream event by event. It holds back the last [`HOLD_CHARS`] characters of each
//! choice's text (longer while a detected span may still be going on), so that a secret or a canary split
//! across chunks is seen whole before any of it is sent:
//! redacted in place, or the stream is cut with `finish_reason: "content_filter"` and `[DONE]`. Events it
//! cannot read (not JSON, no text) pass through unchanged.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::canary::{Canary, Leak, StreamScan};
use crate::pii::{self, Action, Kind};
use crate::screen::Source;

/// Characters of each choice held back in a stream until the text after them is known.
pub const HOLD_CHARS: usize = 64;
/// Most characters held back when a span never ends (a private key with no END line): then it is released,
/// redacted.
pub const MAX_HOLD_CHARS: usize = 16 * 1024;
/// The text an answer is replaced with when it is cut.
pub const WITHHELD: &str = "[Aegis withheld this answer: it broke the deployment's LLM policy.]";

/// One text of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The message role (`user`, `system`, `tool` …; `prompt` and `input` for the legacy and embedding routes).
    pub role: String,
    /// Trusted or not (tool and function results are untrusted).
    pub source: Source,
    /// The text.
    pub text: String,
}

/// Whether a message of `role` carries data from outside (tools, function calls, retrieved documents).
pub fn role_source(role: &str) -> Source {
    match role {
        "tool" | "function" | "ipython" | "document" | "retrieval" => Source::Untrusted,
        _ => Source::Trusted,
    }
}

/// Every text of a request body, in order.
pub fn request_parts(body: &Value) -> Vec<Part> {
    let mut out = Vec::new();
    let mut body = body.clone();
    visit_request(&mut body, &mut |role, text| {
        out.push(Part {
            role: role.to_string(),
            source: role_source(role),
            text: text.clone(),
        });
    });
    out
}

/// Apply `f` to every text of a request body; `f` may rewrite the text in place.
pub fn visit_request(body: &mut Value, f: &mut dyn FnMut(&str, &mut String)) {
    if let Some(messages) = body.get_mut("messages").and_then(Value::as_array_mut) {
        for m in messages {
            let role = m
                .get("role")
                .and_then(Value::as_str)
                .unwrap_or("user")
                .to_string();
            if let Some(content) = m.get_mut("content") {
                visit_content(content, &role, f);
            }
            // A tool call's arguments are written by the model but may quote untrusted data.
            if let Some(calls) = m.get_mut("tool_calls").and_then(Value::as_array_mut) {
                for call in calls {
                    if let Some(Value::String(args)) = call.pointer_mut("/function/arguments") {
                        f("tool_call", args);
                    }
                }
            }
        }
    }
    for (field, role) in [("prompt", "prompt"), ("input", "input")] {
        if let Some(v) = body.get_mut(field) {
            visit_strings(v, role, f);
        }
    }
}

fn visit_content(content: &mut Value, role: &str, f: &mut dyn FnMut(&str, &mut String)) {
    match content {
        Value::String(s) => f(role, s),
        Value::Array(parts) => {
            for p in parts {
                if let Some(Value::String(s)) = p.get_mut("text") {
                    f(role, s);
                }
            }
        }
        _ => {}
    }
}

fn visit_strings(v: &mut Value, role: &str, f: &mut dyn FnMut(&str, &mut String)) {
    match v {
        Value::String(s) => f(role, s),
        Value::Array(items) => {
            for item in items {
                if let Value::String(s) = item {
                    f(role, s);
                }
            }
        }
        _ => {}
    }
}

/// Add the canary's sentence to the system prompt of a chat request (a system message is added first when there
/// is none). Returns false for bodies without `messages` (legacy completions, embeddings).
pub fn add_canary(body: &mut Value, canary: &Canary) -> bool {
    let Some(messages) = body.get_mut("messages").and_then(Value::as_array_mut) else {
        return false;
    };
    let sentence = canary.instruction();
    let first_is_system = messages.first().is_some_and(|m| {
        matches!(
            m.get("role").and_then(Value::as_str),
            Some("system" | "developer")
        )
    });
    if first_is_system {
        match messages[0].get_mut("content") {
            Some(Value::String(s)) => {
                s.push_str("\n\n");
                s.push_str(&sentence);
                return true;
            }
            Some(Value::Array(parts)) => {
                parts.push(serde_json::json!({"type": "text", "text": sentence}));
                return true;
            }
            _ => {}
        }
    }
    messages.insert(
        0,
        serde_json::json!({"role": "system", "content": sentence}),
    );
    true
}

/// What the guard found in an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The request's canary appeared.
    Canary(Leak),
    /// Personal data or a secret appeared.
    Pii(Kind),
}

/// What to look for in answers and what to do.
#[derive(Debug, Clone)]
pub struct AnswerPolicy {
    /// This request's canary, if one was added.
    pub canary: Option<Canary>,
    /// Cut the answer when the canary appears (otherwise only report it).
    pub cut_on_canary: bool,
    /// Kinds of personal data and secrets looked for.
    pub pii: Vec<Kind>,
    /// What to do with them.
    pub pii_action: Action,
}

impl AnswerPolicy {
    /// Whether the policy looks at answers at all.
    pub fn is_active(&self) -> bool {
        self.canary.is_some() || !self.pii.is_empty()
    }
}

/// Screen and rewrite a whole (not streamed) answer body. Returns what was found; the body is changed in place
/// (redactions, or a cut answer with `finish_reason: "content_filter"`).
pub fn filter_answer(body: &mut Value, policy: &AnswerPolicy) -> Vec<Event> {
    let mut events = Vec::new();
    let Some(choices) = body.get_mut("choices").and_then(Value::as_array_mut) else {
        return events;
    };
    for choice in choices {
        let mut cut = false;
        if let Some(text) = answer_text_mut(choice) {
            if let Some(how) = policy.canary.as_ref().and_then(|c| c.found_in(text)) {
                events.push(Event::Canary(how));
                cut |= policy.cut_on_canary;
            }
            let spans = pii::find(text, &policy.pii);
            events.extend(spans.iter().map(|s| Event::Pii(s.kind)));
            if !spans.is_empty() && policy.pii_action == Action::Block {
                cut = true;
            } else if !cut {
                *text = pii::rewrite(text, &spans, policy.pii_action);
            }
            if cut {
                *text = WITHHELD.to_string();
            }
        }
        if cut {
            choice["finish_reason"] = Value::String("content_filter".into());
        }
    }
    events
}

/// The answer text of a choice: `message.content` (chat), `delta.content` (chat stream) or `text` (legacy).
fn answer_text_mut(choice: &mut Value) -> Option<&mut String> {
    let is = |c: &Value, p: &str| matches!(c.pointer(p), Some(Value::String(_)));
    let pointer = if is(choice, "/message/content") {
        "/message/content"
    } else if is(choice, "/delta/content") {
        "/delta/content"
    } else if is(choice, "/text") {
        "/text"
    } else {
        return None;
    };
    match choice.pointer_mut(pointer) {
        Some(Value::String(s)) => Some(s),
        _ => None,
    }
}

/// Per-choice state of a stream.
#[derive(Debug, Default)]
struct Choice {
    pending: String,
    scan: Option<StreamScan>,
}

/// A filter over a streamed (server-sent events) answer.
#[derive(Debug)]
pub struct StreamFilter {
    policy: AnswerPolicy,
    buffer: Vec<u8>,
    choices: BTreeMap<u64, Choice>,
    last_event: Option<Value>,
    stopped: bool,
    events: Vec<Event>,
}

impl StreamFilter {
    /// A filter applying `policy`.
    pub fn new(policy: AnswerPolicy) -> StreamFilter {
        StreamFilter {
            policy,
            buffer: Vec::new(),
            choices: BTreeMap::new(),
            last_event: None,
            stopped: false,
            events: Vec::new(),
        }
    }

    /// Whether the stream was cut (everything after is dropped).
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// What was found since the last call.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// Feed bytes from the upstream; returns the bytes to send to the client now.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<u8> {
        if self.stopped {
            return Vec::new();
        }
        self.buffer.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some((end, sep)) = event_end(&self.buffer) {
            let block: Vec<u8> = self.buffer.drain(..end + sep).collect();
            out.extend(self.event(&block[..end], &block[end..]));
            if self.stopped {
                self.buffer.clear();
                break;
            }
        }
        out
    }

    /// The upstream ended: release what is held back (and any incomplete event as it was).
    pub fn finish(&mut self) -> Vec<u8> {
        if self.stopped {
            return Vec::new();
        }
        let mut out = self.flush_all();
        out.append(&mut self.buffer);
        out
    }

    fn event(&mut self, block: &[u8], sep: &[u8]) -> Vec<u8> {
        let passthrough = || [block, sep].concat();
        let Ok(text) = std::str::from_utf8(block) else {
            return passthrough();
        };
        let data: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(|d| d.strip_prefix(' ').unwrap_or(d))
            .collect();
        if data.is_empty() {
            return passthrough();
        }
        let data = data.join("\n");
        if data.trim() == "[DONE]" {
            let mut out = self.flush_all();
            out.extend(passthrough());
            return out;
        }
        let Ok(mut value) = serde_json::from_str::<Value>(&data) else {
            return passthrough();
        };
        if !value.get("choices").is_some_and(Value::is_array) {
            return passthrough();
        }
        let mut had_text = false;
        let mut emitted_any = false;
        let mut finished = false;
        let mut cut = false;
        if let Some(choices) = value.get_mut("choices").and_then(Value::as_array_mut) {
            for choice in choices.iter_mut() {
                let index = choice.get("index").and_then(Value::as_u64).unwrap_or(0);
                let done = choice.get("finish_reason").is_some_and(|f| !f.is_null());
                finished |= done;
                let Some(text) = answer_text_mut(choice) else {
                    continue;
                };
                had_text |= !text.is_empty();
                let piece = std::mem::take(text);
                let (released, stop) = self.take(index, &piece, done);
                emitted_any |= !released.is_empty();
                *text = released;
                if stop {
                    cut = true;
                    *text = String::new();
                    choice["finish_reason"] = Value::String("content_filter".into());
                }
            }
        }
        self.last_event = Some(value.clone());
        if cut {
            self.stopped = true;
            return [sse(&value), b"data: [DONE]\n\n".to_vec()].concat();
        }
        if had_text && !emitted_any && !finished && !has_tool_calls(&value) {
            // All of it is held back for now.
            return Vec::new();
        }
        sse(&value)
    }

    /// Add `piece` to a choice and return what may be sent now, and whether to cut the stream.
    fn take(&mut self, index: u64, piece: &str, done: bool) -> (String, bool) {
        let canary = self.policy.canary.clone();
        let choice = self.choices.entry(index).or_insert_with(|| Choice {
            pending: String::new(),
            scan: canary.map(StreamScan::new),
        });
        choice.pending.push_str(piece);
        if let Some(how) = choice.scan.as_mut().and_then(|s| s.push(piece)) {
            self.events.push(Event::Canary(how));
            if self.policy.cut_on_canary {
                choice.scan = None;
                return (String::new(), true);
            }
            choice.scan = None; // reported once
        }
        let (released, events, block) = release(
            &mut choice.pending,
            &self.policy.pii,
            self.policy.pii_action,
            done,
        );
        self.events.extend(events);
        (released, block)
    }

    fn flush_all(&mut self) -> Vec<u8> {
        let indices: Vec<u64> = self
            .choices
            .iter()
            .filter(|(_, c)| !c.pending.is_empty())
            .map(|(i, _)| *i)
            .collect();
        let mut out = Vec::new();
        for index in indices {
            let (text, block) = {
                let choice = self.choices.get_mut(&index).expect("listed above");
                let (text, events, block) = release(
                    &mut choice.pending,
                    &self.policy.pii,
                    self.policy.pii_action,
                    true,
                );
                self.events.extend(events);
                (text, block)
            };
            let Some(template) = self.last_event.clone() else {
                continue;
            };
            let mut value = template;
            if let Some(choices) = value.get_mut("choices").and_then(Value::as_array_mut) {
                choices.retain(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0) == index);
                if let Some(c) = choices.first_mut() {
                    c["finish_reason"] = Value::Null;
                    if let Some(t) = answer_text_mut(c) {
                        *t = text;
                    } else if let Some(delta) = c.get_mut("delta") {
                        delta["content"] = Value::String(text);
                    }
                    if block {
                        c["finish_reason"] = Value::String("content_filter".into());
                    }
                }
            }
            out.extend(sse(&value));
            if block {
                self.stopped = true;
                out.extend(b"data: [DONE]\n\n");
                break;
            }
        }
        out
    }
}

/// Release what can be sent of `pending`: all but the last [`HOLD_CHARS`] characters (everything when `done`),
/// never part of a detected span; spans released are rewritten by `action`. Returns the text, the spans found,
/// and whether the answer must be cut (`Action::Block` with a span).
fn release(
    pending: &mut String,
    kinds: &[Kind],
    action: Action,
    done: bool,
) -> (String, Vec<Event>, bool) {
    let spans = pii::find(pending, kinds);
    if action == Action::Block && !spans.is_empty() {
        pending.clear();
        return (
            String::new(),
            spans.iter().map(|s| Event::Pii(s.kind)).collect(),
            true,
        );
    }
    let chars = pending.chars().count();
    let mut boundary = if done || chars > MAX_HOLD_CHARS {
        pending.len()
    } else {
        pending
            .char_indices()
            .nth(chars.saturating_sub(HOLD_CHARS))
            .map_or(0, |(i, _)| i)
            .min(pending.len())
    };
    if chars <= HOLD_CHARS && !done {
        boundary = 0;
    }
    if !done && chars <= MAX_HOLD_CHARS {
        for s in &spans {
            // A span crossing the boundary, or reaching the end (it may go on), waits whole.
            if s.start < boundary && (s.end > boundary || s.end == pending.len()) {
                boundary = s.start;
            }
        }
    }
    let released: Vec<pii::Span> = spans.into_iter().filter(|s| s.end <= boundary).collect();
    let text = pii::rewrite(&pending[..boundary], &released, action);
    pending.drain(..boundary);
    (
        text,
        released.iter().map(|s| Event::Pii(s.kind)).collect(),
        false,
    )
}

fn has_tool_calls(value: &Value) -> bool {
    value
        .get("choices")
        .and_then(Value::as_array)
        .is_some_and(|cs| cs.iter().any(|c| c.pointer("/delta/tool_calls").is_some()))
}

/// The end of the first complete event in `buffer` and the length of its blank-line separator.
fn event_end(buffer: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i + 1 < buffer.len() {
        if buffer[i] == b'\n' && buffer[i + 1] == b'\n' {
            return Some((i, 2));
        }
        if buffer[i..].starts_with(b"\r\n\r\n") {
            return Some((i, 4));
        }
        i += 1;
    }
    None
}

fn sse(value: &Value) -> Vec<u8> {
    format!("data: {value}\n\n").into_bytes()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn stream_of(pieces: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend(sse(&json!({"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]})));
        for p in pieces {
            out.extend(sse(&json!({"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":p},"finish_reason":null}]})));
        }
        out.extend(sse(&json!({"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]})));
        out.extend(b"data: [DONE]\n\n");
        out
    }

    /// Run a filter over `bytes` fed in pieces of `size`, and return the client's text and whether it ended.
    fn run(policy: &AnswerPolicy, bytes: &[u8], size: usize) -> (String, Vec<u8>, Vec<Event>) {
        let mut f = StreamFilter::new(policy.clone());
        let mut out = Vec::new();
        for piece in bytes.chunks(size) {
            out.extend(f.push(piece));
        }
        out.extend(f.finish());
        let text = String::from_utf8(out.clone())
            .unwrap()
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .filter_map(|v| {
                v.pointer("/choices/0/delta/content")
                    .and_then(Value::as_str)
                    .map(String::from)
            })
            .collect();
        (text, out, f.take_events())
    }

    fn pii_policy(action: Action) -> AnswerPolicy {
        AnswerPolicy {
            canary: None,
            cut_on_canary: false,
            pii: Kind::ALL.to_vec(),
            pii_action: action,
        }
    }

    #[test]
    fn request_parts_cover_every_route_and_role() {
        let chat = json!({"model":"m","messages":[
            {"role":"system","content":"be nice"},
            {"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"x"}}]},
            {"role":"assistant","tool_calls":[{"function":{"name":"f","arguments":"{\"q\":1}"}}]},
            {"role":"tool","content":"doc text"}]});
        let parts = request_parts(&chat);
        let roles: Vec<&str> = parts.iter().map(|p| p.role.as_str()).collect();
        assert_eq!(roles, ["system", "user", "tool_call", "tool"]);
        assert_eq!(parts[3].source, Source::Untrusted);
        assert_eq!(request_parts(&json!({"prompt":["a","b"]})).len(), 2);
        assert_eq!(request_parts(&json!({"input":"x"}))[0].role, "input");
    }

    #[test]
    fn canary_goes_into_the_system_prompt() {
        let c = Canary::from_random([1; 10]);
        let mut with = json!({"messages":[{"role":"system","content":"be nice"},{"role":"user","content":"hi"}]});
        assert!(add_canary(&mut with, &c));
        assert!(with["messages"][0]["content"]
            .as_str()
            .unwrap()
            .contains(&c.token()));
        let mut without = json!({"messages":[{"role":"user","content":"hi"}]});
        assert!(add_canary(&mut without, &c));
        assert_eq!(without["messages"][0]["role"], "system");
        assert!(!add_canary(&mut json!({"prompt":"x"}), &c));
    }

    #[test]
    fn whole_answers_are_redacted_or_cut() {
        let mut body = json!({"choices":[{"index":0,"message":{"role":"assistant","content":"card 4111 1111 1111 1111"},"finish_reason":"stop"}]});
        let events = filter_answer(&mut body, &pii_policy(Action::Redact));
        assert_eq!(events, vec![Event::Pii(Kind::Card)]);
        assert_eq!(
            body["choices"][0]["message"]["content"],
            "card [REDACTED:card]"
        );
        let c = Canary::from_random([2; 10]);
        let policy = AnswerPolicy {
            canary: Some(c.clone()),
            cut_on_canary: true,
            pii: vec![],
            pii_action: Action::Log,
        };
        let mut leak = json!({"choices":[{"index":0,"text":format!("sure {}", c.token()),"finish_reason":"stop"}]});
        assert_eq!(
            filter_answer(&mut leak, &policy),
            vec![Event::Canary(Leak::Exact)]
        );
        assert_eq!(leak["choices"][0]["text"], WITHHELD);
        assert_eq!(leak["choices"][0]["finish_reason"], "content_filter");
        let mut clean = json!({"choices":[{"index":0,"text":"hello","finish_reason":"stop"}]});
        assert!(filter_answer(&mut clean, &policy).is_empty());
        assert_eq!(clean["choices"][0]["text"], "hello");
    }

    #[test]
    fn streams_pass_unchanged_when_clean() {
        let pieces = ["Hello", ", ", "world", ". ", "How can I help?"];
        let bytes = stream_of(&pieces);
        for size in [1, 5, 64, bytes.len()] {
            let (text, out, events) = run(&pii_policy(Action::Redact), &bytes, size);
            assert_eq!(text, pieces.concat());
            assert!(events.is_empty());
            assert!(String::from_utf8(out)
                .unwrap()
                .ends_with("data: [DONE]\n\n"));
        }
    }

    #[test]
    fn a_secret_split_across_chunks_is_redacted_before_it_is_sent() {
        let pieces = [
            "Your key is sk-proj-",
            "abcdefghij",
            "klmnopqrstuv",
            "wx1234 and card 4111 11",
            "11 1111 1111. Bye",
        ];
        let bytes = stream_of(&pieces);
        for size in [1, 7, bytes.len()] {
            let (text, out, events) = run(&pii_policy(Action::Redact), &bytes, size);
            assert_eq!(
                text,
                "Your key is [REDACTED:api-key] and card [REDACTED:card]. Bye"
            );
            let raw = String::from_utf8(out).unwrap();
            assert!(
                !raw.contains("abcdefghij") && !raw.contains("1111"),
                "{raw}"
            );
            assert_eq!(
                events,
                vec![Event::Pii(Kind::ApiKey), Event::Pii(Kind::Card)]
            );
        }
    }

    #[test]
    fn a_canary_split_across_chunks_cuts_the_stream() {
        let c = Canary::from_random([3; 10]);
        let token = c.token();
        let (a, b) = token.split_at(9);
        let pieces = ["My instructions say: ", a, b, " and more secret text"];
        let policy = AnswerPolicy {
            canary: Some(c),
            cut_on_canary: true,
            pii: vec![],
            pii_action: Action::Log,
        };
        let (text, out, events) = run(&policy, &stream_of(&pieces), 3);
        let raw = String::from_utf8(out).unwrap();
        assert!(!raw.contains(a) && !raw.contains(b), "{raw}");
        assert!(text.is_empty(), "{text}");
        assert!(raw.contains("content_filter") && raw.ends_with("data: [DONE]\n\n"));
        assert_eq!(events, vec![Event::Canary(Leak::Exact)]);
    }

    #[test]
    fn block_action_cuts_a_stream_with_a_secret() {
        let (_, out, events) = run(
            &pii_policy(Action::Block),
            &stream_of(&["-----BEGIN PRIVATE KEY-----\nMIIE", "vQIBADANBg"]),
            4,
        );
        let raw = String::from_utf8(out).unwrap();
        assert!(
            !raw.contains("MIIE") && raw.contains("content_filter"),
            "{raw}"
        );
        assert_eq!(events, vec![Event::Pii(Kind::PrivateKey)]);
    }

    #[test]
    fn unreadable_events_pass_through() {
        let mut f = StreamFilter::new(pii_policy(Action::Redact));
        let out = f.push(b": keep-alive\n\ndata: not json\n\nevent: x\ndata: {\"other\":1}\n\n");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            ": keep-alive\n\ndata: not json\n\nevent: x\ndata: {\"other\":1}\n\n"
        );
    }
}
