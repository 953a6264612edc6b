//! The decision for each checked event of a group, under the ledger head locks: an unknown or
//! closed tenant, a duplicate or conflict (of a stored event or one earlier in the group), an
//! exact rollup it would break, or an append to the tenant's ledger.

#[allow(unused_imports)]
use super::*;

/// A new event of the group: (tenant_id, event_id, seq, digest).
pub(super) type NewKey<'a> = (&'a str, &'a str, u64, EventDigest);

/// The events a group appends, by compact key, for duplicates inside the group.
pub(super) type NewKeys<'a> = dedupe::KeyMultiMap<NewKey<'a>>;

/// (seq, digest) of the group's new event with this tenant and event id.
pub(super) fn new_event(
    keys: &NewKeys<'_>,
    key: i64,
    tenant_id: &str,
    event_id: &str,
) -> Option<(u64, EventDigest)> {
    keys.get(key)
        .find(|(t, e, _, _)| *t == tenant_id && *e == event_id)
        .map(|(_, _, seq, digest)| (*seq, *digest))
}

/// Decides one checked event against the store and the group so far, and counts its status
/// for its tenant.
pub(super) fn decide<'a>(
    state: &mut GroupState<'a>,
    existing: &StoredKeys,
    checked: &'a Checked,
    raw_max: usize,
) -> Result<Decision, ServiceError> {
    let at = *state
        .slot_of
        .get(checked.event.tenant_id.as_str())
        .ok_or_else(|| ServiceError::Internal("a group tenant has no slot".to_owned()))?;
    let decision = decide_in_slot(state, at, existing, checked, raw_max)?;
    state.slots[at].statuses.add(decision.status(), 1);
    Ok(decision)
}

/// [`decide`] for the event of the tenant in slot `at`.
pub(super) fn decide_in_slot<'a>(
    state: &mut GroupState<'a>,
    at: usize,
    existing: &StoredKeys,
    checked: &'a Checked,
    raw_max: usize,
) -> Result<Decision, ServiceError> {
    let event = &checked.event;
    let tenant_id = event.tenant_id.as_str();
    let status = state.slots[at].status;
    if let Some(message) = tenant_problem(status) {
        return Ok(reject_checked(
            state,
            checked,
            "tenant_id",
            message,
            raw_max,
        ));
    }
    let event_id = event.event_id.as_str();
    let original = existing
        .get(&checked.key)
        .and_then(|found| {
            found
                .iter()
                .find(|f| f.tenant_id == tenant_id && f.event_id == event_id)
                .map(|f| (f.seq, f.digest))
        })
        .or_else(|| new_event(&state.new_keys, checked.key, tenant_id, event_id));
    if let Some((seq, digest)) = original {
        return Ok(existing_event(state, at, checked, (seq, digest), raw_max));
    }
    append_event(state, at, checked, status, raw_max)
}

/// Why a tenant in `status` (`None`: no such tenant) takes no event, if it does not.
fn tenant_problem(status: Option<TenantStatus>) -> Option<String> {
    match status {
        None => Some("is not a known tenant".to_owned()),
        Some(status) if !accepts_usage(status) => {
            Some(format!("tenant is {status}: it does not take usage"))
        }
        Some(_) => None,
    }
}

/// The event's tenant already has its id, stored at `original` (seq, digest): a duplicate of
/// the same content, or a conflict, recorded (the original stands).
fn existing_event(
    state: &mut GroupState<'_>,
    at: usize,
    checked: &Checked,
    (seq, digest): (u64, EventDigest),
    raw_max: usize,
) -> Decision {
    let event = &checked.event;
    let day = checked.day;
    let conflict = digest != event.digest;
    let slot = &mut state.slots[at];
    if conflict {
        slot.counters(day).conflicts += 1;
        state.conflicts.push(ConflictRow {
            tenant_id: event.tenant_id.as_str().to_owned(),
            event_id: event.event_id.as_str().to_owned(),
            original_seq: seq,
            digest: event.digest.to_string(),
            day,
            raw: truncate(&checked.raw, raw_max).0,
        });
    } else {
        slot.counters(day).duplicates += 1;
    }
    Decision::Existing {
        seq,
        digest,
        conflict,
    }
}

/// Appends a new event to its tenant's ledger (late when after the late window or inside a
/// closed day), unless its rollup would stop being exact, and notes it for the group's writes.
fn append_event<'a>(
    state: &mut GroupState<'a>,
    at: usize,
    checked: &'a Checked,
    status: Option<TenantStatus>,
    raw_max: usize,
) -> Result<Decision, ServiceError> {
    let event = &checked.event;
    let day = checked.day;
    let slot = &mut state.slots[at];
    let late = checked.late_by_age || slot.closed_days.contains(&day);
    // The rollup must stay exact; a sum that would lose digits is refused.
    if let Err(message) = slot.add_to_rollup(checked, late) {
        return Ok(reject_checked(state, checked, "quantity", message, raw_max));
    }
    let class = if late {
        EventClass::Late
    } else {
        EventClass::OnTime
    };
    let suspended = status == Some(TenantStatus::Suspended);
    let head = slot
        .head
        .as_mut()
        .ok_or_else(|| ServiceError::Internal("missing ledger head".to_owned()))?;
    let seq = head.append_usage(event.event_id.as_str(), &event.digest, class);
    assert_eq!(
        seq,
        slot.first_seq + slot.events.len() as u64,
        "a tenant's events of one group are consecutive"
    );
    slot.counters(day).count_stored(checked, late);
    slot.events.push(EventRow {
        checked,
        class,
        flags: checked.stored_flags(suspended),
    });
    note_appended(state, checked, seq);
    Ok(Decision::Stored {
        seq,
        late,
        suspended,
    })
}

/// Notes an appended event for the group's source ranges, seen metrics and duplicates inside
/// the group.
fn note_appended<'a>(state: &mut GroupState<'a>, checked: &'a Checked, seq: u64) {
    let event = &checked.event;
    let tenant_id = event.tenant_id.as_str();
    if let (Some(source), Some(source_seq)) = (&event.source, event.source_seq) {
        state
            .source_seqs
            .entry((source.as_str(), tenant_id))
            .or_default()
            .push((source_seq, checked.day));
    }
    *state.seen.entry(
        (
            event.service.as_str(),
            event.metric.as_str(),
            event.unit.as_str(),
        ),
        || 0,
    ) += 1;
    state.new_keys.insert(
        checked.key,
        (tenant_id, event.event_id.as_str(), seq, event.digest),
    );
}

/// Rejects a checked event under the lock, naming `field`.
pub(super) fn reject_checked(
    state: &mut GroupState<'_>,
    checked: &Checked,
    field: &str,
    message: String,
    raw_max: usize,
) -> Decision {
    let error = FieldError::new(field, message);
    state.reject(&checked.rejected(error.clone()), raw_max);
    Decision::Rejected(error)
}
