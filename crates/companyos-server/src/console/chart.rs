//! The usage chart of a tenant page: events per day as an inline SVG bar chart (no script, no
//! image request), with each bar's figures in its title for screen readers and hover.

use std::collections::BTreeMap;

use companyos_core::metering::reports::DailyUsage;
use companyos_domain::time_util::format_day;
use maud::{Markup, html};
use time::Date;

const WIDTH: i64 = 720;
const HEIGHT: i64 = 160;
const AXIS: i64 = 18;

/// Events per day (on time and late) from `from` to `to`, a bar per day, empty days included.
pub fn daily_events(rows: &[DailyUsage], from: Date, to: Date) -> Markup {
    let mut days: BTreeMap<Date, i64> = BTreeMap::new();
    let mut day = from;
    while day <= to {
        days.insert(day, 0);
        let Some(next) = day.next_day() else { break };
        day = next;
    }
    for row in rows {
        if let Ok(date) = companyos_domain::time_util::parse_day(&row.date, "date") {
            *days.entry(date).or_default() += row.events + row.late_events;
        }
    }
    let most = days.values().copied().max().unwrap_or(0).max(1);
    let total: i64 = days.values().sum();
    let count = i64::try_from(days.len()).unwrap_or(1).max(1);
    let slot = WIDTH / count;
    let plot = HEIGHT - AXIS;
    html! {
        svg.chart viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img"
            aria-label={ "Events per day from " (format_day(from)) " to " (format_day(to)) ": " (total) " in all" } {
            @for (i, (date, events)) in days.iter().enumerate() {
                @let height = if *events == 0 { 0 } else { (events * (plot - 4) / most).max(2) };
                @let x = i64::try_from(i).unwrap_or(0) * slot;
                rect.bar x=(x + 1) y=(plot - height) width=((slot - 2).max(1)) height=(height) {
                    title { (format_day(*date)) ": " (events) " events" }
                }
            }
            line x1="0" y1=(plot) x2=(WIDTH) y2=(plot) stroke="#b8c0cc" {}
            text x="0" y=(HEIGHT - 4) { (format_day(from)) }
            text x=(WIDTH) y=(HEIGHT - 4) text-anchor="end" { (format_day(to)) }
            text x="0" y="10" { "max " (most) " events/day" }
        }
        p.muted { (total) " events in " (count) " days." }
    }
}
