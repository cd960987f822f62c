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

use std::collections::{BTreeSet, HashMap};

use super::pystr;

const B_INCR: f64 = 0.293;
const B_DECR: f64 = -0.293;
const C_INCR: f64 = 0.733;
const N_SCALAR: f64 = -0.74;

const LEXICON: &str = include_str!("data/vader_lexicon.txt");
const EMOJI_LEXICON: &str = include_str!("data/emoji_utf8_lexicon.txt");

/// `NEGATE`.
fn in_negate(word: &str) -> bool {
    matches!(
        word,
        "aint"
            | "arent"
            | "cannot"
            | "cant"
            | "couldnt"
            | "darent"
            | "didnt"
            | "doesnt"
            | "ain't"
            | "aren't"
            | "can't"
            | "couldn't"
            | "daren't"
            | "didn't"
            | "doesn't"
            | "dont"
            | "hadnt"
            | "hasnt"
            | "havent"
            | "isnt"
            | "mightnt"
            | "mustnt"
            | "neither"
            | "don't"
            | "hadn't"
            | "hasn't"
            | "haven't"
            | "isn't"
            | "mightn't"
            | "mustn't"
            | "neednt"
            | "needn't"
            | "never"
            | "none"
            | "nope"
            | "nor"
            | "not"
            | "nothing"
            | "nowhere"
            | "oughtnt"
            | "shant"
            | "shouldnt"
            | "uhuh"
            | "wasnt"
            | "werent"
            | "oughtn't"
            | "shan't"
            | "shouldn't"
            | "uh-uh"
            | "wasn't"
            | "weren't"
            | "without"
            | "wont"
            | "wouldnt"
            | "won't"
            | "wouldn't"
            | "rarely"
            | "seldom"
            | "despite"
    )
}

/// `BOOSTER_DICT[word]`.
fn booster(word: &str) -> Option<f64> {
    match word {
        "absolutely" | "amazingly" | "awfully" | "completely" | "considerable" | "considerably"
        | "decidedly" | "deeply" | "effing" | "enormous" | "enormously" | "entirely"
        | "especially" | "exceptional" | "exceptionally" | "extreme" | "extremely"
        | "fabulously" | "flipping" | "flippin" | "frackin" | "fracking" | "fricking"
        | "frickin" | "frigging" | "friggin" | "fully" | "fuckin" | "fucking" | "fuggin"
        | "fugging" | "greatly" | "hella" | "highly" | "hugely" | "incredible" | "incredibly"
        | "intensely" | "major" | "majorly" | "more" | "most" | "particularly" | "purely"
        | "quite" | "really" | "remarkably" | "so" | "substantially" | "thoroughly" | "total"
        | "totally" | "tremendous" | "tremendously" | "uber" | "unbelievably" | "unusually"
        | "utter" | "utterly" | "very" => Some(B_INCR),
        "almost" | "barely" | "hardly" | "just enough" | "kind of" | "kinda" | "kindof"
        | "kind-of" | "less" | "little" | "marginal" | "marginally" | "occasional"
        | "occasionally" | "partly" | "scarce" | "scarcely" | "slight" | "slightly"
        | "somewhat" | "sort of" | "sorta" | "sortof" | "sort-of" => Some(B_DECR),
        _ => None,
    }
}

/// `SPECIAL_CASES[seq]`.
fn special_case(seq: &str) -> Option<f64> {
    match seq {
        "the shit" | "the bomb" | "to die for" => Some(3.0),
        "bad ass" | "badass" => Some(1.5),
        "bus stop" => Some(0.0),
        "yeah right" => Some(-2.0),
        "kiss of death" => Some(-1.5),
        "beating heart" => Some(3.5),
        _ => None,
    }
}

/// One entry of `SentiText.words_and_emoticons` with the two derived forms
/// the rules read: `.lower()` and `.isupper()`.
struct Token {
    lower: String,
    upper: bool,
}

/// `negated([word])` for one already lower-cased word.
fn negated(word_lower: &str) -> bool {
    in_negate(word_lower) || word_lower.contains("n't")
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
    if let Some(b) = booster(&word.lower) {
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
    let l = |k: usize| w[k].lower.as_str();
    if start_i == 0 && negated(l(i - 1)) {
        valence *= N_SCALAR;
    }
    if start_i == 1 {
        if l(i - 2) == "never" && (l(i - 1) == "so" || l(i - 1) == "this") {
            valence *= 1.25;
        } else if l(i - 2) == "without" && l(i - 1) == "doubt" {
        } else if negated(l(i - 2)) {
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
        } else if negated(l(i - 3)) {
            valence *= N_SCALAR;
        }
    }
    valence
}

/// `SentimentIntensityAnalyzer._special_idioms_check` (only called with i > 2).
fn special_idioms_check(mut valence: f64, w: &[Token], i: usize) -> f64 {
    let l = |k: usize| w[k].lower.as_str();
    let onezero = format!("{} {}", l(i - 1), l(i));
    let twoonezero = format!("{} {} {}", l(i - 2), l(i - 1), l(i));
    let twoone = format!("{} {}", l(i - 2), l(i - 1));
    let threetwoone = format!("{} {} {}", l(i - 3), l(i - 2), l(i - 1));
    let threetwo = format!("{} {}", l(i - 3), l(i - 2));

    for seq in [&onezero, &twoonezero, &twoone, &threetwoone, &threetwo] {
        if let Some(v) = special_case(seq) {
            valence = v;
            break;
        }
    }
    if w.len() - 1 > i {
        let zeroone = format!("{} {}", l(i), l(i + 1));
        if let Some(v) = special_case(&zeroone) {
            valence = v;
        }
    }
    if w.len() - 1 > i + 1 {
        let zeroonetwo = format!("{} {} {}", l(i), l(i + 1), l(i + 2));
        if let Some(v) = special_case(&zeroonetwo) {
            valence = v;
        }
    }
    for n_gram in [&threetwoone, &threetwo, &twoone] {
        if let Some(b) = booster(n_gram) {
            valence += b;
        }
    }
    valence
}

/// `SentimentIntensityAnalyzer._but_check`, including its quirk: each value
/// is written back at the *first* index holding an equal value
/// (`sentiments.index(sentiment)`), not at its own position. Equivalent to
/// the reference's quadratic scan (checked by a property test), in
/// O(n log n): a set of positions per value finds that first index.
fn but_check(w: &[Token], sentiments: &mut [f64]) {
    let Some(bi) = w.iter().position(|t| t.lower == "but") else {
        return;
    };
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

/// `SentimentIntensityAnalyzer` with its two dictionaries.
pub(super) struct Analyzer {
    lexicon: HashMap<String, f64>,
    emojis: HashMap<char, String>,
}

impl Analyzer {
    /// `__init__`: `make_lex_dict` and `make_emoji_dict` over the vendored
    /// 3.3.2 files (later duplicates win, as in a dict).
    pub(super) fn new() -> Self {
        let mut lexicon = HashMap::with_capacity(7600);
        for line in LEXICON.trim_end_matches('\n').split('\n') {
            if line.is_empty() {
                continue;
            }
            let mut fields = pystr::strip(line).split('\t');
            let (Some(word), Some(measure)) = (fields.next(), fields.next()) else {
                continue;
            };
            if let Ok(v) = pystr::strip(measure).parse::<f64>() {
                lexicon.insert(word.to_string(), v);
            }
        }
        let mut emojis = HashMap::with_capacity(3600);
        for line in EMOJI_LEXICON.trim_end_matches('\n').split('\n') {
            let mut fields = pystr::strip(line).split('\t');
            let (Some(emoji), Some(description)) = (fields.next(), fields.next()) else {
                continue;
            };
            // The reference walks the text one code point at a time, so only
            // single-code-point keys can ever match.
            let mut chars = emoji.chars();
            if let (Some(c), None) = (chars.next(), chars.next()) {
                emojis.insert(c, description.to_string());
            }
        }
        Self { lexicon, emojis }
    }

    #[cfg(test)]
    pub(super) fn sizes(&self) -> (usize, usize) {
        (self.lexicon.len(), self.emojis.len())
    }

    fn in_lexicon(&self, word_lower: &str) -> bool {
        self.lexicon.contains_key(word_lower)
    }

    /// `polarity_scores`, before the final `round` calls.
    pub(super) fn polarity_scores(&self, text: &str) -> RawScores {
        // Emoji to description.
        let mut text_no_emoji = String::with_capacity(text.len());
        let mut prev_space = true;
        for chr in text.chars() {
            if let Some(description) = self.emojis.get(&chr) {
                if !prev_space {
                    text_no_emoji.push(' ');
                }
                text_no_emoji.push_str(description);
                prev_space = false;
            } else {
                text_no_emoji.push(chr);
                prev_space = chr == ' ';
            }
        }
        let text = pystr::strip(&text_no_emoji);

        // SentiText.
        let words: Vec<Token> = text
            .split(pystr::is_space)
            .filter(|w| !w.is_empty())
            .map(|w| {
                let w = strip_punc_if_word(w);
                Token {
                    lower: pystr::lower(w),
                    upper: pystr::isupper(w),
                }
            })
            .collect();
        let allcap_words = words.iter().filter(|t| t.upper).count();
        let is_cap_diff =
            0 < words.len() - allcap_words && words.len() - allcap_words < words.len();

        let mut sentiments = Vec::with_capacity(words.len());
        for (i, item) in words.iter().enumerate() {
            if booster(&item.lower).is_some() {
                sentiments.push(0.0);
                continue;
            }
            if i + 1 < words.len() && item.lower == "kind" && words[i + 1].lower == "of" {
                sentiments.push(0.0);
                continue;
            }
            sentiments.push(self.sentiment_valence(&words, i, is_cap_diff));
        }
        but_check(&words, &mut sentiments);
        score_valence(&sentiments, text)
    }

    /// `sentiment_valence` (returns the value it appends).
    fn sentiment_valence(&self, w: &[Token], i: usize, is_cap_diff: bool) -> f64 {
        let item = &w[i];
        let item_lowercase = item.lower.as_str();
        let Some(&lex) = self.lexicon.get(item_lowercase) else {
            return 0.0;
        };
        let l = |k: usize| w[k].lower.as_str();
        let mut valence = lex;
        if item_lowercase == "no" && i != w.len() - 1 && self.in_lexicon(l(i + 1)) {
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
            if i > start_i && !self.in_lexicon(l(i - (start_i + 1))) {
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
        self.least_check(valence, w, i)
    }

    /// `_least_check`.
    fn least_check(&self, mut valence: f64, w: &[Token], i: usize) -> f64 {
        let l = |k: usize| w[k].lower.as_str();
        if i > 1 && !self.in_lexicon(l(i - 1)) && l(i - 1) == "least" {
            if l(i - 2) != "at" && l(i - 2) != "very" {
                valence *= N_SCALAR;
            }
        } else if i > 0 && !self.in_lexicon(l(i - 1)) && l(i - 1) == "least" {
            valence *= N_SCALAR;
        }
        valence
    }
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

    fn toks(words: &[&str]) -> Vec<Token> {
        words
            .iter()
            .map(|w| Token {
                lower: w.to_string(),
                upper: false,
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
                1..40,
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
