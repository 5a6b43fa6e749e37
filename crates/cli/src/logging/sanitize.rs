//! Log lines that a peer cannot forge or bloat: every field value is escaped (no control
//! characters, so no injected newlines or terminal escapes) and truncated, in both formats.
//!
//! Peers choose many of the strings the server logs (worker names, function and trigger ids,
//! error texts that quote their input). Escaping at the formatter covers every log site at once,
//! present and future, instead of trusting each one to wrap its values.

use serde_json::{Map, Value};
use std::fmt::{self, Write};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Most bytes of one field value that reach a line; the rest is summarised.
pub(crate) const MAX_FIELD_BYTES: usize = 1024;
/// The message itself may be longer: it is mostly the server's own text.
pub(crate) const MAX_MESSAGE_BYTES: usize = 4096;

/// A `fmt::Write` that escapes control characters and stops after a byte budget.
struct Escaping<'a, W: Write + ?Sized> {
    inner: &'a mut W,
    budget: usize,
    /// Bytes of input not written once the budget ran out.
    cut: usize,
}

impl<W: Write + ?Sized> Write for Escaping<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for (at, c) in s.char_indices() {
            if self.cut > 0 || c.len_utf8() > self.budget {
                self.cut += s.len() - at;
                return Ok(());
            }
            self.budget -= c.len_utf8();
            match c {
                '\n' => self.inner.write_str("\\n")?,
                '\r' => self.inner.write_str("\\r")?,
                '\t' => self.inner.write_str("\\t")?,
                c if needs_escape(c) => write!(self.inner, "\\u{{{:x}}}", c as u32)?,
                c => self.inner.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// Control characters (C0, DEL, C1) and the invisible marks that reorder or hide text on a
/// terminal (bidirectional overrides and isolates, zero-width characters).
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Writes `value` (its `Debug` form) escaped and cut to `max` bytes.
fn write_value(out: &mut dyn Write, value: &dyn fmt::Debug, max: usize) -> fmt::Result {
    let mut escaping = Escaping {
        inner: out,
        budget: max,
        cut: 0,
    };
    write!(escaping, "{value:?}")?;
    let cut = escaping.cut;
    if cut > 0 {
        write!(out, "…[{cut} more bytes]")?;
    }
    Ok(())
}

/// `value` escaped and cut, as an owned string (JSON lines).
pub(crate) fn sanitized(value: &dyn fmt::Debug, max: usize) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = write_value(&mut out, value, max);
    out
}

fn budget(field: &Field) -> usize {
    if field.name() == "message" {
        MAX_MESSAGE_BYTES
    } else {
        MAX_FIELD_BYTES
    }
}

/// The text format's fields: `message k=v k=v`, every value escaped and cut.
pub(crate) struct SanitizedFields;

impl<'writer> FormatFields<'writer> for SanitizedFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut visitor = TextVisitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct TextVisitor<'a> {
    writer: Writer<'a>,
    first: bool,
    result: fmt::Result,
}

impl Visit for TextVisitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_err() {
            return;
        }
        let separator = if self.first { "" } else { " " };
        self.first = false;
        self.result = (|| {
            self.writer.write_str(separator)?;
            if field.name() != "message" {
                write!(self.writer, "{}=", field.name())?;
            }
            write_value(&mut self.writer, value, budget(field))
        })();
    }
}

/// One JSON object per line: `{"timestamp","level","fields":{…},"target"}`, the shape of
/// tracing-subscriber's JSON format, with every string field escaped and cut the same way.
pub(crate) struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut timestamp = String::new();
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        let mut visitor = JsonVisitor(Map::new());
        event.record(&mut visitor);
        let meta = event.metadata();
        let json = |value: Value| value.to_string();
        writeln!(
            writer,
            "{{\"timestamp\":{},\"level\":{},\"fields\":{},\"target\":{}}}",
            json(timestamp.into()),
            json(meta.level().as_str().into()),
            json(visitor.0.into()),
            json(meta.target().into()),
        )
    }
}

struct JsonVisitor(Map<String, Value>);

impl Visit for JsonVisitor {
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), value.into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        // Unquoted, as `%value` would print it.
        let value = sanitized(&format_args!("{value}"), budget(field));
        self.0.insert(field.name().to_owned(), value.into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let value = sanitized(value, budget(field));
        self.0.insert(field.name().to_owned(), value.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_long_values_cut() {
        let forged = "w1\n2026-01-01T00:00:00Z  INFO forged line\u{1b}[31mred\u{202e}";
        let text = sanitized(&format_args!("{forged}"), 1024);
        assert_eq!(
            text,
            "w1\\n2026-01-01T00:00:00Z  INFO forged line\\u{1b}[31mred\\u{202e}"
        );
        assert!(!text.chars().any(needs_escape));
        let long = "é".repeat(1000);
        let cut = sanitized(&format_args!("{long}"), 11);
        assert_eq!(cut, "ééééé…[1990 more bytes]");
        assert_eq!(sanitized(&"quoted\n", 100), "\"quoted\\n\"");
    }
}
