//! The one CSV reader: a file (or bytes) read in chunks of whole rows, each row split into field byte slices
//! by hand, so a caller parses only what it needs and can process the rows of a chunk in parallel.
//!
//! Every command that reads a table goes through here: the typed [`crate::read_frame`] (audit, schema,
//! assess, harden, the gateway's reference data) builds its columns from these rows, and `aegis drift`
//! feeds its accumulators from the chunks directly, in parallel, because it reads two files of a million
//! rows. One tokenizer means one dialect: the delimiter is given or sniffed the same way, quoting follows
//! RFC 4180 the same way, and the same bounds and errors apply. Quoted fields may hold the delimiter, doubled
//! quotes and line breaks; a quote opens a quoted field only at the start of a field (spaces before it are
//! allowed) and is a plain character anywhere else; text after a closing quote is kept, as the `csv` crate
//! and Python's `csv` module do. `\r\n` and `\n` both end rows; blank lines are skipped; a UTF-8 byte-order
//! mark is ignored. Bounds: the file size by `max_bytes` (checked on the bytes actually read, so a file that
//! grows or a special file is bounded too), the header by [`crate::MAX_COLUMNS`] and
//! [`crate::MAX_CELL_BYTES`], a single row by [`MAX_ROW_BYTES`]. Errors name the file and the 1-based line
//! (a row with the wrong number of fields is [`Error::RaggedRow`]); a first row that is not text is
//! [`Error::NotText`], so a binary file given as a table is refused in one line.

use std::borrow::Cow;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::options::{ReadOptions, MAX_CELL_BYTES, MAX_COLUMNS};

/// A single row longer than this many bytes is refused.
pub const MAX_ROW_BYTES: usize = 64 << 20;

/// The default chunk size in bytes (a chunk always ends on a row boundary, so it may be larger).
pub const DEFAULT_CHUNK_BYTES: usize = 4 << 20;

/// The delimiters [`ChunkOptions::delimiter`] `None` chooses from.
const DELIMITERS: [u8; 4] = [b',', b';', b'\t', b'|'];

/// One field of a row, as raw bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    /// For an unquoted field, the bytes between the delimiters. For a quoted field, the bytes after the
    /// opening quote up to the delimiter: doubled quotes, the closing quote and anything after it are still
    /// there (see [`Field::unescaped`]).
    pub raw: &'a [u8],
    /// The field was quoted.
    pub quoted: bool,
}

impl<'a> Field<'a> {
    /// The field's content: for a quoted field, doubled quotes undone and the closing quote removed.
    pub fn unescaped(&self) -> Cow<'a, [u8]> {
        if !self.quoted {
            return Cow::Borrowed(self.raw);
        }
        let first = self.raw.iter().position(|&b| b == b'"');
        match first {
            None => Cow::Borrowed(self.raw),
            // The common case: `"text"` with nothing after the closing quote but spaces.
            Some(p) if p + 1 == self.raw.len() => Cow::Borrowed(&self.raw[..p]),
            Some(_) => {
                let mut out = Vec::with_capacity(self.raw.len());
                let mut i = 0;
                let mut in_quote = true;
                while i < self.raw.len() {
                    let b = self.raw[i];
                    if in_quote && b == b'"' {
                        if self.raw.get(i + 1) == Some(&b'"') {
                            out.push(b'"');
                            i += 1;
                        } else {
                            in_quote = false;
                        }
                    } else {
                        out.push(b);
                    }
                    i += 1;
                }
                Cow::Owned(out)
            }
        }
    }

    /// The unescaped field as text with surrounding ASCII whitespace trimmed (invalid UTF-8 is replaced;
    /// [`Field::strict_text`] refuses it instead).
    pub fn text(&self) -> Cow<'a, str> {
        match self.unescaped() {
            Cow::Borrowed(b) => String::from_utf8_lossy(b.trim_ascii()),
            Cow::Owned(b) => Cow::Owned(String::from_utf8_lossy(b.trim_ascii()).into_owned()),
        }
    }

    /// The unescaped, trimmed field as text; `None` when it is not valid UTF-8.
    pub fn strict_text(&self) -> Option<Cow<'a, str>> {
        match self.unescaped() {
            Cow::Borrowed(b) => std::str::from_utf8(b.trim_ascii()).ok().map(Cow::Borrowed),
            Cow::Owned(b) => std::str::from_utf8(b.trim_ascii())
                .ok()
                .map(|s| Cow::Owned(s.to_owned())),
        }
    }

    /// The field parsed as a number (`str::parse::<f64>` on the trimmed content); `None` when it is not one.
    pub fn number(&self) -> Option<f64> {
        if self.quoted {
            return std::str::from_utf8(self.unescaped().trim_ascii())
                .ok()?
                .parse::<f64>()
                .ok();
        }
        std::str::from_utf8(self.raw.trim_ascii())
            .ok()?
            .parse::<f64>()
            .ok()
    }
}

/// Split one row (no line terminator) into fields on `delimiter`, into `out` (cleared first).
pub fn split_row<'a>(row: &'a [u8], delimiter: u8, out: &mut Vec<Field<'a>>) {
    out.clear();
    let n = row.len();
    let mut i = 0;
    loop {
        // Spaces before an opening quote are tolerated.
        let mut j = i;
        while j < n && row[j] == b' ' && delimiter != b' ' {
            j += 1;
        }
        let quoted = j < n && row[j] == b'"';
        let start = if quoted { j + 1 } else { i };
        let mut k = start;
        if quoted {
            // Past the closing quote (a doubled quote is content).
            loop {
                match row[k..].iter().position(|&b| b == b'"') {
                    Some(p) if row.get(k + p + 1) == Some(&b'"') => k += p + 2,
                    Some(p) => {
                        k += p + 1;
                        break;
                    }
                    None => {
                        k = n;
                        break;
                    }
                }
            }
        }
        match row[k..].iter().position(|&b| b == delimiter) {
            Some(p) => {
                out.push(Field {
                    raw: &row[start..k + p],
                    quoted,
                });
                i = k + p + 1;
            }
            None => {
                out.push(Field {
                    raw: &row[start..],
                    quoted,
                });
                return;
            }
        }
    }
}

/// How to read a table with [`CsvChunks`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkOptions {
    /// Field delimiter; `None` picks the most frequent of `,` `;` tab `|` in the first line.
    pub delimiter: Option<u8>,
    /// The first row names the columns (default); when false, columns are named `c0`, `c1`, … and the
    /// first row is data.
    pub header: bool,
    /// Refuse files larger than this many bytes; nothing past it is read.
    pub max_bytes: u64,
    /// Target bytes per chunk.
    pub chunk_bytes: usize,
}

impl Default for ChunkOptions {
    fn default() -> Self {
        ChunkOptions {
            delimiter: None,
            header: true,
            max_bytes: ReadOptions::DEFAULT_MAX_BYTES,
            chunk_bytes: DEFAULT_CHUNK_BYTES,
        }
    }
}

impl ChunkOptions {
    /// The CSV dialect and bounds of `opts`, with the default chunk size.
    pub fn from_read(opts: &ReadOptions) -> Self {
        ChunkOptions {
            delimiter: opts.delimiter,
            header: opts.header,
            max_bytes: opts.max_bytes,
            chunk_bytes: DEFAULT_CHUNK_BYTES,
        }
    }
}

/// A run of whole data rows of a file.
#[derive(Debug, Clone)]
pub struct Chunk {
    data: Vec<u8>,
    /// (start, end, 1-based line) of each row in `data`.
    rows: Vec<(usize, usize, u64)>,
    delimiter: u8,
    expected: usize,
    path: PathBuf,
}

impl Chunk {
    /// Rows in this chunk.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Bytes of row data in this chunk.
    pub fn byte_len(&self) -> usize {
        self.data.len()
    }

    /// True when the chunk has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The 1-based line where row `i` starts.
    pub fn line(&self, i: usize) -> u64 {
        self.rows.get(i).map_or(0, |r| r.2)
    }

    /// Split row `i` into `out`; a row whose field count differs from the header's is an
    /// [`Error::RaggedRow`] naming the file and line.
    pub fn fields<'a>(&'a self, i: usize, out: &mut Vec<Field<'a>>) -> Result<(), Error> {
        let Some(&(s, e, line)) = self.rows.get(i) else {
            out.clear();
            return Ok(());
        };
        split_row(&self.data[s..e], self.delimiter, out);
        if out.len() != self.expected {
            return Err(Error::RaggedRow {
                path: self.path.clone(),
                line,
                expected: self.expected,
                found: out.len(),
            });
        }
        Ok(())
    }
}

/// A CSV table read as a header and then chunks of whole rows.
pub struct CsvChunks {
    path: PathBuf,
    reader: Box<dyn Read + Send>,
    delimiter: u8,
    header: Vec<String>,
    carry: Vec<u8>,
    next_line: u64,
    eof: bool,
    chunk_bytes: usize,
    rows: u64,
    bytes_read: u64,
    max_bytes: u64,
}

impl std::fmt::Debug for CsvChunks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsvChunks")
            .field("path", &self.path)
            .field("delimiter", &self.delimiter)
            .field("header", &self.header)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl CsvChunks {
    /// Open `path` and read its first row.
    ///
    /// # Errors
    ///
    /// [`Error::Io`], [`Error::TooLarge`], [`Error::Empty`] (no first row), [`Error::NotText`],
    /// [`Error::TooManyColumns`], [`Error::EmptyColumnName`], [`Error::DuplicateColumn`],
    /// [`Error::CellTooLong`].
    pub fn open(path: &Path, opts: &ChunkOptions) -> Result<Self, Error> {
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len > opts.max_bytes {
            return Err(Error::TooLarge {
                path: path.to_path_buf(),
                limit: opts.max_bytes,
            });
        }
        // A small file needs no 4 MiB buffer (a file that grows past it still reads: chunks grow as needed).
        // (A pipe or special file reports 0: it keeps the default.)
        let opts = ChunkOptions {
            chunk_bytes: match usize::try_from(len) {
                Ok(0) | Err(_) => opts.chunk_bytes,
                Ok(n) => opts.chunk_bytes.min(n.saturating_add(1)),
            },
            ..opts.clone()
        };
        Self::from_reader(path.to_path_buf(), Box::new(file), &opts)
    }

    /// Read a table from `reader`; `path` names it in messages.
    ///
    /// # Errors
    ///
    /// As [`CsvChunks::open`].
    pub fn from_reader(
        path: PathBuf,
        reader: Box<dyn Read + Send>,
        opts: &ChunkOptions,
    ) -> Result<Self, Error> {
        let mut chunks = CsvChunks {
            path,
            reader: Box::new(reader.take(opts.max_bytes.saturating_add(1))),
            delimiter: opts.delimiter.unwrap_or(b','),
            header: Vec::new(),
            carry: Vec::new(),
            next_line: 1,
            eof: false,
            chunk_bytes: opts.chunk_bytes.max(1024),
            rows: 0,
            bytes_read: 0,
            max_bytes: opts.max_bytes,
        };
        chunks.fill()?;
        // A UTF-8 byte-order mark (spreadsheet exports) is not part of the first column's name.
        if chunks.carry.starts_with(b"\xEF\xBB\xBF") {
            chunks.carry.drain(..3);
        }
        if opts.delimiter.is_none() {
            // Blank lines before the first row are skipped by the scanner; sniff the row itself.
            let start = chunks
                .carry
                .iter()
                .position(|&b| b != b'\n' && b != b'\r')
                .unwrap_or(chunks.carry.len());
            chunks.delimiter = sniff(&chunks.carry[start..]);
        }
        let (s, e, line) = chunks.first_row()?;
        let first = chunks.carry[s..e].to_vec();
        check_text(&chunks.path, &first)?;
        let mut fields = Vec::new();
        split_row(&first, chunks.delimiter, &mut fields);
        if fields.len() > MAX_COLUMNS {
            return Err(Error::TooManyColumns {
                path: chunks.path,
                found: fields.len(),
                limit: MAX_COLUMNS,
            });
        }
        if opts.header {
            chunks.header = header_names(&chunks.path, &fields)?;
            let after = row_after(&chunks.carry, e);
            chunks.carry.drain(..after);
            chunks.next_line = line + lines_in(&first) + 1;
        } else {
            chunks.header = (0..fields.len()).map(|i| format!("c{i}")).collect();
            chunks.carry.drain(..s);
            chunks.next_line = line;
        }
        Ok(chunks)
    }

    /// Reads until the first non-blank row is complete: its (start, end, line) in `carry`.
    fn first_row(&mut self) -> Result<(usize, usize, u64), Error> {
        loop {
            let mut rows = Vec::new();
            scan_rows(&self.carry, self.delimiter, 1, &mut rows, self.eof);
            if let Some(&row) = rows.first() {
                return Ok(row);
            }
            if self.eof {
                return Err(Error::Empty {
                    path: self.path.clone(),
                });
            }
            if self.carry.len() > MAX_ROW_BYTES {
                return Err(Error::CellTooLong {
                    path: self.path.clone(),
                    line: 1,
                    column: "(header)".into(),
                    found: self.carry.len(),
                    limit: MAX_ROW_BYTES,
                });
            }
            // Grow geometrically, so a long first row is scanned a logarithmic number of times.
            self.chunk_bytes = self.chunk_bytes.saturating_mul(2).min(MAX_ROW_BYTES + 1);
            self.fill()?;
        }
    }

    /// The column names.
    pub fn header(&self) -> &[String] {
        &self.header
    }

    /// The delimiter in use.
    pub fn delimiter(&self) -> u8 {
        self.delimiter
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Data rows handed out so far.
    pub fn rows_read(&self) -> u64 {
        self.rows
    }

    fn fill(&mut self) -> Result<(), Error> {
        let start = self.carry.len();
        self.carry.resize(start + self.chunk_bytes, 0);
        let mut filled = start;
        while filled < self.carry.len() {
            match self.reader.read(&mut self.carry[filled..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(k) => filled += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(Error::Io {
                        path: self.path.clone(),
                        source,
                    })
                }
            }
        }
        self.carry.truncate(filled);
        self.bytes_read += (filled - start) as u64;
        if self.bytes_read > self.max_bytes {
            return Err(Error::TooLarge {
                path: self.path.clone(),
                limit: self.max_bytes,
            });
        }
        Ok(())
    }

    /// The next chunk of whole rows, or `None` at the end of the file.
    ///
    /// # Errors
    ///
    /// [`Error::Io`], [`Error::TooLarge`], or [`Error::CellTooLong`] when a single row exceeds
    /// [`MAX_ROW_BYTES`] (an unclosed quote makes the rest of the file one row).
    pub fn next_chunk(&mut self) -> Result<Option<Chunk>, Error> {
        loop {
            if !self.eof && self.carry.len() < self.chunk_bytes {
                self.fill()?;
            }
            let mut rows = Vec::new();
            let (consumed, lines) = scan_rows(
                &self.carry,
                self.delimiter,
                self.next_line,
                &mut rows,
                self.eof,
            );
            if rows.is_empty() && !self.eof {
                if self.carry.len() > MAX_ROW_BYTES {
                    return Err(Error::CellTooLong {
                        path: self.path.clone(),
                        line: self.next_line,
                        column: "(row)".into(),
                        found: self.carry.len(),
                        limit: MAX_ROW_BYTES,
                    });
                }
                // Make room for a long row.
                self.chunk_bytes = self.chunk_bytes.saturating_mul(2).min(MAX_ROW_BYTES + 1);
                continue;
            }
            if rows.is_empty() {
                return Ok(None);
            }
            let rest = self.carry.split_off(consumed);
            let data = std::mem::replace(&mut self.carry, rest);
            self.next_line += lines;
            self.rows += rows.len() as u64;
            return Ok(Some(Chunk {
                data,
                rows,
                delimiter: self.delimiter,
                expected: self.header.len(),
                path: self.path.clone(),
            }));
        }
    }
}

/// Refuses a first row that is not text: a binary file would otherwise become column names full of raw
/// bytes, echoed in every error.
fn check_text(path: &Path, row: &[u8]) -> Result<(), Error> {
    let reason = match std::str::from_utf8(row) {
        Err(_) => "is not UTF-8 text",
        Ok(text)
            if text
                .chars()
                .any(|c| c.is_control() && !matches!(c, '\t' | '\r' | '\n')) =>
        {
            "holds control characters"
        }
        Ok(_) => return Ok(()),
    };
    Err(Error::NotText {
        path: path.to_path_buf(),
        reason,
    })
}

/// The column names of a header row: present, unique and of bounded length.
fn header_names(path: &Path, fields: &[Field<'_>]) -> Result<Vec<String>, Error> {
    let mut seen = std::collections::HashSet::new();
    let mut names = Vec::with_capacity(fields.len());
    for (i, f) in fields.iter().enumerate() {
        let name = f.text().into_owned();
        if name.is_empty() {
            return Err(Error::EmptyColumnName {
                path: path.to_path_buf(),
                index: i + 1,
            });
        }
        if name.len() > MAX_CELL_BYTES {
            return Err(Error::CellTooLong {
                path: path.to_path_buf(),
                line: 1,
                column: name.chars().take(64).collect(),
                found: name.len(),
                limit: MAX_CELL_BYTES,
            });
        }
        if !seen.insert(name.clone()) {
            return Err(Error::DuplicateColumn {
                path: path.to_path_buf(),
                column: name,
            });
        }
        names.push(name);
    }
    Ok(names)
}

/// Byte offset just past the row ending at `end` (past its `\r\n` or `\n`).
fn row_after(data: &[u8], end: usize) -> usize {
    let mut i = end;
    if data.get(i) == Some(&b'\r') {
        i += 1;
    }
    if data.get(i) == Some(&b'\n') {
        i += 1;
    }
    i
}

fn lines_in(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

/// Where the row scanner is within a field.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Quote {
    /// At the start of a field (spaces so far): a quote here opens a quoted field.
    Start,
    /// Inside an unquoted field, or after a quoted field's closing quote: quotes are plain characters.
    Plain,
    /// Inside a quoted field.
    Open,
    /// Just after a quote inside a quoted field: a second quote is content, anything else closes it.
    Closing,
}

/// Find complete rows in `data` (which starts at a row start on line `first_line`): pushes (start, end,
/// line) of each non-blank row, end excluding the terminator. Returns the bytes consumed and the lines they
/// span. At EOF the unterminated tail is a row too. Quotes are read exactly as [`split_row`] reads them.
fn scan_rows(
    data: &[u8],
    delimiter: u8,
    first_line: u64,
    rows: &mut Vec<(usize, usize, u64)>,
    eof: bool,
) -> (usize, u64) {
    // Most chunks hold no quote at all: then every line break ends a row, found with memchr.
    if memchr::memchr(b'"', data).is_none() {
        return scan_unquoted(data, first_line, rows, eof);
    }
    let mut line = first_line;
    let mut start = 0usize;
    let mut start_line = line;
    let mut state = Quote::Start;
    for (i, &b) in data.iter().enumerate() {
        if b == b'\n' {
            line += 1;
            if state != Quote::Open {
                let mut end = i;
                if end > start && data[end - 1] == b'\r' {
                    end -= 1;
                }
                if end > start {
                    rows.push((start, end, start_line));
                }
                start = i + 1;
                start_line = line;
                state = Quote::Start;
            }
            continue;
        }
        state = match (state, b) {
            (Quote::Open, b'"') => Quote::Closing,
            (Quote::Open, _) | (Quote::Closing, b'"') => Quote::Open,
            (_, d) if d == delimiter => Quote::Start,
            (Quote::Start, b'"') => Quote::Open,
            (Quote::Start, b' ') => Quote::Start,
            _ => Quote::Plain,
        };
    }
    if eof && start < data.len() {
        let mut end = data.len();
        if data[end - 1] == b'\r' {
            end -= 1;
        }
        if end > start {
            rows.push((start, end, start_line));
        }
        return (data.len(), line - first_line);
    }
    (start, start_line - first_line)
}

/// [`scan_rows`] for data without a quote: rows end at every `\n`.
fn scan_unquoted(
    data: &[u8],
    first_line: u64,
    rows: &mut Vec<(usize, usize, u64)>,
    eof: bool,
) -> (usize, u64) {
    let mut line = first_line;
    let mut start = 0usize;
    for i in memchr::memchr_iter(b'\n', data) {
        let mut end = i;
        if end > start && data[end - 1] == b'\r' {
            end -= 1;
        }
        if end > start {
            rows.push((start, end, line));
        }
        line += 1;
        start = i + 1;
    }
    if eof && start < data.len() {
        let mut end = data.len();
        if data[end - 1] == b'\r' {
            end -= 1;
        }
        if end > start {
            rows.push((start, end, line));
        }
        return (data.len(), line - first_line);
    }
    (start, line - first_line)
}

/// The most frequent of `,` `;` tab `|` outside quotes in the first line of `data` (`,` on ties or when none
/// occurs).
fn sniff(data: &[u8]) -> u8 {
    let mut counts = [0usize; DELIMITERS.len()];
    let mut in_quote = false;
    for &b in data {
        if b == b'"' {
            in_quote = !in_quote;
        } else if (b == b'\n' || b == b'\r') && !in_quote {
            break;
        } else if !in_quote {
            if let Some(k) = DELIMITERS.iter().position(|&c| c == b) {
                counts[k] += 1;
            }
        }
    }
    let mut best = 0;
    for k in 1..DELIMITERS.len() {
        if counts[k] > counts[best] {
            best = k;
        }
    }
    DELIMITERS[best]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(row: &str) -> Vec<String> {
        let mut out = Vec::new();
        split_row(row.as_bytes(), b',', &mut out);
        out.iter().map(|f| f.text().into_owned()).collect()
    }

    #[test]
    fn splits_quoted_fields() {
        assert_eq!(texts("a,b,c"), ["a", "b", "c"]);
        assert_eq!(texts("a,,"), ["a", "", ""]);
        assert_eq!(
            texts(r#""x, y",2,"say ""hi""""#),
            ["x, y", "2", r#"say "hi""#]
        );
        assert_eq!(texts(r#" "q" ,1"#), ["q", "1"]);
        let mut out = Vec::new();
        split_row(b"1.5, 2e3 ,x", b',', &mut out);
        assert_eq!(out[0].number(), Some(1.5));
        assert_eq!(out[1].number(), Some(2000.0));
        assert_eq!(out[2].number(), None);
    }

    fn write(content: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, content).unwrap();
        f
    }

    /// (header, (line, cells) per row).
    type Read = (Vec<String>, Vec<(u64, Vec<String>)>);

    fn read_all(content: &[u8], chunk: usize) -> Result<Read, Error> {
        let f = write(content);
        let mut r = CsvChunks::open(
            f.path(),
            &ChunkOptions {
                chunk_bytes: chunk,
                ..ChunkOptions::default()
            },
        )?;
        let header = r.header().to_vec();
        let mut rows = Vec::new();
        while let Some(c) = r.next_chunk()? {
            let mut fields = Vec::new();
            for i in 0..c.len() {
                c.fields(i, &mut fields)?;
                rows.push((
                    c.line(i),
                    fields.iter().map(|f| f.text().into_owned()).collect(),
                ));
            }
        }
        Ok((header, rows))
    }

    #[test]
    fn reads_rows_across_chunks_with_lines() {
        let mut text = String::from("\u{feff}a;b\r\n");
        for i in 0..5000 {
            text.push_str(&format!("{i};\"v\n{i}\"\r\n"));
            if i == 10 {
                text.push('\n');
            }
        }
        text.push_str("last;x");
        let (header, rows) = read_all(text.as_bytes(), 1024).unwrap();
        assert_eq!(header, ["a", "b"]);
        assert_eq!(rows.len(), 5001);
        assert_eq!(rows[0], (2, vec!["0".to_string(), "v\n0".to_string()]));
        // Each row spans two lines; one blank line after row 10.
        assert_eq!(rows[11].0, 2 + 2 * 11 + 1);
        assert_eq!(rows[5000].1, ["last", "x"]);
    }

    /// A small deterministic generator for the differential test (the data crate has no PRNG dependency).
    struct Lcg(u64);

    impl Lcg {
        fn below(&mut self, n: usize) -> usize {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((self.0 >> 33) as usize) % n
        }
    }

    /// Random CSV text in the RFC 4180 dialect both readers share: plain fields (which may hold a quote
    /// after their first character), quoted fields holding delimiters, doubled quotes, line breaks and text
    /// after the closing quote, spaces around fields, `\n` and `\r\n` row ends.
    fn random_csv(rng: &mut Lcg, delimiter: u8) -> Vec<u8> {
        let d = char::from(delimiter);
        let plain = ['a', 'b', '1', '.', '-', 'é', '"', ' ', '\t', ';', '|'];
        let quoted = ['x', ',', ';', '\t', '|', '\n', ' ', '"', 'ü', '\r'];
        let cols = 2 + rng.below(5);
        let mut out = String::new();
        for _ in 0..1 + rng.below(60) {
            for c in 0..cols {
                if c > 0 {
                    out.push(d);
                }
                match rng.below(3) {
                    0 => {
                        // Plain: never starts with a quote or a space before a quote.
                        out.push('v');
                        for _ in 0..rng.below(6) {
                            let ch = plain[rng.below(plain.len())];
                            if ch != d {
                                out.push(ch);
                            }
                        }
                    }
                    1 => {
                        out.push('"');
                        for _ in 0..rng.below(8) {
                            match quoted[rng.below(quoted.len())] {
                                '"' => out.push_str("\"\""),
                                ch => out.push(ch),
                            }
                        }
                        out.push('"');
                        if rng.below(4) == 0 {
                            out.push_str("tail");
                        }
                        if rng.below(4) == 0 {
                            out.push(' ');
                        }
                    }
                    _ => {}
                }
            }
            out.push_str(if rng.below(2) == 0 { "\n" } else { "\r\n" });
        }
        out.into_bytes()
    }

    /// The cells the `csv` crate (the reference implementation of the dialect) reads from `data`.
    fn csv_crate_rows(data: &[u8], delimiter: u8) -> Vec<Vec<String>> {
        let mut rdr = ::csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .trim(::csv::Trim::All)
            .delimiter(delimiter)
            .from_reader(data);
        rdr.records()
            .map(|r| r.unwrap().iter().map(str::to_owned).collect())
            .collect()
    }

    #[test]
    fn reads_exactly_what_the_csv_crate_reads() {
        let mut rng = Lcg(7);
        for case in 0..400 {
            let delimiter = [b',', b';', b'\t', b'|'][case % 4];
            let data = random_csv(&mut rng, delimiter);
            let expected = csv_crate_rows(&data, delimiter);
            assert!(!expected.is_empty());
            let opts = ChunkOptions {
                delimiter: Some(delimiter),
                header: false,
                chunk_bytes: 1024,
                ..ChunkOptions::default()
            };
            let mut chunks = CsvChunks::from_reader(
                PathBuf::from("t.csv"),
                Box::new(std::io::Cursor::new(data.clone())),
                &opts,
            )
            .unwrap();
            let mut got = Vec::new();
            while let Some(c) = chunks.next_chunk().unwrap() {
                let mut fields = Vec::new();
                for i in 0..c.len() {
                    c.fields(i, &mut fields).unwrap();
                    got.push(
                        fields
                            .iter()
                            .map(|f| f.text().into_owned())
                            .collect::<Vec<_>>(),
                    );
                }
            }
            assert_eq!(
                got,
                expected,
                "case {case}: {:?}",
                String::from_utf8_lossy(&data)
            );
        }
    }

    #[test]
    fn a_quote_inside_a_plain_field_does_not_open_a_quoted_one() {
        // Before, any quote toggled the row scanner: the line break after `5"` was taken as inside quotes.
        let (header, rows) = read_all(b"size,n\n5\",1\n7,2\n", 1024).unwrap();
        assert_eq!(header, ["size", "n"]);
        assert_eq!(rows[0], (2, vec!["5\"".to_string(), "1".to_string()]));
        assert_eq!(rows[1], (3, vec!["7".to_string(), "2".to_string()]));
    }

    #[test]
    fn the_byte_bound_counts_bytes_read_not_the_reported_size() {
        let big = b"a,b\n"
            .iter()
            .copied()
            .chain(b"1,2\n".repeat(2000))
            .collect::<Vec<u8>>();
        let opts = ChunkOptions {
            max_bytes: 4096,
            chunk_bytes: 1024,
            ..ChunkOptions::default()
        };
        let result = CsvChunks::from_reader(
            PathBuf::from("pipe"),
            Box::new(std::io::Cursor::new(big)),
            &opts,
        )
        .and_then(|mut c| {
            while c.next_chunk()?.is_some() {}
            Ok(())
        });
        assert!(
            matches!(result, Err(Error::TooLarge { limit: 4096, .. })),
            "{result:?}"
        );
    }

    #[test]
    fn blank_lines_before_the_header_do_not_hide_its_delimiter() {
        let (header, rows) = read_all(b"\n\r\na;b\n1;2\n", 1024).unwrap();
        assert_eq!(header, ["a", "b"]);
        assert_eq!(rows[0], (4, vec!["1".to_string(), "2".to_string()]));
    }

    #[test]
    fn a_long_first_row_grows_the_buffer_geometrically() {
        // 200 KiB header from a reader that reports no size (a pipe): read in a few growing passes.
        let mut text = (0..20_000)
            .map(|i| format!("c{i}"))
            .collect::<Vec<_>>()
            .join(",");
        text.push('\n');
        let opts = ChunkOptions {
            chunk_bytes: 1024,
            ..ChunkOptions::default()
        };
        let c = CsvChunks::from_reader(
            PathBuf::from("pipe"),
            Box::new(std::io::Cursor::new(text.into_bytes())),
            &opts,
        );
        // More than MAX_COLUMNS: refused by name, after reading the whole row.
        assert!(
            matches!(c, Err(Error::TooManyColumns { found: 20_000, .. })),
            "{c:?}"
        );
    }

    #[test]
    fn without_a_header_the_first_row_is_data() {
        let opts = ChunkOptions {
            header: false,
            ..ChunkOptions::default()
        };
        let mut c = CsvChunks::from_reader(
            PathBuf::from("t"),
            Box::new(std::io::Cursor::new(b"1;2\n3;4\n".to_vec())),
            &opts,
        )
        .unwrap();
        assert_eq!(c.header(), ["c0", "c1"]);
        assert_eq!(c.delimiter(), b';');
        let chunk = c.next_chunk().unwrap().unwrap();
        assert_eq!((chunk.len(), chunk.line(0)), (2, 1));
    }

    #[test]
    fn errors_name_file_and_line() {
        let err = read_all(b"a,b\n1,2\n3\n", 1024).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("line 3") && msg.contains("1 fields"), "{msg}");
        assert!(matches!(read_all(b"", 1024), Err(Error::Empty { .. })));
        assert!(matches!(
            read_all(b"a,a\n1,2\n", 1024),
            Err(Error::DuplicateColumn { .. })
        ));
        let (h, rows) = read_all(b"a,b\n", 1024).unwrap();
        assert_eq!(h.len(), 2);
        assert!(rows.is_empty());
    }
}
