//! THREAD (RFC 5256 §3): ORDEREDSUBJECT and REFERENCES.
//!
//! Both work from the meta alone: base subject, sent date (Date header, else
//! the internal date, RFC 5256 §2.2), Message-ID, References and In-Reply-To.
//! Every step runs without recursion (explicit stacks), so a crafted chain of
//! thousands of replies cannot overflow the stack; [`ThreadNode`] also drops
//! iteratively.

use std::collections::HashMap;

use crate::sort::casemap;
use crate::types::ThreadAlgorithm;
use crate::view::MessageView;

/// A message in a thread tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadMessage {
    /// Index into the `messages` given to [`thread`].
    pub index: usize,
    /// Its sequence number.
    pub msn: u32,
    /// Its UID.
    pub uid: u32,
}

/// One node of a thread: a message, or a dummy that only groups its children
/// (REFERENCES keeps one at the top of a thread whose root message is missing
/// but whose several replies are present).
///
/// Deriving `Clone`/`PartialEq`/`Debug` recurse; they are meant for tests and
/// small trees. [`write_threads`] and dropping do not recurse.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ThreadNode {
    /// The message, or `None` for a dummy.
    pub message: Option<ThreadMessage>,
    /// Replies, oldest first.
    pub children: Vec<ThreadNode>,
}

impl Drop for ThreadNode {
    fn drop(&mut self) {
        // Unlink the subtree level by level so nothing drops recursively.
        let mut stack = std::mem::take(&mut self.children);
        while let Some(mut node) = stack.pop() {
            stack.append(&mut node.children);
        }
    }
}

/// Threads `messages` (the ones the THREAD command's search matched) with
/// `algorithm`; returns the top-level threads in order.
pub fn thread(messages: &[MessageView<'_>], algorithm: ThreadAlgorithm) -> Vec<ThreadNode> {
    match algorithm {
        ThreadAlgorithm::OrderedSubject => ordered_subject(messages),
        ThreadAlgorithm::References => references(messages),
    }
}

/// Writes thread lists (RFC 5256 §4 `thread-list`s, no separator between
/// them): `(1 2)(3 (4)(5))`, with sequence numbers, or UIDs when `uid`. The
/// session writes `* THREAD ` before and CRLF after.
pub fn write_threads(out: &mut Vec<u8>, threads: &[ThreadNode], uid: bool) {
    enum Step<'a> {
        Members(&'a ThreadNode),
        Text(&'static [u8]),
    }
    let number = |m: &ThreadMessage| if uid { m.uid } else { m.msn };
    for root in threads {
        if root.message.is_none() && root.children.is_empty() {
            continue;
        }
        out.push(b'(');
        let mut stack = vec![Step::Members(root)];
        while let Some(step) = stack.pop() {
            let node = match step {
                Step::Text(text) => {
                    out.extend_from_slice(text);
                    continue;
                }
                Step::Members(node) => node,
            };
            if let Some(message) = &node.message {
                out.extend_from_slice(number(message).to_string().as_bytes());
            }
            match node.children.as_slice() {
                [] => {}
                [only] => {
                    stack.push(Step::Members(only));
                    if node.message.is_some() {
                        stack.push(Step::Text(b" "));
                    }
                }
                children => {
                    for child in children.iter().rev() {
                        stack.push(Step::Text(b")"));
                        stack.push(Step::Members(child));
                        stack.push(Step::Text(b"("));
                    }
                    if node.message.is_some() {
                        stack.push(Step::Text(b" "));
                    }
                }
            }
        }
        out.push(b')');
    }
}

fn leaf(messages: &[MessageView<'_>], index: usize) -> ThreadNode {
    let (msn, uid) = messages.get(index).map_or((0, 0), |m| (m.msn, m.uid));
    ThreadNode {
        message: Some(ThreadMessage { index, msn, uid }),
        children: Vec::new(),
    }
}

/// (sent date, sequence number): the order of messages within threads.
fn date_key(messages: &[MessageView<'_>], index: usize) -> (i64, u32) {
    messages
        .get(index)
        .map_or((0, 0), |m| (m.sent_date(), m.msn))
}

/// ORDEREDSUBJECT: messages grouped by base subject; in each group the oldest
/// is the parent of all the others (siblings, in sent-date order); threads
/// ordered by the sent date of their first message.
fn ordered_subject(messages: &[MessageView<'_>]) -> Vec<ThreadNode> {
    let subjects: Vec<String> = messages
        .iter()
        .map(|m| casemap(&m.meta.base_subject))
        .collect();
    let mut order: Vec<usize> = (0..messages.len()).collect();
    order.sort_by(|&a, &b| {
        subjects
            .get(a)
            .cmp(&subjects.get(b))
            .then_with(|| date_key(messages, a).cmp(&date_key(messages, b)))
    });
    let mut threads: Vec<ThreadNode> = Vec::new();
    let mut current_subject: Option<&str> = None;
    for index in order {
        let subject = subjects.get(index).map(String::as_str);
        match threads.last_mut() {
            Some(thread) if current_subject == subject => {
                thread.children.push(leaf(messages, index));
            }
            _ => {
                threads.push(leaf(messages, index));
                current_subject = subject;
            }
        }
    }
    threads.sort_by_key(|t| t.message.map_or((0, 0), |m| date_key(messages, m.index)));
    threads
}

/// A REFERENCES container: a message or a dummy, linked into the tree.
#[derive(Debug, Clone, Default)]
struct Container {
    message: Option<usize>,
    parent: Option<usize>,
    children: Vec<usize>,
}

struct Arena {
    nodes: Vec<Container>,
}

impl Arena {
    fn add(&mut self, message: Option<usize>) -> usize {
        self.nodes.push(Container {
            message,
            ..Container::default()
        });
        self.nodes.len() - 1
    }

    fn parent(&self, c: usize) -> Option<usize> {
        self.nodes.get(c).and_then(|n| n.parent)
    }

    fn message(&self, c: usize) -> Option<usize> {
        self.nodes.get(c).and_then(|n| n.message)
    }

    fn children(&self, c: usize) -> &[usize] {
        self.nodes.get(c).map_or(&[], |n| n.children.as_slice())
    }

    /// True if `ancestor` is `c` or above it.
    fn is_ancestor(&self, ancestor: usize, c: usize) -> bool {
        if self.children(ancestor).is_empty() {
            // Nothing is below it (the usual case for a new message).
            return ancestor == c;
        }
        let mut cursor = Some(c);
        // The links never form a cycle, so this ends; the bound is a guard.
        let mut steps = 0;
        while let Some(node) = cursor {
            if node == ancestor {
                return true;
            }
            steps += 1;
            if steps > self.nodes.len() {
                return false;
            }
            cursor = self.parent(node);
        }
        false
    }

    fn unlink(&mut self, c: usize) {
        if let Some(parent) = self.parent(c) {
            if let Some(p) = self.nodes.get_mut(parent) {
                p.children.retain(|&x| x != c);
            }
            if let Some(n) = self.nodes.get_mut(c) {
                n.parent = None;
            }
        }
    }

    /// Makes `child` the last child of `parent` (unlinking it first).
    fn link(&mut self, parent: usize, child: usize) {
        self.unlink(child);
        if let Some(p) = self.nodes.get_mut(parent) {
            p.children.push(child);
        }
        if let Some(n) = self.nodes.get_mut(child) {
            n.parent = Some(parent);
        }
    }

    fn set_children(&mut self, c: usize, children: Vec<usize>) {
        for &child in &children {
            if let Some(n) = self.nodes.get_mut(child) {
                n.parent = Some(c);
            }
        }
        if let Some(n) = self.nodes.get_mut(c) {
            n.children = children;
        }
    }

    /// Containers below `root` (and `root` last), children before parents.
    fn post_order(&self, root: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let mut stack = vec![(root, false)];
        while let Some((c, expanded)) = stack.pop() {
            if expanded {
                out.push(c);
                continue;
            }
            stack.push((c, true));
            for &child in self.children(c).iter().rev() {
                stack.push((child, false));
            }
        }
        out
    }
}

/// REFERENCES (RFC 5256 §3, after J. Zawinski's algorithm).
fn references(messages: &[MessageView<'_>]) -> Vec<ThreadNode> {
    let mut arena = Arena { nodes: Vec::new() };
    let mut by_id: HashMap<&str, usize> = HashMap::new();

    // Step 1, in sequence-number order so that the first of several messages
    // with the same Message-ID keeps it.
    let mut by_msn: Vec<usize> = (0..messages.len()).collect();
    by_msn.sort_by_key(|&i| messages.get(i).map_or(0, |m| m.msn));
    for &index in &by_msn {
        let Some(m) = messages.get(index) else {
            continue;
        };
        let meta = m.meta;
        // 1.A: this message's container. Without a Message-ID, or with one an
        // earlier message already has, it gets a container of its own.
        let own_id = meta.message_id.as_deref().filter(|id| !id.is_empty());
        let this = match own_id.and_then(|id| by_id.get(id).copied()) {
            Some(c) if arena.message(c).is_none() => {
                if let Some(n) = arena.nodes.get_mut(c) {
                    n.message = Some(index);
                }
                c
            }
            Some(_) => arena.add(Some(index)),
            None => {
                let c = arena.add(Some(index));
                if let Some(id) = own_id {
                    by_id.insert(id, c);
                }
                c
            }
        };

        // 1.B: link the references in a chain, keeping existing links and
        // refusing any that would close a loop.
        let references: Vec<&str> = if meta.references.is_empty() {
            meta.in_reply_to
                .iter()
                .take(1)
                .map(String::as_str)
                .collect()
        } else {
            meta.references.iter().map(String::as_str).collect()
        };
        let mut previous: Option<usize> = None;
        for id in references.iter().filter(|id| !id.is_empty()) {
            let c = match by_id.get(id) {
                Some(&c) => c,
                None => {
                    let c = arena.add(None);
                    by_id.insert(id, c);
                    c
                }
            };
            if let Some(p) = previous
                && p != c
                && arena.parent(c).is_none()
                && !arena.is_ancestor(c, p)
            {
                arena.link(p, c);
            }
            previous = Some(c);
        }

        // 1.C: the last reference is this message's parent, replacing any
        // parent guessed from other messages' references; none if that would
        // make a loop (or there are no references).
        let parent = previous.filter(|&p| !arena.is_ancestor(this, p));
        arena.unlink(this);
        if let Some(p) = parent {
            arena.link(p, this);
        }
    }

    // Step 2: the root set, under a virtual root.
    let roots: Vec<usize> = (0..arena.nodes.len())
        .filter(|&c| arena.parent(c).is_none())
        .collect();
    let root = arena.add(None);
    arena.set_children(root, roots);

    // Step 4: prune dummies.
    prune(&mut arena, root);
    // Step 5: sort the root set (and dummies' children) by sent date.
    sort_siblings(&mut arena, root, messages);
    // Step 6: gather top-level threads with the same base subject.
    merge_subjects(&mut arena, root, messages);
    // Step 7: sort every set of siblings by sent date.
    sort_siblings(&mut arena, root, messages);

    build_nodes(&arena, root, messages)
}

/// Step 4: dummies without children are removed; a dummy's children replace
/// it, except at the top level where that happens only for a single child.
fn prune(arena: &mut Arena, root: usize) {
    for c in arena.post_order(root) {
        let mut kept = Vec::new();
        for &child in arena.children(c) {
            if arena.message(child).is_some() {
                kept.push(child);
                continue;
            }
            let grandchildren = arena.children(child);
            match grandchildren.len() {
                0 => {}
                1 => kept.extend_from_slice(grandchildren),
                _ if c != root => kept.extend_from_slice(grandchildren),
                _ => kept.push(child),
            }
        }
        arena.set_children(c, kept);
    }
}

/// Sorts every sibling set by sent date (then sequence number), deepest first;
/// a dummy sorts as its first child.
fn sort_siblings(arena: &mut Arena, root: usize, messages: &[MessageView<'_>]) {
    let mut keys: Vec<(i64, u32)> = vec![(i64::MAX, u32::MAX); arena.nodes.len()];
    for c in arena.post_order(root) {
        let mut children = arena.children(c).to_vec();
        children.sort_by_key(|&child| keys.get(child).copied().unwrap_or((i64::MAX, u32::MAX)));
        let key = match arena.message(c) {
            Some(index) => date_key(messages, index),
            None => children
                .first()
                .and_then(|&first| keys.get(first).copied())
                .unwrap_or((i64::MAX, u32::MAX)),
        };
        if let Some(slot) = keys.get_mut(c) {
            *slot = key;
        }
        if let Some(n) = arena.nodes.get_mut(c) {
            n.children = children;
        }
    }
}

/// The message whose subject stands for a top-level container: its own, or a
/// dummy's first child's.
fn subject_message(arena: &Arena, c: usize) -> Option<usize> {
    match arena.message(c) {
        Some(index) => Some(index),
        None => arena
            .children(c)
            .first()
            .and_then(|&first| arena.message(first)),
    }
}

/// Step 6: top-level threads whose base subjects are equal are merged.
fn merge_subjects(arena: &mut Arena, root: usize, messages: &[MessageView<'_>]) {
    let info = |arena: &Arena, c: usize| -> Option<(String, bool)> {
        let m = messages.get(subject_message(arena, c)?)?;
        let base = casemap(&m.meta.base_subject);
        if base.is_empty() {
            return None;
        }
        let reply = is_reply_or_forward(m.meta.subject.as_deref().unwrap_or_default());
        Some((base, reply))
    };
    let is_dummy = |arena: &Arena, c: usize| arena.message(c).is_none();

    // 6.B: one container per subject, preferring a dummy, then a non-reply.
    let mut table: HashMap<String, usize> = HashMap::new();
    let roots: Vec<usize> = arena.children(root).to_vec();
    for &c in &roots {
        let Some((subject, reply)) = info(arena, c) else {
            continue;
        };
        match table.get(&subject).copied() {
            None => {
                table.insert(subject, c);
            }
            Some(old) => {
                let old_reply = info(arena, old).is_some_and(|(_, r)| r);
                if (is_dummy(arena, c) && !is_dummy(arena, old)) || (old_reply && !reply) {
                    table.insert(subject, c);
                }
            }
        }
    }

    // 6.C: merge each other top-level container into the table's one.
    let mut top: Vec<usize> = roots.clone();
    for &c in &roots {
        let Some((subject, reply)) = info(arena, c) else {
            continue;
        };
        let Some(&t) = table.get(&subject) else {
            continue;
        };
        if t == c || !top.contains(&c) {
            continue;
        }
        let t_reply = info(arena, t).is_some_and(|(_, r)| r);
        match (is_dummy(arena, t), is_dummy(arena, c)) {
            (true, true) => {
                for child in arena.children(c).to_vec() {
                    arena.link(t, child);
                }
                top.retain(|&x| x != c);
            }
            (true, false) => {
                arena.link(t, c);
                top.retain(|&x| x != c);
            }
            (false, true) => {
                arena.link(c, t);
                replace(&mut top, t, c);
                table.insert(subject, c);
            }
            (false, false) if !t_reply && reply => {
                arena.link(t, c);
                top.retain(|&x| x != c);
            }
            (false, false) if t_reply && !reply => {
                arena.link(c, t);
                top.retain(|&x| x != t);
                table.insert(subject, c);
            }
            (false, false) => {
                let dummy = arena.add(None);
                arena.link(dummy, t);
                arena.link(dummy, c);
                replace(&mut top, t, dummy);
                top.retain(|&x| x != c);
                table.insert(subject, dummy);
            }
        }
    }
    arena.set_children(root, top);
}

/// Replaces `old` by `new` in `list`, at `old`'s position (removing any other
/// occurrence of `new`).
fn replace(list: &mut Vec<usize>, old: usize, new: usize) {
    list.retain(|&x| x != new);
    if let Some(slot) = list.iter_mut().find(|x| **x == old) {
        *slot = new;
    }
}

fn build_nodes(arena: &Arena, root: usize, messages: &[MessageView<'_>]) -> Vec<ThreadNode> {
    let mut built: Vec<Option<ThreadNode>> = vec![None; arena.nodes.len()];
    for c in arena.post_order(root) {
        let children = arena
            .children(c)
            .iter()
            .filter_map(|&child| built.get_mut(child).and_then(Option::take))
            .collect();
        let node = ThreadNode {
            message: arena.message(c).map(|index| {
                let (msn, uid) = messages.get(index).map_or((0, 0), |m| (m.msn, m.uid));
                ThreadMessage { index, msn, uid }
            }),
            children,
        };
        if let Some(slot) = built.get_mut(c) {
            *slot = Some(node);
        }
    }
    built
        .get_mut(root)
        .and_then(Option::take)
        .map(|mut r| std::mem::take(&mut r.children))
        .unwrap_or_default()
}

/// True if the (decoded) subject marks a reply or forward in RFC 5256 §2.1
/// terms: a `Re:`/`Fw:`/`Fwd:` leader, a `(fwd)` trailer or a `[fwd: ...]`
/// wrapper is removed while extracting the base subject.
pub fn is_reply_or_forward(subject: &str) -> bool {
    let mut text = String::with_capacity(subject.len());
    let mut in_space = false;
    for ch in subject.chars() {
        if ch.is_whitespace() {
            if !in_space {
                text.push(' ');
            }
            in_space = true;
        } else {
            text.push(ch);
            in_space = false;
        }
    }
    let mut s: &str = &text;
    let mut reply = false;
    loop {
        // (2) trailers.
        loop {
            let trimmed = s.trim_end_matches(' ');
            match trimmed
                .len()
                .checked_sub(5)
                .and_then(|at| trimmed.get(at..))
            {
                Some(tail) if tail.eq_ignore_ascii_case("(fwd)") => {
                    s = trimmed.get(..trimmed.len() - 5).unwrap_or_default();
                    reply = true;
                }
                _ => {
                    s = trimmed;
                    break;
                }
            }
        }
        // (3)-(5) leaders and blobs.
        loop {
            if let Some((rest, refwd)) = strip_leader(s) {
                reply |= refwd;
                s = rest;
                continue;
            }
            if let Some(rest) = strip_blob(s)
                && !rest.trim_matches(' ').is_empty()
            {
                s = rest;
                continue;
            }
            break;
        }
        // (6) the [fwd: ...] wrapper.
        match s.get(..5) {
            Some(head) if head.eq_ignore_ascii_case("[fwd:") && s.ends_with(']') => {
                s = s.get(5..s.len() - 1).unwrap_or_default();
                reply = true;
            }
            _ => break,
        }
    }
    reply
}

/// subj-leader = (*subj-blob subj-refwd) / WSP; the flag tells a refwd.
fn strip_leader(s: &str) -> Option<(&str, bool)> {
    if let Some(rest) = s.strip_prefix(' ') {
        return Some((rest.trim_start_matches(' '), false));
    }
    let mut rest = s;
    while let Some(after) = strip_blob(rest) {
        rest = after;
    }
    let mut rest = if let Some(after) = strip_prefix_ci(rest, "re") {
        after
    } else {
        let after = strip_prefix_ci(rest, "fw")?;
        strip_prefix_ci(after, "d").unwrap_or(after)
    };
    rest = rest.trim_start_matches(' ');
    if let Some(after) = strip_blob(rest) {
        rest = after;
    }
    rest.strip_prefix(':').map(|r| (r, true))
}

/// subj-blob = "[" *BLOBCHAR "]" *WSP
fn strip_blob(s: &str) -> Option<&str> {
    let inner = s.strip_prefix('[')?;
    let close = inner.find([']', '['])?;
    if inner.get(close..)?.starts_with('[') {
        return None;
    }
    Some(inner.get(close + 1..)?.trim_start_matches(' '))
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        s.get(prefix.len()..)
    } else {
        None
    }
}
