//! The highest UDP rate a path forwards with little loss (the `udp64_max` test), found by a
//! bounded search over paced send rates:
//!
//! 1. one trial as fast as the sender goes; if it passes, the path keeps up with the sender and
//!    that is the answer. Otherwise what the sender offered is the cap of the search;
//! 2. a ramp of paced rates from [`Plan::start`], doubling, up to the cap, until one fails;
//! 3. bisection between the highest rate that passed and the lowest that failed, until they
//!    are within [`Plan::precision`].
//!
//! A trial passes if its loss stays below [`Plan::max_loss_pct`]. One that loses little but
//! whose sender fell well short of the paced rate ([`Verdict::Short`]: the sender, or a path that
//! runs inside the sender's system calls, cannot go faster) counts as an answer, but rates above
//! it are not worth trying. The search stops after [`Plan::max_trials`] trials, and starts no
//! trial that would end after [`Plan::budget`]. It is a pure function of the trial closure, so
//! the tests below drive it with synthetic loss curves.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use super::report::fmt_num;

/// The first paced rate of the ramp, datagrams/s.
pub const START: u64 = 25_000;
/// A trial passes with loss below this, in percent (vxbench --udp-max-loss).
pub const MAX_LOSS_PCT: f64 = 1.0;
/// Bisection stops once the failing rate is at most this fraction above the passing one.
pub const PRECISION: f64 = 0.05;
/// At most this many trials per search, the unpaced one included.
pub const MAX_TRIALS: usize = 12;
/// No trial starts that would end after this much time spent on the search.
pub const BUDGET: Duration = Duration::from_secs(25);
/// A paced trial whose sender offered less than this fraction of its rate fell short.
pub const SHORT_OF: f64 = 0.9;

/// How a search runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The first paced rate of the ramp, datagrams/s.
    pub start: u64,
    /// A trial passes with loss below this, in percent.
    pub max_loss_pct: f64,
    /// Bisection stops once the failing rate is at most this fraction above the passing one.
    pub precision: f64,
    /// At most this many trials, the unpaced one included.
    pub max_trials: usize,
    /// No trial starts that would, judging by the longest so far, end after this much time
    /// spent on the search. The first trial always runs.
    pub budget: Duration,
}

impl Default for Plan {
    fn default() -> Plan {
        Plan {
            start: START,
            max_loss_pct: MAX_LOSS_PCT,
            precision: PRECISION,
            max_trials: MAX_TRIALS,
            budget: BUDGET,
        }
    }
}

/// What one trial measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trial {
    /// The paced rate asked for, datagrams/s; None: as fast as the sender goes.
    pub rate: Option<u64>,
    /// Datagrams/s the sender's kernel accepted.
    pub tx_pps: f64,
    /// Datagrams/s that arrived.
    pub rx_pps: f64,
    pub loss_pct: f64,
}

/// What a trial says about its rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Loss below the limit at the rate asked for.
    Pass,
    /// Loss below the limit, but the sender offered less than [`SHORT_OF`] of the rate: an
    /// answer, and an upper bound.
    Short,
    /// Loss at or above the limit.
    Fail,
}

/// How a trial fares under a plan.
pub fn verdict(plan: &Plan, t: &Trial) -> Verdict {
    if t.loss_pct.is_nan() || t.loss_pct >= plan.max_loss_pct {
        Verdict::Fail
    } else if t.rate.is_some_and(|r| t.tx_pps < SHORT_OF * r as f64) {
        Verdict::Short
    } else {
        Verdict::Pass
    }
}

/// Why a search stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The unpaced trial passed: the path keeps up with the sender.
    Unpaced,
    /// Every paced rate passed, up to what the unpaced sender offered.
    Cap,
    /// A passing and a failing rate within the precision of each other.
    Converged,
    /// The lowest paced rate already failed (or the unpaced sender sent nothing).
    NonePassed,
    /// [`Plan::max_trials`] reached.
    TrialLimit,
    /// [`Plan::budget`] reached.
    TimeLimit,
}

/// A finished search.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub plan: Plan,
    /// Every trial in the order it ran, with its verdict.
    pub trials: Vec<(Trial, Verdict)>,
    pub stop: Stop,
    /// Time spent in trials, the closure's own pauses included.
    pub secs: f64,
}

impl Found {
    /// The answer: of the trials that passed (or fell short without loss), the one that
    /// received the most. None if none did.
    pub fn best(&self) -> Option<&Trial> {
        self.trials
            .iter()
            .filter(|(_, v)| *v != Verdict::Fail)
            .map(|(t, _)| t)
            .max_by(|a, b| a.rx_pps.total_cmp(&b.rx_pps))
    }

    /// Why it stopped, in words.
    pub fn reason(&self) -> String {
        let limit = fmt_num(self.plan.max_loss_pct);
        let mut s = match self.stop {
            Stop::Unpaced => format!(
                "the unpaced sender lost less than {limit} %: the path keeps up with the sender"
            ),
            Stop::Cap => "every paced rate passed, up to what the unpaced sender offered".into(),
            Stop::Converged => format!(
                "converged: the lowest failing rate is within {} % of the highest passing one",
                fmt_num(self.plan.precision * 100.0)
            ),
            Stop::NonePassed => match self.trials.get(1) {
                Some((t, _)) => format!(
                    "no paced rate passed: {} % loss already at the lowest rate, {} pps \
                     (the limit is {limit} %)",
                    fmt_num(t.loss_pct),
                    t.rate.unwrap_or(0)
                ),
                None => "no rate passed: the unpaced sender sent nothing".into(),
            },
            Stop::TrialLimit => format!(
                "stopped at the limit of {} trials, before converging",
                self.plan.max_trials
            ),
            Stop::TimeLimit => format!(
                "stopped at the time budget of {} s, before converging",
                fmt_num(self.plan.budget.as_secs_f64())
            ),
        };
        if self.best().map(|b| verdict(&self.plan, b)) == Some(Verdict::Short) {
            s.push_str("; the best trial's sender fell short of its rate (sender-limited)");
        }
        s
    }

    /// Every trial and the outcome, for samples.json.
    pub fn note(&self) -> String {
        let n = self.trials.len();
        let mut s = format!(
            "{n} trial{} in {:.1} s:",
            if n == 1 { "" } else { "s" },
            self.secs
        );
        for (t, v) in &self.trials {
            let _ = write!(s, " {};", describe_trial(t, *v));
        }
        let _ = write!(s, " {}", self.reason());
        match self.best() {
            Some(b) => {
                let _ = write!(
                    s,
                    "; highest: {} pps received at {}",
                    fmt_num(b.rx_pps),
                    rate_label(b.rate)
                );
            }
            None => s.push_str("; no rate passed, reported as 0 pps"),
        }
        s
    }
}

/// `unpaced` or `N pps`.
fn rate_label(rate: Option<u64>) -> String {
    rate.map_or("unpaced".into(), |r| format!("{r} pps"))
}

/// One trial in a few words: rate, what arrived, loss, verdict.
pub fn describe_trial(t: &Trial, v: Verdict) -> String {
    let mark = match v {
        Verdict::Pass => "pass".to_string(),
        Verdict::Short => format!("pass, sender short at {} pps", fmt_num(t.tx_pps)),
        Verdict::Fail => "FAIL".to_string(),
    };
    let offered = if t.rate.is_none() {
        format!(" of {} offered", fmt_num(t.tx_pps))
    } else {
        String::new()
    };
    format!(
        "{}: {} pps received{offered}, loss {} % ({mark})",
        rate_label(t.rate),
        fmt_num(t.rx_pps),
        fmt_num(t.loss_pct)
    )
}

/// Runs trials for a search, within its limits.
struct Runner<'p, F> {
    plan: &'p Plan,
    trial: F,
    t0: Instant,
    longest: Duration,
    trials: Vec<(Trial, Verdict)>,
}

impl<E, F: FnMut(Option<u64>) -> Result<Trial, E>> Runner<'_, F> {
    /// One more trial; `Ok(Err(stop))` if a limit forbids it.
    fn run(&mut self, rate: Option<u64>) -> Result<Result<Verdict, Stop>, E> {
        if self.trials.len() >= self.plan.max_trials {
            return Ok(Err(Stop::TrialLimit));
        }
        if !self.trials.is_empty() && self.t0.elapsed() + self.longest > self.plan.budget {
            return Ok(Err(Stop::TimeLimit));
        }
        let started = Instant::now();
        let t = (self.trial)(rate)?;
        self.longest = self.longest.max(started.elapsed());
        let v = verdict(self.plan, &t);
        self.trials.push((t, v));
        Ok(Ok(v))
    }

    fn done(self, stop: Stop) -> Found {
        Found {
            plan: self.plan.clone(),
            trials: self.trials,
            stop,
            secs: self.t0.elapsed().as_secs_f64(),
        }
    }
}

/// Searches for the highest rate that passes; `trial(rate)` sends at `rate` datagrams/s
/// (None: as fast as it goes) and reports. A trial's error ends the search with that error.
pub fn search<E>(
    plan: &Plan,
    trial: impl FnMut(Option<u64>) -> Result<Trial, E>,
) -> Result<Found, E> {
    let mut r = Runner {
        plan,
        trial,
        t0: Instant::now(),
        longest: Duration::ZERO,
        trials: Vec::new(),
    };
    match r.run(None)? {
        Err(stop) => return Ok(r.done(stop)),
        Ok(Verdict::Pass) => return Ok(r.done(Stop::Unpaced)),
        Ok(_) => {}
    }
    let cap = r.trials[0].0.tx_pps.floor();
    if cap.is_nan() || cap < 1.0 {
        return Ok(r.done(Stop::NonePassed));
    }
    let cap = cap as u64;

    // The ramp: double from the start until a rate fails or the cap passes.
    let mut rate = plan.start.clamp(1, cap);
    let mut lo: Option<u64> = None;
    let hi = loop {
        match r.run(Some(rate))? {
            Err(stop) => return Ok(r.done(stop)),
            Ok(Verdict::Pass) if rate >= cap => return Ok(r.done(Stop::Cap)),
            Ok(Verdict::Pass) => {
                lo = Some(rate);
                rate = rate.saturating_mul(2).min(cap);
            }
            Ok(_) => break rate,
        }
    };
    let Some(lo) = lo else {
        return Ok(r.done(Stop::NonePassed));
    };
    let stop = bisect(&mut r, lo, hi)?;
    Ok(r.done(stop))
}

/// Halves the interval between a passing rate `lo` and a failing one `hi` until they are
/// within the plan's precision or a limit stops it.
fn bisect<E, F: FnMut(Option<u64>) -> Result<Trial, E>>(
    r: &mut Runner<'_, F>,
    mut lo: u64,
    mut hi: u64,
) -> Result<Stop, E> {
    loop {
        let close = (hi - lo) as f64 <= r.plan.precision * lo as f64;
        if close || hi - lo <= 1 {
            return Ok(Stop::Converged);
        }
        let mid = lo + (hi - lo) / 2;
        match r.run(Some(mid))? {
            Err(stop) => return Ok(stop),
            Ok(Verdict::Pass) => lo = mid,
            Ok(_) => hi = mid,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A synthetic path: the unpaced sender offers `sender` pps, a paced one reaches at most
    /// `paced_max`, and `loss(offered)` gives the loss in percent.
    fn path(
        sender: f64,
        paced_max: f64,
        loss: impl Fn(Option<u64>, f64) -> f64,
    ) -> impl FnMut(Option<u64>) -> Result<Trial, String> {
        move |rate| {
            let tx = rate.map_or(sender, |r| (r as f64).min(paced_max));
            let l = loss(rate, tx);
            Ok(Trial {
                rate,
                tx_pps: tx,
                rx_pps: tx * (1.0 - l / 100.0),
                loss_pct: l,
            })
        }
    }

    fn rates(f: &Found) -> Vec<Option<u64>> {
        f.trials.iter().map(|(t, _)| t.rate).collect()
    }

    #[test]
    fn a_loss_cliff_is_found_within_the_precision() {
        // Forwards everything up to 137k pps, half of it above.
        let plan = Plan::default();
        let f = search(
            &plan,
            path(1e6, 1e6, |_, tx| if tx <= 137_000.0 { 0.0 } else { 50.0 }),
        )
        .unwrap();
        assert_eq!(f.stop, Stop::Converged, "{}", f.note());
        let best = f.best().unwrap();
        let got = best.rate.unwrap();
        assert!((130_000..=137_000).contains(&got), "{}", f.note());
        assert_eq!(best.rx_pps, got as f64);
        assert!(f.trials.len() <= plan.max_trials);
        // Unpaced, then the ramp 25k 50k 100k 200k, then bisection.
        assert_eq!(
            rates(&f)[..6],
            [
                None,
                Some(25_000),
                Some(50_000),
                Some(100_000),
                Some(200_000),
                Some(150_000)
            ]
        );
        assert!(f
            .note()
            .contains("200000 pps: 100000 pps received, loss 50.0 % (FAIL)"));
    }

    #[test]
    fn a_switch_that_tops_out_is_found_at_its_capacity() {
        // Forwards at most 80k pps: loss grows once the offer passes that; < 1 % up to 80.8k.
        let f = search(
            &Plan::default(),
            path(3e5, 3e5, |_, tx| (100.0 * (1.0 - 80_000.0 / tx)).max(0.0)),
        )
        .unwrap();
        assert_eq!(f.stop, Stop::Converged);
        let best = f.best().unwrap();
        assert!((76_900.0..=80_808.0).contains(&best.rx_pps), "{}", f.note());
        assert!(best.loss_pct < 1.0);
    }

    #[test]
    fn when_even_the_lowest_rate_fails_nothing_is_reported() {
        let f = search(&Plan::default(), path(5e5, 5e5, |_, _| 10.0)).unwrap();
        assert_eq!(f.stop, Stop::NonePassed);
        assert_eq!(f.best(), None);
        assert_eq!(rates(&f), [None, Some(25_000)]);
        let note = f.note();
        assert!(
            note.contains(
                "no paced rate passed: 10.0 % loss already at the lowest rate, 25000 pps"
            ) && note.contains("reported as 0 pps"),
            "{note}"
        );
    }

    #[test]
    fn when_the_unpaced_sender_passes_that_is_the_answer() {
        let f = search(&Plan::default(), path(4e5, 4e5, |_, _| 0.2)).unwrap();
        assert_eq!(f.stop, Stop::Unpaced);
        assert_eq!(f.trials.len(), 1);
        assert_eq!(f.best().unwrap().tx_pps, 4e5);
        assert!(f.reason().contains("keeps up with the sender"));
        assert!(f.note().starts_with("1 trial in "), "{}", f.note());
    }

    #[test]
    fn when_every_paced_rate_passes_the_cap_is_the_answer() {
        // Bursts of the unpaced sender lose 5 %; paced, nothing is lost.
        let f = search(
            &Plan::default(),
            path(
                150_000.7,
                1e6,
                |rate, _| if rate.is_none() { 5.0 } else { 0.0 },
            ),
        )
        .unwrap();
        assert_eq!(f.stop, Stop::Cap);
        assert_eq!(
            rates(&f),
            [
                None,
                Some(25_000),
                Some(50_000),
                Some(100_000),
                Some(150_000)
            ]
        );
        assert_eq!(f.best().unwrap().rx_pps, 150_000.0);
        // A start above the cap starts at the cap.
        let plan = Plan {
            start: 1_000_000,
            ..Plan::default()
        };
        let f = search(
            &plan,
            path(1e5, 1e6, |rate, _| if rate.is_none() { 5.0 } else { 0.0 }),
        )
        .unwrap();
        assert_eq!((f.stop, rates(&f)), (Stop::Cap, vec![None, Some(100_000)]));
    }

    #[test]
    fn a_sender_that_falls_short_bounds_the_search() {
        // The unpaced sender offers 300k (losing 20 %); paced, it reaches only 150k, all of
        // which arrives.
        let f = search(
            &Plan::default(),
            path(
                3e5,
                1.5e5,
                |rate, _| if rate.is_none() { 20.0 } else { 0.0 },
            ),
        )
        .unwrap();
        assert_eq!(f.stop, Stop::Converged, "{}", f.note());
        assert_eq!(f.best().unwrap().rx_pps, 150_000.0);
        assert!(f.trials.iter().any(|(_, v)| *v == Verdict::Short));
        assert!(
            f.note().contains("sender short at 150000 pps"),
            "{}",
            f.note()
        );
    }

    #[test]
    fn limits_bound_the_search() {
        let cliff = |_: Option<u64>, tx: f64| if tx <= 137_000.0 { 0.0 } else { 50.0 };
        let plan = Plan {
            max_trials: 3,
            ..Plan::default()
        };
        let f = search(&plan, path(1e6, 1e6, cliff)).unwrap();
        assert_eq!(f.stop, Stop::TrialLimit);
        assert_eq!(rates(&f), [None, Some(25_000), Some(50_000)]);
        assert_eq!(f.best().unwrap().rate, Some(50_000));
        assert!(f.reason().contains("limit of 3 trials"));

        // Trials of 30 ms and a 100 ms budget: a fourth would end after it.
        let plan = Plan {
            budget: Duration::from_millis(100),
            ..Plan::default()
        };
        let mut slow = path(1e6, 1e6, cliff);
        let f = search(&plan, |rate| {
            std::thread::sleep(Duration::from_millis(30));
            slow(rate)
        })
        .unwrap();
        assert_eq!(f.stop, Stop::TimeLimit);
        assert!((1..=3).contains(&f.trials.len()), "{}", f.note());
        assert!(f.reason().contains("time budget of 0.100 s"));

        let plan = Plan {
            max_trials: 0,
            ..Plan::default()
        };
        let f = search(&plan, path(1e6, 1e6, cliff)).unwrap();
        assert_eq!((f.stop, f.best()), (Stop::TrialLimit, None));
    }

    #[test]
    fn a_failing_trial_ends_the_search_with_its_error() {
        let mut n = 0;
        let e = search(&Plan::default(), |rate| {
            n += 1;
            if n == 3 {
                return Err(format!("trial at {rate:?} failed"));
            }
            Ok(Trial {
                rate,
                tx_pps: 1e5,
                rx_pps: 5e4,
                loss_pct: if rate.is_none() { 50.0 } else { 0.0 },
            })
        })
        .unwrap_err();
        assert_eq!(e, "trial at Some(50000) failed");
    }

    #[test]
    fn the_unpaced_sender_sending_nothing_passes_nothing() {
        let f = search(&Plan::default(), path(0.0, 0.0, |_, _| 100.0)).unwrap();
        assert_eq!((f.stop, f.trials.len()), (Stop::NonePassed, 1));
        assert!(f.reason().contains("sent nothing"));
    }

    #[test]
    fn verdicts_follow_the_plan() {
        let plan = Plan::default();
        let t = |rate: Option<u64>, tx: f64, loss: f64| Trial {
            rate,
            tx_pps: tx,
            rx_pps: tx,
            loss_pct: loss,
        };
        assert_eq!(verdict(&plan, &t(Some(1000), 1000.0, 0.99)), Verdict::Pass);
        assert_eq!(verdict(&plan, &t(Some(1000), 1000.0, 1.0)), Verdict::Fail);
        assert_eq!(verdict(&plan, &t(Some(1000), 899.0, 0.0)), Verdict::Short);
        assert_eq!(verdict(&plan, &t(Some(1000), 899.0, 5.0)), Verdict::Fail);
        assert_eq!(verdict(&plan, &t(None, 10.0, 0.0)), Verdict::Pass);
        assert_eq!(verdict(&plan, &t(None, 10.0, f64::NAN)), Verdict::Fail);
    }
}
