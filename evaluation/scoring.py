"""Character error rate (CER) with the per-item compare rules of evaluation/data/SOURCES.md.

CER = edit distance / ground-truth length, after normalising both sides:
- whitespace runs collapse to one space (``whitespace-insensitive`` items: all removed);
- ``case-insensitive`` items are case-folded;
- item-specific equivalences (O/0 in "HellO", full-width colon, the receipt's ￥ label error);
- ``~`` in the UNLV ground truth matches any one character;
- ``order-insensitive`` items (scenes, UNLV pages) are scored line by line: ground-truth and
  predicted lines are paired greedily by edit distance; unpaired lines count in full;
- predictions centred inside an ICDAR ``###`` (do-not-care) polygon are ignored.
The same scorer is applied to every pipeline compared, so the comparison is like for like.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from rapidfuzz.distance import Levenshtein
from shapely.geometry import Point, Polygon


@dataclass(frozen=True)
class Rule:
    case_insensitive: bool = False
    whitespace_insensitive: bool = False
    order_insensitive: bool = False
    wildcard: str | None = None
    gt_map: dict[str, str] = field(default_factory=dict)  # applied to the ground truth only
    both_map: dict[str, str] = field(default_factory=dict)  # applied to both sides
    dont_care_file: str | None = None  # ICDAR gt with ### polygons


_CI = Rule(case_insensitive=True)
_UNLV = Rule(order_insensitive=True, wildcard="~")

# One entry per evaluation item; a test checks this covers the manifest exactly.
RULES: dict[str, Rule] = {
    "tess_phototest.png": Rule(),
    "tess_eurotext.png": Rule(),
    "tess_hello_google.png": Rule(),
    "tess_digits_324.png": Rule(),
    "tess_segmodeimg.png": Rule(order_insensitive=True),  # sparse regions, GT lists them by test
    "tess_trainingtimes_page.png": Rule(),
    "tess_unlv_8087_054.png": _UNLV,
    "tess_unlv_8071_093.png": _UNLV,
    "tjs_simple.png": Rule(),
    "tjs_simple_exif90.jpg": Rule(),
    "tjs_escape_chars.png": Rule(),
    "tjs_cosmic_alpha.png": Rule(both_map={"0": "O"}),
    "tjs_chinese_tra.png": Rule(whitespace_insensitive=True),
    "pp_word_10.png": Rule(),
    "pp_word_336.png": _CI,
    "pp_en_word_1.png": _CI,
    "pp_ch_word_1.jpg": Rule(),
    "pp_ch_word_4.jpg": Rule(),
    "pp_ch_word_2.jpg": Rule(),
    "pp_ch_word_3.jpg": Rule(both_map={"：": ":"}),
    "dtrb_demo_1.png": _CI,
    "dtrb_demo_4.png": _CI,
    "dtrb_demo_7.png": _CI,
    "dtrb_demo_10.jpg": _CI,
    "mmocr_rec_1036169.jpg": Rule(),
    "mmocr_rec_1058891.jpg": Rule(),
    "ic15_img_1.jpg": Rule(order_insensitive=True, dont_care_file="ic15_img_1.icdar_gt.txt"),
    "ic15_img_8.jpg": Rule(order_insensitive=True, dont_care_file="ic15_img_8.icdar_gt.txt"),
    "wildreceipt_2.jpeg": Rule(whitespace_insensitive=True, order_insensitive=True, gt_map={"￥": "$"}),
    "easyocr_chinese.jpg": Rule(order_insensitive=True),
    "skimage_page.png": Rule(),
}


@dataclass
class PredLine:
    text: str
    box: list[list[float]] | None = None


@dataclass
class Score:
    errors: int
    gt_chars: int

    @property
    def cer(self) -> float:
        return self.errors / max(self.gt_chars, 1)


def _map(text: str, mapping: dict[str, str]) -> str:
    for k, v in mapping.items():
        text = text.replace(k, v)
    return text


def normalize(text: str, rule: Rule, is_gt: bool) -> str:
    text = _map(text, rule.both_map)
    if is_gt:
        text = _map(text, rule.gt_map)
    if rule.case_insensitive:
        text = text.casefold()
    if rule.whitespace_insensitive:
        return re.sub(r"\s+", "", text)
    return re.sub(r"\s+", " ", text).strip()


def distance(pred: str, gt: str, wildcard: str | None = None) -> int:
    """Edit distance; a wildcard character in the ground truth matches any one character."""
    if not wildcard or wildcard not in gt:
        return Levenshtein.distance(pred, gt)
    prev = list(range(len(gt) + 1))
    for i, pc in enumerate(pred, 1):
        cur = [i] + [0] * len(gt)
        for j, gc in enumerate(gt, 1):
            sub = 0 if (gc == pc or gc == wildcard) else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + sub)
        prev = cur
    return prev[-1]


def dont_care_polygons(path: Path) -> list[Polygon]:
    polys = []
    for line in path.read_text(encoding="utf-8-sig").splitlines():
        parts = line.strip().split(",")
        if len(parts) >= 9 and parts[8].strip() == "###":
            xy = [float(v) for v in parts[:8]]
            polys.append(Polygon(list(zip(xy[0::2], xy[1::2]))))
    return polys


def _inside_any(box: list[list[float]] | None, polys: list[Polygon]) -> bool:
    if not box or not polys:
        return False
    cx = sum(p[0] for p in box) / len(box)
    cy = sum(p[1] for p in box) / len(box)
    centre = Point(cx, cy)
    return any(poly.buffer(2).contains(centre) for poly in polys)


def score_item(pred: list[PredLine], gt_lines: list[str], rule: Rule, dont_care: list[Polygon] | None = None) -> Score:
    if dont_care:
        pred = [p for p in pred if not _inside_any(p.box, dont_care)]
    gts = [g for g in (normalize(x, rule, True) for x in gt_lines) if g]
    preds = [p for p in (normalize(x.text, rule, False) for x in pred) if p]
    gt_chars = sum(len(g) for g in gts) + (0 if rule.whitespace_insensitive or rule.order_insensitive else max(len(gts) - 1, 0))
    if not rule.order_insensitive:
        sep = "" if rule.whitespace_insensitive else " "
        return Score(distance(sep.join(preds), sep.join(gts), rule.wildcard), gt_chars)
    # order-insensitive: greedy pairing by normalised distance
    pairs = []
    for i, g in enumerate(gts):
        for j, p in enumerate(preds):
            d = Levenshtein.distance(p, g)
            pairs.append((d / max(len(g), len(p), 1), d, i, j))
    pairs.sort()
    used_g, used_p, errors = set(), set(), 0
    for ratio, _d, i, j in pairs:
        if i in used_g or j in used_p or ratio >= 1.0:
            continue
        used_g.add(i)
        used_p.add(j)
        errors += distance(preds[j], gts[i], rule.wildcard)
    errors += sum(len(g) for i, g in enumerate(gts) if i not in used_g)
    errors += sum(len(p) for j, p in enumerate(preds) if j not in used_p)
    return Score(errors, gt_chars)


@dataclass(frozen=True)
class EvalItem:
    name: str
    image: Path
    gt_lines: list[str]
    rule: Rule
    dont_care: list[Polygon]


def load_items(eval_dir: Path) -> list[EvalItem]:
    manifest = json.loads((eval_dir / "manifest.json").read_text(encoding="utf-8"))
    items = []
    for entry in manifest:
        name = entry["file"]
        rule = RULES[name]
        gt = (eval_dir / entry["gt"]).read_text(encoding="utf-8").splitlines()
        polys = dont_care_polygons(eval_dir / rule.dont_care_file) if rule.dont_care_file else []
        items.append(EvalItem(name, eval_dir / name, [g for g in gt if g.strip()], rule, polys))
    return items
