//! Mailbox commands: CREATE, DELETE, RENAME, SUBSCRIBE, LIST/LSUB, STATUS, and
//! the QUOTA commands (RFC 9051 §6.3, RFC 5258, 5819, 6154, 8438, 9208).

use pochta_proto_imap::encode;
use pochta_proto_imap::types::*;
use pochta_store::{Mailbox, MailboxId, Role};

use crate::exec::{Executor, Fail, Handled, Output};
use crate::names::{self, NameError, Tree};

/// The role a RFC 6154 USE attribute asks for.
fn role_of(attr: &str) -> Option<Role> {
    Some(match attr.to_ascii_lowercase().as_str() {
        "\\archive" => Role::Archive,
        "\\drafts" => Role::Drafts,
        "\\junk" => Role::Junk,
        "\\sent" => Role::Sent,
        "\\trash" => Role::Trash,
        "\\all" => Role::All,
        "\\flagged" => Role::Flagged,
        "\\important" => Role::Important,
        _ => return None,
    })
}

fn name_fail(e: NameError) -> Fail {
    match e {
        NameError::Empty => Fail::No(
            Some("CANNOT".into()),
            "Mailbox name has an empty level".into(),
        ),
        NameError::Invalid => Fail::No(
            Some("CANNOT".into()),
            "Mailbox name is too long or has control characters".into(),
        ),
    }
}

impl Executor {
    /// Finds a mailbox by name, answering NONEXISTENT.
    pub(crate) fn find<'t>(&self, tree: &'t Tree, name: &str) -> Result<&'t Mailbox, Fail> {
        tree.find(name).ok_or_else(|| {
            Fail::No(
                Some("NONEXISTENT".into()),
                format!("Mailbox doesn't exist: {name}"),
            )
        })
    }

    /// Creates the missing levels of `levels`; returns the id of the last one.
    async fn create_levels(
        &self,
        tree: &Tree,
        levels: &[String],
        role: Option<Role>,
    ) -> Result<MailboxId, Fail> {
        let mut parent: Option<MailboxId> = None;
        for (i, level) in levels.iter().enumerate() {
            let path = levels[..=i].join("/");
            let last = i + 1 == levels.len();
            if let Some(existing) = tree.find(&path) {
                if last {
                    return Err(Fail::No(
                        Some("ALREADYEXISTS".into()),
                        format!("Mailbox already exists: {path}"),
                    ));
                }
                parent = Some(existing.id);
                continue;
            }
            let m = self
                .store
                .create_mailbox(
                    self.account.id,
                    parent,
                    level,
                    if last { role } else { None },
                )
                .await?;
            parent = Some(m.id);
        }
        parent.ok_or_else(|| name_fail(NameError::Empty))
    }

    pub(crate) async fn create(&mut self, raw: &[u8], special_use: &[String]) -> Handled {
        let name = self.mailbox_name(raw)?;
        let levels = names::levels(&name).map_err(name_fail)?;
        let tree = self.tree().await?;
        let mut role = None;
        for attr in special_use {
            let Some(r) = role_of(attr) else {
                return Err(Fail::No(
                    Some("USEATTR".into()),
                    format!("Unsupported special use {attr}"),
                ));
            };
            if tree.by_role(r).is_some() {
                return Err(Fail::No(
                    Some("USEATTR".into()),
                    format!("Another mailbox is already {attr}"),
                ));
            }
            role = Some(r);
        }
        self.create_levels(&tree, &levels, role).await?;
        Ok((None, "CREATE completed".into()))
    }

    pub(crate) async fn delete(&mut self, raw: &[u8]) -> Handled {
        let name = self.mailbox_name(raw)?;
        let tree = self.tree().await?;
        let m = self.find(&tree, &name)?;
        if m.role == Some(Role::Inbox) {
            return Err(Fail::No(
                Some("CANNOT".into()),
                "INBOX cannot be deleted".into(),
            ));
        }
        if self.selected.as_ref().is_some_and(|s| s.id == m.id) {
            return Err(Fail::No(
                Some("CANNOT".into()),
                "Close the mailbox before deleting it".into(),
            ));
        }
        self.store.delete_mailbox(self.account.id, m.id).await?;
        Ok((None, "DELETE completed".into()))
    }

    pub(crate) async fn rename(&mut self, from: &[u8], to: &[u8]) -> Handled {
        let from = self.mailbox_name(from)?;
        let to = self.mailbox_name(to)?;
        let tree = self.tree().await?;
        let src = self.find(&tree, &from)?.clone();
        let levels = names::levels(&to).map_err(name_fail)?;
        if tree.find(&to).is_some() {
            return Err(Fail::No(
                Some("ALREADYEXISTS".into()),
                format!("Mailbox already exists: {to}"),
            ));
        }
        if src.role == Some(Role::Inbox) {
            // RFC 9051 §6.3.6: renaming INBOX moves its messages to a new mailbox
            // and leaves INBOX (empty) in place.
            let dest = self.create_levels(&tree, &levels, None).await?;
            let ids: Vec<u64> = self
                .store
                .uid_map(self.account.id, src.id)
                .await?
                .into_iter()
                .map(|(_, id)| id)
                .collect();
            if !ids.is_empty() {
                // A session with INBOX selected sees the moves as expunges.
                self.store
                    .move_messages(self.account.id, &ids, dest)
                    .await?;
            }
            return Ok((None, "RENAME completed".into()));
        }
        let (parent_levels, leaf) = levels.split_at(levels.len() - 1);
        let parent = if parent_levels.is_empty() {
            None
        } else {
            let path = parent_levels.join("/");
            match tree.find(&path) {
                Some(p) => Some(p.id),
                None => Some(self.create_levels(&tree, parent_levels, None).await?),
            }
        };
        let leaf = leaf.first().ok_or_else(|| name_fail(NameError::Empty))?;
        self.store
            .rename_mailbox(self.account.id, src.id, parent, leaf)
            .await?;
        Ok((None, "RENAME completed".into()))
    }

    pub(crate) async fn subscribe(&mut self, raw: &[u8], on: bool) -> Handled {
        let name = self.mailbox_name(raw)?;
        let tree = self.tree().await?;
        let m = self.find(&tree, &name)?;
        self.store.set_subscribed(self.account.id, m.id, on).await?;
        Ok((
            None,
            if on {
                "SUBSCRIBE completed"
            } else {
                "UNSUBSCRIBE completed"
            }
            .into(),
        ))
    }

    pub(crate) async fn list(
        &mut self,
        select: &[ListSelect],
        reference: &[u8],
        patterns: &[Vec<u8>],
        returns: &[ListReturn],
        lsub: bool,
        out: &mut Output<'_>,
    ) -> Handled {
        let word = if lsub { "LSUB" } else { "LIST" };
        let reference = self.mailbox_name(reference)?;
        let charset = self.charset();
        // LIST "" "": the hierarchy delimiter and root (RFC 9051 §6.3.9).
        if patterns.len() == 1 && patterns[0].is_empty() {
            out.buf
                .extend_from_slice(format!("* {word} (\\Noselect) \"/\" \"\"\r\n").as_bytes());
            return Ok((None, format!("{word} completed")));
        }
        let subscribed_only = select.contains(&ListSelect::Subscribed);
        let special_only = select.contains(&ListSelect::SpecialUse);
        let recursive = select.contains(&ListSelect::RecursiveMatch);
        let want_subscribed = subscribed_only || returns.contains(&ListReturn::Subscribed);
        let status_items: Option<&Vec<StatusItem>> = returns.iter().find_map(|r| match r {
            ListReturn::Status(items) => Some(items),
            _ => None,
        });
        let mut full_patterns = Vec::with_capacity(patterns.len());
        for p in patterns {
            let p = self.mailbox_name(p)?;
            full_patterns.push(format!("{reference}{p}"));
        }
        let tree = self.tree().await?;
        for (m, name) in tree.sorted() {
            if !full_patterns
                .iter()
                .any(|p| names::pattern_matches(p, name))
            {
                continue;
            }
            let mut child_subscribed = false;
            if subscribed_only && !m.subscribed {
                // RECURSIVEMATCH: a parent listed for its subscribed children.
                child_subscribed = recursive && has_subscribed_descendant(&tree, m.id);
                if !child_subscribed {
                    continue;
                }
            }
            if special_only && m.role.and_then(Role::special_use).is_none() {
                continue;
            }
            let mut attrs: Vec<&str> = Vec::new();
            if !lsub {
                attrs.push(if tree.has_children(m.id) {
                    "\\HasChildren"
                } else {
                    "\\HasNoChildren"
                });
            }
            if want_subscribed && m.subscribed && !lsub {
                attrs.push("\\Subscribed");
            }
            if let Some(su) = m.role.and_then(Role::special_use) {
                attrs.push(su);
            }
            out.buf.extend_from_slice(format!("* {word} (").as_bytes());
            out.buf.extend_from_slice(attrs.join(" ").as_bytes());
            out.buf.extend_from_slice(b") \"/\" ");
            encode::mailbox(&mut out.buf, name, charset);
            if child_subscribed {
                out.buf
                    .extend_from_slice(b" (\"CHILDINFO\" (\"SUBSCRIBED\"))");
            }
            out.buf.extend_from_slice(b"\r\n");
            if let Some(items) = status_items {
                self.write_status(m, name, items, out).await?;
            }
        }
        Ok((None, format!("{word} completed")))
    }

    pub(crate) async fn status(
        &mut self,
        raw: &[u8],
        items: &[StatusItem],
        out: &mut Output<'_>,
    ) -> Handled {
        let name = self.mailbox_name(raw)?;
        let tree = self.tree().await?;
        let m = self.find(&tree, &name)?.clone();
        let full = tree.name(m.id).unwrap_or(&name).to_string();
        self.write_status(&m, &full, items, out).await?;
        Ok((None, "STATUS completed".into()))
    }

    async fn write_status(
        &mut self,
        m: &Mailbox,
        name: &str,
        items: &[StatusItem],
        out: &mut Output<'_>,
    ) -> Result<(), Fail> {
        if items.contains(&StatusItem::HighestModSeq) {
            self.enabled.condstore = true;
        }
        let mut parts = Vec::with_capacity(items.len());
        for item in items {
            parts.push(match item {
                StatusItem::Messages => format!("MESSAGES {}", m.total),
                StatusItem::UidNext => format!("UIDNEXT {}", m.uid_next),
                StatusItem::UidValidity => format!("UIDVALIDITY {}", m.uid_validity),
                StatusItem::Unseen => format!("UNSEEN {}", m.unseen),
                StatusItem::Deleted => format!("DELETED {}", m.deleted),
                StatusItem::Size => format!("SIZE {}", m.size),
                StatusItem::Recent => "RECENT 0".to_string(),
                StatusItem::HighestModSeq => format!("HIGHESTMODSEQ {}", m.highest_modseq.max(1)),
                StatusItem::MailboxId => format!("MAILBOXID ({})", mailbox_object_id(m.id)),
                StatusItem::AppendLimit => format!("APPENDLIMIT {}", self.settings.max_append),
            });
        }
        out.buf.extend_from_slice(b"* STATUS ");
        encode::mailbox(&mut out.buf, name, self.charset());
        out.buf.extend_from_slice(b" (");
        out.buf.extend_from_slice(parts.join(" ").as_bytes());
        out.buf.extend_from_slice(b")\r\n");
        Ok(())
    }

    pub(crate) async fn get_quota(&mut self, root: &[u8], out: &mut Output<'_>) -> Handled {
        if !root.is_empty() {
            return Err(Fail::No(
                Some("NONEXISTENT".into()),
                "The only quota root is \"\"".into(),
            ));
        }
        self.write_quota(out).await?;
        Ok((None, "GETQUOTA completed".into()))
    }

    pub(crate) async fn get_quota_root(&mut self, raw: &[u8], out: &mut Output<'_>) -> Handled {
        let name = self.mailbox_name(raw)?;
        let tree = self.tree().await?;
        let m = self.find(&tree, &name)?;
        let full = tree.name(m.id).unwrap_or(&name).to_string();
        out.buf.extend_from_slice(b"* QUOTAROOT ");
        encode::mailbox(&mut out.buf, &full, self.charset());
        out.buf.extend_from_slice(b" \"\"\r\n");
        self.write_quota(out).await?;
        Ok((None, "GETQUOTAROOT completed".into()))
    }

    /// `* QUOTA "" (STORAGE used limit MESSAGE n limit)`; STORAGE is in KiB
    /// (RFC 9208 §5.1). Without a limit there is no quota to report.
    async fn write_quota(&self, out: &mut Output<'_>) -> Result<(), Fail> {
        let q = self.store.quota(self.account.id).await?;
        if let Some(limit) = q.limit {
            out.buf.extend_from_slice(
                format!(
                    "* QUOTA \"\" (STORAGE {} {})\r\n",
                    q.used.div_ceil(1024),
                    limit / 1024
                )
                .as_bytes(),
            );
        }
        Ok(())
    }
}

fn has_subscribed_descendant(tree: &Tree, id: MailboxId) -> bool {
    let mut stack = vec![id];
    let mut steps = 0;
    while let Some(p) = stack.pop() {
        steps += 1;
        if steps > 10_000 {
            return false;
        }
        for m in tree.mailboxes.iter().filter(|m| m.parent_id == Some(p)) {
            if m.subscribed {
                return true;
            }
            stack.push(m.id);
        }
    }
    false
}

/// RFC 8474 MAILBOXID of a mailbox.
pub fn mailbox_object_id(id: MailboxId) -> String {
    format!("F{id}")
}
