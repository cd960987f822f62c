//! VADER's word lists and constants (`vaderSentiment.py` 3.3.2): the
//! booster and negation lists, the scalars, the multi-word special cases and
//! the two lexicon files, kept apart from the rules in `engine.rs` that use
//! them, so the port reads rule by rule against the reference.

pub(super) const B_INCR: f64 = 0.293;
pub(super) const B_DECR: f64 = -0.293;
pub(super) const C_INCR: f64 = 0.733;
pub(super) const N_SCALAR: f64 = -0.74;

pub(super) const LEXICON: &str = include_str!("data/vader_lexicon.txt");
pub(super) const EMOJI_LEXICON: &str = include_str!("data/emoji_utf8_lexicon.txt");

/// `NEGATE`.
pub(super) const NEGATE: &[&str] = &[
    "aint",
    "arent",
    "cannot",
    "cant",
    "couldnt",
    "darent",
    "didnt",
    "doesnt",
    "ain't",
    "aren't",
    "can't",
    "couldn't",
    "daren't",
    "didn't",
    "doesn't",
    "dont",
    "hadnt",
    "hasnt",
    "havent",
    "isnt",
    "mightnt",
    "mustnt",
    "neither",
    "don't",
    "hadn't",
    "hasn't",
    "haven't",
    "isn't",
    "mightn't",
    "mustn't",
    "neednt",
    "needn't",
    "never",
    "none",
    "nope",
    "nor",
    "not",
    "nothing",
    "nowhere",
    "oughtnt",
    "shant",
    "shouldnt",
    "uhuh",
    "wasnt",
    "werent",
    "oughtn't",
    "shan't",
    "shouldn't",
    "uh-uh",
    "wasn't",
    "weren't",
    "without",
    "wont",
    "wouldnt",
    "won't",
    "wouldn't",
    "rarely",
    "seldom",
    "despite",
];

/// The single-word keys of `BOOSTER_DICT` worth `B_INCR`.
pub(super) const BOOSTER_INCR: &[&str] = &[
    "absolutely",
    "amazingly",
    "awfully",
    "completely",
    "considerable",
    "considerably",
    "decidedly",
    "deeply",
    "effing",
    "enormous",
    "enormously",
    "entirely",
    "especially",
    "exceptional",
    "exceptionally",
    "extreme",
    "extremely",
    "fabulously",
    "flipping",
    "flippin",
    "frackin",
    "fracking",
    "fricking",
    "frickin",
    "frigging",
    "friggin",
    "fully",
    "fuckin",
    "fucking",
    "fuggin",
    "fugging",
    "greatly",
    "hella",
    "highly",
    "hugely",
    "incredible",
    "incredibly",
    "intensely",
    "major",
    "majorly",
    "more",
    "most",
    "particularly",
    "purely",
    "quite",
    "really",
    "remarkably",
    "so",
    "substantially",
    "thoroughly",
    "total",
    "totally",
    "tremendous",
    "tremendously",
    "uber",
    "unbelievably",
    "unusually",
    "utter",
    "utterly",
    "very",
];

/// The single-word keys of `BOOSTER_DICT` worth `B_DECR` (the multi-word
/// keys are matched by [`booster_ngram`]).
pub(super) const BOOSTER_DECR: &[&str] = &[
    "almost",
    "barely",
    "hardly",
    "kinda",
    "kindof",
    "kind-of",
    "less",
    "little",
    "marginal",
    "marginally",
    "occasional",
    "occasionally",
    "partly",
    "scarce",
    "scarcely",
    "slight",
    "slightly",
    "somewhat",
    "sorta",
    "sortof",
    "sort-of",
];

/// `SPECIAL_CASES[" ".join(seq)]`, matched on the words themselves: a word
/// never contains a space (words come from `str.split()`), so a joined
/// n-gram equals a multi-word key exactly when its words equal the key's
/// words. (The one single-word key, `badass`, can never equal a join.)
pub(super) fn special_case(seq: &[&str]) -> Option<f64> {
    match seq {
        ["the", "shit"] | ["the", "bomb"] | ["to", "die", "for"] => Some(3.0),
        ["bad", "ass"] => Some(1.5),
        ["bus", "stop"] => Some(0.0),
        ["yeah", "right"] => Some(-2.0),
        ["kiss", "of", "death"] => Some(-1.5),
        ["beating", "heart"] => Some(3.5),
        _ => None,
    }
}

/// `BOOSTER_DICT[" ".join(seq)]` for n-grams of two or more words (the
/// multi-word booster keys), by the same argument as [`special_case`].
pub(super) fn booster_ngram(seq: &[&str]) -> Option<f64> {
    match seq {
        ["just", "enough"] | ["kind", "of"] | ["sort", "of"] => Some(B_DECR),
        _ => None,
    }
}
