//! `usage send` (a file of events, streamed in batches, with progress and a summary) and the
//! offline lint of metering declarations.

use std::io::{BufRead, BufReader, Read, Write as _};
use std::path::Path;

use anyhow::Context as _;
use companyos_domain::metering::{MeteringDeclaration, RawDeclaration};
use companyos_sdk::{Client, ClientConfig};
use serde_json::json;

use crate::client::ApiClient;
use crate::output::OutputFormat;

/// Upper bound on one event's text in a file.
const EVENT_BYTES_MAX: usize = 1024 * 1024;

/// Reads top-level elements of a JSON array one at a time, without holding the file in memory.
struct ArrayElements<R: Read> {
    bytes: std::io::Bytes<BufReader<R>>,
    started: bool,
    finished: bool,
}

impl<R: Read> ArrayElements<R> {
    fn new(reader: BufReader<R>) -> Self {
        Self {
            bytes: reader.bytes(),
            started: false,
            finished: false,
        }
    }

    fn next_byte(&mut self) -> anyhow::Result<Option<u8>> {
        self.bytes
            .next()
            .transpose()
            .context("failed to read the events file")
    }

    /// The next element's text, or `None` after the closing bracket.
    fn next_element(&mut self) -> anyhow::Result<Option<String>> {
        if self.finished {
            return Ok(None);
        }
        loop {
            let Some(byte) = self.next_byte()? else {
                anyhow::bail!("the JSON array is not closed");
            };
            if byte.is_ascii_whitespace() {
                continue;
            }
            if !self.started {
                anyhow::ensure!(byte == b'[', "the file is neither a JSON array nor NDJSON");
                self.started = true;
                continue;
            }
            match byte {
                b',' => continue,
                b']' => {
                    self.finished = true;
                    return Ok(None);
                }
                first => return self.read_value(first).map(Some),
            }
        }
    }

    fn read_value(&mut self, first: u8) -> anyhow::Result<String> {
        let mut text = vec![first];
        let mut depth: i32 = i32::from(first == b'{' || first == b'[');
        let mut in_string = first == b'"';
        let mut escaped = false;
        if depth == 0 && !in_string {
            // A scalar: up to the next separator.
            loop {
                let Some(byte) = self.next_byte()? else { break };
                if byte == b',' || byte == b']' || byte.is_ascii_whitespace() {
                    if byte == b']' {
                        self.finished = true;
                    }
                    break;
                }
                text.push(byte);
            }
            return String::from_utf8(text).context("the events file is not UTF-8");
        }
        loop {
            let Some(byte) = self.next_byte()? else {
                anyhow::bail!("the events file ends inside an element");
            };
            text.push(byte);
            anyhow::ensure!(
                text.len() <= EVENT_BYTES_MAX,
                "an element is larger than {EVENT_BYTES_MAX} bytes"
            );
            if in_string {
                if escaped {
                    escaped = false;
                } else if byte == b'\\' {
                    escaped = true;
                } else if byte == b'"' {
                    in_string = false;
                    if depth == 0 {
                        break;
                    }
                }
                continue;
            }
            match byte {
                b'"' => in_string = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
        }
        String::from_utf8(text).context("the events file is not UTF-8")
    }
}

#[derive(Default)]
struct Totals {
    sent: u64,
    accepted: u64,
    duplicates: u64,
    late: u64,
    rejected: u64,
    conflicts: u64,
    problems: Vec<String>,
}

impl Totals {
    fn progress(&self) -> String {
        format!(
            "sent {} events: {} accepted, {} duplicates, {} late, {} rejected, {} conflicts",
            self.sent, self.accepted, self.duplicates, self.late, self.rejected, self.conflicts
        )
    }
}

async fn flush(
    client: &Client,
    batch: &mut Vec<String>,
    first_index: u64,
    totals: &mut Totals,
) -> anyhow::Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let mut body =
        Vec::with_capacity(batch.iter().map(String::len).sum::<usize>() + batch.len() + 2);
    body.push(b'[');
    for (i, element) in batch.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(element.as_bytes());
    }
    body.push(b']');
    let result = client
        .send_body(body)
        .await
        .map_err(|e| crate::client::ClientError::Failed(e.to_string()))?;
    totals.sent += batch.len() as u64;
    totals.accepted += result.accepted;
    totals.duplicates += result.duplicates;
    totals.late += result.late;
    totals.rejected += result.rejected;
    totals.conflicts += result.conflicts;
    for item in &result.results {
        let status = item["status"].as_str().unwrap_or("");
        if status == "rejected" || status == "conflict" {
            let index = first_index + item["index"].as_u64().unwrap_or(0);
            totals.problems.push(format!(
                "event #{index} ({}): {} {}",
                item["event_id"].as_str().unwrap_or("no event_id"),
                status,
                item["error"]
                    .as_str()
                    .unwrap_or("same event_id, different content; the original stands")
            ));
        }
    }
    batch.clear();
    Ok(())
}

/// The events read so far, sent in batches as they fill, and the answers' totals.
struct Batches<'a> {
    client: &'a Client,
    batch_size: usize,
    batch: Vec<String>,
    /// The index in the file of the batch's first event, for the problems' messages.
    batch_first: u64,
    next_index: u64,
    totals: Totals,
    /// Whether to show a live counter: only on a terminal, as in a file or a pipe the `\r`
    /// updates are one long line.
    interactive: bool,
    /// The file's size, shown with the counter.
    file_bytes: u64,
}

impl Batches<'_> {
    /// Adds one event's text; sends the batch when it is full.
    async fn push(&mut self, element: String) -> anyhow::Result<()> {
        if self.batch.is_empty() {
            self.batch_first = self.next_index;
        }
        self.batch.push(element);
        self.next_index += 1;
        if self.batch.len() == self.batch_size {
            self.send().await?;
            if self.interactive {
                eprint!(
                    "\r{} ({} bytes file)",
                    self.totals.progress(),
                    self.file_bytes
                );
                let _ = std::io::stderr().flush();
            }
        }
        Ok(())
    }

    /// Sends the batch, if any.
    async fn send(&mut self) -> anyhow::Result<()> {
        flush(
            self.client,
            &mut self.batch,
            self.batch_first,
            &mut self.totals,
        )
        .await
    }

    /// Sends what is left; returns the totals.
    async fn finish(mut self) -> anyhow::Result<Totals> {
        self.send().await?;
        if self.interactive {
            eprintln!("\r{}", self.totals.progress());
        }
        Ok(self.totals)
    }
}

/// Sends a file of events in batches; exit 1 when any event was rejected or conflicted.
pub async fn send(
    api: &ApiClient,
    path: &Path,
    batch_size: usize,
    all_errors: bool,
    format: OutputFormat,
) -> anyhow::Result<u8> {
    if !(1..=10_000).contains(&batch_size) {
        return Err(crate::commands::UsageError(
            "--batch-size must be between 1 and 10000".to_owned(),
        )
        .into());
    }
    let token = api.token().ok_or_else(|| {
        crate::commands::UsageError("usage send needs --token (an ingest operator)".to_owned())
    })?;
    let client = Client::new(ClientConfig::new(api.base(), token))?;
    let file =
        std::fs::File::open(path).with_context(|| format!("failed to open {}", path.display()))?;
    let file_bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut reader = BufReader::new(file);
    let first = first_byte(&mut reader)?;
    let mut batches = Batches {
        client: &client,
        batch_size,
        batch: Vec::with_capacity(batch_size),
        batch_first: 0,
        next_index: 0,
        totals: Totals::default(),
        interactive: format == OutputFormat::Table
            && std::io::IsTerminal::is_terminal(&std::io::stderr()),
        file_bytes,
    };
    match first {
        None => {}
        Some(b'[') => {
            let mut elements = ArrayElements::new(reader);
            while let Some(element) = elements.next_element()? {
                batches.push(element).await?;
            }
        }
        Some(_) => {
            for line in reader.lines() {
                let line = line.context("failed to read the events file")?;
                if line.trim().is_empty() {
                    continue;
                }
                batches.push(line).await?;
            }
        }
    }
    let totals = batches.finish().await?;
    print_summary(&totals, all_errors, format)?;
    Ok(if totals.rejected > 0 || totals.conflicts > 0 {
        1
    } else {
        0
    })
}

/// The first non-blank byte of the file, which decides its format: '[' is a JSON array,
/// anything else NDJSON.
fn first_byte<R: Read>(reader: &mut BufReader<R>) -> anyhow::Result<Option<u8>> {
    loop {
        let buffer = reader
            .fill_buf()
            .context("failed to read the events file")?;
        match buffer.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(i) => return Ok(Some(buffer[i])),
            None if buffer.is_empty() => return Ok(None),
            None => {
                let n = buffer.len();
                reader.consume(n);
            }
        }
    }
}

/// The totals and the problems (the first ten unless `all_errors`), or the JSON summary.
fn print_summary(totals: &Totals, all_errors: bool, format: OutputFormat) -> anyhow::Result<()> {
    match format {
        OutputFormat::Json => {
            let summary = json!({
                "sent": totals.sent, "accepted": totals.accepted, "duplicates": totals.duplicates,
                "late": totals.late, "rejected": totals.rejected, "conflicts": totals.conflicts,
                "problems": totals.problems,
            });
            println!("{}", serde_json::to_string_pretty(&summary)?);
        }
        OutputFormat::Table | OutputFormat::Csv => {
            println!("{}", totals.progress());
            let shown = if all_errors {
                totals.problems.len()
            } else {
                totals.problems.len().min(10)
            };
            for problem in &totals.problems[..shown] {
                println!("  {problem}");
            }
            if shown < totals.problems.len() {
                println!(
                    "  ... and {} more (--all-errors shows them)",
                    totals.problems.len() - shown
                );
            }
        }
    }
    Ok(())
}

/// Reads and validates a TOML metering declaration; every problem named.
pub fn lint_declaration(path: &Path) -> Result<MeteringDeclaration, Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| vec![format!("cannot read: {e}")])?;
    let raw: RawDeclaration =
        toml::from_str(&text).map_err(|e| vec![e.to_string().replace('\n', " ")])?;
    MeteringDeclaration::parse(&raw, None)
        .map_err(|errors| errors.errors().iter().map(ToString::to_string).collect())
}
