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
        "tool" | "function" | "ipython" | "document" | "retrieval" | "tool_definition" => {
            Source::Untrusted
        }
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
            if let Some(Value::String(args)) = m.pointer_mut("/function_call/arguments") {
                f("tool_call", args);
            }
        }
    }
    for (field, role) in [
        ("prompt", "prompt"),
        ("input", "input"),
        ("suffix", "prompt"),
    ] {
        if let Some(v) = body.get_mut(field) {
            visit_strings(v, role, f);
        }
    }
    // Tool descriptions reach the model as instructions too (a poisoned tool is indirect injection).
    for list in ["tools", "functions"] {
        if let Some(tools) = body.get_mut(list).and_then(Value::as_array_mut) {
            for tool in tools {
                let pointer = if tool.pointer("/function/description").is_some() {
                    "/function/description"
                } else {
                    "/description"
                };
                if let Some(Value::String(s)) = tool.pointer_mut(pointer) {
                    f("tool_definition", s);
                }
            }
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

/// Whether a completion request gives its prompt as token ids (which no text screening can read).
pub fn has_token_prompts(body: &Value) -> bool {
    fn numeric(v: &Value) -> bool {
        match v {
            Value::Number(_) => true,
            Value::Array(items) => items.iter().any(numeric),
            _ => false,
        }
    }
    ["prompt", "input"]
        .iter()
        .any(|f| body.get(*f).is_some_and(numeric))
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

/// Apply `f` to every text of an answer's choice: the content (a string, or the text of each part), the reasoning
/// text some servers add (`reasoning_content`, `reasoning`), a refusal, each tool call's arguments, and the
/// legacy `text`, in a whole answer (`message`) or a stream chunk (`delta`).
fn visit_answer(choice: &mut Value, f: &mut dyn FnMut(&mut String)) {
    if let Some(Value::String(s)) = choice.get_mut("text") {
        f(s);
    }
    for holder in ["message", "delta"] {
        let Some(m) = choice.get_mut(holder) else {
            continue;
        };
        match m.get_mut("content") {
            Some(Value::String(s)) => f(s),
            Some(Value::Array(parts)) => {
                for p in parts {
                    if let Some(Value::String(s)) = p.get_mut("text") {
                        f(s);
                    }
                }
            }
            _ => {}
        }
        for field in ["reasoning_content", "reasoning", "refusal"] {
            if let Some(Value::String(s)) = m.get_mut(field) {
                f(s);
            }
        }
        if let Some(calls) = m.get_mut("tool_calls").and_then(Value::as_array_mut) {
            for call in calls {
                if let Some(Value::String(s)) = call.pointer_mut("/function/arguments") {
                    f(s);
                }
            }
        }
    }
}

/// Screen and rewrite a whole (not streamed) answer body. Returns what was found; the body is changed in place
/// (redactions, or a cut answer with `finish_reason: "content_filter"`). Log probabilities are removed: they
/// repeat the answer token by token.
pub fn filter_answer(body: &mut Value, policy: &AnswerPolicy) -> Vec<Event> {
    let mut events = Vec::new();
    let Some(choices) = body.get_mut("choices").and_then(Value::as_array_mut) else {
        return events;
    };
    for choice in choices {
        if let Some(lp) = choice.get_mut("logprobs") {
            *lp = Value::Null;
        }
        let mut cut = false;
        visit_answer(choice, &mut |text| {
            if let Some(how) = policy.canary.as_ref().and_then(|c| c.found_in(text)) {
                events.push(Event::Canary(how));
                cut |= policy.cut_on_canary;
            }
            let spans = pii::find(text, &policy.pii);
            events.extend(spans.iter().map(|s| Event::Pii(s.kind)));
            if !spans.is_empty() && policy.pii_action == Action::Block {
                cut = true;
            } else {
                *text = pii::rewrite(text, &spans, policy.pii_action);
            }
        });
        if cut {
            visit_answer(choice, &mut |text| text.clear());
            match choice.get_mut("message") {
                Some(m) => {
                    m["content"] = Value::String(WITHHELD.into());
                    if let Some(o) = m.as_object_mut() {
                        o.remove("tool_calls");
                    }
                }
                None => choice["text"] = Value::String(WITHHELD.into()),
            }
            choice["finish_reason"] = Value::String("content_filter".into());
        }
    }
    events
}

/// Which text of a streamed choice a piece belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Slot {
    /// `delta.content` (or `text` in a legacy completion stream).
    Content,
    /// `delta.reasoning_content`.
    Reasoning,
    /// `delta.refusal`.
    Refusal,
    /// `delta.tool_calls[i].function.arguments`, by the tool call's `index`.
    ToolArguments(u64),
}

impl Slot {
    /// The slots present in a chunk's choice, with their text taken out (the text is put back by the caller).
    fn take_all(choice: &mut Value) -> Vec<(Slot, String)> {
        let mut out = Vec::new();
        if let Some(Value::String(s)) = choice.get_mut("text") {
            out.push((Slot::Content, std::mem::take(s)));
        }
        let Some(delta) = choice.get_mut("delta") else {
            return out;
        };
        for (slot, field) in [
            (Slot::Content, "content"),
            (Slot::Reasoning, "reasoning_content"),
            (Slot::Refusal, "refusal"),
        ] {
            if let Some(Value::String(s)) = delta.get_mut(field) {
                out.push((slot, std::mem::take(s)));
            }
        }
        if let Some(calls) = delta.get_mut("tool_calls").and_then(Value::as_array_mut) {
            for (i, call) in calls.iter_mut().enumerate() {
                let index = call
                    .get("index")
                    .and_then(Value::as_u64)
                    .unwrap_or(i as u64);
                if let Some(Value::String(s)) = call.pointer_mut("/function/arguments") {
                    out.push((Slot::ToolArguments(index), std::mem::take(s)));
                }
            }
        }
        out
    }

    /// Put `text` into this slot of a chunk's choice, creating the field when it is missing.
    fn put(&self, choice: &mut Value, text: String, legacy: bool) {
        if legacy && *self == Slot::Content {
            choice["text"] = Value::String(text);
            return;
        }
        if !choice.get("delta").is_some_and(Value::is_object) {
            choice["delta"] = serde_json::json!({});
        }
        let delta = &mut choice["delta"];
        match self {
            Slot::Content => delta["content"] = Value::String(text),
            Slot::Reasoning => delta["reasoning_content"] = Value::String(text),
            Slot::Refusal => delta["refusal"] = Value::String(text),
            Slot::ToolArguments(index) => {
                if !delta.get("tool_calls").is_some_and(Value::is_array) {
                    delta["tool_calls"] = Value::Array(Vec::new());
                }
                let calls = delta["tool_calls"]
                    .as_array_mut()
                    .expect("made an array above");
                let at = calls
                    .iter()
                    .position(|c| c.get("index").and_then(Value::as_u64) == Some(*index));
                match at {
                    Some(i) => calls[i]["function"]["arguments"] = Value::String(text),
                    None => calls
                        .push(serde_json::json!({"index": index, "function": {"arguments": text}})),
                }
            }
        }
    }
}

/// What is held back of one slot.
#[derive(Debug, Default)]
struct Pending {
    text: String,
    scan: Option<StreamScan>,
}

/// Largest event (or run without an event end) read from a stream; a larger one cuts the stream.
const MAX_EVENT_BYTES: usize = 1 << 20;

/// A filter over a streamed (server-sent events) answer.
#[derive(Debug)]
pub struct StreamFilter {
    policy: AnswerPolicy,
    buffer: Vec<u8>,
    /// The previous chunk ended in `\r` (its `\n` may come next).
    after_cr: bool,
    pending: BTreeMap<(u64, Slot), Pending>,
    /// `id`, `object`, `created`, `model` of the stream's chunks, for the chunks the filter writes itself.
    meta: serde_json::Map<String, Value>,
    legacy: bool,
    stopped: bool,
    events: Vec<Event>,
}

impl StreamFilter {
    /// A filter applying `policy`.
    pub fn new(policy: AnswerPolicy) -> StreamFilter {
        StreamFilter {
            policy,
            buffer: Vec::new(),
            after_cr: false,
            pending: BTreeMap::new(),
            meta: serde_json::Map::new(),
            legacy: false,
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
        // Line ends as LF only (SSE allows CRLF, LF and CR).
        for &b in bytes {
            match (b, self.after_cr) {
                (b'\n', true) => self.after_cr = false,
                (b'\r', _) => {
                    self.buffer.push(b'\n');
                    self.after_cr = true;
                }
                _ => {
                    self.buffer.push(b);
                    self.after_cr = false;
                }
            }
        }
        let mut out = Vec::new();
        while let Some(end) = find(&self.buffer, b"\n\n") {
            let block: Vec<u8> = self.buffer.drain(..end + 2).collect();
            out.extend(self.event(&block[..end]));
            if self.stopped {
                self.buffer.clear();
                return out;
            }
        }
        if self.buffer.len() > MAX_EVENT_BYTES {
            out.extend(self.cut());
        }
        out
    }

    /// The upstream ended: read a last event without its blank line, then release what is held back.
    pub fn finish(&mut self) -> Vec<u8> {
        if self.stopped {
            return Vec::new();
        }
        let mut out = Vec::new();
        let rest = std::mem::take(&mut self.buffer);
        if !rest.iter().all(u8::is_ascii_whitespace) {
            out.extend(self.event(&rest));
        }
        if !self.stopped {
            out.extend(self.flush_all());
        }
        out
    }

    /// End the stream here: a `content_filter` chunk and `[DONE]`.
    fn cut(&mut self) -> Vec<u8> {
        self.stopped = true;
        self.pending.clear();
        self.buffer.clear();
        let mut chunk = Value::Object(self.meta.clone());
        chunk["choices"] =
            serde_json::json!([{"index": 0, "delta": {}, "finish_reason": "content_filter"}]);
        [sse(&chunk), b"data: [DONE]\n\n".to_vec()].concat()
    }

    fn event(&mut self, block: &[u8]) -> Vec<u8> {
        let passthrough = || [block, b"\n\n"].concat();
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
            if !self.stopped {
                out.extend(passthrough());
            }
            return out;
        }
        let Ok(mut value) = serde_json::from_str::<Value>(&data) else {
            return passthrough();
        };
        if !value.get("choices").is_some_and(Value::is_array) {
            return passthrough();
        }
        for field in ["id", "object", "created", "model", "system_fingerprint"] {
            if let Some(v) = value.get(field) {
                self.meta.insert(field.into(), v.clone());
            }
        }
        let mut had_text = false;
        let mut emitted_any = false;
        let mut finished = false;
        let choices = value["choices"].as_array_mut().expect("checked above");
        for choice in choices.iter_mut() {
            if let Some(lp) = choice.get_mut("logprobs") {
                *lp = Value::Null;
            }
            let index = choice.get("index").and_then(Value::as_u64).unwrap_or(0);
            let done = choice.get("finish_reason").is_some_and(|f| !f.is_null());
            finished |= done;
            self.legacy |= choice.get("text").is_some() && choice.get("delta").is_none();
            let mut present = Vec::new();
            for (slot, piece) in Slot::take_all(choice) {
                had_text |= !piece.is_empty();
                let (released, stop) = self.take(index, &slot, &piece, done);
                if stop {
                    return self.cut();
                }
                emitted_any |= !released.is_empty();
                slot.put(choice, released, self.legacy);
                present.push(slot);
            }
            if done {
                // The choice ends here: what it still holds goes out in this chunk, before its finish_reason.
                let held: Vec<Slot> = self
                    .pending
                    .keys()
                    .filter(|(i, s)| *i == index && !present.contains(s))
                    .map(|(_, s)| s.clone())
                    .collect();
                for slot in held {
                    let (released, stop) = self.take(index, &slot, "", true);
                    if stop {
                        return self.cut();
                    }
                    slot.put(choice, released, self.legacy);
                }
            }
        }
        if had_text && !emitted_any && !finished && !carries_more(&value) {
            // All of it is held back for now, and the chunk says nothing else.
            return Vec::new();
        }
        sse(&value)
    }

    /// Add `piece` to a slot and return what may be sent now, and whether to cut the stream.
    fn take(&mut self, index: u64, slot: &Slot, piece: &str, done: bool) -> (String, bool) {
        let canary = self.policy.canary.clone();
        let pending = self
            .pending
            .entry((index, slot.clone()))
            .or_insert_with(|| Pending {
                text: String::new(),
                scan: canary.map(StreamScan::new),
            });
        pending.text.push_str(piece);
        if let Some(how) = pending.scan.as_mut().and_then(|s| s.push(piece)) {
            self.events.push(Event::Canary(how));
            pending.scan = None; // reported once
            if self.policy.cut_on_canary {
                return (String::new(), true);
            }
        }
        let (released, events, block) = release(
            &mut pending.text,
            &self.policy.pii,
            self.policy.pii_action,
            done,
        );
        self.events.extend(events);
        if done && pending.text.is_empty() {
            self.pending.remove(&(index, slot.clone()));
        }
        (released, block)
    }

    /// Release everything still held, in chunks the filter writes itself.
    fn flush_all(&mut self) -> Vec<u8> {
        let keys: Vec<(u64, Slot)> = self.pending.keys().cloned().collect();
        let mut out = Vec::new();
        for (index, slot) in keys {
            let (text, stop) = self.take(index, &slot, "", true);
            if stop {
                return [out, self.cut()].concat();
            }
            if text.is_empty() {
                continue;
            }
            let mut chunk = Value::Object(self.meta.clone());
            let mut choice = serde_json::json!({"index": index, "finish_reason": null});
            slot.put(&mut choice, text, self.legacy);
            chunk["choices"] = Value::Array(vec![choice]);
            out.extend(sse(&chunk));
        }
        out
    }
}

/// Release what can be sent of `pending`: all but the last [`HOLD_CHARS`] characters and the last unfinished
/// word (everything when `done`), never part of a detected span; spans released are rewritten by `action`.
/// Keys, tokens and encoded canaries have no spaces, so holding the last word back until a space (or the end)
/// arrives keeps any of them, however long, from going out before it can be recognised. Returns the text, the
/// spans found, and whether the answer must be cut (`Action::Block` with a span).
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
    let forced = chars > MAX_HOLD_CHARS;
    let mut boundary = if done || forced {
        pending.len()
    } else if chars <= HOLD_CHARS {
        0
    } else {
        pending
            .char_indices()
            .nth(chars - HOLD_CHARS)
            .map_or(0, |(i, _)| i)
    };
    if !done && !forced {
        // The last word may go on in the next chunk.
        let word_start = pending
            .char_indices()
            .rev()
            .find(|(_, c)| c.is_whitespace())
            .map_or(0, |(i, c)| i + c.len_utf8());
        boundary = boundary.min(word_start);
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

/// Whether a chunk carries more than text the filter holds back: a role, a tool call's id or name, usage.
fn carries_more(value: &Value) -> bool {
    value.get("usage").is_some_and(|u| !u.is_null())
        || value["choices"].as_array().is_some_and(|choices| {
            choices.iter().any(|c| {
                let delta = &c["delta"];
                delta.get("role").is_some()
                    || delta["tool_calls"].as_array().is_some_and(|calls| {
                        calls
                            .iter()
                            .any(|t| t.get("id").is_some() || t.pointer("/function/name").is_some())
                    })
            })
        })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
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
    fn the_role_of_the_first_chunk_is_kept() {
        let c1 = json!({"choices":[{"index":0,"delta":{"role":"assistant","content":"You sai"},"finish_reason":null}]});
        let c2 =
            json!({"choices":[{"index":0,"delta":{"content":"d: hello"},"finish_reason":"stop"}]});
        let bytes = format!("data: {c1}\n\ndata: {c2}\n\ndata: [DONE]\n\n");
        let (text, out, _) = run(&pii_policy(Action::Redact), bytes.as_bytes(), 1000);
        let raw = String::from_utf8(out).unwrap();
        assert!(
            raw.starts_with("data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\""),
            "{raw}"
        );
        assert_eq!(text, "You said: hello");
    }

    #[test]
    fn the_end_of_an_answer_comes_before_its_finish_reason() {
        let bytes = stream_of(&["Thanks for asking. The answer is forty-two."]);
        let (_, out, _) = run(&pii_policy(Action::Redact), &bytes, 5);
        let raw = String::from_utf8(out).unwrap();
        let last_text = raw.rfind("forty-two").unwrap();
        let finish = raw.find("\"finish_reason\":\"stop\"").unwrap();
        assert!(last_text < finish, "{raw}");
    }

    #[test]
    fn crlf_streams_tool_arguments_logprobs_and_long_tokens() {
        let c1 = json!({"id":"x","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"t","function":{"name":"f","arguments":""}}]},"logprobs":{"content":[{"token":"x"}]},"finish_reason":null}]});
        let c2 = json!({"id":"x","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"key\":\"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."}}]},"finish_reason":null}]});
        let c3 = json!({"id":"x","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c\"}"}}]},"finish_reason":null}]});
        let c4 = json!({"id":"x","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]});
        let bytes = format!(
            "data: {c1}\r\n\r\ndata: {c2}\r\n\r\ndata: {c3}\r\n\r\ndata: {c4}\r\n\r\ndata: [DONE]"
        );
        let (_, out, events) = run(&pii_policy(Action::Redact), bytes.as_bytes(), 7);
        let raw = String::from_utf8(out).unwrap();
        assert!(
            !raw.contains("eyJhbGci") && !raw.contains("SflKxw"),
            "{raw}"
        );
        assert!(
            raw.contains("[REDACTED:api-key]") && !raw.contains("\"token\""),
            "{raw}"
        );
        assert!(raw.trim_end().ends_with("data: [DONE]"), "{raw}");
        assert_eq!(events, vec![Event::Pii(Kind::ApiKey)]);
    }

    #[test]
    fn an_endless_event_cuts_the_stream() {
        let mut f = StreamFilter::new(pii_policy(Action::Redact));
        let out = f.push(&vec![b'a'; MAX_EVENT_BYTES + 1]);
        assert!(f.stopped() && String::from_utf8(out).unwrap().contains("content_filter"));
    }

    /// Random streams built from SSE fragments (a seeded xorshift, so a failure reproduces): no panic, and
    /// nothing held past the filter's bounds.
    #[test]
    fn random_streams_never_panic() {
        const PARTS: [&str; 16] = [
            "data: ",
            "\n",
            "\r",
            "\r\n",
            "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"",
            "\"}}]}",
            "[DONE]",
            "sk-proj-",
            "abcdefghij0123456789",
            " ",
            "é",
            "\"finish_reason\":\"stop\"",
            "-----BEGIN PRIVATE KEY-----",
            "4111 1111 1111 1111",
            "{\"choices\":[]}",
            ": ping",
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..300 {
            let mut bytes = Vec::new();
            for _ in 0..(next() % 60) {
                bytes.extend(PARTS[(next() % 16) as usize].as_bytes());
            }
            let c = Canary::from_random([1; 10]);
            let mut f = StreamFilter::new(AnswerPolicy {
                canary: Some(c),
                cut_on_canary: next() % 2 == 0,
                pii: Kind::ALL.to_vec(),
                pii_action: if next() % 3 == 0 {
                    Action::Block
                } else {
                    Action::Redact
                },
            });
            let size = 1 + (next() % 17) as usize;
            for piece in bytes.chunks(size) {
                let _ = f.push(piece);
                assert!(f
                    .pending
                    .values()
                    .all(|p| p.text.chars().count() <= MAX_HOLD_CHARS + 64));
            }
            let _ = f.finish();
            assert!(f.pending.values().all(|p| p.text.is_empty()) || f.stopped());
        }
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
