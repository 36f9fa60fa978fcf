//! Test-only fault injection: make generation panic, or kill the process (as `kill -9` would) at
//! one chosen step of finishing a job, so tests can show that the queue survives both.
//!
//! Off unless `VIDPLAY_TEST_FAULTS` is set (the binary reads it; in-process tests pass a
//! [`Faults`] directly). Values, comma-separated: `panic-on=TEXT` (a job whose prompt contains
//! TEXT panics inside generation), `crash-at=POINT` (the process aborts there; POINT is one of
//! [`CrashPoint::ALL`]), `pause-after-claim=MS` (the worker waits that long between claiming
//! a job and starting it, so a test can land a cancel exactly there), `pause-before-warm-up=MS`
//! (the worker waits that long before preparing each model's GPU kernels, so a test can see
//! the preparation under way), `abort-after-moved=N` (`vidplay migrate` aborts after moving
//! N videos, so a test can resume it), and `fail-decode-on=TEXT` / `panic-decode-on=TEXT` /
//! `abort-decode-on=TEXT` (the first decode of a job whose prompt contains TEXT fails as out of
//! memory, panics, or ends the process, just after its sampled latents are kept; a retried
//! decode runs), and `pause-while-writing=MS` (the worker waits that long after each file of a
//! result it writes, so a test can stop it midway).

/// A step of finishing a job, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// Every file is in the media store; the gallery does not know of it yet.
    AfterWrite,
    /// The video is in the gallery.
    AfterInsert,
    /// Just before the finished job is saved.
    BeforeJobUpdate,
}

impl CrashPoint {
    pub const ALL: [CrashPoint; 3] = [CrashPoint::AfterWrite, CrashPoint::AfterInsert, CrashPoint::BeforeJobUpdate];

    pub fn name(self) -> &'static str {
        match self {
            CrashPoint::AfterWrite => "after-write",
            CrashPoint::AfterInsert => "after-insert",
            CrashPoint::BeforeJobUpdate => "before-job-update",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    pub panic_on: Option<String>,
    pub crash_at: Option<CrashPoint>,
    pub pause_after_claim: Option<std::time::Duration>,
    pub pause_before_warm_up: Option<std::time::Duration>,
    pub abort_after_moved: Option<usize>,
    /// How the first decode of a job whose prompt contains the text fails.
    pub decode: Option<(DecodeFault, String)>,
    pub pause_while_writing: Option<std::time::Duration>,
}

/// How an injected decode failure fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeFault {
    /// An error, as a GPU that runs out of memory reports it.
    Fails,
    /// A panic inside the decoder.
    Panics,
    /// The process ends at once, as when the system runs out of memory.
    Aborts,
}

impl Faults {
    /// Reads `VIDPLAY_TEST_FAULTS`; none when it is unset.
    pub fn from_env() -> anyhow::Result<Faults> {
        match std::env::var("VIDPLAY_TEST_FAULTS") {
            Ok(spec) => Faults::parse(&spec),
            Err(_) => Ok(Faults::default()),
        }
    }

    pub fn parse(spec: &str) -> anyhow::Result<Faults> {
        let mut faults = Faults::default();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match item.split_once('=') {
                Some(("panic-on", text)) if !text.is_empty() => faults.panic_on = Some(text.to_string()),
                Some(("crash-at", point)) => {
                    faults.crash_at = Some(
                        CrashPoint::ALL
                            .into_iter()
                            .find(|p| p.name() == point)
                            .ok_or_else(|| anyhow::anyhow!("VIDPLAY_TEST_FAULTS: unknown crash point {point:?}"))?,
                    )
                }
                Some(("pause-after-claim", ms)) if ms.parse::<u64>().is_ok() => {
                    faults.pause_after_claim = ms.parse().ok().map(std::time::Duration::from_millis)
                }
                Some(("pause-before-warm-up", ms)) if ms.parse::<u64>().is_ok() => {
                    faults.pause_before_warm_up = ms.parse().ok().map(std::time::Duration::from_millis)
                }
                Some(("abort-after-moved", n)) if n.parse::<usize>().is_ok() => {
                    faults.abort_after_moved = n.parse().ok()
                }
                Some(("pause-while-writing", ms)) if ms.parse::<u64>().is_ok() => {
                    faults.pause_while_writing = ms.parse().ok().map(std::time::Duration::from_millis)
                }
                Some(("fail-decode-on", text)) if !text.is_empty() => {
                    faults.decode = Some((DecodeFault::Fails, text.to_string()))
                }
                Some(("panic-decode-on", text)) if !text.is_empty() => {
                    faults.decode = Some((DecodeFault::Panics, text.to_string()))
                }
                Some(("abort-decode-on", text)) if !text.is_empty() => {
                    faults.decode = Some((DecodeFault::Aborts, text.to_string()))
                }
                _ => anyhow::bail!(
                    "VIDPLAY_TEST_FAULTS: cannot read {item:?} (panic-on=TEXT, crash-at=POINT, pause-after-claim=MS, pause-before-warm-up=MS, abort-after-moved=N, pause-while-writing=MS, fail-decode-on=TEXT, panic-decode-on=TEXT, abort-decode-on=TEXT)"
                ),
            }
        }
        Ok(faults)
    }

    /// Panics when the prompt asks for it (inside generation, on the generation thread).
    pub fn before_generating(&self, prompt: &str) {
        if let Some(marker) = &self.panic_on
            && prompt.contains(marker.as_str())
        {
            panic!("injected fault: a generation that panics ({marker:?} in the prompt)");
        }
    }

    /// At the start of a job's first decode (its latents just kept): fails it as asked when the
    /// prompt contains the chosen text.
    pub fn before_decoding(&self, prompt: &str) -> Result<(), model::generate::GenerateError> {
        let Some((fault, marker)) = &self.decode else { return Ok(()) };
        if !prompt.contains(marker.as_str()) {
            return Ok(());
        }
        match fault {
            DecodeFault::Fails => {
                Err(model::generate::GenerateError::Backend("injected fault: the decode ran out of GPU memory".into()))
            }
            DecodeFault::Panics => panic!("injected fault: a decode that panics ({marker:?} in the prompt)"),
            DecodeFault::Aborts => {
                eprintln!("injected fault: the process ends while decoding");
                std::process::abort();
            }
        }
    }

    /// After each file of a result is written.
    pub fn while_writing(&self) {
        if let Some(pause) = self.pause_while_writing {
            std::thread::sleep(pause);
        }
    }

    /// Between claiming a job and starting it.
    pub fn after_claim(&self) {
        if let Some(pause) = self.pause_after_claim {
            std::thread::sleep(pause);
        }
    }

    pub fn before_warm_up(&self) {
        if let Some(pause) = self.pause_before_warm_up {
            std::thread::sleep(pause);
        }
    }

    /// Ends the process at once after `moved` videos were moved, when that is the chosen count.
    pub fn after_moved(&self, moved: usize) {
        if self.abort_after_moved == Some(moved) {
            eprintln!("injected fault: aborting after moving {moved} videos");
            std::process::abort();
        }
    }

    /// Ends the process at once, with no cleanup, when this is the chosen point.
    pub fn at(&self, point: CrashPoint) {
        if self.crash_at == Some(point) {
            eprintln!("injected fault: crashing at {}", point.name());
            std::process::abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        assert_eq!(Faults::parse("").unwrap(), Faults::default());
        let f = Faults::parse("panic-on=BOOM, crash-at=after-insert, pause-after-claim=5").unwrap();
        assert_eq!(f.pause_after_claim, Some(std::time::Duration::from_millis(5)));
        let w = Faults::parse("pause-before-warm-up=7").unwrap().pause_before_warm_up;
        assert_eq!(w, Some(std::time::Duration::from_millis(7)));
        assert_eq!(f.panic_on.as_deref(), Some("BOOM"));
        assert_eq!(f.crash_at, Some(CrashPoint::AfterInsert));
        assert!(Faults::parse("crash-at=never").is_err());
        assert!(Faults::parse("explode").is_err());
        f.at(CrashPoint::AfterWrite); // not the chosen point: nothing happens
        f.before_generating("a calm prompt");
        let d = Faults::parse("fail-decode-on=OOM").unwrap();
        assert!(d.before_decoding("an OOM prompt").is_err());
        assert!(d.before_decoding("a calm prompt").is_ok());
        assert_eq!(Faults::parse("panic-decode-on=X").unwrap().decode, Some((DecodeFault::Panics, "X".into())));
        assert!(Faults::parse("fail-decode-on=").is_err());
    }
}
