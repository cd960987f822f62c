//! `etl gen`: deterministic, realistic synthetic posts as JSON lines.
//!
//! Texts are assembled from reviews, comments and posts with the features
//! VADER cares about (negation, "but", boosters, caps, `!!!`, emoji,
//! emoticons), spread over `days` days; some are later edited (newer
//! `updated_at`). The same seed always produces the same file.

use std::io::Write;

use chrono::{DateTime, Duration, SecondsFormat, TimeZone, Utc};

/// SplitMix64: tiny, fast, good enough for test data, and stable forever
/// (unlike a library RNG whose stream may change between versions).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }
    fn chance(&mut self, pct: u64) -> bool {
        self.next() % 100 < pct
    }
}

const SUBJECTS: &[&str] = &[
    "The delivery",
    "This product",
    "The customer service",
    "The new update",
    "The battery",
    "The app",
    "Our waiter",
    "The hotel room",
    "The movie",
    "This phone",
    "The checkout process",
    "The coffee",
    "The support team",
    "The price",
    "The screen",
    "The sequel",
    "The packaging",
    "The flight",
];
const POSITIVE: &[&str] = &[
    "is great",
    "was amazing",
    "works perfectly",
    "is really good",
    "made my day",
    "exceeded my expectations",
    "is excellent",
    "was friendly and helpful",
    "is worth every penny",
    "is beautiful",
    "was fun",
    "is reliable",
];
const NEGATIVE: &[&str] = &[
    "is terrible",
    "was awful",
    "broke after a week",
    "is really bad",
    "ruined my evening",
    "was a disappointment",
    "is useless",
    "was rude",
    "is overpriced",
    "crashes constantly",
    "was boring",
    "is frustrating",
];
const NEUTRAL: &[&str] = &[
    "arrived on Tuesday",
    "comes in blue",
    "is available in stores",
    "was updated yesterday",
    "has two buttons",
    "is made in Portugal",
    "was delivered by courier",
    "opens at nine",
    "is 15 cm long",
    "uses USB-C",
];
const BOOSTERS: &[&str] = &[
    "very",
    "extremely",
    "incredibly",
    "kind of",
    "somewhat",
    "absolutely",
    "barely",
];
const TAILS: &[&str] = &[
    "!", "!!!", ".", "...", " :)", " :(", " 😀", " 😡", " 👍", " 🙄", " ❤️", " lol", " smh", "?",
    "",
];
const CONTRASTS: &[&str] = &[
    "but the price is too high",
    "but support never answered",
    "but I love the design",
    "but it gets the job done",
    "but honestly it's fine",
    "but the battery life is great",
];
const KINDS: &[&str] = &["post", "review", "comment"];
const AUTHORS: &[&str] = &[
    "ana", "bo", "chen", "dara", "eli", "fatima", "gus", "hana", "ivan", "jo",
];
const FOREIGN: &[&str] = &[
    "¡Me encanta este producto!",
    "C'est vraiment nul.",
    "Das ist wirklich gut.",
    "Muito bom, recomendo!",
    "Это ужасно.",
    "とても良い製品です。",
    "非常好用",
    "Harika bir deneyim!",
];

fn sentence(rng: &mut Rng) -> String {
    let subject = rng.pick(SUBJECTS);
    let roll = rng.below(100);
    let mut s = if roll < 45 {
        let p = rng.pick(POSITIVE);
        if rng.chance(25) {
            let (verb, rest) = p.split_once(' ').unwrap_or((p, ""));
            format!("{subject} {verb} {} {rest}", rng.pick(BOOSTERS))
        } else {
            format!("{subject} {p}")
        }
    } else if roll < 80 {
        let n = rng.pick(NEGATIVE);
        if rng.chance(20) {
            let p = rng.pick(POSITIVE);
            let (verb, rest) = p.split_once(' ').unwrap_or((p, ""));
            format!("{subject} {verb} not {rest}")
        } else {
            format!("{subject} {n}")
        }
    } else if roll < 95 {
        format!("{subject} {}", rng.pick(NEUTRAL))
    } else {
        return rng.pick(FOREIGN).to_owned();
    };
    if rng.chance(15) {
        s = format!("{s}, {}", rng.pick(CONTRASTS));
    }
    if rng.chance(7) {
        s = s.to_uppercase();
    }
    s.push_str(rng.pick(TAILS));
    s
}

/// Write `count` posts over `days` days ending at `end`.
pub fn generate(
    out: &mut dyn Write,
    count: u64,
    days: u32,
    seed: u64,
    end: DateTime<Utc>,
) -> std::io::Result<()> {
    let mut rng = Rng(seed);
    let span = i64::from(days.max(1)) * 86_400;
    let start = end - Duration::seconds(span);
    for i in 0..count {
        let sentences = 1 + rng.below(3) + usize::from(rng.chance(2)) * 20;
        let text: Vec<String> = (0..sentences).map(|_| sentence(&mut rng)).collect();
        let created = start + Duration::seconds((rng.next() % span as u64) as i64);
        let kind = rng.pick(KINDS);
        let mut obj = serde_json::json!({
            "id": format!("{kind}-{seed:x}-{i:08}"),
            "text": text.join(" "),
            "created_at": created.to_rfc3339_opts(SecondsFormat::Secs, true),
            "kind": kind,
            "author": rng.pick(AUTHORS),
        });
        if rng.chance(10) {
            let edited = created + Duration::seconds(60 + (rng.next() % 86_400) as i64);
            obj["updated_at"] =
                serde_json::Value::String(edited.to_rfc3339_opts(SecondsFormat::Secs, true));
        }
        serde_json::to_writer(&mut *out, &obj)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// The default end of the generated period: fixed, so output is reproducible.
pub fn default_end() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0)
        .single()
        .expect("valid date")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gen(seed: u64) -> String {
        let mut buf = Vec::new();
        generate(&mut buf, 300, 10, seed, default_end()).unwrap();
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn same_seed_same_output_other_seed_other_output() {
        assert_eq!(gen(7), gen(7));
        assert_ne!(gen(7), gen(8));
    }

    #[test]
    fn every_line_is_a_valid_record_within_the_period() {
        let fm = etl_core::FieldMap::default();
        let start = default_end() - Duration::days(10);
        let mut ids = std::collections::HashSet::new();
        for line in gen(1).lines() {
            let r = fm.parse(&serde_json::from_str(line).unwrap()).unwrap();
            assert!(r.created_at >= start && r.created_at <= default_end());
            assert!(r.updated_at >= r.created_at);
            assert!(ids.insert(r.id));
        }
        assert_eq!(ids.len(), 300);
    }
}
