"""Build the VADER golden corpus: `vader_golden.jsonl` beside this file.

Every text is scored by the reference implementation, Python
vaderSentiment 3.3.2 under CPython 3.11, through
`SentimentIntensityAnalyzer().polarity_scores(text)`, and written as one JSON
object per line: {"text", "neg", "neu", "pos", "compound"} (Python's own
rounding: 3 decimals, 4 for compound). `crates/core/tests/vader_parity.rs`
asserts that `etl_core::vader` reproduces every number exactly.

Run from the repository root (no network needed beyond PyPI for the install):

    python -m venv /tmp/v && /tmp/v/bin/pip install vaderSentiment==3.3.2 \
        && /tmp/v/bin/python crates/core/tests/golden/make_golden.py

`python` must be CPython 3.11 (the script refuses anything else): the same
vaderSentiment code returns different numbers under 3.12+ because float
`sum()` became compensated there and `str.isupper()`/`str.lower()` follow a
newer Unicode version. The output is deterministic (fixed seed, no set or
hash ordering), deduplicated and in a stable order: re-running it must
reproduce the committed file byte for byte.

Only the standard library and vaderSentiment are used. Categories, each
with many instances: plain sentences; negation; contrastive "but"; ALL CAPS;
boosters/dampeners; "!"/"?" runs; emoji (skin tones, ZWJ, flags, keycaps);
emoticons; VADER's special-case and sentiment-laden idioms; URLs, @mentions,
#hashtags, numbers; whitespace oddities; non-English and mixed scripts;
very long texts; empty-ish texts; templated product reviews, tweets and
comments; a seeded random/adversarial sample; and REGRESSIONS, texts on
which an engine once diverged from this reference (found by a 300,000-text
differential hunt; see the list's comment).
"""
import importlib.metadata
import json
import os
import random
import sys

assert sys.version_info[:2] == (3, 11), "the golden reference is CPython 3.11; got %s" % sys.version
assert importlib.metadata.version("vaderSentiment") == "3.3.2"

import vaderSentiment.vaderSentiment as vs  # noqa: E402

SEED = 20240611
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vader_golden.jsonl")

analyzer = vs.SentimentIntensityAnalyzer()
LEXICON = list(analyzer.lexicon)  # file order
BOOSTERS = list(vs.BOOSTER_DICT)
NEGATE = list(vs.NEGATE)

texts = []
_seen = set()


def add(t):
    if t not in _seen:
        _seen.add(t)
        texts.append(t)


def add_all(ts):
    for t in ts:
        add(t)


rng = random.Random(SEED)

# ---------------------------------------------------------------- word lists
POS_ADJ = ["good", "great", "excellent", "amazing", "awesome", "wonderful", "fantastic", "nice", "lovely",
           "perfect", "brilliant", "superb", "delightful", "pleasant", "helpful", "reliable", "beautiful",
           "happy", "fun", "cool", "impressive", "outstanding", "solid", "comfortable", "friendly"]
NEG_ADJ = ["bad", "terrible", "awful", "horrible", "poor", "disappointing", "useless", "broken", "ugly",
           "boring", "annoying", "frustrating", "dreadful", "pathetic", "sad", "angry", "worst", "mediocre",
           "unreliable", "rude", "dirty", "slow", "painful", "disgusting", "stupid"]
NEU_ADJ = ["blue", "square", "average", "standard", "typical", "normal", "plastic", "wooden", "new", "used",
           "small", "large", "medium", "round", "early", "late", "local", "daily", "regular", "basic"]
POS_VERB = ["love", "like", "enjoy", "adore", "appreciate", "recommend", "admire", "trust", "praise"]
NEG_VERB = ["hate", "dislike", "regret", "despise", "loathe", "resent", "fear", "blame", "detest"]
NOUNS = ["product", "phone", "laptop", "service", "hotel", "movie", "book", "app", "update", "restaurant",
         "pizza", "delivery", "battery", "screen", "camera", "customer support", "staff", "room", "song",
         "game", "headphones", "charger", "coffee", "flight", "seller", "package", "price", "design"]
NAMES = ["Anna", "Bob", "the manager", "my wife", "our team", "the waiter", "this company", "Kevin", "María"]
BOOST_WORDS = ["very", "really", "extremely", "so", "incredibly", "absolutely", "totally", "quite",
               "remarkably", "most", "hella", "fucking", "super", "utterly", "deeply", "highly"]
DAMP_WORDS = ["kind of", "sort of", "kinda", "sorta", "somewhat", "slightly", "barely", "hardly",
              "a little", "almost", "marginally", "partly", "occasionally", "just enough", "kind-of", "sortof"]
EMOJI = ["😀", "😡", "😂", "❤️", "❤", "👍", "👎", "🙄", "😭", "🔥", "💩", "🤬", "🥰", "😍", "💯", "🙏", "😢", "😊",
         "🤔", "😐", "😱", "🎉", "✨", "💔", "🤮", "😎", "🙂", "🙁", "😏", "🤣", "😤", "☺️", "☹️", "☠️", "👌", "🤗",
         "😴", "😬", "🥳", "😇", "😈", "🤡", "💀", "🌟", "🚀", "💕", "🖤", "😩", "😒", "🤷"]
SKIN = ["\U0001F3FB", "\U0001F3FC", "\U0001F3FD", "\U0001F3FE", "\U0001F3FF"]
SKIN_BASE = ["👍", "👎", "👌", "🙏", "👏", "💪", "🤷", "🙋", "👋", "🤦"]
ZWJ = ["👨\u200d👩\u200d👧\u200d👦", "👩\u200d💻", "🧑\u200d🍳", "🏳️\u200d🌈", "👁️\u200d🗨️", "❤️\u200d🔥",
       "🤦\u200d♂️", "🤷🏽\u200d♀️", "👨🏿\u200d🦰", "🐻\u200d❄️", "😮\u200d💨", "🧔\u200d♂️", "🏃\u200d♀️\u200d➡️"]
FLAGS_KEYCAPS = ["🇺🇸", "🇩🇪", "🇯🇵", "🇧🇷", "🇪🇺", "1️⃣", "#️⃣", "*️⃣", "🔟", "©️", "®️", "™️", "↔️", "🅰️"]
EMOTICONS = [":)", ":(", ":D", ";)", "<3", ":-/", ":-)", ":-(", ":P", ":p", "XD", "xD", ":'(", ":/", "=)",
             "(:", "):", ":-D", ";-)", "</3", ":O", ":o", "^_^", "-_-", "T_T", ">:(", ":|", ":-|", "8-)",
             ":*", ":3", "o_O", "O_o", ":-P", "D:", ":]", ":[", "=D", ":')", ":-*", ":S", "B-)", "<33"]
SPECIAL_IDIOMS = ["the shit", "the bomb", "bad ass", "badass", "bus stop", "yeah right", "kiss of death",
                  "to die for", "beating heart"]
LADEN_IDIOMS = ["cut the mustard", "hand to mouth", "back handed", "blow smoke", "blowing smoke", "upper hand",
                "break a leg", "cooking with gas", "in the black", "in the red", "on the ball",
                "under the weather"]

# ------------------------------------------------------------------ 1. plain
PLAIN = [
    "VADER is smart, handsome, and funny.",
    "VADER is smart, handsome, and funny!",
    "VADER is very smart, handsome, and funny.",
    "VADER is VERY SMART, handsome, and FUNNY.",
    "VADER is VERY SMART, handsome, and FUNNY!!!",
    "VADER is VERY SMART, uber handsome, and FRIGGIN FUNNY!!!",
    "VADER is not smart, handsome, nor funny.",
    "The book was good.",
    "At least it isn't a horrible book.",
    "The book was only kind of good.",
    "The plot was good, but the characters are uncompelling and the dialog is not great.",
    "Today SUX!",
    "Today only kinda sux! But I'll get by, lol",
    "Make sure you :) or :D today!",
    "Catch utf-8 emoji such as 💘 and 💋 and 😁",
    "Not bad at all",
    "I love this product, it works perfectly.",
    "This is the worst purchase I have ever made.",
    "The package arrived on Tuesday.",
    "The meeting is scheduled for 3 pm in room 204.",
    "I feel great today.",
    "I feel terrible today.",
    "It is a chair.",
    "What a wonderful day it has been.",
    "The food was cold and the waiter was rude.",
    "Thanks for the help, much appreciated.",
    "I'm so happy for you!",
    "This makes me sad.",
    "The train leaves at noon.",
    "He was killed in the accident.",
    "She won the award and everyone cheered.",
    "The report contains twelve pages.",
    "Worst. Service. Ever.",
    "Best. Day. Ever.",
    "meh",
    "ok",
    "lol",
    "lmao this is hilarious",
    "ugh, mondays",
    "rip my phone",
    "congrats on the new job!",
    "sorry for your loss",
    "I don't know.",
    "Whatever.",
]
add_all(PLAIN)
for _ in range(60):
    n = rng.choice(NOUNS)
    add(rng.choice(["The %s is %s.", "This %s was %s.", "My %s is %s", "Such a %s %s"]) % (n, rng.choice(POS_ADJ))
        if rng.random() < 0.5 else
        rng.choice(["The %s is %s.", "This %s was %s.", "My %s is %s"]) % (n, rng.choice(NEG_ADJ)))
    add("The %s is %s." % (rng.choice(NOUNS), rng.choice(NEU_ADJ)))
    add("I %s the %s." % (rng.choice(POS_VERB + NEG_VERB), rng.choice(NOUNS)))

# --------------------------------------------------------------- 2. negation
NEG_FORMS = ["not", "isn't", "is not", "never", "wasn't", "don't", "doesn't", "didn't", "won't", "can't",
             "cannot", "couldn't", "shouldn't", "aren't", "ain't", "isnt", "dont", "cant", "wont", "nope",
             "neither", "nor", "nothing", "none", "nowhere", "rarely", "seldom", "despite", "uh-uh", "uhuh",
             "without", "hardly", "shan't", "mustn't", "needn't", "weren't", "havent", "hadn't"]
for neg in NEG_FORMS:
    add("The %s is %s %s." % (rng.choice(NOUNS), neg, rng.choice(POS_ADJ)))
    add("The %s %s %s at all." % (rng.choice(NOUNS), neg, rng.choice(NEG_ADJ)))
    add("It %s really %s." % (neg, rng.choice(POS_ADJ + NEG_ADJ)))
    add("%s %s, %s %s" % (neg.capitalize(), rng.choice(POS_ADJ), rng.choice(["just", "only", "simply"]),
                          rng.choice(NEU_ADJ)))
add_all([
    "This is not good.", "This isn't good.", "This is not bad.", "This isn't bad at all.",
    "I never liked it.", "I have never been so happy.", "Never so good!", "never this bad",
    "I would never ever recommend this.", "Without a doubt the best.", "without doubt amazing",
    "Without doubt, the worst.", "I left without paying, happy.", "without love", "not without problems",
    "It's the least bad option.", "At least it works.", "at least it is not ugly", "the very least good",
    "He is the least helpful person here.", "least favorite song", "Least fun ever.",
    "No good deed goes unpunished.", "no", "No!", "No problem at all.", "No, thanks.", "no love here",
    "no joy or happiness", "no fun nor joy", "no help or support", "No way this is good.",
    "Not at all happy.", "Not only good but great.", "Nothing good about it.", "nothing bad happened",
    "None of it was enjoyable.", "Nobody likes it.", "I can't complain.", "Can't stop smiling!",
    "I couldn't be happier.", "I couldn't be more disappointed.", "Wouldn't recommend.",
    "wouldn't not recommend", "not not good", "I don't hate it.", "I didn't love it.",
    "Doesn't disappoint.", "It never fails to amaze me.", "Not bad, not great.", "never good, never bad",
    "It ain't pretty.", "Despite the hype, it is good.", "despite everything, we won",
    "Hardly a masterpiece.", "rarely happy", "Seldom have I seen such beauty.", "nowhere near good",
    "It is not the shit.", "not the bomb", "Don't you dare call it bad.", "n't good", "isn't",
    "Not", "NOT GOOD", "NOT good", "not GOOD", "It's NOT good at ALL.",
])
for _ in range(40):
    adj = rng.choice(POS_ADJ + NEG_ADJ)
    filler = rng.sample(["really", "the", "very", "that", "so", "a", "much", "at", "all", "this"], rng.randint(0, 3))
    add("%s %s %s %s." % (rng.choice(["It is", "That was", "They are", "She is"]), rng.choice(NEG_FORMS),
                          " ".join(filler), adj))

# ------------------------------------------------------------------- 3. but
for _ in range(70):
    a = "the %s was %s" % (rng.choice(NOUNS), rng.choice(POS_ADJ + NEG_ADJ + NEU_ADJ))
    b = "the %s is %s" % (rng.choice(NOUNS), rng.choice(POS_ADJ + NEG_ADJ + NEU_ADJ))
    add(rng.choice(["%s, but %s.", "%s but %s", "%s. But %s!", "%s... BUT %s", "%s, but, %s",
                    "%s BuT %s", "%s but also %s"]) % (a.capitalize(), b))
add_all([
    "I love it but it is too expensive.", "Great phone but terrible battery.", "Bad start but great finish.",
    "good good but good", "bad but bad but bad", "but", "But why?", "but good", "good but",
    "It's good, but not great.", "Not great, but good.", "The food is good but the service is slow.",
    "but but but", "I wanted to like it, but I hated it.", "Everything was perfect but the bed was awful.",
    "Cheap but good", "Cheap, but not bad!", "It's fine, but.", "Nice nice nice but bad bad bad",
    "happy happy joy joy but sad", "great :) but :( ", "love ❤️ but 💔",
])

# -------------------------------------------------------------------- 4. caps
for _ in range(70):
    words = ("the %s is %s and the %s is %s" % (rng.choice(NOUNS), rng.choice(POS_ADJ + NEG_ADJ),
                                                rng.choice(NOUNS), rng.choice(POS_ADJ + NEG_ADJ + NEU_ADJ))).split()
    mode = rng.random()
    if mode < 0.25:
        t = " ".join(words).upper()
    elif mode < 0.75:
        t = " ".join(w.upper() if rng.random() < 0.35 else w for w in words)
    else:
        t = " ".join("".join(c.upper() if rng.random() < 0.5 else c for c in w) for w in words)
    add(t + rng.choice(["", ".", "!", "!!", "?"]))
add_all([
    "GREAT", "great", "Great", "GrEaT", "GREAT!!!", "This is GREAT", "THIS IS GREAT", "this is GREAT",
    "This is TERRIBLE", "I HATE this", "I LOVE THIS SO MUCH", "I LOVE this SO much", "VERY good",
    "very GOOD", "VERY GOOD", "EXTREMELY bad", "Extremely BAD", "KIND OF good", "SORT OF BAD but OK",
    "NOT good", "I am SO HAPPY", "OMG I'm SO SO SO happy!!!", "WTF is this", "LOL", "LMAO", "OK",
    "I am ÇOK happy", "ÇOK İYİ GOOD", "ÉNORME SUCCESS great", "STRASSE good", "STRAẞE good",
    "ΣΟΦΟΣ good GREAT", "ДА GOOD", "USA USA USA great", "A GOOD day", "I GOOD", "DIY fun",
    "The UI is GREAT, the UX is bad", "NASA is cool", "I can't BELIEVE how GOOD this is",
])

# ------------------------------------------------------- 5. boosters/dampeners
for w in BOOST_WORDS + DAMP_WORDS:
    add("The %s is %s %s." % (rng.choice(NOUNS), w, rng.choice(POS_ADJ)))
    add("It was %s %s" % (w, rng.choice(NEG_ADJ)))
    add("%s %s" % (w.upper(), rng.choice(POS_ADJ + NEG_ADJ)))
    add("I %s %s this %s" % (w, rng.choice(POS_VERB + NEG_VERB), rng.choice(NOUNS)))
for _ in range(40):
    bs = rng.sample(BOOST_WORDS + DAMP_WORDS, rng.randint(1, 3))
    add("%s %s %s" % (rng.choice(["It is", "This was", "So", "Feeling"]), " ".join(bs), rng.choice(POS_ADJ + NEG_ADJ)))
add_all([b + " good" for b in BOOSTERS] + ["good " + b for b in BOOSTERS[:20]])

# ------------------------------------------------------------ 6. !!! and ???
for n in range(1, 7):
    for base in ["Great", "Terrible", "Hello", "Really", "What", "good movie", "bad day", "Seriously",
                 "Why is it so bad", "Is it good"]:
        add(base + "!" * n)
        add(base + "?" * n)
    add("Wow" + "?!" * n)
    add("nice" + "!?" * n)
    add("awful " + "! " * n)
add_all(["!!!", "???", "?!", "!?!?", "!!!!!!!!!!", "??????????", "good! bad? great!! awful??",
         "Really? Really?? REALLY???", "Excellent!!!!!!!!!!!!!!!!", "Horrible?!?!?!?!", "Why?? Just why???",
         "Is this good? Or bad? Or great? Or awful?", "Yes!!! Finally!!! Happy!!!", "! good", "good !",
         "wait... what?!", "Hmm... okay.", "Sure...", "......", "!!!good!!!", "???bad???"])

# ------------------------------------------------------------------- 7. emoji
for e in EMOJI:
    add(e)
    add("I %s it %s" % (rng.choice(POS_VERB + NEG_VERB), e))
    add("%s%s" % (rng.choice(["wow", "ok", "great", "bad", "no", "sure"]), e))  # glued: space inserted
    add("%s %s %s" % (e, rng.choice(NOUNS), rng.choice(POS_ADJ + NEG_ADJ)))
for b in SKIN_BASE:
    for s in SKIN:
        add(b + s)
    add("Great job %s%s" % (b, rng.choice(SKIN)))
    add("%s%s not good" % (b, rng.choice(SKIN)))
for z in ZWJ:
    add(z)
    add("family time %s so happy" % z)
    add("ugh%s" % z)
for f in FLAGS_KEYCAPS:
    add(f)
    add("Go team %s!!" % f)
for _ in range(60):
    run = "".join(rng.choice(EMOJI + SKIN_BASE) + (rng.choice(SKIN) if rng.random() < 0.2 else "")
                  for _ in range(rng.randint(2, 8)))
    add(rng.choice(["%s", "%s %s", "%s%s", "%s, %s"]).replace("%s", run, 1).replace("%s", rng.choice(
        ["love it", "hate it", "meh", "the %s" % rng.choice(NOUNS), "no", "not good", "SO GOOD"]), 1))
add_all(["😀😀😀", "😡😡😡", "😂😂😂 I can't", "❤️❤️❤️❤️", "👍👎", "🙄🙄", "😀😡", "😂😭", "💔❤️",
         "😀 but 😡", "not 😀", "very 😀", "NOT 😂", "the 💣", "the 💩", "Thanks!🙏", "🔥🔥🔥 the bomb",
         "☺", "☹", "☠", "♥", "♥️", "★★★★★", "★☆☆☆☆", "✔️ works", "❌ broken", "⚠️ warning",
         "\u2764", "\u2764\ufe0f", "\ufe0f", "\u200d", "😀\u200d😡", "👍\U0001F3FB\U0001F3FB"])

# --------------------------------------------------------------- 8. emoticons
for e in EMOTICONS:
    add(e)
    add("%s %s" % (rng.choice(["nice", "thanks", "see you", "ok", "ugh", "well"]), e))
    add("%s the %s is %s" % (e, rng.choice(NOUNS), rng.choice(POS_ADJ + NEG_ADJ + NEU_ADJ)))
    add("lol%s" % e)
    add("%s%s" % (e, e))
add_all(["Make sure you :) or :D today!", ":) :) :)", ":( :( :(", ":) but :(", "not :)", "very :(",
         "(: smile", "): frown", ":-):-)", "<3 <3 <3", "i <3 u", "I </3 this", ":-/ hmm", "8-) cool",
         "=] ok", "xD lol", ";) wink wink", ":D :D :D!!!", ":'( so sad", ":P just kidding"])

# ------------------------------------------------------------------ 9. idioms
for idiom in SPECIAL_IDIOMS + LADEN_IDIOMS:
    add(idiom)
    add("This %s is %s" % (rng.choice(NOUNS), idiom))
    add("Honestly I think that this new %s is %s" % (rng.choice(NOUNS), idiom))
    add("%s, %s" % (idiom.capitalize(), rng.choice(["really", "not really", "lol", "seriously", "for sure"])))
    add("My friend said the %s was %s and %s" % (rng.choice(NOUNS), idiom, rng.choice(POS_ADJ + NEG_ADJ)))
    add("It does not %s at all" % idiom)
    add(idiom.upper() + "!!!")
add_all([
    "This party is the shit!", "This party is the bomb!", "That kiss of death was brutal", "Yeah right.",
    "yeah right, like that will happen", "Oh yeah right, great job", "It doesn't cut the mustard.",
    "They live hand to mouth.", "This cake is to die for", "my beating heart", "waiting at the bus stop",
    "He is a bad ass.", "badass movie", "the shit was bad", "that movie was the bomb dot com",
    "I am kind of happy", "It is sort of good", "kind of", "sort of", "kind", "of", "a kind of magic",
    "Just enough good", "just enough", "kinda the shit", "Dude, you are the shit", "it really is the bomb",
    "we are in the red", "break a leg tonight!", "she is under the weather", "upper hand, good",
])

# ------------------------------------------------------ 10. social/web noise
URLS = ["https://example.com", "http://t.co/abc123XYZ", "www.example.org/path?q=good&x=bad",
        "https://shop.example.com/p/12345#reviews", "example.com", "ftp://files.example.net/a.zip",
        "https://example.com/great-product-love-it", "https://bad.example/awful"]
HANDLES = ["@amazon", "@JohnDoe", "@support_team", "@GOOD", "@bad_guy", "@😀", "@user123"]
TAGS = ["#love", "#fail", "#happy", "#sad", "#nofilter", "#BestDayEver", "#worst", "#good", "#NotGood",
        "#blessed", "#FML", "#win"]
NUMS = ["5 stars", "1/10", "10/10", "$19.99", "€5,00", "3.5", "100%", "0", "-1", "24/7", "2nd", "1,000,000",
        "4.0/5", "5⭐", "#1", "2023-09-01", "12:30pm", "+44 20 7946 0958", "x2", "3x"]
for _ in range(130):
    parts = ["the %s is %s" % (rng.choice(NOUNS), rng.choice(POS_ADJ + NEG_ADJ + NEU_ADJ))]
    for pool in (URLS, HANDLES, TAGS, NUMS):
        if rng.random() < 0.5:
            parts.insert(rng.randrange(len(parts) + 1), rng.choice(pool))
    if rng.random() < 0.3:
        parts.append(rng.choice(EMOJI + EMOTICONS))
    add(" ".join(parts))
add_all(["RT @user: this is great http://t.co/x #win", "@support your app is broken again #fail",
         "#love #happy #blessed", "@@@", "###", "http://", "www", "5", "10/10 would buy again",
         "0/10 would not recommend", "1 star", "5 stars!!!", "Rated 4.5 out of 5", "100% satisfied",
         "2/5 - meh", "$$$", "good.bad.ugly", "good,bad,ugly", "good/bad", "good-bad", "good_bad",
         "e-mail me at good@example.com", "great!!!http://x.co", "(good)", "[bad]", "{great}", "\"good\"",
         "'bad'", "«bien»", "“great”", "‘awful’", "good’s", "it’s not good", "isn’t good", "don’t like it"])

# ---------------------------------------------------------- 11. whitespace
for _ in range(80):
    words = ("the %s is %s but the %s is %s" % (rng.choice(NOUNS), rng.choice(POS_ADJ + NEG_ADJ),
                                                rng.choice(NOUNS), rng.choice(POS_ADJ + NEG_ADJ))).split()
    seps = [" ", "  ", "   ", "\t", "\n", "\r\n", "\n\n", " \t ", "\u00a0", "\u3000", "\u2003", "\x0b",
            "\x0c", "\x1c", "\x1f", "\x85", "\u2028", "\u200b", "\ufeff"]
    t = words[0]
    for w in words[1:]:
        t += rng.choice(seps) + w
    add(rng.choice(["", " ", "  ", "\t", "\n", "\u00a0", "\u3000"]) + t +
        rng.choice(["", " ", "   ", "\n", "\t\n", "\u2029", "!\n", " !"]))
add_all(["   ", "\t", "\n", " \n\t ", "\u00a0", "\u3000", "\u200b", "good\u200bbad", "good\u00a0bad",
         "  good  ", "\tbad\t", "\ngreat\n", "good\n\nbad", "line one is great\nline two is awful",
         "great\r\nawful", "  :)  ", " ! ", "good\x1cbad", "good\x85bad", "good\u2028bad", "good\u180ebad"])

# -------------------------------------------------------- 12. non-English
FOREIGN = [
    # Spanish
    "Me encanta este producto, es excelente.", "El servicio fue terrible y muy lento.",
    "No está mal, pero podría ser mejor.", "¡Qué maravilla! Muy recomendable.", "Pésimo. No lo compren.",
    "La comida estaba buena pero el camarero fue grosero.", "¿Por qué no funciona?", "Está bien.",
    # French
    "J'adore ce film, c'est magnifique !", "Le service était horrible.", "Ce n'est pas mal du tout.",
    "Très bon rapport qualité-prix.", "Quelle déception...", "C'est génial, merci beaucoup !",
    "L'hôtel était sale et bruyant.", "Bof, ça va.",
    # German
    "Das Produkt ist sehr gut, ich bin zufrieden.", "Der Service war schrecklich.", "Nicht schlecht!",
    "Ich hasse diese App.", "Größe passt, Qualität ist super.", "Straße gesperrt, ärgerlich.",
    "GROSSARTIG!!! Danke.", "Übermäßig teuer und schlecht verarbeitet.",
    # Portuguese
    "Adorei o produto, chegou rápido!", "Péssimo atendimento, não recomendo.", "É bom, mas caro.",
    "Muito obrigado, excelente serviço.", "Não gostei.", "Ação e emoção do começo ao fim.",
    # Russian
    "Отличный товар, всем рекомендую!", "Ужасное обслуживание.", "Нормально, но дорого.",
    "Я люблю этот фильм.", "НЕ ПОКУПАЙТЕ ЭТО!!!", "Спасибо, всё хорошо :)",
    # Chinese
    "这个产品非常好，我很喜欢！", "服务太差了。", "还可以吧。", "质量不错，物流很快👍", "垃圾！！！",
    # Japanese
    "この商品はとても良いです。", "最悪のサービスでした。", "まあまあです。", "ありがとうございます！😊",
    "ｶﾀｶﾅ ﾃｽﾄ good", "ＦＵＬＬＷＩＤＴＨ ＧＯＯＤ", "ｇｏｏｄ", "ＧＯＯＤ good",
    # Arabic
    "هذا المنتج رائع جدا", "الخدمة سيئة للغاية", "شكرا جزيلا!", "لا بأس به", "good جيد bad سيء",
    # Hindi
    "यह उत्पाद बहुत अच्छा है।", "सेवा बहुत खराब थी।", "ठीक है।", "धन्यवाद! great service",
    # Turkish (dotted/dotless i)
    "Bu ürün çok iyi, teşekkürler!", "Berbat bir hizmet.", "İYİ değil", "IYI değil", "ıyı", "İstanbul'da harika bir gün",
    "ISTANBUL GOOD", "İSTANBUL GOOD", "KIZ good", "kız good", "İİİ great", "ııı bad", "GOOD İ", "GOOD ı",
    # Greek (final sigma)
    "Πολύ καλό προϊόν!", "Η εξυπηρέτηση ήταν απαίσια.", "ΟΔΥΣΣΕΥΣ good", "Οδυσσεύς good", "ΣΟΦΟΣ",
    "σοφος σοφός ΣΟΦΟΣ great", "ΑΣ good", "ΑΣ GOOD bad", "Σ", "ς σ Σ", "ΌΛΑ ΚΑΛΆ good",
    # Accented / mixed script
    "café good", "Café is great", "naïve but lovely", "résumé looks bad", "crème brûlée is amazing",
    "piñata fun", "Zoë is happy", "São Paulo is nice", "Ærø awesome", "smörgåsbord yum", "jalapeño hot",
    "goοd", "gооd", "bаd", "ɡood", "ｇood", "g\u0307ood", "good\u0301", "gоod and bаd", "ＬＯＶＥ it",
    "𝐆𝐑𝐄𝐀𝐓 product", "𝓰𝓸𝓸𝓭", "ℌ𝔞𝔭𝔭𝔶", "Ⓖⓞⓞⓓ", "🅶🅾🅾🅳", "\u212Aind of good", "\u212AIND OF GOOD",
    "ǅemal is happy", "ǄEMAL IS HAPPY", "ǆ good", "ﬁne good", "ﬃ great", "ẞ GOOD", "ß good",
    "Ⅻ GREAT", "ⅻ great", "ª good", "ᵃ good", "ᏸ GOOD", "Ᏸ GOOD", "𐐀 GOOD", "𐐨 GOOD", "𞤀 GOOD",
    "Straße ist GOOD", "ŉ good", "ǰ GOOD", "İ GOOD", "K GOOD", "Å GOOD", "Ω GOOD",
]
add_all(FOREIGN)
for _ in range(60):
    f = rng.choice(FOREIGN[:90])
    e = rng.choice(["good", "bad", "GREAT", "terrible", "love it", "hate it", "not good", "very good",
                    ":)", ":(", "😀", "😡", "but great", "!!!"])
    add(rng.choice(["%s %s", "%s, %s", "%s %s!!", "%s\n%s"]) % ((f, e) if rng.random() < 0.5 else (e, f)))

# ------------------------------------------------- 13. templated reviews etc.
OPENERS = ["", "Honestly, ", "Well, ", "Update: ", "Just got it. ", "Okay so ", "TL;DR: ", "Edit: ",
           "Five days in: ", "As a long-time customer, ", "Wow. ", "Ugh. "]
CLAUSES_POS = ["the {n} works {adv}", "I {pv} the {n}", "the {n} is {adj_p}", "{name} was {adj_p}",
               "shipping was fast", "would buy again", "exceeded my expectations", "worth every penny",
               "the {n} looks {adj_p} and feels {adj_p}", "support fixed it in minutes"]
CLAUSES_NEG = ["the {n} stopped working", "I {nv} the {n}", "the {n} is {adj_n}", "{name} was {adj_n}",
               "shipping took forever", "never buying again", "complete waste of money",
               "the {n} broke after a week", "support never answered", "returned it immediately"]
CLAUSES_NEU = ["the {n} is {adj_u}", "it came in a box", "I ordered it on Monday", "{name} delivered it",
               "the {n} has two buttons", "it is what it is", "I use it for work"]
ADVS = ["great", "well", "fine", "perfectly", "okay", "as expected", "flawlessly", "poorly"]
CLOSERS = ["", ".", "!", "!!", "!!!", "?", "...", " :)", " :(", " 😀", " 😡", " 👍", " 👎", " lol",
           " 10/10", " 1/10", " #fail", " #love", " Thanks!", " Avoid."]


def clause(pool):
    return rng.choice(pool).format(n=rng.choice(NOUNS), adv=rng.choice(ADVS), pv=rng.choice(POS_VERB),
                                   nv=rng.choice(NEG_VERB), adj_p=rng.choice(POS_ADJ), adj_n=rng.choice(NEG_ADJ),
                                   adj_u=rng.choice(NEU_ADJ), name=rng.choice(NAMES))


def modify(c):
    r = rng.random()
    if r < 0.12:
        return c.replace(" is ", " is not ", 1) if " is " in c else "not " + c
    if r < 0.22:
        return c.replace(" is ", " is %s " % rng.choice(BOOST_WORDS + DAMP_WORDS), 1)
    if r < 0.28:
        return c.upper()
    if r < 0.34:
        words = c.split()
        k = rng.randrange(len(words))
        words[k] = words[k].upper()
        return " ".join(words)
    return c


def review():
    n = rng.randint(1, 4)
    pools = [rng.choice([CLAUSES_POS, CLAUSES_NEG, CLAUSES_NEU]) for _ in range(n)]
    cls = [modify(clause(p)) for p in pools]
    joiners = [", ", ". ", " and ", " but ", "; ", " - ", ", but ", "! ", " although "]
    t = cls[0]
    for c in cls[1:]:
        t += rng.choice(joiners) + c
    t = rng.choice(OPENERS) + t[0].upper() + t[1:] + rng.choice(CLOSERS)
    return t


def tweet():
    t = review()
    if rng.random() < 0.4:
        t = rng.choice(HANDLES) + " " + t
    if rng.random() < 0.4:
        t += " " + " ".join(rng.sample(TAGS, rng.randint(1, 3)))
    if rng.random() < 0.2:
        t += " " + rng.choice(URLS)
    if rng.random() < 0.3:
        t += " " + rng.choice(EMOJI + EMOTICONS) * rng.randint(1, 3)
    return t.lower() if rng.random() < 0.25 else t


def comment():
    starts = ["lol ", "omg ", "tbh ", "imo ", "smh ", "idk ", "yeah right, ", "kind of ", "sort of ",
              "no ", "nope, ", "yes! ", "wow ", "meh, ", "the bomb: ", "ngl "]
    return rng.choice(starts) + review().lower()


for _ in range(700):
    add(review())
for _ in range(350):
    add(tweet())
for _ in range(250):
    add(comment())

# -------------------------------------------------------- 14. very long texts
for k in range(40):
    count = rng.randint(5, 20)
    parts = []
    for _ in range(count):
        r = review()
        if rng.random() < 0.5:
            r += " " + review()
        if rng.random() < 0.3:
            r += " " + rng.choice(FOREIGN)
        parts.append(r)
    sep = rng.choice(["\n\n", " ", "\n", " | ", "\n---\n"])
    t = sep.join(parts)
    while len(t) < 2500:
        t += sep + review()
    add(t)
# A few texts with thousands of tokens (the "but" rule scans them all).
for k in range(5):
    add(" ".join(rng.choice(POS_ADJ + NEG_ADJ + NEU_ADJ + ["but", "not", "very", "the"]) for _ in range(1200))
        + rng.choice(["!!!", "??", "."]))

# ------------------------------------------------------------ 15. empty-ish
add_all(["", " ", ".", "?", "!", ",", "-", "'", "\"", "a", "I", "x", "no", "No", "NO", "yes", "good", "GOOD",
         "bad", "BAD", "but", "BUT", "not", "NOT", "very", "VERY", "kind", "least", "the", "0", "??", "..",
         "?!", "a.", "is?", "so!", "ok.", "k", "kk", "hmm", "uh", "ha", "haha", "hahaha", "xo", "xoxo"])
for w in rng.sample(LEXICON, 120):
    add(w)
    add(w.upper() + rng.choice(["", "!", "?", ".", "!!!"]))

# -------------------------------------------- 16. random/adversarial sample
NEWCASE = ([chr(c) for c in range(0x10D50, 0x10D66, 3)] + [chr(c) for c in range(0x10D70, 0x10D86, 3)] +
           [chr(c) for c in range(0x1E030, 0x1E06E, 5)] + [chr(c) for c in (0xA7CB, 0xA7CC, 0xA7CD, 0xA7DA, 0xA7DC,
                                                                           0x1C89, 0x1C8A, 0xA7C0, 0xA7D0, 0x2C2F)])
NOISE = list("!?.,;:-'\"()[]{}*/\\@#$%^&_+=<>|~`") + ["!!", "???", "...", "?!"]


def salad():
    toks = []
    for _ in range(rng.randint(1, 18)):
        r = rng.random()
        if r < 0.45:
            w = rng.choice(LEXICON)
        elif r < 0.55:
            w = rng.choice(BOOSTERS)
        elif r < 0.65:
            w = rng.choice(NEGATE + ["least", "no", "nor", "or", "at", "never", "so", "this", "without", "doubt"])
        elif r < 0.70:
            w = "but"
        elif r < 0.76:
            w = rng.choice(SPECIAL_IDIOMS + LADEN_IDIOMS + ["kind of", "sort of"])
        elif r < 0.82:
            w = rng.choice(EMOJI + EMOTICONS)
        elif r < 0.86:
            w = rng.choice(NEWCASE)
        else:
            w = rng.choice(["the", "a", "it", "is", "was", "and", "of", "to", "my"])
        c = rng.random()
        if c < 0.2:
            w = w.upper()
        elif c < 0.3:
            w = w.capitalize()
        elif c < 0.35:
            w = "".join(ch.upper() if rng.random() < 0.5 else ch for ch in w)
        if rng.random() < 0.12:
            w = rng.choice(NOISE) + w
        if rng.random() < 0.2:
            w += rng.choice(NOISE)
        toks.append(w)
    return " ".join(toks)


for _ in range(400):
    add(salad())

# ---------------------------------------------------------- 17. regressions
# Texts on which the `vader-parity` 0.1.0 crate (which reproduces
# vaderSentiment under CPython 3.14) diverged from this reference, found by
# a differential hunt over ~300,000 random/adversarial texts. Causes:
# (a) float sum(): CPython 3.12+ compensates, 3.11 does not, so sentiments
#     that cancel leave a residue (e.g. 4.4e-16) under 3.11 only, and a
#     non-zero sum takes the "!"/"?" emphasis (compound 0.0 vs +-0.07..0.6);
# (b) letters cased only in Unicode 15/16 (Garay U+10D50.., Cyrillic
#     Extended-D U+1E030.., Latin U+A7CB.., ...), which CPython 3.11's
#     Unicode 14 tables treat as uncased, so the all-caps rule differs.
REGRESSIONS = [
    'SOMEWHAT!!!\U0001e042 JOCULAR ',
    '\U00010792 BUT ASsEt+ ...blesser?? rigorously eerie$ service" >whoreson ',
    'cramp sLutTisHnESseS woNdeRFULLY screwer dEterMINatEnesS!!!!',
    '\U0001e06dRELIEFS *EMPTIEST??? ',
    ' innovate prickled rudesby!\n',
    '\U0001e03cMAGNIFICENCES BRIGHTLY ',
    'devilED apOlOGIzed Entertainers threatens reinvigorate LOYALTIES numbly Roflcopter YEARNING please warships gracility O_O scam stimulates WORRITS daring CoNfuSEdLy winned gorgeous notorious ly4e sluttish Uncertainness savagenesses distractingly casualty opportunisms Irrationally!!',
    'ADMIRERS \ua7da CRASH????',
    'NFC \U00010d5c HURRAY!!!',
    '\U00010d62 LEGAL FRISKY BATTLESHIPS!',
    '\U00010d5b\U00010d5b ACCEPTABILITY DYNAMOS CONTRADICTORINESS!!!',
    '\U0001e045\U0001e045 was Dumping i convincers Relaxations!?',
    'joystick excitabilities \U00010d80 is heartless!!',
    'the defensibility \U00010d74 disgust award????',
    'my \U0001df19 fitness cheerleaders prejudice????',
    'is \U0001078f\U0001078f weaponless attract this mistaker!!',
    'Funnies this ABSOLVES \U0001e03f\U0001e03f it RANCIDNESS??',
    'my \U0001078a not laidback loving twat!!',
    '\U0001e05d pressurized xlnt bullied!',
    '\U0001e04e admire amorphousness dangered never but!!',
    'Favouring lmfao raping \U0001df21!!!!',
    'but STRANGLED CHARMEUSE this valuing \U000107ac activenesses!!!',
    'this doubtlessly heronry my mourned \U0001079e????',
    '\U0001e04b\U0001e04b honoraria fucktard is mwah!!!!',
    'favoritism \U000107a0 encouraged hateful!!',
    'is prizers affection \U0001e038\U0001e038 betray!!!!',
    'blessedly promotes this \U0001e044 terrorises supremacy??',
    'impressionists strongyles \U0001df1d\U0001df1d that discarding!!',
    'radiant \U000107b7 warmouth Abusiveness least??',
    'libertarian stupid \U00010790 relaxes!!!!',
    'is slap afu cherished \U000107b4\U000107b4!!!',
    'kind of douchebag \U0001df2a challengers adoring!?',
    '\U000107b0 mourner teaspoonsful perfecto!',
    'i recommends romance rapes \U000107b1!?',
    'this fantastico successions \U000107a6\U000107a6 terrorizing that mwah!?',
    'fighter suicide gleeful \U0001e048\U0001e048???',
    'and \U00010781 warm dickhead sweets??',
    'hatefulness the \U0001df09\U0001df09 prominent delightsome!',
    'loves the profiteer my \U0001e034\U0001e034 fatality???',
    'prepared i joyriders harass \U00010797!!!',
    'my dream graticule the Aversions \U0001e067????',
    '\U0001df15\U0001df15 invigorators dynamically this miseries!!!!',
    'killings \U000107a0\U000107a0 offenseless i rejoicing!?',
    'is freedmen \U00010d84 toughened Romanticisms war!',
    'but \U0001079e\U0001079e swears devotedly neurotically??',
    'victimology \U00010782\U00010782 amorphously cheerfullest murderer????',
    'enjoyment \U0001e030 this prickets that afu????',
    '\U0001df1c kudos defenseman and weepiest????',
    'i safeness \U00010d71 Merrier abuse??',
    '\U0001df25\U0001df25 great apologize my suicidal???',
    'mwah humored \U000107ac rape!!',
    'respects inspired suicidal!',
    'toughed this excuse rapes rotflmfao!!',
    'jokesters WITHDRAWAL DUMBSTRUCK!',
    'delighter ideally slavery!!',
    'lamellas appreciators funerals never!?',
    'EXEMPT the jolliest KILLERS!?',
    'superiors is nicety solemnify bastard!!!',
    'was intelligible impressionism it revengefulness????',
    'the benignancy smartnesses horribles!!!',
    'helping my weaponless contradictions so but!!!',
    'and encouragingly peaceniks i Traumatic!!',
    'delicatessens PERFECTLY HATEFULNESS but!!!',
    'Kidding Apocalyptic heavenlier!',
    'lousewort devil lya!!',
    'allow Rude and actives!!',
    'perfectives the validating spitefully??',
    'Matters impolitely this adorer????',
    'excellence prevent doomed!!',
    'i livelihoods was foehns doomy!',
    'ruin adventurers commend never!!!',
    'Richened i dynamometry fail not???',
    'freebees beautifications my murder!!!',
    'trivially lovable this villains!!!',
    'giggly Verdicts interrupts!?',
    'is legally the masterpiece rapes???',
    'invigoration strengthener rapists??',
    'amorphously that Respectfulness revengers but??',
    'that libertarianism sprightly prejudicialness??',
    'peculiarities fearless is Vulture!!',
    'raping kind of joyriders gla???',
    'was champignon defensibly dithering!!!!',
    'lowercase and Peace repulse!!!!',
    'determinate slavery lyb!!!!',
    'libertarians exultant the terrorizes least!',
    'ntmu i lowercase is Haunt!',
    'i strongboxes terrorism fervent rewarded but!?',
    'this ilu HERONRY SUICIDE????',
    'raped entrusted lover!',
    'is fantastic intrigues suicide??',
    'dumbness profiterole Tranquilities???',
    'this teaspoon lenient welcomely kia???',
    'prevented bitchiness Merry!',
    'vigours aml slavery???',
    'tenderheartedness numbles strongyl damnable????',
    'Surety it strongyls collisions!',
    'gracefully tolerantly jackasses??',
    'peaceable hug Slavery????',
    'amusement amorphousness crushed!!!!',
    'libertinage strugglers adventurer!',
    'that adequate slavery confidence was slap??',
    'Idealess benignly yes??',
    'and JOCULAR invigorates that MURDERING???',
    'suicide creatin aml but!?',
    'dynamometer friended rude!!!',
    'cornered commits alright never!!!',
    'graticules weeping positivists??',
    'oversimplifies pukka and warmonger??',
    'convivial and Rapist reward!!!!',
    'boldfacing i LONELY NEATLY!!!',
    'Teaspoonful Favors that hiding??',
    'is fave that tricking abductions???',
    'impressionable adoration Terrorists!!',
    'suicide this retained ilu???',
    'that Discomforting tenderize vitalized!?',
    'and surefire kissers and suprematists sinister!',
    'painlessness sucky was intelligencer???',
    'ptl Prevent corpse!!!',
    'Gratins murderer is aml!!!!',
    'this speculative smuggled faultlessness??',
    'devil indestructible Delectably!!',
    'Bullied prizefighting aayf??',
    'vitalist Nastiest profiterole engaged??',
    'celebrating freebases suicide???',
    'activeness that defensibility it DYNAMOMETRY LAMEBRAIN???',
    'it vitalised it amortizing carelessness!!!',
    'tranquillizes it daring Inadequatenesses!?',
    'amusia distrustfully encouragers but!',
    'jk obscene Dynamisms and escape but!',
    'Worth intelligencer mofo!!!!',
    'toughened i stressfully Aas!!!!',
    'perfectas horridnesses gracefully!!!',
    'it suspect radians sillier!!!!',
    'this sympathetic it contestable is abhors????',
    'it ilu it await raping????',
    'that Thriller thoughtfulness i grouchiest??',
    'fatality intellection brilliances!',
    'this raping fair honorable!!',
    'ecstatics worshipper rapes!',
    'promisor the sorrowful commits freedman but????',
    'my Enthusiast nice killer???',
    'faultless swears feuded???',
    'it FORGIVINGNESS was creatin ATTACKS!!!',
    'freeform jokes it Undesirable???',
    'fuckface smartweeds lyl???',
    'possessive freeway was Amusable!!',
    'sillies kind of rapers is joy???',
    'pmji abusive and superior!',
    'that idealism murder and gratifyingly???',
    'amorettos Sweets fuked???',
    'wishes and suspicion freers????',
    'bizarre the tenderized is excitants!!!',
    'that joke interests Damnify!!!!',
    'Careful freehand smothery???',
    'relaxer Perfectas uninvolved???',
    'it invigoratingly beauticians mofo!',
    'xlnt virtuosi rapist!!!',
    'aas brilliantine terrorize????',
    'amoroso this freeholders is nfw!!!!',
    'the conciliated freesias was dupe least!',
    'murder sparkling peace!!',
    'GREAT \U00010d50',
]
add_all(REGRESSIONS)

# -------------------------------------------------------------------- write
assert len(texts) >= 1200, len(texts)
with open(OUT, "w", encoding="utf-8", newline="\n") as f:
    for t in texts:
        s = analyzer.polarity_scores(t)
        f.write(json.dumps({"text": t, "neg": s["neg"], "neu": s["neu"], "pos": s["pos"],
                            "compound": s["compound"]}, ensure_ascii=False) + "\n")
print("wrote %d texts to %s (%d bytes)" % (len(texts), OUT, os.path.getsize(OUT)))
