//! A statement as a PDF (standard Helvetica, so any PDF reader and `pdftotext` read its text)
//! and as the CSV of the pack (RFC 4180 quoting; the HTTP CSV adds spreadsheet formula guards).

use companyos_domain::statement::{STATEMENT_CSV_COLUMNS, Statement};
use pdf_writer::{Content, Name, Pdf, Rect, Ref, Str};

/// Text rows on one A4 page.
const ROWS_PER_PAGE: usize = 48;
/// Characters of one PDF row (longer text is cut: the JSON and CSV carry every character).
const ROW_CHARS_MAX: usize = 110;

/// The statement's CSV: a header row, then [`Statement::csv_rows`].
pub fn statement_csv(statement: &Statement) -> String {
    crate::util::csv_text(&STATEMENT_CSV_COLUMNS, statement.csv_rows())
}

/// The text rows of the PDF: heading, plans, lines, adjustments, totals, counts, ledger.
fn pdf_rows(statement: &Statement) -> Vec<String> {
    let s = statement;
    let mut rows = vec![
        format!("Usage statement {} for tenant {}", s.month, s.tenant_id),
        format!(
            "Status: {}   Currency: {}   Generated: {}",
            s.status.as_str(),
            s.currency,
            s.generated_at
        ),
        String::new(),
        "Plans in force".to_owned(),
    ];
    rows.extend(s.plans.iter().map(|p| {
        format!(
            "  {} version {} from {} to {} (sha256 {})",
            p.plan, p.version, p.from, p.to, p.sha256
        )
    }));
    rows.push(String::new());
    rows.push(
        "Lines: service / metric / unit / plan: quantity, included, overage, unit price, amount"
            .to_owned(),
    );
    rows.extend(s.lines.iter().map(|l| {
        format!(
            "  {} / {} / {} / {} v{}: {}, {}, {}, {}, {}",
            l.key.service,
            l.key.metric,
            l.key.unit,
            l.plan,
            l.version,
            l.quantity,
            l.included,
            l.overage,
            l.unit_price,
            l.amount
        )
    }));
    if !s.adjustments.is_empty() {
        rows.push(String::new());
        rows.push("Adjustments of earlier months".to_owned());
        rows.extend(s.adjustments.iter().map(|a| {
            format!(
                "  {} {} / {} / {}: quantity {}, amount {}",
                a.for_month, a.key.service, a.key.metric, a.key.unit, a.quantity, a.amount
            )
        }));
    }
    rows.push(String::new());
    rows.push(format!("Base fee: {} {}", s.base_fee, s.currency));
    rows.push(format!("Total: {} {}", s.total, s.currency));
    rows.push(String::new());
    let c = &s.counts;
    rows.push(format!(
        "Events: accepted {}, duplicates {}, late {}, rejected {}, conflicts {}, missing {}",
        c.accepted, c.duplicates, c.late, c.rejected, c.conflicts, c.missing
    ));
    let seq = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    rows.push(format!(
        "Ledger: seq {} to {} (inclusive)",
        seq(s.ledger.from_seq),
        seq(s.ledger.to_seq)
    ));
    rows
}

/// Printable ASCII only: Helvetica's standard encoding without an encoding dictionary.
fn ascii(text: &str) -> Vec<u8> {
    text.chars()
        .take(ROW_CHARS_MAX)
        .map(|c| {
            if (' '..='~').contains(&c) {
                c as u8
            } else {
                b'?'
            }
        })
        .collect()
}

/// The statement as an A4 PDF of one or more pages.
pub fn statement_pdf(statement: &Statement) -> Vec<u8> {
    let rows = pdf_rows(statement);
    let pages: Vec<&[String]> = rows.chunks(ROWS_PER_PAGE).collect();
    let mut pdf = Pdf::new();
    let catalog_id = Ref::new(1);
    let page_tree_id = Ref::new(2);
    let font_id = Ref::new(3);
    let font_name = Name(b"F1");
    let page_ids: Vec<Ref> = (0..pages.len())
        .map(|i| Ref::new(4 + 2 * i32::try_from(i).unwrap_or(0)))
        .collect();
    pdf.catalog(catalog_id).pages(page_tree_id);
    pdf.pages(page_tree_id)
        .kids(page_ids.iter().copied())
        .count(i32::try_from(pages.len()).unwrap_or(1));
    for (page_rows, page_id) in pages.iter().zip(&page_ids) {
        let content_id = Ref::new(page_id.get() + 1);
        let mut page = pdf.page(*page_id);
        page.media_box(Rect::new(0.0, 0.0, 595.0, 842.0));
        page.parent(page_tree_id);
        page.contents(content_id);
        page.resources().fonts().pair(font_name, font_id);
        drop(page);
        let mut content = Content::new();
        content.begin_text();
        content.set_font(font_name, 9.0);
        content.set_leading(15.0);
        content.next_line(40.0, 800.0);
        for row in *page_rows {
            content.show(Str(&ascii(row)));
            content.next_line_using_leading();
        }
        content.end_text();
        pdf.stream(content_id, &content.finish());
    }
    pdf.type1_font(font_id).base_font(Name(b"Helvetica"));
    pdf.finish()
}
