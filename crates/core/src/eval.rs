//! How right an engine's labels are, against labels people gave: the
//! confusion matrix and the figures read off it (`etl eval`).
//!
//! Gold labels are negative, neutral or positive; a text labelled mixed has
//! no right answer among the three and is counted apart. Predictions are the
//! engine's [`Label`], mixed included (always wrong against a three-class
//! gold label). Accuracy is over the three-class texts; precision, recall and
//! F1 are per gold class, and macro-F1 is their plain mean, so a rare class
//! counts as much as a common one (positive tweets are a fifth of the
//! airline set: an engine that never says positive loses a third of it).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::sentiment::Label;

/// A label a person gave a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Gold {
    /// Negative.
    Negative,
    /// Neutral.
    Neutral,
    /// Positive.
    Positive,
    /// Both: counted apart, not scored.
    Mixed,
}

impl Gold {
    /// `negative`, `neutral`, `positive` or `mixed`, in any case, with
    /// surrounding blanks ignored; anything else is refused.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "negative" => Some(Self::Negative),
            "neutral" => Some(Self::Neutral),
            "positive" => Some(Self::Positive),
            "mixed" => Some(Self::Mixed),
            _ => None,
        }
    }
}

/// The three scored classes, in the order of every per-class figure.
pub const CLASSES: [Label; 3] = [Label::Negative, Label::Neutral, Label::Positive];

/// Predicted labels, in the order of the confusion matrix's columns.
const PREDICTED: [Label; 4] = [
    Label::Negative,
    Label::Neutral,
    Label::Positive,
    Label::Mixed,
];

fn column(l: Label) -> usize {
    PREDICTED
        .iter()
        .position(|p| *p == l)
        .expect("every label is a column")
}

/// Counts of (gold, predicted), built one text at a time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Confusion {
    /// Rows: gold negative, neutral, positive; columns: [`PREDICTED`].
    counts: [[u64; 4]; 3],
    mixed_gold: u64,
    failed: u64,
}

impl Confusion {
    /// An empty matrix.
    pub fn new() -> Self {
        Self::default()
    }

    /// One text the engine labelled.
    pub fn add(&mut self, gold: Gold, predicted: Label) {
        let row = match gold {
            Gold::Negative => 0,
            Gold::Neutral => 1,
            Gold::Positive => 2,
            Gold::Mixed => {
                self.mixed_gold += 1;
                return;
            }
        };
        self.counts[row][column(predicted)] += 1;
    }

    /// One text the engine could not score (counted, not scored).
    pub fn add_failure(&mut self) {
        self.failed += 1;
    }

    /// The figures.
    pub fn evaluation(&self) -> Evaluation {
        let scored: u64 = self.counts.iter().flatten().sum();
        let correct: u64 = (0..3).map(|i| self.counts[i][i]).sum();
        let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let classes: Vec<ClassFigures> = CLASSES
            .iter()
            .enumerate()
            .map(|(i, label)| {
                let support: u64 = self.counts[i].iter().sum();
                let predicted: u64 = (0..3).map(|g| self.counts[g][i]).sum();
                let tp = self.counts[i][i];
                let precision = ratio(tp, predicted);
                let recall = ratio(tp, support);
                let f1 = if precision + recall == 0.0 {
                    0.0
                } else {
                    2.0 * precision * recall / (precision + recall)
                };
                ClassFigures {
                    label: label.as_str().to_ascii_lowercase(),
                    support,
                    predicted,
                    precision,
                    recall,
                    f1,
                }
            })
            .collect();
        let macro_f1 = classes.iter().map(|c| c.f1).sum::<f64>() / classes.len() as f64;
        let confusion = CLASSES
            .iter()
            .enumerate()
            .map(|(i, gold)| {
                let row = PREDICTED
                    .iter()
                    .enumerate()
                    .map(|(j, p)| (p.as_str().to_ascii_lowercase(), self.counts[i][j]))
                    .collect();
                (gold.as_str().to_ascii_lowercase(), row)
            })
            .collect();
        Evaluation {
            scored,
            correct,
            accuracy: ratio(correct, scored),
            macro_f1,
            classes,
            confusion,
            mixed_gold: self.mixed_gold,
            failed: self.failed,
        }
    }
}

/// Figures of one gold class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassFigures {
    /// `negative`, `neutral` or `positive`.
    pub label: String,
    /// Texts with this gold label.
    pub support: u64,
    /// Texts the engine gave this label.
    pub predicted: u64,
    /// Of those, the share that has it.
    pub precision: f64,
    /// Of the texts that have it, the share the engine found.
    pub recall: f64,
    /// Harmonic mean of the two.
    pub f1: f64,
}

/// What `etl eval` reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    /// Texts with a three-class gold label that the engine scored.
    pub scored: u64,
    /// Of those, labelled as the gold label says.
    pub correct: u64,
    /// `correct / scored`.
    pub accuracy: f64,
    /// Mean F1 over negative, neutral and positive.
    pub macro_f1: f64,
    /// Per gold class.
    pub classes: Vec<ClassFigures>,
    /// Gold label → predicted label → texts.
    pub confusion: BTreeMap<String, BTreeMap<String, u64>>,
    /// Texts labelled mixed: counted apart, not scored.
    pub mixed_gold: u64,
    /// Texts the engine failed to score.
    pub failed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_of_a_small_matrix_worked_by_hand() {
        // gold negative: 3 → neg, 1 → pos; neutral: 1 → neu, 1 → mixed;
        // positive: 2 → pos; one mixed gold, one failure.
        let mut c = Confusion::new();
        for (g, p) in [
            (Gold::Negative, Label::Negative),
            (Gold::Negative, Label::Negative),
            (Gold::Negative, Label::Negative),
            (Gold::Negative, Label::Positive),
            (Gold::Neutral, Label::Neutral),
            (Gold::Neutral, Label::Mixed),
            (Gold::Positive, Label::Positive),
            (Gold::Positive, Label::Positive),
            (Gold::Mixed, Label::Positive),
        ] {
            c.add(g, p);
        }
        c.add_failure();
        let e = c.evaluation();
        assert_eq!((e.scored, e.correct, e.mixed_gold, e.failed), (8, 6, 1, 1));
        assert_eq!(e.accuracy, 0.75);
        // negative: P 3/3, R 3/4, F1 6/7; neutral: P 1/1, R 1/2, F1 2/3;
        // positive: P 2/3, R 2/2, F1 4/5.
        let f1: Vec<f64> = e.classes.iter().map(|c| c.f1).collect();
        let want = [6.0 / 7.0, 2.0 / 3.0, 4.0 / 5.0];
        for (got, want) in f1.iter().zip(want) {
            assert!((got - want).abs() < 1e-12, "{f1:?}");
        }
        assert!((e.macro_f1 - (6.0 / 7.0 + 2.0 / 3.0 + 4.0 / 5.0) / 3.0).abs() < 1e-12);
        assert_eq!(e.classes[2].predicted, 3);
        assert_eq!(e.confusion["neutral"]["mixed"], 1);
        assert_eq!(e.confusion["negative"]["positive"], 1);
    }

    #[test]
    fn gold_labels_parse_strictly() {
        assert_eq!(Gold::parse(" Positive "), Some(Gold::Positive));
        assert_eq!(Gold::parse("NEGATIVE"), Some(Gold::Negative));
        assert_eq!(Gold::parse("mixed"), Some(Gold::Mixed));
        assert_eq!(Gold::parse("pos"), None);
        assert_eq!(Gold::parse(""), None);
    }

    #[test]
    fn an_empty_or_one_sided_matrix_divides_by_nothing() {
        let e = Confusion::new().evaluation();
        assert_eq!((e.accuracy, e.macro_f1), (0.0, 0.0));
        let mut c = Confusion::new();
        c.add(Gold::Positive, Label::Positive);
        let e = c.evaluation();
        assert_eq!(e.accuracy, 1.0);
        assert_eq!(e.classes[0].precision, 0.0, "nothing predicted negative");
        assert!((e.macro_f1 - 1.0 / 3.0).abs() < 1e-12);
    }
}
