//! Mailbox names: the store keeps a tree (parent id + one-level name); IMAP
//! sees full names joined with the hierarchy delimiter `/`.

use std::collections::HashMap;

use pochta_store::{Mailbox, MailboxId, Role};

/// The hierarchy delimiter (RFC 9051 §5.1.1).
pub const DELIMITER: char = '/';

/// An account's mailboxes with their full names, for lookups and LIST.
#[derive(Debug, Clone)]
pub struct Tree {
    /// Every mailbox, in store order.
    pub mailboxes: Vec<Mailbox>,
    names: HashMap<MailboxId, String>,
}

/// Why a name cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    /// Empty, or with an empty level (`a//b`, `/a`).
    Empty,
    /// A level the store would refuse (control characters, too long).
    Invalid,
}

impl Tree {
    /// Builds the tree from the store's list.
    pub fn new(mailboxes: Vec<Mailbox>) -> Tree {
        let by_id: HashMap<MailboxId, &Mailbox> = mailboxes.iter().map(|m| (m.id, m)).collect();
        let mut names = HashMap::with_capacity(mailboxes.len());
        for m in &mailboxes {
            let mut parts = vec![m.name.as_str()];
            let mut cursor = m.parent_id;
            let mut depth = 0;
            while let Some(p) = cursor.and_then(|p| by_id.get(&p)) {
                parts.push(p.name.as_str());
                cursor = p.parent_id;
                depth += 1;
                if depth > 64 {
                    break;
                }
            }
            parts.reverse();
            names.insert(m.id, parts.join("/"));
        }
        Tree { mailboxes, names }
    }

    /// The full name of a mailbox.
    pub fn name(&self, id: MailboxId) -> Option<&str> {
        self.names.get(&id).map(String::as_str)
    }

    /// Finds a mailbox by full name. `INBOX` (any case) as the first level is the
    /// inbox (RFC 9051 §5.1); other names compare exactly.
    pub fn find(&self, name: &str) -> Option<&Mailbox> {
        let canonical = canonical(name);
        self.mailboxes
            .iter()
            .find(|m| self.names.get(&m.id).is_some_and(|n| *n == canonical))
    }

    /// The mailbox with a role.
    pub fn by_role(&self, role: Role) -> Option<&Mailbox> {
        self.mailboxes.iter().find(|m| m.role == Some(role))
    }

    /// True when some mailbox lives under `id`.
    pub fn has_children(&self, id: MailboxId) -> bool {
        self.mailboxes.iter().any(|m| m.parent_id == Some(id))
    }

    /// Every (id, full name), sorted by name (INBOX first).
    pub fn sorted(&self) -> Vec<(&Mailbox, &str)> {
        let mut v: Vec<(&Mailbox, &str)> = self
            .mailboxes
            .iter()
            .filter_map(|m| self.names.get(&m.id).map(|n| (m, n.as_str())))
            .collect();
        v.sort_by(|a, b| {
            let ai = a.1 == "INBOX" || a.1.starts_with("INBOX/");
            let bi = b.1 == "INBOX" || b.1.starts_with("INBOX/");
            bi.cmp(&ai).then_with(|| a.1.cmp(b.1))
        });
        v
    }
}

/// Normalises a name: `inbox/x` → `INBOX/x`; a trailing delimiter is dropped
/// (RFC 9051 §6.3.4: `CREATE foo/` creates `foo`).
pub fn canonical(name: &str) -> String {
    let name = name.strip_suffix(DELIMITER).unwrap_or(name);
    match name.split_once(DELIMITER) {
        Some((first, rest)) if first.eq_ignore_ascii_case("INBOX") => format!("INBOX/{rest}"),
        None if name.eq_ignore_ascii_case("INBOX") => "INBOX".to_string(),
        _ => name.to_string(),
    }
}

/// Splits a full name into its levels, refusing empty levels.
pub fn levels(name: &str) -> Result<Vec<String>, NameError> {
    let name = canonical(name);
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    let parts: Vec<String> = name.split(DELIMITER).map(str::to_string).collect();
    if parts.iter().any(String::is_empty) {
        return Err(NameError::Empty);
    }
    if parts
        .iter()
        .any(|p| p.len() > 255 || p.chars().any(char::is_control))
    {
        return Err(NameError::Invalid);
    }
    Ok(parts)
}

/// Matches a LIST pattern (RFC 9051 §6.3.9: `*` matches anything, `%` anything
/// but the delimiter) against a full name. `INBOX` matches case-insensitively.
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    let pattern = canonical_pattern(pattern);
    matches(pattern.as_bytes(), name.as_bytes())
}

fn canonical_pattern(pattern: &str) -> String {
    match pattern.get(..5) {
        Some(first) if first.eq_ignore_ascii_case("INBOX") => format!("INBOX{}", &pattern[5..]),
        _ => pattern.to_string(),
    }
}

fn matches(p: &[u8], n: &[u8]) -> bool {
    // Iterative wildcard matching with backtracking to the last star.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize, bool)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == b'*' || p[pi] == b'%') {
            star = Some((pi, ni, p[pi] == b'%'));
            pi += 1;
        } else if pi < p.len() && p[pi] == n[ni] {
            pi += 1;
            ni += 1;
        } else if let Some((sp, sn, percent)) = star {
            if percent && n[sn] == b'/' {
                return false;
            }
            star = Some((sp, sn + 1, percent));
            pi = sp + 1;
            ni = sn + 1;
        } else {
            return false;
        }
    }
    while pi < p.len() && (p[pi] == b'*' || p[pi] == b'%') {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mb(id: u64, parent: Option<u64>, name: &str) -> Mailbox {
        Mailbox {
            id,
            account_id: 1,
            parent_id: parent,
            name: name.into(),
            role: if name == "INBOX" {
                Some(Role::Inbox)
            } else {
                None
            },
            uid_validity: 1,
            uid_next: 1,
            highest_modseq: 0,
            total: 0,
            unseen: 0,
            deleted: 0,
            size: 0,
            subscribed: true,
            sort_order: 0,
            keywords: Vec::new(),
        }
    }

    #[test]
    fn full_names_and_lookups() {
        let t = Tree::new(vec![
            mb(1, None, "INBOX"),
            mb(2, None, "Work"),
            mb(3, Some(2), "Projects"),
            mb(4, Some(1), "Lists"),
        ]);
        assert_eq!(t.name(3), Some("Work/Projects"));
        assert_eq!(t.find("inbox").map(|m| m.id), Some(1));
        assert_eq!(t.find("Inbox/Lists").map(|m| m.id), Some(4));
        assert_eq!(
            t.find("work").map(|m| m.id),
            None,
            "only INBOX is case-insensitive"
        );
        assert_eq!(t.find("Work/Projects/").map(|m| m.id), Some(3));
        assert!(t.has_children(2));
        let order: Vec<&str> = t.sorted().into_iter().map(|(_, n)| n).collect();
        assert_eq!(order, ["INBOX", "INBOX/Lists", "Work", "Work/Projects"]);
    }

    #[test]
    fn levels_refuse_empty_parts() {
        assert_eq!(levels("a/b/").unwrap(), ["a", "b"]);
        assert_eq!(levels("inbox/x").unwrap(), ["INBOX", "x"]);
        assert_eq!(levels("a//b"), Err(NameError::Empty));
        assert_eq!(levels("/a"), Err(NameError::Empty));
        assert_eq!(levels(""), Err(NameError::Empty));
    }

    #[test]
    fn list_patterns() {
        assert!(pattern_matches("*", "Work/Projects"));
        assert!(pattern_matches("%", "Work"));
        assert!(!pattern_matches("%", "Work/Projects"));
        assert!(pattern_matches("Work/%", "Work/Projects"));
        assert!(pattern_matches("W*s", "Work/Projects"));
        assert!(!pattern_matches("W%s", "Work/Projects"));
        assert!(pattern_matches("inbox", "INBOX"));
        assert!(pattern_matches("Inbox*", "INBOX/Lists"));
        assert!(!pattern_matches("Work", "Work/Projects"));
        assert!(pattern_matches("%/%", "Work/Projects"));
        assert!(pattern_matches("*o*", "Work/Projects"));
        assert!(!pattern_matches("", "Work"));
    }
}
