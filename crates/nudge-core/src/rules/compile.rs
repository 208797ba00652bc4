//! Checks a [`RuleSet`] for mistakes across files and compiles it into [`CompiledRules`].

use super::compiled::*;
use super::model::*;
use super::yaml::{closest, Diagnostics};
use crate::plan::{PropertyType, TrackingPlan};
use crate::template::Template;
use crate::time::time_zone;
use std::collections::{BTreeSet, HashMap, HashSet};

/// Property values a per-key count remembers (the most recently seen ones).
pub const PER_KEY_CAP: usize = 24;

/// Compiles a parsed rule set, reporting every semantic mistake with its position.
pub fn compile(set: &RuleSet, d: &mut Diagnostics) -> Option<CompiledRules> {
    let mut c = Compiler::new(set, d);
    c.check_duplicates();
    // The parser already reported an unknown zone at its position.
    let tz = time_zone(&set.settings.default_timezone.value).unwrap_or(jiff::tz::TimeZone::UTC);
    c.check_segment_cycles();
    let messages: Vec<CMessage> = set.messages.iter().map(|m| c.message(m)).collect();
    let segments: Vec<CSegment> = set
        .segments
        .iter()
        .map(|s| {
            let cond = c.cond(&s.condition, Ctx::Segment);
            CSegment {
                id: s.id.value.clone(),
                stable_id: stable_id(&s.id.value),
                cond,
            }
        })
        .collect();
    let experiments: Vec<CExperiment> = set.experiments.iter().map(|e| c.experiment(e)).collect();
    // Decision order: priority, then the order written.
    let mut order: Vec<&TriggerDef> = set.triggers.iter().collect();
    order.sort_by_key(|t| t.priority);
    let triggers: Vec<CTrigger> = order.iter().filter_map(|t| c.trigger(t)).collect();
    if !c.d.errors.is_empty() {
        return None;
    }
    let mut rules = CompiledRules {
        name: set.name.clone().unwrap_or_else(|| "rules".into()),
        default_timezone: tz,
        timezone_trait: set.settings.timezone_trait.clone(),
        session_gap: set.settings.session_gap,
        plan: set.plan.clone(),
        slot_by_id: c.slots.iter().enumerate().map(|(i, s)| (s.id, i)).collect(),
        slots: std::mem::take(&mut c.slots),
        segments,
        trigger_by_id: triggers
            .iter()
            .enumerate()
            .map(|(i, t)| (t.stable_id, i))
            .collect(),
        triggers,
        experiment_by_id: experiments
            .iter()
            .enumerate()
            .map(|(i, e)| (e.stable_id, i))
            .collect(),
        experiments,
        messages,
        policies: set.policies.clone(),
        traits: c.traits.iter().cloned().collect(),
        event_ids: Default::default(),
        event_entries: vec![],
        slots_by_event: Default::default(),
        slots_any: vec![],
        triggers_by_event: Default::default(),
        triggers_any: vec![],
        cancels_by_event: Default::default(),
        cancels_any: vec![],
        segment_triggers: vec![],
        session_slots: vec![],
        tracked_segments: vec![],
        track_segments: false,
        segment_tracked: vec![],
        segments_fingerprint: 0,
        idle_segment_mask: 0,
        min_idle_bound: 0,
        session_segment_mask: 0,
        trait_segment_mask: 0,
        any_event_segment_mask: 0,
    };
    index(&mut rules);
    Some(rules)
}

/// Numbers every event name the matchers mention and points each matcher at its number.
fn number_events(r: &mut CompiledRules) {
    fn visit(m: &mut Matcher, ids: &mut rustc_hash::FxHashMap<String, u32>) {
        if let NameMatch::Name(n) = &m.name {
            let next = ids.len() as u32;
            m.event_id = Some(*ids.entry(n.clone()).or_insert(next));
        }
    }
    let mut ids = rustc_hash::FxHashMap::default();
    for s in &mut r.slots {
        visit(&mut s.event, &mut ids);
        if let Some(reset) = &mut s.reset {
            visit(reset, &mut ids);
        }
    }
    for t in &mut r.triggers {
        if let COn::Event(m) = &mut t.on {
            visit(m, &mut ids);
        }
        for c in &mut t.cancel_on {
            visit(&mut c.event, &mut ids);
        }
    }
    r.event_entries = vec![EventEntry::default(); ids.len()];
    for (name, &id) in &ids {
        let e = &mut r.event_entries[id as usize];
        e.triggers = r.triggers_by_event.get(name).cloned().unwrap_or_default();
        e.slots = r.slots_by_event.get(name).cloned().unwrap_or_default();
        e.cancels = r.cancels_by_event.get(name).cloned().unwrap_or_default();
    }
    r.event_ids = ids;
    segment_masks(r);
}

/// What each tracked segment reads, so an event re-evaluates only the segments it can change.
/// With more than 128 tracked segments every mask is full (always re-evaluate).
fn segment_masks(r: &mut CompiledRules) {
    #[derive(Default)]
    struct Deps {
        slots: Vec<usize>,
        idle: Option<f64>,
        sessions: bool,
        traits: bool,
    }
    fn walk(r: &CompiledRules, c: &CCond, d: &mut Deps, depth: usize) {
        match c {
            CCond::All(v) | CCond::Any(v) => v.iter().for_each(|c| walk(r, c, d, depth)),
            CCond::Not(c) => walk(r, c, d, depth),
            CCond::Count { slot, .. } | CCond::TimeSince { slot, .. } => {
                d.slots.push(*slot);
                if let SlotKind::Anchored { anchor, .. } = r.slots[*slot].kind {
                    d.slots.push(anchor);
                }
                if r.slots[*slot].in_session {
                    d.sessions = true;
                }
            }
            CCond::Idle { cmp } => {
                let least = cmp.iter().map(|c| c.bound()).fold(f64::INFINITY, f64::min);
                d.idle = Some(d.idle.map_or(least, |x| x.min(least)));
            }
            CCond::Sessions { .. } => d.sessions = true,
            CCond::Traits(_) => d.traits = true,
            // Segment cycles are rejected; the depth bound is a second guard.
            CCond::InSegment(s) if depth < 64 => walk(r, &r.segments[*s].cond, d, depth + 1),
            CCond::InSegment(_) | CCond::Props(_) => {}
        }
    }
    let all = if r.tracked_segments.len() > 128 {
        u128::MAX
    } else {
        0
    };
    let mut idle = all;
    let mut min_idle = if all != 0 { 0.0 } else { f64::INFINITY };
    let mut sessions = all;
    let mut traits = all;
    let mut any_event = all;
    let mut per_slot: Vec<SegmentMask> = vec![all; r.slots.len()];
    for (bit, &si) in r.tracked_segments.iter().enumerate().take(128) {
        let mut d = Deps::default();
        walk(r, &r.segments[si].cond, &mut d, 0);
        let b = 1u128 << bit;
        if let Some(bound) = d.idle {
            idle |= b;
            min_idle = f64::min(min_idle, bound);
        }
        if d.sessions {
            sessions |= b;
        }
        if d.traits {
            traits |= b;
        }
        for s in d.slots {
            per_slot[s] |= b;
        }
    }
    for &s in &r.slots_any {
        any_event |= per_slot[s];
    }
    for e in &mut r.event_entries {
        e.segment_mask = e.slots.iter().fold(all, |m, s| m | per_slot[*s]);
    }
    r.idle_segment_mask = idle;
    r.min_idle_bound = if min_idle.is_finite() {
        min_idle as i64
    } else {
        i64::MAX
    };
    r.session_segment_mask = sessions;
    r.trait_segment_mask = traits;
    r.any_event_segment_mask = any_event;
}

fn index(r: &mut CompiledRules) {
    for (i, s) in r.slots.iter().enumerate() {
        if let SlotKind::SessionStarts { .. } = s.kind {
            r.session_slots.push(i);
            continue;
        }
        let mut names: Vec<&NameMatch> = vec![&s.event.name];
        if let Some(reset) = &s.reset {
            names.push(&reset.name);
        }
        let mut any = false;
        let mut named = BTreeSet::new();
        for n in names {
            match n {
                NameMatch::Any => any = true,
                NameMatch::Name(n) => {
                    named.insert(n.clone());
                }
            }
        }
        if any {
            r.slots_any.push(i);
        } else {
            for n in named {
                r.slots_by_event.entry(n).or_default().push(i);
            }
        }
    }
    for (i, t) in r.triggers.iter().enumerate() {
        match &t.on {
            COn::Event(m) => match &m.name {
                NameMatch::Any => r.triggers_any.push(i),
                NameMatch::Name(n) => r.triggers_by_event.entry(n.clone()).or_default().push(i),
            },
            COn::SegmentEntered(_) | COn::SegmentExited(_) => r.segment_triggers.push(i),
        }
        let mut seen = HashSet::new();
        for c in &t.cancel_on {
            match &c.event.name {
                NameMatch::Any => {
                    if seen.insert(None) {
                        r.cancels_any.push(i)
                    }
                }
                NameMatch::Name(n) => {
                    if seen.insert(Some(n.clone())) {
                        r.cancels_by_event.entry(n.clone()).or_default().push(i)
                    }
                }
            }
        }
    }
    let mut tracked: Vec<usize> = r
        .segment_triggers
        .iter()
        .filter_map(|&ti| match r.triggers[ti].on {
            COn::SegmentEntered(s) | COn::SegmentExited(s) => Some(s),
            COn::Event(_) => None,
        })
        .collect();
    tracked.sort_unstable();
    tracked.dedup();
    // A tracked segment that reads another through `in_segment` is evaluated after it (cycles
    // are rejected, so depths are finite): the engine caches membership as it goes.
    fn depth(r: &CompiledRules, c: &CCond, seen: usize) -> usize {
        match c {
            CCond::All(v) | CCond::Any(v) => v.iter().map(|c| depth(r, c, seen)).max().unwrap_or(0),
            CCond::Not(c) => depth(r, c, seen),
            CCond::InSegment(s) if seen < 64 => 1 + depth(r, &r.segments[*s].cond, seen + 1),
            _ => 0,
        }
    }
    tracked.sort_by_key(|&s| (depth(r, &r.segments[s].cond, 0), s));
    r.track_segments = !tracked.is_empty();
    r.segment_tracked = (0..r.segments.len())
        .map(|i| tracked.contains(&i))
        .collect();
    // Definitions (not positions) of the tracked segments and of what they read.
    let defs: Vec<String> = tracked
        .iter()
        .map(|&i| format!("{}={:?}", r.segments[i].id, r.segments[i].cond))
        .collect();
    let slots: Vec<String> = r
        .slots
        .iter()
        .map(|s| format!("{}:{:?}", s.id, s.kind))
        .collect();
    r.segments_fingerprint = stable_id(&format!("{defs:?}{slots:?}")) | 1;
    r.tracked_segments = tracked;
    number_events(r);
}

#[derive(Clone, Copy, PartialEq)]
enum Ctx {
    /// No event at hand: segments.
    Segment,
    /// Evaluated with a triggering event (trigger `if`, `check`, `exit`, content variants).
    Event,
}

struct Compiler<'a> {
    set: &'a RuleSet,
    d: &'a mut Diagnostics,
    slots: Vec<SlotSpec>,
    slot_keys: HashMap<String, usize>,
    traits: BTreeSet<String>,
    segment_ids: HashMap<&'a str, usize>,
    message_ids: HashMap<&'a str, usize>,
    experiment_ids: HashMap<&'a str, usize>,
}

impl<'a> Compiler<'a> {
    fn new(set: &'a RuleSet, d: &'a mut Diagnostics) -> Self {
        let mut traits = BTreeSet::new();
        traits.insert(set.settings.timezone_trait.clone());
        if set.messages.iter().any(|m| m.channel == Channel::Email) {
            traits.insert("email".to_string());
        }
        Compiler {
            set,
            d,
            slots: vec![],
            slot_keys: HashMap::new(),
            traits,
            segment_ids: set
                .segments
                .iter()
                .enumerate()
                .map(|(i, s)| (s.id.value.as_str(), i))
                .collect(),
            message_ids: set
                .messages
                .iter()
                .enumerate()
                .map(|(i, m)| (m.id.value.as_str(), i))
                .collect(),
            experiment_ids: set
                .experiments
                .iter()
                .enumerate()
                .map(|(i, e)| (e.id.value.as_str(), i))
                .collect(),
        }
    }

    fn check_duplicates(&mut self) {
        fn dups<'b>(
            d: &mut Diagnostics,
            files: &[String],
            what: &str,
            ids: impl Iterator<Item = &'b Sp<String>>,
        ) {
            let mut seen: HashMap<&str, Pos> = HashMap::new();
            for id in ids {
                if let Some(first) = seen.get(id.value.as_str()) {
                    let file = files.get(first.file).map(String::as_str).unwrap_or("?");
                    d.error(
                        id.pos,
                        format!(
                            "{what} `{}` is defined twice (first at {file}:{}:{})",
                            id.value, first.line, first.col
                        ),
                    );
                } else {
                    seen.insert(&id.value, id.pos);
                }
                let valid = !id.value.is_empty()
                    && id.value.len() <= 64
                    && id
                        .value
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
                if !valid {
                    d.error(
                        id.pos,
                        format!(
                            "{what} id `{}` must be 1-64 letters, digits, `-` or `_`",
                            id.value
                        ),
                    );
                }
            }
        }
        let (set, files) = (self.set, &self.set.file_names);
        dups(self.d, files, "segment", set.segments.iter().map(|s| &s.id));
        dups(self.d, files, "trigger", set.triggers.iter().map(|s| &s.id));
        dups(self.d, files, "message", set.messages.iter().map(|s| &s.id));
        dups(
            self.d,
            files,
            "experiment",
            set.experiments.iter().map(|s| &s.id),
        );
    }

    fn check_segment_cycles(&mut self) {
        fn refs(c: &Cond, out: &mut Vec<String>) {
            match c {
                Cond::All(v) | Cond::Any(v) => v.iter().for_each(|c| refs(c, out)),
                Cond::Not(c) => refs(c, out),
                Cond::InSegment(s) => out.push(s.value.clone()),
                _ => {}
            }
        }
        let graph: HashMap<&str, Vec<String>> = self
            .set
            .segments
            .iter()
            .map(|s| {
                let mut out = vec![];
                refs(&s.condition, &mut out);
                (s.id.value.as_str(), out)
            })
            .collect();
        for s in &self.set.segments {
            // Depth-first search for a path back to `s`.
            let mut stack: Vec<&str> = graph
                .get(s.id.value.as_str())
                .map(|v| v.iter().map(|x| x.as_str()).collect())
                .unwrap_or_default();
            let mut seen = HashSet::new();
            while let Some(n) = stack.pop() {
                if n == s.id.value {
                    self.d.error(
                        s.id.pos,
                        format!(
                            "segment `{}` refers to itself through `in_segment`",
                            s.id.value
                        ),
                    );
                    break;
                }
                if seen.insert(n) {
                    if let Some(next) = graph.get(n) {
                        stack.extend(next.iter().map(|x| x.as_str()));
                    }
                }
            }
        }
    }

    fn plan(&self) -> &TrackingPlan {
        &self.set.plan
    }

    /// Checks an event name against the tracking plan.
    fn event_name(&mut self, name: &Sp<String>) -> NameMatch {
        if name.value == "*" {
            return NameMatch::Any;
        }
        let is_page = name.value.starts_with("page:") || name.value.starts_with("screen:");
        if !is_page
            && !self.plan().events.is_empty()
            && !self.plan().events.contains_key(&name.value)
        {
            let names: Vec<&str> = self.plan().events.keys().map(|s| s.as_str()).collect();
            let hint = closest(&name.value, &names)
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            self.d.error(
                name.pos,
                format!("event `{}` is not in the tracking plan{hint}", name.value),
            );
        }
        NameMatch::Name(name.value.clone())
    }

    fn property_type(&self, event: &str, path: &str) -> Option<Option<PropertyType>> {
        let spec = self.plan().events.get(event)?;
        match spec.properties.get(path) {
            Some(p) => Some(Some(p.ty)),
            None if spec.allow_unknown_properties && spec.properties.is_empty() => None,
            None => Some(None),
        }
    }

    /// Checks that a property exists on an event and that a filter's literal fits its type.
    fn check_property(&mut self, event: &NameMatch, path: &Sp<String>, op: Option<&FilterOp>) {
        let NameMatch::Name(ev) = event else { return };
        let Some(found) = self.property_type(ev, &path.value) else {
            return;
        };
        let Some(ty) = found else {
            let spec = &self.set.plan.events[ev.as_str()];
            let names: Vec<&str> = spec.properties.keys().map(|s| s.as_str()).collect();
            let hint = closest(&path.value, &names)
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            self.d.error(
                path.pos,
                format!(
                    "event `{ev}` has no property `{}` in the tracking plan{hint}",
                    path.value
                ),
            );
            return;
        };
        let Some(op) = op else { return };
        let numeric = matches!(ty, PropertyType::Integer | PropertyType::Number);
        let fits = |v: &serde_json::Value| match ty {
            PropertyType::String => v.is_string(),
            PropertyType::Integer => v.as_f64().is_some_and(|x| x.fract() == 0.0),
            PropertyType::Number => v.is_number(),
            PropertyType::Boolean => v.is_boolean(),
            PropertyType::Object => v.is_object(),
            PropertyType::Array => v.is_array(),
            PropertyType::Any => true,
        } || v.is_null();
        let bad = match op {
            FilterOp::Eq(v) | FilterOp::Ne(v) => (!fits(v)).then(|| v.to_string()),
            FilterOp::In(vs) | FilterOp::NotIn(vs) => {
                vs.iter().find(|v| !fits(v)).map(|v| v.to_string())
            }
            FilterOp::Gt(_) | FilterOp::Gte(_) | FilterOp::Lt(_) | FilterOp::Lte(_) => {
                (!numeric && ty != PropertyType::Any).then(|| "a numeric comparison".to_string())
            }
            FilterOp::Contains(_) => (!matches!(
                ty,
                PropertyType::String | PropertyType::Array | PropertyType::Any
            ))
            .then(|| "`contains`".to_string()),
            FilterOp::Exists(_) => None,
        };
        if let Some(bad) = bad {
            self.d.error(
                path.pos,
                format!(
                    "property `{}` of `{ev}` is {} in the tracking plan; {bad} cannot match it",
                    path.value,
                    type_name(ty)
                ),
            );
        }
    }

    fn matcher(&mut self, m: &EventMatch) -> Matcher {
        let name = self.event_name(&m.name);
        let filters = m
            .filters
            .iter()
            .map(|f| {
                self.check_property(&name, &f.path, Some(&f.op));
                CFilter {
                    path: split_path(&f.path.value),
                    op: f.op.clone(),
                }
            })
            .collect();
        Matcher {
            name,
            filters,
            event_id: None,
        }
    }

    fn slot(
        &mut self,
        kind: SlotKind,
        event: Matcher,
        reset: Option<Matcher>,
        in_session: bool,
        label: String,
    ) -> usize {
        let key = format!("{kind:?}|{event:?}|{reset:?}|{in_session}");
        if let Some(&i) = self.slot_keys.get(&key) {
            return i;
        }
        let mut id = stable_id(&key);
        while self.slots.iter().any(|s| s.id == id) {
            id = id.wrapping_add(1);
        }
        self.slots.push(SlotSpec {
            id,
            kind,
            event,
            reset,
            in_session,
            label,
        });
        self.slot_keys.insert(key, self.slots.len() - 1);
        self.slots.len() - 1
    }

    fn first_slot(&mut self, m: &EventMatch) -> usize {
        let matcher = self.matcher(m);
        self.slot(
            SlotKind::First,
            matcher,
            None,
            false,
            format!("first {}", describe(m)),
        )
    }

    /// The slot answering a count over `occ`, given the largest bound compared.
    fn count_slot(
        &mut self,
        occ: &Occurrences,
        bound: f64,
        ctx: Ctx,
    ) -> (usize, Option<Vec<String>>) {
        let event = self.matcher(&occ.event);
        let reset = occ.since.as_ref().map(|s| self.matcher(s));
        let mut label = format!("count of {}", describe(&occ.event));
        if let Some(s) = &occ.since {
            label.push_str(&format!(" since the last {}", describe(s)));
        }
        if occ.in_session {
            label.push_str(" in this session");
        }
        if let Some(per) = &occ.per {
            if ctx == Ctx::Segment {
                self.d.error(
                    per.pos,
                    "`per` needs an event to read the property from; segments have none",
                );
            }
            self.check_property(&event.name, per, None);
            if occ.in_session {
                self.d
                    .error(per.pos, "`per` and `in_session` cannot be combined");
            }
            let property = split_path(&per.value);
            label.push_str(&format!(" with the same `{}`", per.value));
            let slot = self.slot(
                SlotKind::PerKey {
                    property: property.clone(),
                    cap: PER_KEY_CAP,
                },
                event,
                reset,
                occ.in_session,
                label,
            );
            return (slot, Some(property));
        }
        let slot = match (&occ.after, occ.within) {
            (Some(anchor), Some(within)) => {
                let anchor_slot = self.first_slot(anchor);
                label.push_str(&format!(
                    " within {within} after the first {}",
                    describe(anchor)
                ));
                self.slot(
                    SlotKind::Anchored {
                        anchor: anchor_slot,
                        within,
                    },
                    event,
                    reset,
                    occ.in_session,
                    label,
                )
            }
            (None, Some(within)) => {
                let cap = (bound.ceil() as usize).saturating_add(1).clamp(1, 1000);
                label.push_str(&format!(" in the last {within}"));
                self.slot(
                    SlotKind::Window { within, cap },
                    event,
                    reset,
                    occ.in_session,
                    label,
                )
            }
            _ => self.slot(SlotKind::Count, event, reset, occ.in_session, label),
        };
        (slot, None)
    }

    fn cond(&mut self, c: &Cond, ctx: Ctx) -> CCond {
        match c {
            Cond::All(v) => CCond::All(v.iter().map(|c| self.cond(c, ctx)).collect()),
            Cond::Any(v) => CCond::Any(v.iter().map(|c| self.cond(c, ctx)).collect()),
            Cond::Not(c) => CCond::Not(Box::new(self.cond(c, ctx))),
            Cond::Count { occ, cmp, pos } => {
                let bound = cmp.iter().map(|c| c.bound()).fold(0.0, f64::max);
                if occ.within.is_some() && occ.after.is_none() && bound > 999.0 {
                    self.d
                        .error(*pos, "a sliding-window count compares against at most 999");
                }
                let (slot, per) = self.count_slot(occ, bound, ctx);
                CCond::Count {
                    slot,
                    cmp: cmp.clone(),
                    per,
                }
            }
            Cond::TimeSince {
                occ,
                first,
                cmp,
                pos,
            } => {
                if occ.within.is_some()
                    || occ.after.is_some()
                    || occ.per.is_some()
                    || occ.in_session
                {
                    self.d
                        .error(*pos, "`time_since` takes `where`, `since` and `first` only");
                }
                let event = self.matcher(&occ.event);
                let reset = occ.since.as_ref().map(|s| self.matcher(s));
                let (kind, word) = if *first {
                    (SlotKind::First, "first")
                } else {
                    (SlotKind::Last, "last")
                };
                let mut label = format!("time since the {word} {}", describe(&occ.event));
                if let Some(s) = &occ.since {
                    label.push_str(&format!(" since the last {}", describe(s)));
                }
                let slot = self.slot(kind, event, reset, false, label);
                CCond::TimeSince {
                    slot,
                    cmp: cmp.clone(),
                }
            }
            Cond::Idle { cmp, .. } => CCond::Idle { cmp: cmp.clone() },
            Cond::Sessions { within, cmp, pos } => {
                let window = within.map(|w| {
                    let bound = cmp.iter().map(|c| c.bound()).fold(0.0, f64::max);
                    if bound > 999.0 {
                        self.d.error(
                            *pos,
                            "a session count over a window compares against at most 999",
                        );
                    }
                    let cap = (bound.ceil() as usize).saturating_add(1).clamp(1, 1000);
                    let matcher = Matcher {
                        name: NameMatch::Any,
                        filters: vec![],
                        event_id: None,
                    };
                    let slot = self.slot(
                        SlotKind::SessionStarts { cap },
                        matcher,
                        None,
                        false,
                        format!("sessions started in the last {w}"),
                    );
                    (slot, w)
                });
                CCond::Sessions {
                    window,
                    cmp: cmp.clone(),
                }
            }
            Cond::InSegment(s) => match self.segment_ids.get(s.value.as_str()) {
                Some(&i) => CCond::InSegment(i),
                None => {
                    let names: Vec<&str> = self.segment_ids.keys().copied().collect();
                    let hint = closest(&s.value, &names)
                        .map(|x| format!("; did you mean `{x}`?"))
                        .unwrap_or_default();
                    self.d
                        .error(s.pos, format!("unknown segment `{}`{hint}", s.value));
                    CCond::All(vec![])
                }
            },
            Cond::Traits(filters) => CCond::Traits(
                filters
                    .iter()
                    .map(|f| {
                        let path = split_path(&f.path.value);
                        if let Some(first) = path.first() {
                            self.traits.insert(first.clone());
                        }
                        CFilter {
                            path,
                            op: f.op.clone(),
                        }
                    })
                    .collect(),
            ),
            Cond::Properties(filters) => {
                if ctx == Ctx::Segment {
                    if let Some(f) = filters.first() {
                        self.d.error(f.path.pos, "`properties` reads the triggering event; segments have none (use `count` with `where`)");
                    }
                }
                CCond::Props(
                    filters
                        .iter()
                        .map(|f| CFilter {
                            path: split_path(&f.path.value),
                            op: f.op.clone(),
                        })
                        .collect(),
                )
            }
        }
    }

    fn experiment(&mut self, e: &ExperimentDef) -> CExperiment {
        let holdout_upto = (e.holdout * 10_000.0).round() as u32;
        let total: f64 = e.variants.iter().map(|v| v.weight.max(0.0)).sum();
        let rest = 10_000 - holdout_upto;
        let mut acc = 0.0;
        let n = e.variants.len();
        let variants = e
            .variants
            .iter()
            .enumerate()
            .map(|(i, v)| {
                acc += v.weight.max(0.0);
                let upto = if i + 1 == n || total <= 0.0 {
                    10_000
                } else {
                    holdout_upto + (f64::from(rest) * acc / total).round() as u32
                };
                let message = v.message.as_ref().and_then(|m| self.message_ref(m));
                CVariant {
                    name: v.name.value.as_str().into(),
                    upto,
                    wait: v.wait,
                    message,
                    content: v.content.as_ref().map(|c| c.value.as_str().into()),
                }
            })
            .collect();
        CExperiment {
            id: e.id.value.as_str().into(),
            holdout_name: super::model::HOLDOUT.into(),
            stable_id: stable_id(&e.id.value),
            holdout_upto,
            variants,
        }
    }

    fn message_ref(&mut self, m: &Sp<String>) -> Option<usize> {
        match self.message_ids.get(m.value.as_str()) {
            Some(&i) => Some(i),
            None => {
                let names: Vec<&str> = self.message_ids.keys().copied().collect();
                let hint = closest(&m.value, &names)
                    .map(|x| format!("; did you mean `{x}`?"))
                    .unwrap_or_default();
                self.d
                    .error(m.pos, format!("unknown message `{}`{hint}", m.value));
                None
            }
        }
    }

    fn trigger(&mut self, t: &TriggerDef) -> Option<CTrigger> {
        let on = match &t.on {
            On::Event(m) => COn::Event(self.matcher(m)),
            On::SegmentEntered(s) | On::SegmentExited(s) => {
                let Some(&i) = self.segment_ids.get(s.value.as_str()) else {
                    self.d
                        .error(s.pos, format!("unknown segment `{}`", s.value));
                    return None;
                };
                if matches!(t.on, On::SegmentEntered(_)) {
                    COn::SegmentEntered(i)
                } else {
                    COn::SegmentExited(i)
                }
            }
        };
        let on_name = match &on {
            COn::Event(m) => m.name.clone(),
            _ => NameMatch::Any,
        };
        let ctx = if matches!(on, COn::Event(_)) {
            Ctx::Event
        } else {
            Ctx::Segment
        };
        let when = t.when.as_ref().map(|c| self.cond(c, ctx));
        let check = t.check.as_ref().map(|c| self.cond(c, ctx));
        let exit = t.exit.as_ref().map(|c| self.cond(c, ctx));
        if t.wait.is_none() {
            let needs_wait = [
                (t.rearm, "rearm"),
                (!t.cancel_on.is_empty(), "cancel_on"),
                (t.check.is_some(), "check"),
                (t.exit.is_some(), "exit"),
            ];
            for (used, key) in needs_wait {
                if used {
                    self.d.error(
                        t.id.pos,
                        format!("trigger `{}` uses `{key}` but has no `wait`", t.id.value),
                    );
                }
            }
        }
        let mut captured: BTreeSet<String> = BTreeSet::new();
        let cancel_on = t
            .cancel_on
            .iter()
            .map(|c| {
                let event = self.matcher(&c.event);
                let same = c
                    .same
                    .iter()
                    .map(|p| {
                        self.check_property(&on_name, p, None);
                        self.check_property(&event.name, p, None);
                        captured.insert(p.value.clone());
                        split_path(&p.value)
                    })
                    .collect();
                CCancel { event, same }
            })
            .collect();
        let once = match &t.once {
            Once::Never => COnce::Never,
            Once::User => COnce::User,
            Once::Session => COnce::Session,
            Once::PerProperty(p) => {
                self.check_property(&on_name, p, None);
                captured.insert(p.value.clone());
                COnce::PerProperty(split_path(&p.value))
            }
        };
        for c in [&t.when, &t.check, &t.exit].into_iter().flatten() {
            collect_props(c, &mut captured);
        }
        let experiment =
            t.experiment
                .as_ref()
                .and_then(|e| match self.experiment_ids.get(e.value.as_str()) {
                    Some(&i) => Some(i),
                    None => {
                        self.d
                            .error(e.pos, format!("unknown experiment `{}`", e.value));
                        None
                    }
                });
        if let Some(i) = experiment {
            let exp = &self.set.experiments[i];
            if t.wait.is_none() {
                if let Some(v) = exp.variants.iter().find(|v| v.wait.is_some()) {
                    self.d.error(
                        v.name.pos,
                        format!(
                            "variant `{}` sets `wait` but trigger `{}` has no `wait`",
                            v.name.value, t.id.value
                        ),
                    );
                }
            }
            let msg = self
                .message_ids
                .get(t.message.value.as_str())
                .map(|&m| &self.set.messages[m]);
            for v in &exp.variants {
                if let (Some(content), None, Some(msg)) = (&v.content, &v.message, msg) {
                    if !msg.variants.iter().any(|cv| cv.name.value == content.value) {
                        self.d.error(
                            content.pos,
                            format!(
                                "message `{}` has no content variant `{}`",
                                msg.id.value, content.value
                            ),
                        );
                    }
                }
            }
        }
        let message = self.message_ref(&t.message)?;
        let msg = &self.set.messages[message];
        if msg.channel != t.channel.value {
            self.d.error(
                t.channel.pos,
                format!(
                    "trigger sends on {} but message `{}` is for {}",
                    t.channel.value.as_str(),
                    msg.id.value,
                    msg.channel.as_str()
                ),
            );
        }
        // Properties the message's templates read from the triggering event.
        for path in message_paths(msg) {
            if path.first().map(String::as_str) == Some("properties") && path.len() > 1 {
                captured.insert(path[1].clone());
            }
            if path.first().map(String::as_str) == Some("traits") && path.len() > 1 {
                self.traits.insert(path[1].clone());
            }
        }
        let data = t
            .data
            .iter()
            .map(|(name, spec)| {
                let cd = match spec {
                    DataSpec::Collect { occ, fields, max } => {
                        let event = self.matcher(&occ.event);
                        for f in fields {
                            self.check_property(
                                &event.name,
                                &Sp::new(f.clone(), occ.event.name.pos),
                                None,
                            );
                        }
                        let reset = occ.since.as_ref().map(|s| self.matcher(s));
                        let slot = self.slot(
                            SlotKind::Collect {
                                fields: fields.clone(),
                                max: *max,
                            },
                            event,
                            reset,
                            occ.in_session,
                            format!("recent {}", describe(&occ.event)),
                        );
                        CData::Collect {
                            slot,
                            fields: fields.clone(),
                        }
                    }
                    // A window count rendered into a message saturates at this many.
                    DataSpec::Count(occ) => {
                        let (slot, per) = self.count_slot(occ, 49.0, ctx);
                        CData::Count { slot, per }
                    }
                };
                (name.clone(), cd)
            })
            .collect();
        Some(CTrigger {
            id: t.id.value.clone().into(),
            stable_id: stable_id(&t.id.value),
            priority: t.priority,
            on,
            when,
            wait: t.wait.as_ref().map(|w| w.value),
            rearm: t.rearm,
            cancel_on,
            check,
            exit,
            once,
            cooldown: t.cooldown,
            experiment,
            channel: t.channel.value,
            message,
            data,
            once_name: match &t.once {
                Once::PerProperty(p) => Some(p.value.clone()),
                _ => None,
            },
            once_path: match &t.once {
                Once::PerProperty(p) => Some(split_path(&p.value)),
                _ => None,
            },
            captured_paths: captured.iter().map(|p| split_path(p)).collect(),
            captured: captured.into_iter().collect(),
        })
    }

    fn template(&mut self, t: &TemplateText) -> Template {
        match Template::compile(&t.value) {
            Ok(tpl) => tpl,
            Err(e) => {
                self.d.error(
                    t.pos,
                    format!(
                        "template error (template line {}, column {}): {}",
                        e.line, e.column, e.message
                    ),
                );
                Template::compile("").unwrap_or_else(|_| unreachable!("empty template compiles"))
            }
        }
    }

    fn content(&mut self, c: &Content) -> CContent {
        match c {
            Content::Email {
                subject,
                html,
                text,
            } => CContent::Email {
                subject: self.template(subject),
                html: html.as_ref().map(|t| self.template(t)),
                text: text.as_ref().map(|t| self.template(t)),
            },
            Content::InApp { title, body, url } => CContent::InApp {
                title: self.template(title),
                body: self.template(body),
                url: url.as_ref().map(|t| self.template(t)),
            },
            Content::Webhook { url, body } => CContent::Webhook {
                url: self.template(url),
                body: self.json(&body.value, body.pos),
            },
        }
    }

    fn json(&mut self, v: &serde_json::Value, pos: Pos) -> CJson {
        match v {
            serde_json::Value::String(s) if s.contains("{{") || s.contains("{%") => {
                CJson::Template(self.template(&Sp::new(s.clone(), pos)))
            }
            serde_json::Value::Array(items) => {
                CJson::Array(items.iter().map(|i| self.json(i, pos)).collect())
            }
            serde_json::Value::Object(m) => CJson::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), self.json(v, pos)))
                    .collect(),
            ),
            other => CJson::Literal(other.clone()),
        }
    }

    fn message(&mut self, m: &MessageDef) -> CMessage {
        let content = self.content(&m.content);
        let variants = m
            .variants
            .iter()
            .map(|v| CContentVariant {
                name: v.name.value.as_str().into(),
                when: v.when.as_ref().map(|c| self.cond(c, Ctx::Event)),
                requires: v.requires.iter().map(|p| split_path(&p.value)).collect(),
                content: self.content(&v.content),
            })
            .collect();
        CMessage {
            id: m.id.value.as_str().into(),
            default_name: "default".into(),
            channel: m.channel,
            content,
            variants,
        }
    }
}

fn collect_props(c: &Cond, out: &mut BTreeSet<String>) {
    match c {
        Cond::All(v) | Cond::Any(v) => v.iter().for_each(|c| collect_props(c, out)),
        Cond::Not(c) => collect_props(c, out),
        Cond::Properties(fs) => out.extend(
            fs.iter()
                .filter_map(|f| split_path(&f.path.value).into_iter().next()),
        ),
        Cond::Count { occ, .. } => {
            if let Some(p) = &occ.per {
                out.extend(split_path(&p.value).into_iter().next());
            }
        }
        _ => {}
    }
}

/// Every template path a message's contents read (all variants).
fn message_paths(m: &MessageDef) -> Vec<Vec<String>> {
    let mut out = vec![];
    let mut add = |t: &TemplateText| {
        if let Ok(tpl) = Template::compile(&t.value) {
            out.extend(tpl.referenced_paths().iter().cloned());
        }
    };
    let mut visit = |c: &Content| match c {
        Content::Email {
            subject,
            html,
            text,
        } => {
            add(subject);
            html.iter().chain(text.iter()).for_each(&mut add);
        }
        Content::InApp { title, body, url } => {
            add(title);
            add(body);
            url.iter().for_each(&mut add);
        }
        Content::Webhook { url, body } => {
            add(url);
            json_strings(&body.value, &mut |s| add(&Sp::new(s.to_string(), body.pos)));
        }
    };
    visit(&m.content);
    for v in &m.variants {
        visit(&v.content);
    }
    for v in &m.variants {
        for r in &v.requires {
            out.push(split_path(&r.value));
        }
    }
    out
}

fn json_strings(v: &serde_json::Value, f: &mut dyn FnMut(&str)) {
    match v {
        serde_json::Value::String(s) => f(s),
        serde_json::Value::Array(a) => a.iter().for_each(|x| json_strings(x, f)),
        serde_json::Value::Object(m) => m.values().for_each(|x| json_strings(x, f)),
        _ => {}
    }
}

fn split_path(p: &str) -> Vec<String> {
    p.split('.').map(str::to_string).collect()
}

fn describe(m: &EventMatch) -> String {
    if m.filters.is_empty() {
        format!("`{}`", m.name.value)
    } else {
        let fs: Vec<String> = m
            .filters
            .iter()
            .map(|f| format!("{} {}", f.path.value, op_text(&f.op)))
            .collect();
        format!("`{}` where {}", m.name.value, fs.join(", "))
    }
}

/// A filter operation in words, for labels and `explain`.
pub fn op_text(op: &FilterOp) -> String {
    match op {
        FilterOp::Eq(v) => format!("= {v}"),
        FilterOp::Ne(v) => format!("!= {v}"),
        FilterOp::Gt(v) => format!("> {v}"),
        FilterOp::Gte(v) => format!(">= {v}"),
        FilterOp::Lt(v) => format!("< {v}"),
        FilterOp::Lte(v) => format!("<= {v}"),
        FilterOp::In(v) => format!("in {}", serde_json::Value::Array(v.clone())),
        FilterOp::NotIn(v) => format!("not in {}", serde_json::Value::Array(v.clone())),
        FilterOp::Exists(b) => {
            if *b {
                "exists".into()
            } else {
                "is absent".into()
            }
        }
        FilterOp::Contains(s) => format!("contains {s:?}"),
    }
}

fn type_name(t: PropertyType) -> &'static str {
    match t {
        PropertyType::String => "a string",
        PropertyType::Integer => "an integer",
        PropertyType::Number => "a number",
        PropertyType::Boolean => "a boolean",
        PropertyType::Object => "an object",
        PropertyType::Array => "an array",
        PropertyType::Any => "any value",
    }
}
