//! Password verification on a few dedicated threads that keep their argon2
//! memory.
//!
//! argon2id needs ~19 MiB per check. Allocating and freeing that on whichever
//! blocking thread runs the check made glibc raise its mmap threshold and keep
//! per-thread arenas of tens of MiB resident (the POP3 benchmark saw RSS near
//! 1 GiB). Here a fixed number of threads each allocate their block buffer once
//! and reuse it, so memory stays at threads × 19 MiB, and the number of checks
//! running at once is bounded by construction.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use pochta_addr::Secret;
use tokio::sync::{mpsc, oneshot};

struct Job {
    phc: String,
    password: Secret,
    reply: oneshot::Sender<bool>,
}

/// A pool of verification threads.
pub struct Hasher {
    tx: mpsc::Sender<Job>,
    /// Verifications asked for, so tests can see that every login attempt
    /// costs one (unknown users included) without measuring time.
    requested: AtomicU64,
}

impl Hasher {
    /// Starts `threads` verification threads.
    pub fn new(threads: usize) -> std::io::Result<Hasher> {
        let (tx, rx) = mpsc::channel::<Job>(1024);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("pochta-argon2-{i}"))
                .spawn(move || worker(&rx))?;
        }
        Ok(Hasher {
            tx,
            requested: AtomicU64::new(0),
        })
    }

    /// How many verifications have been asked for.
    #[cfg(test)]
    pub(crate) fn requested(&self) -> u64 {
        self.requested.load(Ordering::Relaxed)
    }

    /// Checks `password` against the PHC string `phc`; false on any malformed hash.
    pub async fn verify(&self, phc: String, password: Secret) -> bool {
        self.requested.fetch_add(1, Ordering::Relaxed);
        let (reply, rx) = oneshot::channel();
        let job = Job {
            phc,
            password,
            reply,
        };
        // A full queue means a login flood: waiting here is the throttle. The
        // wait is async, so a flood holds no thread of the runtime's bounded
        // blocking pool, which store reads need.
        if self.tx.send(job).await.is_err() {
            return false;
        }
        rx.await.unwrap_or(false)
    }
}

fn worker(rx: &Mutex<mpsc::Receiver<Job>>) {
    let mut blocks: Vec<Block> = Vec::new();
    loop {
        let job = {
            let mut guard = rx.lock().unwrap_or_else(|p| p.into_inner());
            match guard.blocking_recv() {
                Some(job) => job,
                None => return,
            }
        };
        let ok = verify_with(&mut blocks, &job.phc, job.password.expose().as_bytes());
        let _ = job.reply.send(ok);
    }
}

/// Verifies with caller-owned memory; `blocks` only ever grows.
pub(crate) fn verify_with(blocks: &mut Vec<Block>, phc: &str, password: &[u8]) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(hash.algorithm.as_str()) else {
        return false;
    };
    let version = match hash.version.map(Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = Params::try_from(&hash) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (hash.salt.as_ref(), hash.hash.as_ref()) else {
        return false;
    };
    let needed = params.block_count();
    if blocks.len() < needed {
        blocks.resize(needed, Block::default());
    }
    let mut out = vec![0u8; expected.as_bytes().len()];
    let argon = Argon2::new(algorithm, version, params);
    if argon
        .hash_password_into_with_memory(password, salt, &mut out, &mut blocks[..needed])
        .is_err()
    {
        return false;
    }
    constant_time_eq(&out, expected.as_bytes())
}

/// Compares without stopping at the first difference.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn verifies_like_the_reference_and_reuses_memory() {
        let pw = Secret::new("correct horse");
        let phc = crate::hash_password(&pw).unwrap();
        let mut blocks = Vec::new();
        assert!(verify_with(&mut blocks, &phc, b"correct horse"));
        let allocated = blocks.capacity();
        assert!(!verify_with(&mut blocks, &phc, b"wrong"));
        assert_eq!(blocks.capacity(), allocated, "memory is reused");
        assert!(!verify_with(&mut blocks, "garbage", b"x"));
        let h = Hasher::new(2).unwrap();
        assert!(h.verify(phc.clone(), pw).await);
        assert!(!h.verify(phc, Secret::new("nope")).await);
    }

    /// A login must not take a thread of the runtime's blocking pool: the pool
    /// is bounded (src/main.rs) and store reads fill it under load. With its
    /// only blocking thread busy, a verification still completes.
    #[test]
    fn verification_needs_no_blocking_thread() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (release, wait) = std::sync::mpsc::channel::<()>();
        rt.block_on(async {
            let busy = tokio::task::spawn_blocking(move || {
                let _ = wait.recv();
            });
            let hasher = Hasher::new(1).unwrap();
            let pw = Secret::new("correct horse");
            let phc = crate::hash_password(&pw).unwrap();
            let checked =
                tokio::time::timeout(std::time::Duration::from_secs(60), hasher.verify(phc, pw))
                    .await;
            release.send(()).unwrap();
            busy.await.unwrap();
            assert!(matches!(checked, Ok(true)), "{checked:?}");
        });
    }
}
