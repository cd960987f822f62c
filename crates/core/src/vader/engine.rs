//! VADER 3.3.2 (`vaderSentiment/vaderSentiment.py`, C.J. Hutto, MIT licence)
//! ported statement by statement, so that every float operation happens in
//! the same order as in the reference and the results are bit-identical to
//! CPython 3.11 running it.
//!
//! Two things the reference delegates to its interpreter are pinned here to
//! CPython 3.11 on purpose, because later Pythons answer differently:
//!
//! * `sum(sentiments)` is a plain left-to-right addition in 3.11 (3.12 made
//!   float `sum` compensated). The two disagree when the sentiments cancel:
//!   3.11 may leave a residue such as 4e-16 where 3.12 gives exactly 0, and a
//!   non-zero sum takes the `!`/`?` emphasis, so the compound can move from
//!   0.0 to 0.09 or more.
//! * `str.isupper()`, `str.lower()` and `str.split()` answer from Unicode
//!   14.0.0 (see `pystr.rs`).
//!
//! Python ints in the sentiment list (`valence = 0`, the integer special-case
//! values) are carried as `f64`: every place they flow into (`==`, `>`, `*`,
//! the int fast path of `sum`, `float()`) gives the same result for a small
//! integer and its float.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};

use foldhash::fast::FixedState;

use super::pystr;

/// Hash maps keyed by short words: a fast, fixed-seed hasher (the keys are
/// the package's own lexicon, not attacker-chosen table sizes).
type WordMap<K, V> = HashMap<K, V, FixedState>;

use super::words::{
    booster_ngram, special_case, BOOSTER_DECR, BOOSTER_INCR, B_DECR, B_INCR, C_INCR, EMOJI_LEXICON,
    LEXICON, NEGATE, N_SCALAR,
};

/// What the rules need to know about one lower-cased word, found with a
/// single hash look-up: its lexicon valence, its booster value and whether
/// it is in `NEGATE`.
#[derive(Debug, Clone, Copy, Default)]
struct WordInfo {
    lex: Option<f64>,
    boost: Option<f64>,
    negate: bool,
}

/// One entry of `SentiText.words_and_emoticons` with what the rules read:
/// `.lower()`, `.isupper()`, and the word's dictionary entries.
#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    lower: &'a str,
    upper: bool,
    info: WordInfo,
}

impl Token<'_> {
    fn in_lexicon(&self) -> bool {
        self.info.lex.is_some()
    }

    /// `negated([word])`.
    fn negated(&self) -> bool {
        self.info.negate || self.lower.contains("n't")
    }
}

/// `normalize(score, alpha=15)`.
#[allow(clippy::manual_clamp)] // the reference's own comparisons, kept literal
fn normalize(score: f64) -> f64 {
    let norm_score = score / (score * score + 15.0).sqrt();
    if norm_score < -1.0 {
        -1.0
    } else if norm_score > 1.0 {
        1.0
    } else {
        norm_score
    }
}

/// `SentiText._strip_punc_if_word`.
fn strip_punc_if_word(token: &str) -> &str {
    let stripped = token.trim_matches(|c: char| c.is_ascii_punctuation());
    if stripped.chars().count() <= 2 {
        token
    } else {
        stripped
    }
}

/// `scalar_inc_dec`.
fn scalar_inc_dec(word: &Token, valence: f64, is_cap_diff: bool) -> f64 {
    let mut scalar = 0.0;
    if let Some(b) = word.info.boost {
        scalar = b;
        if valence < 0.0 {
            scalar *= -1.0;
        }
        if word.upper && is_cap_diff {
            if valence > 0.0 {
                scalar += C_INCR;
            } else {
                scalar -= C_INCR;
            }
        }
    }
    scalar
}

/// `SentimentIntensityAnalyzer._negation_check`.
fn negation_check(mut valence: f64, w: &[Token], start_i: usize, i: usize) -> f64 {
    let l = |k: usize| w[k].lower;
    if start_i == 0 && w[i - 1].negated() {
        valence *= N_SCALAR;
    }
    if start_i == 1 {
        if l(i - 2) == "never" && (l(i - 1) == "so" || l(i - 1) == "this") {
            valence *= 1.25;
        } else if l(i - 2) == "without" && l(i - 1) == "doubt" {
        } else if w[i - 2].negated() {
            valence *= N_SCALAR;
        }
    }
    if start_i == 2 {
        // Python precedence: (A and (B or C)) or (D or E).
        if (l(i - 3) == "never" && (l(i - 2) == "so" || l(i - 2) == "this"))
            || (l(i - 1) == "so" || l(i - 1) == "this")
        {
            valence *= 1.25;
        } else if l(i - 3) == "without" && (l(i - 2) == "doubt" || l(i - 1) == "doubt") {
        } else if w[i - 3].negated() {
            valence *= N_SCALAR;
        }
    }
    valence
}

/// `SentimentIntensityAnalyzer._special_idioms_check` (only called with i > 2).
/// The reference joins n-grams into strings and looks them up; here the
/// words are compared directly (see [`special_case`]), in the same order.
fn special_idioms_check(mut valence: f64, w: &[Token], i: usize) -> f64 {
    let l = |k: usize| w[k].lower;
    let onezero = [l(i - 1), l(i)];
    let twoonezero = [l(i - 2), l(i - 1), l(i)];
    let twoone = [l(i - 2), l(i - 1)];
    let threetwoone = [l(i - 3), l(i - 2), l(i - 1)];
    let threetwo = [l(i - 3), l(i - 2)];

    for seq in [
        &onezero[..],
        &twoonezero[..],
        &twoone[..],
        &threetwoone[..],
        &threetwo[..],
    ] {
        if let Some(v) = special_case(seq) {
            valence = v;
            break;
        }
    }
    if w.len() - 1 > i {
        if let Some(v) = special_case(&[l(i), l(i + 1)]) {
            valence = v;
        }
    }
    if w.len() - 1 > i + 1 {
        if let Some(v) = special_case(&[l(i), l(i + 1), l(i + 2)]) {
            valence = v;
        }
    }
    for n_gram in [&threetwoone[..], &threetwo[..], &twoone[..]] {
        if let Some(b) = booster_ngram(n_gram) {
            valence += b;
        }
    }
    valence
}

/// Texts up to this many words take the quadratic scan in [`but_check`].
const SMALL_BUT_CHECK: usize = 96;

/// `SentimentIntensityAnalyzer._but_check`, including its quirk: each value
/// is written back at the *first* index holding an equal value
/// (`sentiments.index(sentiment)`), not at its own position. Equivalent to
/// the reference's quadratic scan (checked by a property test): short texts
/// run that scan; long ones take O(n log n), a set of positions per value
/// finding that first index, so a huge text cannot cost n² comparisons.
fn but_check(w: &[Token], sentiments: &mut [f64]) {
    let Some(bi) = w.iter().position(|t| t.lower == "but") else {
        return;
    };
    if sentiments.len() <= SMALL_BUT_CHECK {
        // Short texts (nearly all): the reference's own scan, allocation-free.
        for k in 0..sentiments.len() {
            let sentiment = sentiments[k];
            let si = sentiments.iter().position(|&x| x == sentiment).unwrap_or(k);
            if si < bi {
                sentiments[si] = sentiment * 0.5;
            } else if si > bi {
                sentiments[si] = sentiment * 1.5;
            }
        }
        return;
    }
    // Python `==` on floats: 0.0 == -0.0, so both zeros share one key.
    // (Valences are always finite, never NaN.)
    fn key(v: f64) -> u64 {
        if v == 0.0 {
            0
        } else {
            v.to_bits()
        }
    }
    let mut positions: HashMap<u64, BTreeSet<usize>> = HashMap::new();
    for (k, &v) in sentiments.iter().enumerate() {
        positions.entry(key(v)).or_default().insert(k);
    }
    for k in 0..sentiments.len() {
        let sentiment = sentiments[k];
        let si = positions
            .get(&key(sentiment))
            .and_then(|s| s.first().copied())
            .unwrap_or(k);
        let new = if si < bi {
            sentiment * 0.5
        } else if si > bi {
            sentiment * 1.5
        } else {
            continue;
        };
        let old = sentiments[si];
        if let Some(set) = positions.get_mut(&key(old)) {
            set.remove(&si);
        }
        sentiments[si] = new;
        positions.entry(key(new)).or_default().insert(si);
    }
}

/// `_amplify_ep(text) + _amplify_qm(text)`.
fn punctuation_emphasis(text: &str) -> f64 {
    let ep_count = text.matches('!').count().min(4);
    let ep_amplifier = ep_count as f64 * 0.292;
    let qm_count = text.matches('?').count();
    let mut qm_amplifier = 0.0;
    if qm_count > 1 {
        if qm_count <= 3 {
            qm_amplifier = qm_count as f64 * 0.18;
        } else {
            qm_amplifier = 0.96;
        }
    }
    ep_amplifier + qm_amplifier
}

/// The reference's four outputs before rounding.
pub(super) struct RawScores {
    pub(super) neg: f64,
    pub(super) neu: f64,
    pub(super) pos: f64,
    pub(super) compound: f64,
}

/// `SentimentIntensityAnalyzer` with its dictionaries.
pub(super) struct Analyzer {
    /// Every word the rules look up (lexicon, boosters, `NEGATE`), one entry each.
    words: WordMap<Box<str>, WordInfo>,
    /// Single-code-point emoji keys and their descriptions.
    emojis: WordMap<char, Box<str>>,
    /// True when no emoji key is ASCII, so ASCII text needs no emoji pass.
    ascii_has_no_emoji: bool,
}

impl Analyzer {
    /// `__init__`: `make_lex_dict` and `make_emoji_dict` over the vendored
    /// 3.3.2 files (later duplicates win, as in a dict).
    pub(super) fn new() -> Self {
        let mut words: WordMap<Box<str>, WordInfo> =
            WordMap::with_capacity_and_hasher(7700, FixedState::default());
        for line in LEXICON.trim_end_matches('\n').split('\n') {
            if line.is_empty() {
                continue;
            }
            let mut fields = pystr::strip(line).split('\t');
            let (Some(word), Some(measure)) = (fields.next(), fields.next()) else {
                continue;
            };
            if let Ok(v) = pystr::strip(measure).parse::<f64>() {
                words.entry(word.into()).or_default().lex = Some(v);
            }
        }
        for (list, value) in [(BOOSTER_INCR, B_INCR), (BOOSTER_DECR, B_DECR)] {
            for &w in list {
                words.entry(w.into()).or_default().boost = Some(value);
            }
        }
        for &w in NEGATE {
            words.entry(w.into()).or_default().negate = true;
        }
        let mut emojis = WordMap::with_capacity_and_hasher(1300, FixedState::default());
        for line in EMOJI_LEXICON.trim_end_matches('\n').split('\n') {
            let mut fields = pystr::strip(line).split('\t');
            let (Some(emoji), Some(description)) = (fields.next(), fields.next()) else {
                continue;
            };
            // The reference walks the text one code point at a time, so only
            // single-code-point keys can ever match.
            let mut chars = emoji.chars();
            if let (Some(c), None) = (chars.next(), chars.next()) {
                emojis.insert(c, description.into());
            }
        }
        let ascii_has_no_emoji = emojis.keys().all(|c: &char| !c.is_ascii());
        Self {
            words,
            emojis,
            ascii_has_no_emoji,
        }
    }

    #[cfg(test)]
    pub(super) fn sizes(&self) -> (usize, usize) {
        let lexicon = self.words.values().filter(|i| i.lex.is_some()).count();
        (lexicon, self.emojis.len())
    }

    fn info(&self, word_lower: &str) -> WordInfo {
        self.words.get(word_lower).copied().unwrap_or_default()
    }

    /// The reference's emoji pass: each single-code-point emoji replaced by
    /// its description, with a space before it unless one is there already.
    /// Borrows the text when it holds no emoji (nearly always).
    fn replace_emojis<'t>(&self, text: &'t str) -> Cow<'t, str> {
        if self.ascii_has_no_emoji && text.is_ascii() {
            return Cow::Borrowed(text);
        }
        let Some(first) = text
            .char_indices()
            .find(|&(_, c)| !c.is_ascii() && self.emojis.contains_key(&c))
            .map(|(i, _)| i)
        else {
            return Cow::Borrowed(text);
        };
        let mut out = String::with_capacity(text.len() + 32);
        out.push_str(&text[..first]);
        let mut prev_space = text[..first].chars().next_back().is_none_or(|c| c == ' ');
        for chr in text[first..].chars() {
            if let Some(description) = self.emojis.get(&chr) {
                if !prev_space {
                    out.push(' ');
                }
                out.push_str(description);
                prev_space = false;
            } else {
                out.push(chr);
                prev_space = chr == ' ';
            }
        }
        Cow::Owned(out)
    }

    /// `polarity_scores`, before the final `round` calls.
    pub(super) fn polarity_scores(&self, text: &str) -> RawScores {
        let text_no_emoji = self.replace_emojis(text);
        let text = pystr::strip(&text_no_emoji);

        // SentiText: lower-case every word into one buffer, then resolve each
        // word's dictionary entries with one look-up.
        let mut lowered = String::with_capacity(text.len());
        let mut spans = Vec::with_capacity(text.len() / 4 + 1);
        for w in text.split(pystr::is_space).filter(|w| !w.is_empty()) {
            let w = strip_punc_if_word(w);
            let start = lowered.len();
            pystr::lower_into(w, &mut lowered);
            spans.push((start, lowered.len(), pystr::isupper(w)));
        }
        let words: Vec<Token> = spans
            .iter()
            .map(|&(a, b, upper)| {
                let lower = &lowered[a..b];
                Token {
                    lower,
                    upper,
                    info: self.info(lower),
                }
            })
            .collect();
        let allcap_words = words.iter().filter(|t| t.upper).count();
        let is_cap_diff =
            0 < words.len() - allcap_words && words.len() - allcap_words < words.len();

        let mut sentiments = Vec::with_capacity(words.len());
        for (i, item) in words.iter().enumerate() {
            if item.info.boost.is_some() {
                sentiments.push(0.0);
                continue;
            }
            if i + 1 < words.len() && item.lower == "kind" && words[i + 1].lower == "of" {
                sentiments.push(0.0);
                continue;
            }
            sentiments.push(sentiment_valence(&words, i, is_cap_diff));
        }
        but_check(&words, &mut sentiments);
        score_valence(&sentiments, text)
    }
}

/// `sentiment_valence` (returns the value it appends).
fn sentiment_valence(w: &[Token], i: usize, is_cap_diff: bool) -> f64 {
    let item = &w[i];
    let Some(lex) = item.info.lex else {
        return 0.0;
    };
    let l = |k: usize| w[k].lower;
    let mut valence = lex;
    if item.lower == "no" && i != w.len() - 1 && w[i + 1].in_lexicon() {
        valence = 0.0;
    }
    if (i > 0 && l(i - 1) == "no")
        || (i > 1 && l(i - 2) == "no")
        || (i > 2 && l(i - 3) == "no" && (l(i - 1) == "or" || l(i - 1) == "nor"))
    {
        valence = lex * N_SCALAR;
    }
    if item.upper && is_cap_diff {
        if valence > 0.0 {
            valence += C_INCR;
        } else {
            valence -= C_INCR;
        }
    }
    for start_i in 0..3 {
        if i > start_i && !w[i - (start_i + 1)].in_lexicon() {
            let mut s = scalar_inc_dec(&w[i - (start_i + 1)], valence, is_cap_diff);
            if start_i == 1 && s != 0.0 {
                s *= 0.95;
            }
            if start_i == 2 && s != 0.0 {
                s *= 0.9;
            }
            valence += s;
            valence = negation_check(valence, w, start_i, i);
            if start_i == 2 {
                valence = special_idioms_check(valence, w, i);
            }
        }
    }
    least_check(valence, w, i)
}

/// `_least_check`.
fn least_check(mut valence: f64, w: &[Token], i: usize) -> f64 {
    let l = |k: usize| w[k].lower;
    if i > 1 && !w[i - 1].in_lexicon() && l(i - 1) == "least" {
        if l(i - 2) != "at" && l(i - 2) != "very" {
            valence *= N_SCALAR;
        }
    } else if i > 0 && !w[i - 1].in_lexicon() && l(i - 1) == "least" {
        valence *= N_SCALAR;
    }
    valence
}

/// `score_valence` with CPython 3.11's `sum` (a plain left fold from 0).
fn score_valence(sentiments: &[f64], text: &str) -> RawScores {
    if sentiments.is_empty() {
        return RawScores {
            neg: 0.0,
            neu: 0.0,
            pos: 0.0,
            compound: 0.0,
        };
    }
    let mut sum_s = sentiments.iter().fold(0.0_f64, |acc, &s| acc + s);
    let punct_emph_amplifier = punctuation_emphasis(text);
    if sum_s > 0.0 {
        sum_s += punct_emph_amplifier;
    } else if sum_s < 0.0 {
        sum_s -= punct_emph_amplifier;
    }
    let compound = normalize(sum_s);

    // _sift_sentiment_scores
    let mut pos_sum = 0.0_f64;
    let mut neg_sum = 0.0_f64;
    let mut neu_count: u64 = 0;
    for &s in sentiments {
        if s > 0.0 {
            pos_sum += s + 1.0;
        }
        if s < 0.0 {
            neg_sum += s - 1.0;
        }
        if s == 0.0 {
            neu_count += 1;
        }
    }
    if pos_sum > neg_sum.abs() {
        pos_sum += punct_emph_amplifier;
    } else if pos_sum < neg_sum.abs() {
        neg_sum -= punct_emph_amplifier;
    }
    let total = pos_sum + neg_sum.abs() + neu_count as f64;
    RawScores {
        neg: (neg_sum / total).abs(),
        neu: (neu_count as f64 / total).abs(),
        pos: (pos_sum / total).abs(),
        compound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionaries_have_the_reference_sizes() {
        // len(SentimentIntensityAnalyzer().lexicon) == 7506; 1212 of the 3570
        // emoji keys are a single code point.
        assert_eq!(Analyzer::new().sizes(), (7506, 1212));
    }

    fn toks<'a>(words: &[&'a str]) -> Vec<Token<'a>> {
        words
            .iter()
            .map(|&w| Token {
                lower: w,
                upper: false,
                info: WordInfo::default(),
            })
            .collect()
    }

    /// The reference's `_but_check`, literally.
    fn but_check_reference(w: &[Token], sentiments: &mut Vec<f64>) {
        let Some(bi) = w.iter().position(|t| t.lower == "but") else {
            return;
        };
        for k in 0..sentiments.len() {
            let sentiment = sentiments[k];
            let si = sentiments.iter().position(|&x| x == sentiment).unwrap();
            if si < bi {
                sentiments.remove(si);
                sentiments.insert(si, sentiment * 0.5);
            } else if si > bi {
                sentiments.remove(si);
                sentiments.insert(si, sentiment * 1.5);
            }
        }
    }

    #[test]
    fn but_check_keeps_the_first_index_quirk() {
        // Python: _but_check(['good', 'x', 'but'], [1.9, 0.95, 0])
        // == [0.475, 0.95, 0]: after 1.9 is halved to 0.95, the second
        // value (0.95) is found at index 0 again and halves that one.
        let w = toks(&["good", "x", "but"]);
        let mut s = vec![1.9, 0.95, 0.0];
        but_check(&w, &mut s);
        assert_eq!(s, vec![0.475, 0.95, 0.0]);
        let mut r = vec![1.9, 0.95, 0.0];
        but_check_reference(&w, &mut r);
        assert_eq!(s, r);
        // Python: [0.95, 0.95, 0, 2.8499999999999996]
        let w = toks(&["good", "good", "but", "good"]);
        let mut s = vec![1.9, 1.9, 0.0, 1.9];
        but_check(&w, &mut s);
        assert_eq!(s, vec![0.95, 0.95, 0.0, 2.849_999_999_999_999_6]);
    }

    proptest::proptest! {
        #[test]
        fn but_check_equals_the_quadratic_reference(
            vals in proptest::collection::vec(
                proptest::sample::select(vec![0.0, -0.0, 1.9, -1.9, 0.95, 0.475, 2.85, -0.95, 3.0, 1.5, 4.5, 0.75]),
                1..200,
            ),
            bi_seed in 0usize..1000,
        ) {
            let bi = bi_seed % vals.len();
            let mut words: Vec<&str> = vec!["x"; vals.len()];
            words[bi] = "but";
            let w = toks(&words);
            let mut fast = vals.clone();
            but_check(&w, &mut fast);
            let mut slow = vals.clone();
            but_check_reference(&w, &mut slow);
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            proptest::prop_assert_eq!(bits(&fast), bits(&slow));
        }
    }

    #[test]
    fn cancelling_sentiments_keep_the_3_11_residue() {
        // CPython 3.11: sum([0.1, 0.2, -0.3]) == 5.551115123125783e-17
        // (3.12+ returns 0.0).
        let s = [0.1, 0.2, -0.3];
        assert_eq!(
            s.iter().fold(0.0_f64, |a, &b| a + b),
            5.551_115_123_125_783e-17
        );
    }
}
