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
