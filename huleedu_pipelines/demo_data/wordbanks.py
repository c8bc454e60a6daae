"""Word banks and sentence templates for the demo essays.

Template mini-language (expanded by `huleedu_pipelines.demo_data.text`):

- ``{T} {G} {PRO} {CON} {ACT} {ALT} {PLACE}``: a phrase from the essay's prompt bank
  (topic, group of people, benefit, harm, verb phrase, alternative, place).
- ``{important}``, ``{show}``, ``{show_s}``, ``{change_ed}``: a word from `VOCABULARY` or
  `VERBS`, plain, intermediate or rare depending on the writer's vocabulary skill (``_s`` is
  the third person singular, ``_ed`` the past participle).
- ``[right|wrong]``: a grammar point, written wrongly with the writer's grammar error rate.
- ``^``: the article "a"/"an", chosen from the next word (and swapped on a grammar error,
  giving "a apple" / "an crucial").

Every template word is a dictionary word (pyspellchecker knows it), so that a spellchecker
flags only the misspellings from `MISSPELLINGS`; the tests check both.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PromptBank:
    prompt_id: str
    title: str
    text: str
    question: str
    """Completes "... whether <question>"."""
    topic: tuple[str, ...]
    """Singular or mass noun phrases that take "is" (subject or object)."""
    group: tuple[str, ...]
    """Plural people."""
    pro: tuple[str, ...]
    """Benefits: mass or plural noun phrases used as objects."""
    con: tuple[str, ...]
    """Harms: mass noun phrases that take "is"."""
    act: tuple[str, ...]
    """Verb phrases in the base form that `group` does."""
    alt: tuple[str, ...]
    """Gerund phrases for the alternative, taking "is"."""
    place: tuple[str, ...]
    sentences: tuple[str, ...]
    """Prompt-specific sentence templates (main clauses without final punctuation)."""


PROMPTS: tuple[PromptBank, ...] = (
    PromptBank(
        prompt_id="prompt-01",
        title="Social media and young people",
        text=(
            "Some people say that social media does more harm than good for young people, "
            "while others believe it helps teenagers stay in touch with friends and learn "
            "about the world. Discuss both views and give your own opinion."
        ),
        question="social media does more harm than good for young people",
        topic=("social media", "online networking", "the internet", "scrolling on a phone"),
        group=("young people", "teenagers", "students", "teens"),
        pro=("new friendships", "useful information", "creative ideas", "support from friends"),
        con=("stress", "online bullying", "poor sleep", "loneliness", "low self-esteem"),
        act=("share photos", "chat with friends", "follow the news", "watch short videos"),
        alt=("meeting friends in person", "reading a book", "playing sports outside"),
        place=("at home", "late at night", "during lessons", "on the bus"),
        sentences=(
            "{many} {G} check their phones before they get out of bed",
            "social media makes it {easy} to stay in touch with friends abroad",
            "some posts {show} a perfect life that does not exist",
            "online friendships can be as real as friendships at school",
            "{G} compare themselves with famous people online and feel worse about their bodies",
            "my younger sister says that [she spends|she spend] three hours a day on social media",
            "these platforms are designed to keep users scrolling for as long as possible",
            "news spreads faster on social media than on television",
        ),
    ),
    PromptBank(
        prompt_id="prompt-02",
        title="School uniforms",
        text=(
            "Should students be required to wear school uniforms? Some think uniforms create "
            "equality and discipline, while others say they limit self-expression. Give "
            "reasons for your answer."
        ),
        question="students should be required to wear school uniforms",
        topic=("a school uniform", "wearing a uniform", "the dress code", "a strict dress code"),
        group=("students", "pupils", "teenagers", "young learners"),
        pro=("equality", "discipline", "a sense of belonging", "school spirit"),
        con=("bullying about clothes", "high cost for families", "a lack of freedom"),
        act=("express themselves", "focus on their studies", "choose their own clothes"),
        alt=("wearing casual clothes", "choosing an outfit every morning"),
        place=("at school", "in the classroom", "on school trips", "in the morning"),
        sentences=(
            "uniforms make everyone look the same in the classroom",
            "a uniform can be expensive for families with many children",
            "{G} do not have to think about fashion every morning",
            "some schools in Britain have had uniforms for a hundred years",
            "clothes are an important way for {G} to show who they are",
            "a blazer and tie are not comfortable on a hot summer day",
            "teachers say that uniforms improve behavior in class",
            "my cousin wears a uniform and [she does not|she do not] mind it at all",
        ),
    ),
    PromptBank(
        prompt_id="prompt-03",
        title="Working from home",
        text=(
            "More and more people work from home instead of going to an office. Is remote "
            "work better than working in an office? Discuss the advantages and disadvantages."
        ),
        question="working from home is better than working in an office",
        topic=("remote work", "working from home", "the home office", "online work"),
        group=("employees", "workers", "parents", "young professionals"),
        pro=("more free time", "flexible hours", "less commuting", "a quiet place to think"),
        con=("isolation", "a lack of teamwork", "working too late", "poor communication"),
        act=("work from home", "save time on travel", "spend time with their children"),
        alt=("working in an office", "meeting colleagues every day", "commuting by train"),
        place=("at home", "in the office", "in the evening", "during meetings"),
        sentences=(
            "video calls are not the same as talking to a colleague face to face",
            "{G} who work from home save money on lunch and transport",
            "many companies have reduced their office space since the pandemic",
            "my mother is a nurse, but [she works|she work] from home one day a week",
            "it is hard to separate work and private life when the office is at home",
            "managers worry that [they are|they is] less productive at home",
            "new employees learn a lot by watching their colleagues",
            "a long commute makes people tired before the day even starts",
        ),
    ),
    PromptBank(
        prompt_id="prompt-04",
        title="Climate change and individual action",
        text=(
            "Climate change is one of the biggest problems of our time. What can individuals "
            "do to fight climate change, and is individual action enough, or must governments "
            "and companies act?"
        ),
        question="individual action is enough to fight climate change",
        topic=("climate change", "global warming", "recycling", "climate policy"),
        group=("individuals", "families", "young people", "consumers"),
        pro=("cleaner air", "lower emissions", "a healthier planet", "less waste"),
        con=("extreme weather", "air pollution", "flooding", "the loss of forests"),
        act=("recycle their waste", "eat less meat", "take the train", "save energy"),
        alt=("flying abroad on holiday", "driving a car every day", "buying new clothes"),
        place=("at home", "in the city", "at work", "in the supermarket"),
        sentences=(
            "governments have the power to make laws that protect nature",
            "a few large companies produce most of the emissions in the world",
            "{G} can choose to cycle instead of driving to work",
            "my family recycles glass and paper, and [it takes|it take] ten minutes a week",
            "summers are getting hotter and the ice in the Arctic is melting",
            "solar panels are much cheaper today than ten years ago",
            "one person cannot stop global warming alone",
            "eating less meat reduces the use of land and water",
        ),
    ),
    PromptBank(
        prompt_id="prompt-05",
        title="Homework",
        text=(
            "Some people think that schools give students too much homework, while others "
            "think homework is necessary for learning. Should schools give less homework? "
            "Explain your view."
        ),
        question="schools should give less homework",
        topic=("homework", "studying at home", "extra practice", "a long assignment"),
        group=("students", "pupils", "children", "teenagers"),
        pro=("better grades", "good study habits", "more practice", "responsibility"),
        con=("stress", "tiredness", "conflict at home", "a lack of free time"),
        act=("do their homework", "revise for tests", "read a chapter", "solve math problems"),
        alt=("playing outside", "spending time with family", "doing sports after school"),
        place=("at home", "after school", "at the weekend", "in the evening"),
        sentences=(
            "{many} {G} spend two hours on homework every evening",
            "homework helps students remember what they learned in class",
            "some parents help their children with homework and others cannot",
            "children also need time to play and rest",
            "teachers use homework to see if students understand the lesson",
            "my little brother cries when [he has|he have] too much homework",
            "research shows that short tasks are more useful than long ones",
            "students with part-time jobs have little time for homework",
        ),
    ),
    PromptBank(
        prompt_id="prompt-06",
        title="Mobile phones in schools",
        text=(
            "Many schools have banned mobile phones during the school day. Should mobile "
            "phones be banned in schools? Discuss both sides and give your opinion."
        ),
        question="mobile phones should be banned in schools",
        topic=("a mobile phone", "a phone ban", "screen time", "a cell phone"),
        group=("students", "teenagers", "pupils", "children"),
        pro=("better concentration", "more conversations", "calmer breaks", "safety"),
        con=("distraction", "cheating in tests", "online bullying", "addiction"),
        act=("use their phones", "call their parents", "look up information", "take notes"),
        alt=("talking to classmates", "reading during breaks", "playing games outside"),
        place=("at school", "in the classroom", "during breaks", "in the canteen"),
        sentences=(
            "a phone can be useful in an emergency",
            "[they are|they is] distracted every time their phone makes a sound",
            "some teachers use phones for quizzes and research in class",
            "my school collects all phones in a box, and [it is|it are] a good rule",
            "breaks are louder and happier when nobody is looking at a screen",
            "parents want to be able to call their children during the day",
            "a ban is difficult to control in a large school",
            "my best friend says that [she needs|she need] her phone in almost every lesson",
        ),
    ),
    PromptBank(
        prompt_id="prompt-07",
        title="Free public transport",
        text=(
            "Some cities have made buses and trains free for everyone. Should public "
            "transport be free in cities? Give reasons and examples."
        ),
        question="public transport should be free in cities",
        topic=("public transport", "free public transport", "the bus system", "city traffic"),
        group=("citizens", "commuters", "students", "families"),
        pro=("cleaner air", "less traffic", "cheaper travel", "more freedom"),
        con=("high cost for taxpayers", "crowded buses", "traffic jams", "air pollution"),
        act=("take the bus", "travel to work", "leave their cars at home", "visit the city"),
        alt=("driving a car", "cycling to work", "walking to school"),
        place=("in the city", "in the morning", "at rush hour", "in the suburbs"),
        sentences=(
            "a monthly ticket costs a lot for a family with three children",
            "Luxembourg was the first country to make public transport free",
            "{G} leave their cars at home when the bus is fast and cheap",
            "someone has to pay for the drivers, the fuel and the repairs",
            "buses are {often} late and crowded in the morning",
            "my grandfather is old, so [he takes|he take] the tram to the market every Saturday",
            "fewer cars downtown would make the streets safer",
            "free travel could help people with low incomes find a job",
        ),
    ),
    PromptBank(
        prompt_id="prompt-08",
        title="Learning a foreign language",
        text=(
            "Should everyone learn a second language at school? Some say it opens doors to "
            "other cultures and jobs, while others think the time is better spent on other "
            "subjects. Discuss and give your opinion."
        ),
        question="everyone should learn a second language at school",
        topic=("learning a language", "a second language", "language teaching", "English"),
        group=("students", "children", "young people", "adults"),
        pro=("better jobs", "new friendships", "cultural understanding", "travel"),
        con=("pressure", "boredom", "a lack of time", "frustration"),
        act=("speak with people abroad", "watch films without subtitles", "travel abroad"),
        alt=("studying science", "learning to code", "practising music"),
        place=("at school", "abroad", "on holiday", "at work"),
        sentences=(
            "children learn languages faster than adults",
            "my father grew up in Belgium, so [he speaks|he speak] three languages",
            "a translation program is not the same as understanding a person",
            "{G} who know two languages often find it easier to learn a third one",
            "many jobs in tourism and trade require a foreign language",
            "it takes years of practice to speak a language well",
            "grammar rules are boring for many students",
            "watching series in English helps students learn new words",
        ),
    ),
)


# Generic on-topic templates. Each names at least one prompt phrase, so it is on topic.
# Grammar points use forms a short list of patterns can detect (see GRAMMAR_ERROR_PATTERNS).
BODY_TEMPLATES: tuple[str, ...] = (
    "{T} is ^ {important} part of life for {G}",
    "{many} {G} {think} that [it is|it are] {good} for them to {ACT}",
    "{T} can {help} {G} to {ACT} {often}",
    "{T} can also {cause} {CON}, which is ^ {big} {problem}",
    "this {show_s} that [it has|it have] both {good} and {bad} sides",
    "{many} experts {think} that {CON} is ^ {big} {problem} for {G}",
    "a friend of mine told me that [she thinks|she think] about {T} {often}",
    "[it does not|it do not] have to be ^ {bad} thing, and schools [could have|could of] said so",
    "[we have|we has] {many} {reasons} to care about {T}",
    "{T} makes it {easy} for {G} to {ACT}",
    "in my opinion, {T} is more {useful} than {ALT}",
    "{ALT} is {very} {important} as well",
    "{G} need to learn how to {ACT} in ^ {responsible} way",
    "parents and teachers should {help} {G} to avoid {CON}",
    "{T} has {change_ed} the way {G} live",
    "[they were|they was] not ready for {CON} when it started",
    "some {people} {think} that {T} is a waste of time, but I do not agree",
    "{T} gives {G} {many} chances to {ACT}",
    "without {T}, it would be {hard} for {G} to {ACT}",
    "{G} can {get} {PRO} through {T}",
    "{CON} is ^ {common} {problem} among {G}",
    "the {big} {problem} is that [they are|they is] spending too much time on it",
    "[it is|it are] {clear} that {T} will not disappear soon",
    "my brother told me that [he thinks|he think] {T} is {good} for him",
    "{G} should {reduce} the {bad} {effects} of {T}",
    "{T} could {increase} {CON} for some {G}",
    "{many} {people} have changed their opinion about {T}",
    "my father says that [he does not|he do not] understand why {G} like {T} so much",
    "this is ^ {easy} way for {G} to {ACT}",
    "I [have|has] seen how {T} can {help} {G}",
    "{G} who {ACT} {often} are {very} {happy}",
    "it would be [better|more better] to find a balance between {T} and {ALT}",
    "we [were|was] talking about {T} in class last week",
    "{PRO} is ^ {important} result of {T}",
    "[it is|it are] {hard} to say if {T} is {good} or {bad}",
    "{T} is {often} discussed {PLACE}",
    "{G} want to {ACT} {PLACE}, and [it is|it are] {clear} why",
    "I [was|is] surprised when I read about {CON} and {T}",
    "{T} affects {G} in {many} different ways",
    "the {effects} of {T} are {clear} {PLACE}",
    "{G} say that [they are|they is] {very} {happy} when they can {ACT}",
    "[it is|it are] also ^ {big} {problem} when {CON} grows",
    "my sister is sure that [she knows|she know] why {T} is {very} {useful}",
    "{ALT} is [easier|more easier] than it sounds",
)

# Idiomatic, phraseologically rich templates (the writer's phraseology skill).
IDIOM_TEMPLATES: tuple[str, ...] = (
    "it is widely acknowledged that {T} plays a pivotal role in the lives of {G}",
    "there is no denying that {T} is a double-edged sword",
    "by and large, {G} stand to benefit from {PRO}",
    "this raises the question of whether {T} does more harm than good",
    "to a large extent, {CON} stems from the way {G} {ACT}",
    "it goes without saying that {PRO} cannot be taken for granted",
    "{T} has come under fire for fuelling {CON}",
    "on balance, the advantages of {T} outweigh its drawbacks",
    "last but not least, {G} ought to strike a balance between {T} and {ALT}",
    "in the long run, {PRO} pays off for {G}",
    "{T} is here to stay, for better or worse",
    "when all is said and done, {PRO} matters more than convenience",
)

# Subordinate clauses appended to a main clause (the writer's syntax skill).
SUBORDINATE_CLAUSES: tuple[str, ...] = (
    "{G} want to {ACT}",
    "[it is|it are] {hard} to {ACT} without help",
    "{T} is part of modern life",
    "{many} {people} do not worry about {CON}",
    "[they were|they was] younger",
    "teachers have {many} other things to do",
    "{ALT} takes more time",
    "[it is|it are] changing quickly",
    "{CON} is ^ {big} {problem} {PLACE}",
    "[it is|it are] {hard} to know what is {good} for {G}",
    "{PRO} matters more than anything else",
    "[it is|it are] not {easy} to find an answer",
    "[it has|it have] {many} {bad} {effects}",
    "[they are|they is] {often} busy",
)
PLAIN_SUBORDINATORS: tuple[str, ...] = (" because", " when", " if", " and", " so")
ADVANCED_SUBORDINATORS: tuple[str, ...] = (
    ", although",
    ", whereas",
    ", which means that",
    " since",
    " even though",
    ", while",
    " provided that",
    ", given that",
)

PLAIN_CONNECTIVES: tuple[str, ...] = ("And", "But", "So", "Also", "Then")
ADVANCED_CONNECTIVES: tuple[str, ...] = (
    "Moreover,",
    "Furthermore,",
    "Nevertheless,",
    "Consequently,",
    "Therefore,",
    "In addition,",
    "On the other hand,",
    "As a result,",
    "In contrast,",
    "Admittedly,",
    "Similarly,",
    "For instance,",
)

STOCK_OPENERS: tuple[str, ...] = ("I think that", "I think", "In my opinion")

INTRO_PLAIN: tuple[str, ...] = (
    "I will write about {T}",
    "today many {people} talk about if {question}",
    "this text is about {T} and {G}",
)
INTRO_ADVANCED: tuple[str, ...] = (
    "in this essay I will discuss whether {question}",
    "there is an ongoing debate about whether {question}",
    "this essay examines both sides of the debate on whether {question}",
)
CONCLUSION_PLAIN: tuple[str, ...] = (
    "so that is what I think about {T}",
    "that is all about {T}",
)
CONCLUSION_ADVANCED: tuple[str, ...] = (
    "in conclusion, {T} has both {good} and {bad} {effects}, but {G} can {reduce} "
    "the risks if they use it {carefully}",
    "to sum up, I {think} that {T} can {help} {G}, provided that it is used {carefully}",
    "all things considered, the question of whether {question} has no {easy} answer",
)

# Off-topic filler: no prompt words (the writer's task response skill).
FILLER_SENTENCES: tuple[str, ...] = (
    "my favorite food is pizza because [it has|it have] extra cheese",
    "last summer I went to my grandmother's house by the lake",
    "football is my favorite sport and I play it every weekend",
    "my dog is old and [it likes|it like] to sleep on the sofa all afternoon",
    "yesterday it rained all day so I stayed inside",
    "I [have|has] two cats and a small brown rabbit",
    "my uncle is a doctor and [he lives|he live] in a big city far away",
    "the weather was nice when we had a picnic in the park",
    "I like to listen to music when I clean my room",
    "our neighbors have a garden full of red flowers",
    "I want to visit Japan one day because the food looks delicious",
    "my birthday is in May and I usually have a party",
    "we watched a funny film about a talking horse",
    "my favorite season is summer because the days are long",
    "[we were|we was] {very} tired after the long walk in the forest",
    "my aunt says [she makes|she make] the best chocolate cake in the world",
)

GRAMMAR_ERROR_PATTERNS: tuple[str, ...] = (
    r"\b(they|we) (was|is|has)\b",
    r"\bI (is|has)\b",
    r"\b(he|she|it) (are|have|do|need|know|take|spend|work|speak|live|like|make|think)\b",
    r"\bmore (better|easier)\b",
    r"\bcould of\b",
    r"\ba (?!uni|use|usu|eu|one)[aeiou]\w*",
    r"\ban (?!hour)[b-df-hj-np-tv-z]\w*",
)
"""Regular expressions (case-insensitive) that find the grammar errors the templates make.
Documented for feature engineering and used by the tests; a real grammar checker finds more."""

# Vocabulary slots in three tiers: plain, intermediate (wordfreq Zipf ~3.5..4.8: "crucial",
# "demonstrate") and rare (Zipf < 3.5: "indispensable", "exacerbate"). A stronger vocabulary
# uses more non-plain words, and more of them from the rare tier, so any rare-word share
# (Zipf < 3.5 or < 4) and the mean word frequency move monotonically with the skill.
Tiers = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]
VOCABULARY: dict[str, Tiers] = {
    "important": (
        ("important",),
        ("crucial", "paramount", "pivotal", "vital"),
        ("indispensable", "quintessential"),
    ),
    "good": (("good", "nice"), ("beneficial", "constructive"), ("advantageous", "salutary")),
    "bad": (
        ("bad",),
        ("harmful", "detrimental", "adverse"),
        ("pernicious", "deleterious", "injurious"),
    ),
    "big": (
        ("big",),
        ("substantial", "considerable", "formidable"),
        ("colossal", "momentous", "sizable"),
    ),
    "problem": (
        ("problem",),
        ("dilemma", "obstacle"),
        ("drawback", "predicament", "impediment", "quandary"),
    ),
    "many": (("many", "a lot of"), ("numerous", "countless"), ("myriad", "innumerable")),
    "very": (
        ("very", "really"),
        ("remarkably", "exceptionally", "immensely"),
        ("exceedingly", "inordinately"),
    ),
    "often": (("often",), ("frequently", "routinely"), ("habitually", "invariably")),
    "easy": (("easy",), ("straightforward", "convenient"), ("effortless", "uncomplicated")),
    "hard": (
        ("hard", "difficult"),
        ("demanding", "challenging"),
        ("arduous", "daunting", "strenuous", "onerous"),
    ),
    "clear": (
        ("clear", "true"),
        ("evident", "apparent", "obvious"),
        ("indisputable", "undeniable", "unmistakable"),
    ),
    "common": (
        ("common", "normal"),
        ("widespread", "prevalent", "rampant"),
        ("ubiquitous", "pervasive", "commonplace"),
    ),
    "people": (("people",), ("individuals", "citizens"), ("inhabitants",)),
    "carefully": (
        ("carefully", "well"),
        ("responsibly", "thoughtfully"),
        ("judiciously", "prudently", "sensibly"),
    ),
    "useful": (
        ("useful", "helpful"),
        ("invaluable", "worthwhile", "valuable"),
        ("advantageous", "expedient"),
    ),
    "happy": (("happy",), ("fulfilled", "satisfied"), ("contented", "gratified")),
    "reasons": (("reasons",), ("motives", "motivations"), ("justifications", "rationales")),
    "effects": (
        ("effects",),
        ("consequences", "implications"),
        ("ramifications", "repercussions"),
    ),
    "responsible": (
        ("good", "safe"),
        ("responsible", "measured", "sensible"),
        ("conscientious", "judicious", "prudent"),
    ),
}

# Verbs in the same tiers: (base, third person singular, past participle).
Verb = tuple[str, str, str]
VERBS: dict[str, tuple[tuple[Verb, ...], tuple[Verb, ...], tuple[Verb, ...]]] = {
    "show": (
        (("show", "shows", "shown"),),
        (
            ("demonstrate", "demonstrates", "demonstrated"),
            ("illustrate", "illustrates", "illustrated"),
        ),
        (
            ("underscore", "underscores", "underscored"),
            ("exemplify", "exemplifies", "exemplified"),
        ),
    ),
    "help": (
        (("help", "helps", "helped"),),
        (("enable", "enables", "enabled"), ("empower", "empowers", "empowered")),
        (("embolden", "emboldens", "emboldened"),),
    ),
    "think": (
        (("think", "thinks", "thought"),),
        (
            ("believe", "believes", "believed"),
            ("contend", "contends", "contended"),
            ("assert", "asserts", "asserted"),
        ),
        (("posit", "posits", "posited"), ("opine", "opines", "opined")),
    ),
    "get": (
        (("get", "gets", "got"),),
        (("obtain", "obtains", "obtained"), ("acquire", "acquires", "acquired")),
        (("procure", "procures", "procured"), ("garner", "garners", "garnered")),
    ),
    "change": (
        (("change", "changes", "changed"),),
        (
            ("transform", "transforms", "transformed"),
            ("alter", "alters", "altered"),
            ("overhaul", "overhauls", "overhauled"),
        ),
        (
            ("reshape", "reshapes", "reshaped"),
            ("revolutionize", "revolutionizes", "revolutionized"),
        ),
    ),
    "increase": (
        (("increase", "increases", "increased"),),
        (
            ("intensify", "intensifies", "intensified"),
            ("amplify", "amplifies", "amplified"),
            ("worsen", "worsens", "worsened"),
        ),
        (
            ("exacerbate", "exacerbates", "exacerbated"),
            ("aggravate", "aggravates", "aggravated"),
        ),
    ),
    "reduce": (
        (("reduce", "reduces", "reduced"),),
        (
            ("mitigate", "mitigates", "mitigated"),
            ("alleviate", "alleviates", "alleviated"),
            ("curb", "curbs", "curbed"),
        ),
        (("diminish", "diminishes", "diminished"), ("attenuate", "attenuates", "attenuated")),
    ),
    "cause": (
        (("cause", "causes", "caused"), ("lead to", "leads to", "led to")),
        (("trigger", "triggers", "triggered"), ("provoke", "provokes", "provoked")),
        (
            ("engender", "engenders", "engendered"),
            ("precipitate", "precipitates", "precipitated"),
        ),
    ),
}

# Realistic learner misspellings of frequent template words. None is a dictionary word.
MISSPELLINGS: dict[str, str] = {
    "because": "becuase",
    "believe": "beleive",
    "their": "thier",
    "which": "wich",
    "people": "peopel",
    "different": "diffrent",
    "really": "realy",
    "important": "importent",
    "problem": "problam",
    "opinion": "opinon",
    "friends": "freinds",
    "friend": "freind",
    "school": "scool",
    "students": "studens",
    "think": "thinck",
    "many": "meny",
    "would": "wuold",
    "should": "shuold",
    "could": "cuold",
    "time": "tiem",
    "also": "allso",
    "every": "evry",
    "young": "yung",
    "parents": "parnets",
    "teachers": "teachres",
    "language": "langauge",
    "learning": "lerning",
    "learn": "lern",
    "easy": "easey",
    "family": "famly",
    "families": "familys",
    "something": "somthing",
    "homework": "homwork",
    "phones": "fones",
    "phone": "phon",
    "social": "socail",
    "media": "meida",
    "office": "ofice",
    "work": "wrok",
    "environment": "enviroment",
    "government": "goverment",
    "governments": "goverments",
    "pollution": "polution",
    "uniform": "uniforme",
    "uniforms": "uniformes",
    "transport": "transprot",
    "public": "publick",
    "travel": "travell",
    "money": "mony",
    "children": "childern",
    "teenagers": "teenagars",
    "about": "abuot",
    "there": "ther",
    "they": "thay",
    "were": "wer",
    "with": "whith",
    "when": "wehn",
    "what": "waht",
    "other": "othr",
    "things": "thigns",
    "good": "goood",
    "life": "lifes",
    "way": "whay",
    "together": "togehter",
    "experts": "expers",
    "usually": "usualy",
    "beautiful": "beautifull",
    "favorite": "favorit",
    "weekend": "weekand",
    "tired": "tierd",
    "surprised": "suprised",
    "understand": "understnad",
    "disappear": "dissapear",
    "necessary": "neccessary",
    "information": "infomation",
    "until": "untill",
}
