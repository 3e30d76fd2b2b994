"""Language lists of every XTREME / XTREME-R task (ISO 639-1 codes, official order)."""

_TATOEBA = ("ar he vi id jv tl eu ml ta te af nl de el bn hi mr ur fa fr it pt es bg ru ja ka ko th "
            "sw zh kk tr et fi hu").split()
_PANX = ("ar he vi id jv ms tl eu ml ta te af nl en de el bn hi mr ur fa fr it pt es bg ru ja ka ko "
         "th sw yo my zh kk tr et fi hu").split()
_UDPOS = ("af ar bg de el en es et eu fa fi fr he hi hu id it ja kk ko mr nl pt ru ta te th tl tr ur "
          "vi yo zh").split()
_XQUAD = "en es de el ru tr ar vi th zh hi".split()

XTREME = {
    "xnli": "ar bg de el en es fr hi ru sw th tr ur vi zh".split(),
    "pawsx": "de en es fr ja ko zh".split(),
    "udpos": _UDPOS,
    "panx": _PANX,
    "xquad": _XQUAD,
    "mlqa": "en es de ar hi vi zh".split(),
    "tydiqa": "en ar bn fi id ko ru sw te".split(),
    "bucc2018": "de fr ru zh".split(),
    "tatoeba": _TATOEBA,
}

XTREME_R = {
    "xnli": XTREME["xnli"],
    "xcopa": "et ht id it qu sw ta th tr vi zh".split(),
    "udpos": _UDPOS + "lt pl uk wo ro".split(),
    "panx": _PANX + "qu pl uk az lt pa gu ro".split(),
    "xquad": _XQUAD + ["ro"],
    "mlqa": XTREME["mlqa"],
    "tydiqa": XTREME["tydiqa"],
    "mewslix": "ar de en es fa ja pl ro ta tr uk".split(),
    "lareqa": "ar de el en es hi ru th tr vi zh".split(),
    "tatoeba": _TATOEBA + "az lt pl uk ro".split(),
}

BENCHMARKS = {"xtreme": XTREME, "xtreme-r": XTREME_R}

# LASER / Tatoeba three-letter codes used by the Tatoeba test files.
TATOEBA_ISO3 = dict(
    ar="ara", he="heb", vi="vie", id="ind", jv="jav", tl="tgl", eu="eus", ml="mal", ta="tam",
    te="tel", af="afr", nl="nld", de="deu", el="ell", bn="ben", hi="hin", mr="mar", ur="urd",
    fa="pes", fr="fra", it="ita", pt="por", es="spa", bg="bul", ru="rus", ja="jpn", ka="kat",
    ko="kor", th="tha", sw="swh", zh="cmn", kk="kaz", tr="tur", et="est", fi="fin", hu="hun",
    az="aze", lt="lit", pl="pol", uk="ukr", ro="ron")


def languages(task: str, benchmark: str = "xtreme-r") -> list[str]:
    """All languages of `task` in `benchmark`; falls back to the other benchmark's list."""
    table = BENCHMARKS[benchmark]
    if task in table:
        return list(table[task])
    for other in BENCHMARKS.values():
        if task in other:
            return list(other[task])
    raise KeyError(f"unknown target task {task!r}; known: {sorted(set(XTREME) | set(XTREME_R))}")


def benchmark_languages(task: str, benchmark: str) -> list[str] | None:
    """The default evaluation languages of `task`: its list in `benchmark` (XTREME and XTREME-R
    differ for udpos, panx, tatoeba and xquad), the other benchmark's for a task only there, None
    (the task's own list) for a task of neither."""
    try:
        return languages(task, benchmark)
    except KeyError:
        return None


# ISO 15924 script of every language code above, from CLDR's likely subtags (supplemental
# likelySubtags.xml: "ar" -> ar_Arab_EG, "kk" -> kk_Cyrl_KZ, "ko" -> ko_Kore_KR, "zh" -> zh_Hans_CN),
# which for a language written in several scripts names the script of its main variety. For the
# languages of XTREME that have several, that is also the script of XTREME's data: kk (UD
# Kazakh-KTB, kk Wikipedia for PAN-X, Tatoeba kaz) is Cyrillic, az (az Wikipedia, Tatoeba aze) Latin,
# pa (pa Wikipedia, Eastern Punjabi) Gurmukhi, ms / jv Latin (not Jawi / Javanese script). zh is
# Hans as CLDR says, though UD and Tatoeba mix in Traditional characters (both Han); ko is Kore
# (Hangul with Han, ISO 15924's code for Korean text), ja Jpan (Han with kana).
SCRIPT = dict(
    af="Latn", ar="Arab", az="Latn", bg="Cyrl", bn="Beng", de="Latn", el="Grek", en="Latn", es="Latn",
    et="Latn", eu="Latn", fa="Arab", fi="Latn", fr="Latn", gu="Gujr", he="Hebr", hi="Deva", ht="Latn",
    hu="Latn", id="Latn", it="Latn", ja="Jpan", jv="Latn", ka="Geor", kk="Cyrl", ko="Kore", lt="Latn",
    ml="Mlym", mr="Deva", ms="Latn", my="Mymr", nl="Latn", pa="Guru", pl="Latn", pt="Latn", qu="Latn",
    ro="Latn", ru="Cyrl", sw="Latn", ta="Taml", te="Telu", th="Thai", tl="Latn", tr="Latn", uk="Cyrl",
    ur="Arab", vi="Latn", wo="Latn", yo="Latn", zh="Hans")

# The demo world's languages: the script of the letters each one spells its words with
# (data/demo_world.py's PHONOLOGY, read through Unicode character names: "GREEK SMALL LETTER
# KAPPA" -> Grek), so a new demo language gets its entry, and a new alphabet fails the test.
_UNICODE_SCRIPT = {"LATIN": "Latn", "GREEK": "Grek", "CYRILLIC": "Cyrl"}


def _demo_scripts() -> dict:
    import unicodedata
    from xtreme_jax.data.demo_world import PHONOLOGY
    out = {}
    for lang, letters in PHONOLOGY.items():
        names = {unicodedata.name(ch).split()[0] for ch in "".join(letters)}
        if len(names) == 1 and next(iter(names)) in _UNICODE_SCRIPT:
            out[lang] = _UNICODE_SCRIPT[names.pop()]
    return out


SCRIPT.update(_demo_scripts())


def script_of(lang: str) -> str | None:
    """The ISO 15924 script of a language code (None: not in SCRIPT)."""
    return SCRIPT.get(lang)
