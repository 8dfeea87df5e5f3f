//! GGUF writers (following llama.cpp `docs/gguf.md`, version 1–3) and chat-template fixtures.
//!
//! [`Writer`] lays out an honest file the way llama.cpp and `gguf-py` do (tensor data contiguous, each tensor
//! padded to the alignment) and can be told to lie: counts larger than the file, explicit tensor offsets,
//! raw value bytes. The honest templates are written in the style of the real Llama-3, Llama-3.1, ChatML/Qwen,
//! Mistral, Gemma and Phi-3 templates; the malicious ones are classic Jinja2 sandbox escapes (SSTI) with
//! harmless commands (`id`).

use crate::Case;

/// A metadata value to write.
#[derive(Debug, Clone)]
pub enum Val {
    /// UINT8
    U8(u8),
    /// INT32
    I32(i32),
    /// UINT32
    U32(u32),
    /// UINT64
    U64(u64),
    /// FLOAT32
    F32(f32),
    /// BOOL
    Bool(bool),
    /// STRING
    Str(String),
    /// ARRAY; the item type is taken from the first item (UINT8 when empty).
    Array(Vec<Val>),
    /// A value type number and the raw bytes that follow it (for lies and invalid values).
    Raw(u32, Vec<u8>),
}

impl Val {
    fn type_id(&self) -> u32 {
        match self {
            Val::U8(_) => 0,
            Val::U32(_) => 4,
            Val::I32(_) => 5,
            Val::F32(_) => 6,
            Val::Bool(_) => 7,
            Val::Str(_) => 8,
            Val::Array(_) => 9,
            Val::U64(_) => 10,
            Val::Raw(t, _) => *t,
        }
    }

    /// The value without its type.
    fn write_body(&self, out: &mut Vec<u8>, wide: bool) {
        match self {
            Val::U8(v) => out.push(*v),
            Val::U32(v) => out.extend_from_slice(&v.to_le_bytes()),
            Val::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
            Val::U64(v) => out.extend_from_slice(&v.to_le_bytes()),
            Val::F32(v) => out.extend_from_slice(&v.to_le_bytes()),
            Val::Bool(v) => out.push(u8::from(*v)),
            Val::Str(s) => write_str(out, s, wide),
            Val::Array(items) => {
                let t = items.first().map_or(0, Val::type_id);
                out.extend_from_slice(&t.to_le_bytes());
                write_count(out, items.len() as u64, wide);
                for item in items {
                    item.write_body(out, wide);
                }
            }
            Val::Raw(_, bytes) => out.extend_from_slice(bytes),
        }
    }
}

fn write_count(out: &mut Vec<u8>, n: u64, wide: bool) {
    if wide {
        out.extend_from_slice(&n.to_le_bytes());
    } else {
        out.extend_from_slice(&(n as u32).to_le_bytes());
    }
}

fn write_str(out: &mut Vec<u8>, s: &str, wide: bool) {
    write_count(out, s.len() as u64, wide);
    out.extend_from_slice(s.as_bytes());
}

/// A tensor to write.
#[derive(Debug, Clone)]
pub struct TensorSpec {
    /// Name.
    pub name: String,
    /// Dimensions, innermost first.
    pub dims: Vec<u64>,
    /// ggml type number (0 F32, 1 F16, 2 Q4_0, 8 Q8_0, ...).
    pub ggml_type: u32,
    /// Bytes of data.
    pub size: u64,
    /// Explicit offset relative to the data section; `None` lays it out after the previous tensor.
    pub offset: Option<u64>,
}

/// Builds a GGUF file.
#[derive(Debug, Clone)]
pub struct Writer {
    version: u32,
    alignment: u64,
    kvs: Vec<(String, Val)>,
    tensors: Vec<TensorSpec>,
    kv_count: Option<u64>,
    tensor_count: Option<u64>,
    trailing: Vec<u8>,
}

impl Writer {
    /// An empty file of `version` (1 writes `u32` counts and lengths).
    pub fn new(version: u32) -> Writer {
        Writer {
            version,
            alignment: 32,
            kvs: Vec::new(),
            tensors: Vec::new(),
            kv_count: None,
            tensor_count: None,
            trailing: Vec::new(),
        }
    }

    /// Add a metadata key/value.
    pub fn kv(mut self, key: &str, value: Val) -> Writer {
        if key == "general.alignment" {
            if let Val::U32(a) = value {
                self.alignment = u64::from(a.max(1));
            }
        }
        self.kvs.push((key.to_owned(), value));
        self
    }

    /// Add a tensor of ggml type `t` with `size` bytes of data, laid out after the previous one.
    pub fn tensor(self, name: &str, dims: &[u64], t: u32, size: u64) -> Writer {
        self.tensor_at(name, dims, t, size, None)
    }

    /// Add a tensor with an explicit data offset (relative to the data section).
    pub fn tensor_at(
        mut self,
        name: &str,
        dims: &[u64],
        t: u32,
        size: u64,
        offset: Option<u64>,
    ) -> Writer {
        self.tensors.push(TensorSpec {
            name: name.to_owned(),
            dims: dims.to_vec(),
            ggml_type: t,
            size,
            offset,
        });
        self
    }

    /// Write `n` as the metadata count instead of the real one.
    pub fn lie_kv_count(mut self, n: u64) -> Writer {
        self.kv_count = Some(n);
        self
    }

    /// Write `n` as the tensor count instead of the real one.
    pub fn lie_tensor_count(mut self, n: u64) -> Writer {
        self.tensor_count = Some(n);
        self
    }

    /// Append bytes after the tensor data.
    pub fn trailing(mut self, bytes: &[u8]) -> Writer {
        self.trailing.extend_from_slice(bytes);
        self
    }

    /// The file.
    pub fn build(&self) -> Vec<u8> {
        let wide = self.version >= 2;
        let align = self.alignment;
        let pad = |n: u64| n.div_ceil(align) * align;
        let mut out = b"GGUF".to_vec();
        out.extend_from_slice(&self.version.to_le_bytes());
        write_count(
            &mut out,
            self.tensor_count.unwrap_or(self.tensors.len() as u64),
            wide,
        );
        write_count(
            &mut out,
            self.kv_count.unwrap_or(self.kvs.len() as u64),
            wide,
        );
        for (key, value) in &self.kvs {
            write_str(&mut out, key, wide);
            out.extend_from_slice(&value.type_id().to_le_bytes());
            value.write_body(&mut out, wide);
        }
        let mut cursor = 0u64;
        let mut placed = Vec::new();
        for t in &self.tensors {
            let offset = t.offset.unwrap_or(cursor);
            if t.offset.is_none() {
                cursor = pad(offset + t.size);
            }
            placed.push((offset, t.size));
            write_str(&mut out, &t.name, wide);
            out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                write_count(&mut out, *d, wide);
            }
            out.extend_from_slice(&t.ggml_type.to_le_bytes());
            out.extend_from_slice(&offset.to_le_bytes());
        }
        out.resize(pad(out.len() as u64) as usize, 0);
        // Data region: every tensor that ends within 1 MiB is materialised, padded to the alignment.
        let region = placed
            .iter()
            .filter_map(|(o, s)| o.checked_add(*s).filter(|e| *e <= 1 << 20))
            .map(pad)
            .max()
            .unwrap_or(0);
        let start = out.len();
        out.resize(start + region as usize, 0x11);
        out.extend_from_slice(&self.trailing);
        out
    }
}

/// Llama-3 8B Instruct style.
pub const LLAMA3_TEMPLATE: &str = "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";

/// Llama-3.1 style, with tools, `namespace`, `tojson` and `raise_exception`.
pub const LLAMA31_TEMPLATE: &str = r#"{{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- set date_string = "26 Jul 2024" %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}
{%- set ns = namespace(found=false) -%}

{#- This block extracts the system message, so we can slot it into the right place. #}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
    {%- set ns.found = true %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}

{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{%- if builtin_tools is defined or tools is not none %}
    {{- "Environment: ipython\n" }}
{%- endif %}
{%- if builtin_tools is defined %}
    {{- "Tools: " + builtin_tools | reject('equalto', 'code_interpreter') | join(", ") + "\n\n"}}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\n" }}
{{- "Today Date: " + date_string + "\n\n" }}
{%- if tools is not none and not tools_in_user_message %}
    {{- "You have access to the following functions. To call a function, please respond with JSON for a function call." }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}

{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {%- if builtin_tools is defined and tool_call.name in builtin_tools %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
            {{- "<|python_tag|>" + tool_call.name + ".call(" }}
            {%- for arg_name, arg_val in tool_call.arguments | items %}
                {{- arg_name + '="' + arg_val + '"' }}
                {%- if not loop.last %}
                    {{- ", " }}
                {%- endif %}
            {%- endfor %}
            {{- ")" }}
        {%- else  %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
            {{- '{"name": "' + tool_call.name + '", ' }}
            {{- '"parameters": ' }}
            {{- tool_call.arguments | tojson }}
            {{- "}" }}
        {%- endif %}
        {%- if builtin_tools is defined %}
            {{- "<|eom_id|>" }}
        {%- else %}
            {{- "<|eot_id|>" }}
        {%- endif %}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\n\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}
"#;

/// ChatML as used by Qwen2.5, with tool calls.
pub const CHATML_TEMPLATE: &str = r#"{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
"#;

/// Mistral Instruct style.
pub const MISTRAL_TEMPLATE: &str = "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}";

/// Gemma style.
pub const GEMMA_TEMPLATE: &str = "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}";

/// Phi-3 style.
pub const PHI3_TEMPLATE: &str = "{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\\n' + message['content'] + '<|end|>\\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\\n' + message['content'] + '<|end|>\\n'}}{% elif message['role'] == 'assistant' %}{{'<|assistant|>\\n' + message['content'] + '<|end|>\\n'}}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% else %}{{ eos_token }}{% endif %}";

/// DeepSeek/ChatML hybrid with `namespace`, `joiner`, `selectattr` and a `{% raw %}` block.
pub const NAMESPACE_TEMPLATE: &str = r#"{%- set ns = namespace(found=false, system='') -%}
{%- set comma = joiner(', ') -%}
{%- for message in messages -%}
    {%- if message['role'] == 'system' -%}
        {%- set ns.found = true -%}
        {%- set ns.system = message['content'] -%}
    {%- endif -%}
{%- endfor -%}
{%- set users = messages | selectattr('role', 'equalto', 'user') | list -%}
{%- if not ns.found -%}
{{- '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' -}}
{%- else -%}
{{- '<|im_start|>system\n' ~ ns.system ~ '<|im_end|>\n' -}}
{%- endif %}
{% raw %}{{ this is literal text, not an expression: ''.__class__ }}{% endraw %}
{%- for message in messages if message['role'] != 'system' -%}
{{- comma() ~ '<|im_start|>' ~ message['role'] ~ '\n' ~ message['content'].strip() ~ '<|im_end|>\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\n' }}{%- endif -%}"#;

/// Every honest template, with a short name.
pub const HONEST_TEMPLATES: &[(&str, &str)] = &[
    ("llama3", LLAMA3_TEMPLATE),
    ("llama31", LLAMA31_TEMPLATE),
    ("chatml-qwen", CHATML_TEMPLATE),
    ("mistral", MISTRAL_TEMPLATE),
    ("gemma", GEMMA_TEMPLATE),
    ("phi3", PHI3_TEMPLATE),
    ("namespace-joiner", NAMESPACE_TEMPLATE),
];

/// Malicious templates: name, template, the rule that must fire at high or above.
pub const MALICIOUS_TEMPLATES: &[(&str, &str, &str)] = &[
    ("mro-subclasses", "{{ ''.__class__.__mro__[1].__subclasses__() }}", "AEG-SCAN-410"),
    ("cycler-globals-popen", "{{ cycler.__init__.__globals__.os.popen('id').read() }}", "AEG-SCAN-411"),
    ("lipsum-globals-os", "{{ lipsum.__globals__['os'].popen('id').read() }}", "AEG-SCAN-411"),
    ("namespace-init-globals", "{{ namespace.__init__.__globals__ }}", "AEG-SCAN-411"),
    (
        "joiner-via-self",
        "{{ self._TemplateReference__context.joiner.__init__.__globals__.os.popen('id').read() }}",
        "AEG-SCAN-411",
    ),
    ("attr-hex-escape", r"{{ ()|attr('\x5f\x5fclass\x5f\x5f') }}", "AEG-SCAN-412"),
    ("attr-concat-tilde", "{{ ()|attr('__cla'~'ss__')|attr('__base__') }}", "AEG-SCAN-412"),
    ("attr-concat-plus", "{{ ()|attr('__cla' + 'ss__') }}", "AEG-SCAN-412"),
    ("attr-octal", r"{{ ()|attr('\137\137class\137\137') }}", "AEG-SCAN-412"),
    ("attr-unicode-subscript", r"{{ ''['\u005f\u005fclass\u005f\u005f'] }}", "AEG-SCAN-410"),
    ("attr-computed", "{{ ()|attr(request.args.a) }}", "AEG-SCAN-412"),
    ("import-os", "{% import 'os' as os %}{{ os.popen('id').read() }}", "AEG-SCAN-413"),
    ("include-file", "{% include '/etc/passwd' %}", "AEG-SCAN-413"),
    ("from-import", "{% from 'helpers.j2' import run %}{{ run('id') }}", "AEG-SCAN-413"),
    ("bare-os-popen", "{{ os.popen('id').read() }}", "AEG-SCAN-414"),
    ("request-config", "{{ config.items() }}{{ request.environ }}", "AEG-SCAN-415"),
    (
        "set-escaped-dunder",
        r"{% set c = '\x5f\x5fcl' ~ 'ass\x5f\x5f' %}{{ ()|attr(c) }}",
        "AEG-SCAN-416",
    ),
    ("set-joined-dunder", "{% set g = ['__glo', 'bals__']|join %}{{ lipsum|attr(g) }}", "AEG-SCAN-416"),
    (
        "payload-inside-honest",
        "{% for message in messages %}{{ message['content'] }}{% endfor %}{% if add_generation_prompt %}{{ lipsum.__globals__.__builtins__.__import__('os').popen('id').read() }}{% endif %}",
        "AEG-SCAN-411",
    ),
];

/// Token strings of a tiny BPE vocabulary.
fn tokens() -> Vec<Val> {
    let mut t: Vec<Val> = [
        "<|begin_of_text|>",
        "<|end_of_text|>",
        "<|start_header_id|>",
        "<|end_header_id|>",
        "<|eot_id|>",
    ]
    .iter()
    .map(|s| Val::Str((*s).to_owned()))
    .collect();
    for word in [
        "!", "\"", "#", "a", "b", "the", "Ġthe", "Ġmodel", "Ġhello", "ing", "Ċ",
    ] {
        t.push(Val::Str(word.to_owned()));
    }
    t
}

/// A small honest llama-architecture model with tokenizer metadata and `template` as its chat template.
pub fn honest_writer(template: &str) -> Writer {
    let toks = tokens();
    let n = toks.len();
    Writer::new(3)
        .kv("general.architecture", Val::Str("llama".into()))
        .kv("general.name", Val::Str("tiny-llama".into()))
        .kv("general.file_type", Val::U32(2))
        .kv("llama.context_length", Val::U32(2048))
        .kv("llama.embedding_length", Val::U32(64))
        .kv("llama.block_count", Val::U32(1))
        .kv("llama.rope.freq_base", Val::F32(500000.0))
        .kv("tokenizer.ggml.model", Val::Str("gpt2".into()))
        .kv("tokenizer.ggml.tokens", Val::Array(toks))
        .kv(
            "tokenizer.ggml.token_type",
            Val::Array(
                (0..n)
                    .map(|i| Val::I32(if i < 5 { 3 } else { 1 }))
                    .collect(),
            ),
        )
        .kv(
            "tokenizer.ggml.merges",
            Val::Array(vec![Val::Str("Ġ t".into()), Val::Str("h e".into())]),
        )
        .kv("tokenizer.ggml.bos_token_id", Val::U32(0))
        .kv("tokenizer.ggml.eos_token_id", Val::U32(4))
        .kv("tokenizer.ggml.add_bos_token", Val::Bool(true))
        .kv("tokenizer.chat_template", Val::Str(template.to_owned()))
        .tensor("token_embd.weight", &[64, n as u64], 1, 64 * n as u64 * 2)
        .tensor("blk.0.attn_q.weight", &[64, 64], 2, 2 * 18 * 64)
        .tensor("output_norm.weight", &[64], 0, 256)
}

/// [`honest_writer`] built.
pub fn honest_model(template: &str) -> Vec<u8> {
    honest_writer(template).build()
}

/// An honest model whose metadata count is 2^60.
pub fn count_lie() -> Vec<u8> {
    honest_writer(LLAMA3_TEMPLATE).lie_kv_count(1 << 60).build()
}

/// A string value claiming 2^50 bytes.
pub fn string_length_lie() -> Vec<u8> {
    Writer::new(3)
        .kv("general.architecture", Val::Str("llama".into()))
        .kv(
            "general.name",
            Val::Raw(8, [&(1u64 << 50).to_le_bytes()[..], b"tiny"].concat()),
        )
        .build()
}

/// A string array claiming 2^55 items.
pub fn array_length_lie() -> Vec<u8> {
    let body = [
        &8u32.to_le_bytes()[..],
        &(1u64 << 55).to_le_bytes(),
        &[0; 16],
    ]
    .concat();
    Writer::new(3)
        .kv("general.architecture", Val::Str("llama".into()))
        .kv("tokenizer.ggml.tokens", Val::Raw(9, body))
        .build()
}

/// Elements of the junk array of the corpus cases: one over the default `Limits::max_entries` (1,000,000),
/// about 0.95 MiB.
pub const JUNK_OVER_DEFAULT_LIMIT: u64 = 1_000_001;

/// A model whose metadata holds a `n`-element UINT8 junk array (`n` bytes) before `template`: a count over
/// the entry limit used to stop the parse before the chat template was read.
pub fn template_after_huge_array(template: &str, n: u64) -> Vec<u8> {
    let mut body = Vec::with_capacity(12 + n as usize);
    body.extend_from_slice(&0u32.to_le_bytes());
    body.extend_from_slice(&n.to_le_bytes());
    body.resize(12 + n as usize, 0x41);
    Writer::new(3)
        .kv("general.architecture", Val::Str("llama".into()))
        .kv("general.junk", Val::Raw(9, body))
        .kv("tokenizer.chat_template", Val::Str(template.to_owned()))
        .tensor("output_norm.weight", &[64], 0, 256)
        .build()
}

/// A tensor whose data lies a terabyte past the end of the file.
pub fn tensor_out_of_bounds() -> Vec<u8> {
    honest_writer(LLAMA3_TEMPLATE)
        .tensor_at("output.weight", &[64, 16], 0, 64 * 16 * 4, Some(1 << 40))
        .build()
}

/// Two tensors sharing data.
pub fn tensor_overlap() -> Vec<u8> {
    honest_writer(LLAMA3_TEMPLATE)
        .tensor_at("output.weight", &[64], 0, 256, Some(0))
        .build()
}

/// A tensor at an offset that is not a multiple of the alignment.
pub fn tensor_misaligned() -> Vec<u8> {
    Writer::new(3)
        .kv("general.architecture", Val::Str("llama".into()))
        .tensor("a", &[8], 0, 32)
        .tensor_at("b", &[4], 0, 16, Some(40))
        .build()
}

/// An honest model followed by a pickle.
pub fn trailing_bytes() -> Vec<u8> {
    honest_writer(LLAMA3_TEMPLATE)
        .trailing(b"\x80\x02cos\nsystem\nq\x00X\x0a\x00\x00\x00echo pwnedq\x01\x85q\x02Rq\x03.")
        .build()
}

/// `general.architecture` twice with different values.
pub fn duplicate_key() -> Vec<u8> {
    honest_writer(LLAMA3_TEMPLATE)
        .kv("general.architecture", Val::Str("gpt2".into()))
        .build()
}

/// Malicious and benign cases of this format.
pub fn corpus() -> Vec<Case> {
    let mut cases = Vec::new();
    for (name, template, rule) in MALICIOUS_TEMPLATES {
        cases.push(Case::malicious(
            &format!("gguf/template-{name}"),
            "model.gguf",
            honest_model(template),
            rule,
            "Jinja2 chat template sandbox escape (SSTI)",
        ));
    }
    for (name, template) in HONEST_TEMPLATES {
        cases.push(Case::benign(
            &format!("gguf/template-{name}"),
            "model.gguf",
            honest_model(template),
            "honest chat template",
        ));
    }
    let named = honest_writer(LLAMA3_TEMPLATE)
        .kv(
            "tokenizer.chat_template.tool_use",
            Val::Str(MALICIOUS_TEMPLATES[1].1.to_owned()),
        )
        .build();
    cases.push(Case::malicious(
        "gguf/named-template",
        "model.gguf",
        named,
        "AEG-SCAN-411",
        "SSTI in a named chat template (tokenizer.chat_template.<name>)",
    ));
    let named_ok = honest_writer(LLAMA3_TEMPLATE)
        .kv(
            "tokenizer.chat_template.tool_use",
            Val::Str(CHATML_TEMPLATE.to_owned()),
        )
        .build();
    cases.push(Case::benign(
        "gguf/named-template-honest",
        "model.gguf",
        named_ok,
        "honest named chat template",
    ));
    let structural: [(&str, Vec<u8>, &'static str, &'static str); 6] = [
        (
            "count-lie",
            count_lie(),
            "AEG-SCAN-401",
            "metadata count larger than the file",
        ),
        (
            "string-length-lie",
            string_length_lie(),
            "AEG-SCAN-401",
            "string length larger than the file",
        ),
        (
            "array-length-lie",
            array_length_lie(),
            "AEG-SCAN-401",
            "array length larger than the file",
        ),
        (
            "tensor-out-of-bounds",
            tensor_out_of_bounds(),
            "AEG-SCAN-402",
            "tensor data past the end of the file",
        ),
        (
            "tensor-overlap",
            tensor_overlap(),
            "AEG-SCAN-403",
            "two tensors aliasing the same bytes",
        ),
        (
            "duplicate-key",
            duplicate_key(),
            "AEG-SCAN-406",
            "metadata key declared twice",
        ),
    ];
    for (name, bytes, rule, technique) in structural {
        cases.push(Case::malicious(
            &format!("gguf/{name}"),
            "model.gguf",
            bytes,
            rule,
            technique,
        ));
    }
    cases.push(Case::malicious(
        "gguf/template-after-huge-array",
        "model.gguf",
        template_after_huge_array(MALICIOUS_TEMPLATES[1].1, JUNK_OVER_DEFAULT_LIMIT),
        "AEG-SCAN-411",
        "chat template placed after an array longer than the scanner's entry limit",
    ));
    cases.push(Case::benign(
        "gguf/template-after-huge-array-honest",
        "model.gguf",
        template_after_huge_array(LLAMA3_TEMPLATE, JUNK_OVER_DEFAULT_LIMIT),
        "honest template after a very long array",
    ));
    let v1 = Writer::new(1)
        .kv("general.architecture", Val::Str("llama".into()))
        .kv("tokenizer.ggml.tokens", Val::Array(tokens()))
        .tensor("output_norm.weight", &[64], 0, 256)
        .build();
    cases.push(Case::benign(
        "gguf/honest-v1",
        "model.gguf",
        v1,
        "honest GGUF version 1",
    ));
    let aligned = Writer::new(3)
        .kv("general.architecture", Val::Str("llama".into()))
        .kv("general.alignment", Val::U32(64))
        .tensor("a", &[8], 0, 32)
        .tensor("b", &[32], 8, 34)
        .build();
    cases.push(Case::benign(
        "gguf/honest-aligned-64",
        "model.gguf",
        aligned,
        "honest custom alignment",
    ));
    cases
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn honest_model_layout() {
        let bytes = honest_model(LLAMA3_TEMPLATE);
        assert_eq!(&bytes[..4], b"GGUF");
        assert_eq!(bytes.len() % 32, 0);
        assert!(bytes
            .windows(LLAMA3_TEMPLATE.len())
            .any(|w| w == LLAMA3_TEMPLATE.as_bytes()));
    }

    #[test]
    fn version_one_uses_u32_counts() {
        let bytes = Writer::new(1).kv("k", Val::U8(1)).build();
        assert_eq!(&bytes[8..16], &[0, 0, 0, 0, 1, 0, 0, 0]);
    }

    /// Regenerate the committed fuzz seeds: `cargo test -p aegis-test-support -- --ignored write_fuzz_seeds`.
    #[test]
    #[ignore]
    fn write_fuzz_seeds() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/seeds");
        let gguf: [(&str, Vec<u8>); 3] = [
            ("honest.gguf", honest_model(PHI3_TEMPLATE)),
            (
                "v1.gguf",
                Writer::new(1)
                    .kv("a", Val::Array(vec![Val::U32(1)]))
                    .tensor("t", &[4], 0, 16)
                    .build(),
            ),
            ("count-lie.gguf", count_lie()),
        ];
        let st: [(&str, Vec<u8>); 3] = [
            ("honest.safetensors", crate::safetensors::honest()),
            ("duplicate.safetensors", crate::safetensors::duplicate_key()),
            ("overlap.safetensors", crate::safetensors::overlap()),
        ];
        for (dir, files) in [("gguf", gguf), ("safetensors", st)] {
            let dir = format!("{root}/{dir}");
            std::fs::create_dir_all(&dir).unwrap();
            for (name, bytes) in files {
                std::fs::write(format!("{dir}/{name}"), bytes).unwrap();
            }
        }
    }
}
