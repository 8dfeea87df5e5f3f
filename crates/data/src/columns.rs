//! A fast, bounded CSV reader for column statistics: the file is read in chunks of whole rows, and each row
//! is split into raw field byte slices by hand, so a caller can parse only what it needs (numbers with
//! `str::parse::<f64>`, categories as text) and process the rows of a chunk in parallel.
//!
//! `aegis drift` reads two files of a million rows and tens of columns each; the typed [`crate::read_frame`]
//! path builds a full [`aegis_core::Frame`] in two passes, which is more than drift needs. This reader makes
//! one pass, holds one chunk (a few MiB) at a time, and follows RFC 4180 where it matters: quoted fields may
//! hold the delimiter, doubled quotes and line breaks; `\r\n` and `\n` both end rows; blank lines are skipped;
//! a UTF-8 byte-order mark is ignored. It is bounded like the other readers: the file size by `max_bytes`,
//! the header by [`crate::MAX_COLUMNS`], a single row by [`MAX_ROW_BYTES`]. Errors name the file and the
//! 1-based line (a row with the wrong number of fields is [`Error::RaggedRow`]).

use std::borrow::Cow;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::MAX_COLUMNS;

/// A single row longer than this many bytes is refused.
pub const MAX_ROW_BYTES: usize = 64 << 20;

/// The default chunk size in bytes (a chunk always ends on a row boundary, so it may be larger).
pub const DEFAULT_CHUNK_BYTES: usize = 4 << 20;

/// One field of a row, as raw bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    /// The bytes between the delimiters, without the surrounding quotes of a quoted field (doubled quotes
    /// inside are still doubled: see [`Field::unescaped`]).
    pub raw: &'a [u8],
    /// The field was quoted.
    pub quoted: bool,
}

impl<'a> Field<'a> {
    /// The field's bytes with doubled quotes undone.
    pub fn unescaped(&self) -> Cow<'a, [u8]> {
        if self.quoted && self.raw.contains(&b'"') {
            let mut out = Vec::with_capacity(self.raw.len());
            let mut i = 0;
            while i < self.raw.len() {
                out.push(self.raw[i]);
                if self.raw[i] == b'"' && self.raw.get(i + 1) == Some(&b'"') {
                    i += 1;
                }
                i += 1;
            }
            Cow::Owned(out)
        } else {
            Cow::Borrowed(self.raw)
        }
    }

    /// The unescaped field as text with surrounding ASCII whitespace trimmed (invalid UTF-8 is replaced).
    pub fn text(&self) -> Cow<'a, str> {
        match self.unescaped() {
            Cow::Borrowed(b) => match String::from_utf8_lossy(b.trim_ascii()) {
                Cow::Borrowed(s) => Cow::Borrowed(s),
                Cow::Owned(s) => Cow::Owned(s),
            },
            Cow::Owned(b) => Cow::Owned(String::from_utf8_lossy(b.trim_ascii()).into_owned()),
        }
    }

    /// The field parsed as a number (`str::parse::<f64>` on the trimmed bytes); `None` when it is not one.
    pub fn number(&self) -> Option<f64> {
        let bytes = self.raw.trim_ascii();
        std::str::from_utf8(bytes).ok()?.parse::<f64>().ok()
    }
}

/// Split one row (no line terminator) into fields on `delimiter`, into `out` (cleared first).
pub fn split_row<'a>(row: &'a [u8], delimiter: u8, out: &mut Vec<Field<'a>>) {
    out.clear();
    let mut i = 0;
    let n = row.len();
    loop {
        // Leading spaces before an opening quote are tolerated.
        let mut j = i;
        while j < n && row[j] == b' ' {
            j += 1;
        }
        if j < n && row[j] == b'"' {
            let start = j + 1;
            let mut k = start;
            loop {
                match row[k..].iter().position(|&b| b == b'"') {
                    Some(p) => {
                        k += p;
                        if row.get(k + 1) == Some(&b'"') {
                            k += 2;
                        } else {
                            break;
                        }
                    }
                    None => {
                        k = n;
                        break;
                    }
                }
            }
            out.push(Field {
                raw: &row[start..k.min(n)],
                quoted: true,
            });
            // Skip anything between the closing quote and the next delimiter.
            let next = row[k.min(n)..]
                .iter()
                .position(|&b| b == delimiter)
                .map(|p| k.min(n) + p);
            match next {
                Some(d) => i = d + 1,
                None => return,
            }
        } else {
            match row[i..].iter().position(|&b| b == delimiter) {
                Some(p) => {
                    out.push(Field {
                        raw: &row[i..i + p],
                        quoted: false,
                    });
                    i += p + 1;
                }
                None => {
                    out.push(Field {
                        raw: &row[i..],
                        quoted: false,
                    });
                    return;
                }
            }
        }
    }
}

/// How to open a file with [`CsvChunks`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkOptions {
    /// Field delimiter; `None` picks the most frequent of `,` `;` tab `|` in the header line.
    pub delimiter: Option<u8>,
    /// Refuse files larger than this many bytes.
    pub max_bytes: u64,
    /// Target bytes per chunk.
    pub chunk_bytes: usize,
}

impl Default for ChunkOptions {
    fn default() -> Self {
        ChunkOptions {
            delimiter: None,
            max_bytes: crate::ReadOptions::DEFAULT_MAX_BYTES,
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

/// A CSV file read as a header and then chunks of whole rows.
#[derive(Debug)]
pub struct CsvChunks {
    path: PathBuf,
    file: File,
    delimiter: u8,
    header: Vec<String>,
    carry: Vec<u8>,
    next_line: u64,
    eof: bool,
    chunk_bytes: usize,
    rows: u64,
}

impl CsvChunks {
    /// Open `path` and read its header row.
    ///
    /// # Errors
    ///
    /// [`Error::Io`], [`Error::TooLarge`], [`Error::Empty`] (no header), [`Error::TooManyColumns`],
    /// [`Error::EmptyColumnName`], [`Error::DuplicateColumn`].
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
        let mut reader = CsvChunks {
            path: path.to_path_buf(),
            file,
            delimiter: opts.delimiter.unwrap_or(b','),
            header: Vec::new(),
            carry: Vec::new(),
            next_line: 1,
            eof: false,
            chunk_bytes: opts.chunk_bytes.max(1024),
            rows: 0,
        };
        // Read until the first row end (or EOF).
        let header_row = loop {
            let mut rows = Vec::new();
            scan_rows(&reader.carry, 1, &mut rows, reader.eof);
            if let Some(&(s, e, line)) = rows.first() {
                let header = reader.carry[s..e].to_vec();
                let after = row_after(&reader.carry, e);
                reader.carry.drain(..after);
                reader.next_line = line + lines_in(&header) + 1;
                break header;
            }
            if reader.eof {
                return Err(Error::Empty {
                    path: path.to_path_buf(),
                });
            }
            if reader.carry.len() > MAX_ROW_BYTES {
                return Err(Error::CellTooLong {
                    path: path.to_path_buf(),
                    line: 1,
                    column: "(header)".into(),
                    found: reader.carry.len(),
                    limit: MAX_ROW_BYTES,
                });
            }
            reader.fill()?;
        };
        let mut header_row = header_row;
        if header_row.starts_with(&[0xEF, 0xBB, 0xBF]) {
            header_row.drain(..3);
        }
        // A binary file would otherwise become column names full of raw bytes, echoed in every error.
        let not_text = match std::str::from_utf8(&header_row) {
            Err(_) => Some("is not UTF-8 text"),
            Ok(text)
                if text
                    .chars()
                    .any(|c| c.is_control() && !matches!(c, '\t' | '\r' | '\n')) =>
            {
                Some("holds control characters")
            }
            Ok(_) => None,
        };
        if let Some(reason) = not_text {
            return Err(Error::NotText {
                path: path.to_path_buf(),
                reason,
            });
        }
        if opts.delimiter.is_none() {
            reader.delimiter = sniff(&header_row);
        }
        let mut fields = Vec::new();
        split_row(&header_row, reader.delimiter, &mut fields);
        if fields.len() > MAX_COLUMNS {
            return Err(Error::TooManyColumns {
                path: path.to_path_buf(),
                found: fields.len(),
                limit: MAX_COLUMNS,
            });
        }
        let mut seen = std::collections::HashSet::new();
        for (i, f) in fields.iter().enumerate() {
            let name = f.text().into_owned();
            if name.is_empty() {
                return Err(Error::EmptyColumnName {
                    path: path.to_path_buf(),
                    index: i + 1,
                });
            }
            if !seen.insert(name.clone()) {
                return Err(Error::DuplicateColumn {
                    path: path.to_path_buf(),
                    column: name,
                });
            }
            reader.header.push(name);
        }
        Ok(reader)
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
            match self.file.read(&mut self.carry[filled..]) {
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
        Ok(())
    }

    /// The next chunk of whole rows, or `None` at the end of the file.
    ///
    /// # Errors
    ///
    /// [`Error::Io`], or [`Error::CellTooLong`] when a single row exceeds [`MAX_ROW_BYTES`] (an unclosed
    /// quote makes the rest of the file one row).
    pub fn next_chunk(&mut self) -> Result<Option<Chunk>, Error> {
        loop {
            if !self.eof && self.carry.len() < self.chunk_bytes {
                self.fill()?;
            }
            let mut rows = Vec::new();
            let (consumed, lines) = scan_rows(&self.carry, self.next_line, &mut rows, self.eof);
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

/// Find complete rows in `data` (which starts at a row start on line `first_line`): pushes (start, end,
/// line) of each non-blank row, end excluding the terminator. Returns the bytes consumed and the lines they
/// span. At EOF the unterminated tail is a row too.
fn scan_rows(
    data: &[u8],
    first_line: u64,
    rows: &mut Vec<(usize, usize, u64)>,
    eof: bool,
) -> (usize, u64) {
    let mut line = first_line;
    let mut start = 0usize;
    let mut start_line = line;
    let mut in_quote = false;
    let mut i = 0usize;
    while i < data.len() {
        let b = data[i];
        if b == b'"' {
            in_quote = !in_quote;
        } else if b == b'\n' {
            line += 1;
            if !in_quote {
                let mut end = i;
                if end > start && data[end - 1] == b'\r' {
                    end -= 1;
                }
                if end > start {
                    rows.push((start, end, start_line));
                }
                start = i + 1;
                start_line = line;
            }
        }
        i += 1;
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

/// The most frequent of `,` `;` tab `|` outside quotes (`,` on ties or when none occurs).
fn sniff(header: &[u8]) -> u8 {
    let mut counts = [0usize; 4];
    let cands = [b',', b';', b'\t', b'|'];
    let mut in_quote = false;
    for &b in header {
        if b == b'"' {
            in_quote = !in_quote;
        } else if !in_quote {
            if let Some(k) = cands.iter().position(|&c| c == b) {
                counts[k] += 1;
            }
        }
    }
    let mut best = 0;
    for k in 1..4 {
        if counts[k] > counts[best] {
            best = k;
        }
    }
    cands[best]
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
