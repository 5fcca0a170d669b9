#!/usr/bin/env python3
"""Deterministic generator for tessera's embedded demo/test dataset.

Everything under data/embedded/ except this script and README.md is produced
here, from seeded random streams and hand-written word lists; nothing is
downloaded.  Running the script twice gives byte-identical files (checked by
--verify, which regenerates into a temporary directory and compares sha256).

    python data/embedded/generate.py            # (re)write data/embedded/
    python data/embedded/generate.py --out DIR  # write somewhere else
    python data/embedded/generate.py --verify   # generate twice, compare hashes

Requirements: Python >= 3.9 and Pillow >= 10.1 (only for the images).  The committed
bytes were produced with CPython 3.11 and Pillow 13.0.0 (FreeType 2.14.3,
zlib 1.2.13, libjpeg-turbo 3.2.0); other Pillow/zlib/libjpeg builds may encode
the same pixels into different PNG/JPEG bytes, the JSONL files do not depend
on Pillow at all.

The volunteer-matching scoring rule (see score_pair / solve_matching and
README.md, section "Scoring rule") is the contract for the GRPO reward plugin.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import io
import itertools
import json
import math
import os
import random
import re
import shutil
import sys
import tempfile
from contextlib import redirect_stdout
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

# ---------------------------------------------------------------------------
# Determinism helpers
# ---------------------------------------------------------------------------

MASTER_SEED = "tessera-embedded-v1"


def rng_for(purpose: str) -> random.Random:
    """One independent, seeded stream per purpose, so editing one section of
    the generator does not shift the random numbers of the others."""
    digest = hashlib.sha256(f"{MASTER_SEED}/{purpose}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def dumps(obj) -> str:
    """Canonical one-line JSON: UTF-8 (no \\u escapes), compact separators."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def write_jsonl(path: str, rows) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(dumps(row))
            f.write("\n")


def dec(x, places: int) -> str:
    """Round half-up on the exact decimal value and format (no float repr)."""
    q = Decimal(1).scaleb(-places)
    return str(Decimal(x).quantize(q, rounding=ROUND_HALF_UP))


def fmt_num(x) -> str:
    """Integers without '.0', other rationals with up to 4 decimals."""
    if isinstance(x, Fraction):
        if x.denominator == 1:
            return str(x.numerator)
        s = dec(Decimal(x.numerator) / Decimal(x.denominator), 4)
        return s.rstrip("0").rstrip(".")
    if isinstance(x, int):
        return str(x)
    return str(x)


def est_tokens(text_len: int) -> int:
    return math.ceil(text_len / 3.5)


def conv_chars(messages) -> int:
    n = 0
    for m in messages:
        n += len(m.get("content", ""))
        n += len(m.get("reasoning_content", ""))
        for tc in m.get("tool_calls", []):
            n += len(tc["function"]["name"]) + len(dumps(tc["function"]["arguments"]))
    return n


# ---------------------------------------------------------------------------
# World: region, towns, skills, names
# ---------------------------------------------------------------------------

SKILLS = [
    "first_aid",
    "search_and_rescue",
    "psychological_support",
    "logistics",
    "firefighting",
    "medical_doctor",
    "translation",
    "driving_heavy_vehicles",
]
SKILL_LABEL = {
    "first_aid": "First Aid",
    "search_and_rescue": "Search and Rescue",
    "psychological_support": "Psychological Support",
    "logistics": "Logistics",
    "firefighting": "Firefighting",
    "medical_doctor": "Medical Doctor",
    "translation": "Translation",
    "driving_heavy_vehicles": "Heavy Vehicle Driving",
}
SKILL_ZH = {
    "first_aid": "急救",
    "search_and_rescue": "搜救",
    "psychological_support": "心理支持",
    "logistics": "后勤",
    "firefighting": "消防",
    "medical_doctor": "医生",
    "translation": "翻译",
    "driving_heavy_vehicles": "重型车辆驾驶",
}
SKILL_WEIGHT = {
    "first_aid": 10,
    "search_and_rescue": 6,
    "psychological_support": 5,
    "logistics": 9,
    "firefighting": 5,
    "medical_doctor": 3,
    "translation": 4,
    "driving_heavy_vehicles": 5,
}
# Card colours per skill (border, tint).
SKILL_COLOR = {
    "first_aid": ((190, 30, 45), (253, 240, 240)),
    "search_and_rescue": ((230, 110, 20), (255, 246, 236)),
    "psychological_support": ((110, 70, 160), (246, 241, 252)),
    "logistics": ((30, 100, 170), (238, 245, 252)),
    "firefighting": ((160, 20, 20), (255, 243, 232)),
    "medical_doctor": ((20, 130, 90), (236, 250, 244)),
    "translation": ((40, 120, 140), (236, 248, 250)),
    "driving_heavy_vehicles": ((90, 90, 90), (246, 246, 242)),
}

# Northern Italy and the neighbouring Alps (WGS84 degrees, 4 decimals).
TOWNS = [
    # name, lat, lon, local languages, weight for volunteer homes
    ("Milano", 45.4642, 9.1900, ["it"], 9),
    ("Torino", 45.0703, 7.6869, ["it"], 6),
    ("Genova", 44.4056, 8.9463, ["it"], 4),
    ("Bologna", 44.4949, 11.3426, ["it"], 5),
    ("Verona", 45.4384, 10.9916, ["it"], 4),
    ("Brescia", 45.5416, 10.2118, ["it"], 4),
    ("Bergamo", 45.6983, 9.6773, ["it"], 4),
    ("Trento", 46.0748, 11.1217, ["it"], 3),
    ("Bolzano", 46.4983, 11.3548, ["de", "it"], 3),
    ("Venezia", 45.4408, 12.3155, ["it"], 3),
    ("Padova", 45.4064, 11.8768, ["it"], 3),
    ("Parma", 44.8015, 10.3279, ["it"], 3),
    ("Lugano", 46.0037, 8.9511, ["it"], 2),
    ("Como", 45.8081, 9.0852, ["it"], 2),
    ("Aosta", 45.7372, 7.3206, ["fr", "it"], 2),
    ("Udine", 46.0711, 13.2346, ["it"], 2),
    ("Innsbruck", 47.2692, 11.4041, ["de"], 2),
]
TOWN = {t[0]: t for t in TOWNS}

# Names are ASCII on purpose: the certificate images are drawn with Pillow's
# built-in font, which has no accented glyphs, and the image text must match
# the JSON text exactly.
NAME_GROUPS = {
    "it": (
        ["Alessandro", "Giulia", "Marco", "Francesca", "Luca", "Chiara", "Matteo", "Sara",
         "Davide", "Elena", "Paolo", "Martina", "Giorgio", "Federica", "Stefano", "Valentina",
         "Andrea", "Silvia", "Simone", "Laura", "Riccardo", "Irene", "Tommaso", "Beatrice"],
        ["Rossi", "Bianchi", "Romano", "Colombo", "Ricci", "Marino", "Greco", "Bruno", "Gallo",
         "Conti", "De Luca", "Costa", "Giordano", "Mancini", "Rizzo", "Lombardi", "Moretti",
         "Barbieri", "Fontana", "Ferrari", "Galli", "Villa", "Sala", "Rinaldi"],
    ),
    "de": (
        ["Lukas", "Anna", "Jonas", "Lena", "Matthias", "Katharina", "Florian", "Sophie",
         "Tobias", "Magdalena"],
        ["Gruber", "Huber", "Mair", "Pichler", "Moser", "Hofer", "Steiner", "Wieser", "Egger",
         "Oberhofer"],
    ),
    "fr": (
        ["Camille", "Julien", "Elodie", "Mathieu", "Chloe", "Nicolas"],
        ["Bertrand", "Favre", "Perrin", "Girard", "Morel", "Chevalier"],
    ),
    "uk": (
        ["Olena", "Andrii", "Iryna", "Dmytro", "Kateryna", "Oleksandr"],
        ["Shevchenko", "Kovalenko", "Bondarenko", "Tkachenko", "Kravchenko", "Melnyk"],
    ),
    "ar": (
        ["Youssef", "Fatima", "Omar", "Amina", "Karim", "Leila"],
        ["El Amrani", "Haddad", "Benali", "Mansour", "Saleh", "Khalil"],
    ),
    "ro": (
        ["Andrei", "Ioana", "Mihai", "Alexandru", "Ana", "Cristina"],
        ["Popescu", "Ionescu", "Dumitru", "Stan", "Gheorghe", "Marin"],
    ),
    "es": (
        ["Lucia", "Javier", "Carmen", "Diego", "Maria", "Pablo"],
        ["Garcia", "Fernandez", "Lopez", "Martinez", "Sanchez", "Romero"],
    ),
    "zh": (
        ["Wei", "Jing", "Hao", "Min", "Yan", "Lei"],
        ["Chen", "Wang", "Zhang", "Liu", "Huang", "Zhou"],
    ),
}
LANG_NAME = {"it": "Italian", "de": "German", "fr": "French", "uk": "Ukrainian",
             "ar": "Arabic", "ro": "Romanian", "es": "Spanish", "zh": "Chinese", "en": "English"}
ALL_LANGS = ["it", "en", "de", "fr", "es", "uk", "ar", "ro", "zh"]

PERIOD_START = dt.datetime(2025, 6, 2, 0, 0)  # naive, always UTC
PERIOD_HOURS = 14 * 24
ISO = "%Y-%m-%dT%H:%M:%SZ"


def iso(t: dt.datetime) -> str:
    return t.strftime(ISO)


def parse_iso(s: str) -> dt.datetime:
    return dt.datetime.strptime(s, ISO)


def jitter(rng: random.Random, lat: float, lon: float, max_km: float):
    r = max_km * math.sqrt(rng.random())
    th = rng.random() * 2 * math.pi
    dlat = r * math.cos(th) / 111.0
    dlon = r * math.sin(th) / (111.0 * math.cos(math.radians(lat)))
    return round(lat + dlat, 4), round(lon + dlon, 4)


# ---------------------------------------------------------------------------
# Volunteers
# ---------------------------------------------------------------------------

N_VOLUNTEERS = 72


def make_volunteers():
    rng = rng_for("volunteers")
    group_weights = [("it", 52), ("de", 9), ("fr", 5), ("uk", 6), ("ar", 6), ("ro", 5),
                     ("es", 5), ("zh", 4)]
    groups = [g for g, _ in group_weights]
    gw = [w for _, w in group_weights]
    towns = [t[0] for t in TOWNS]
    tw = [t[4] for t in TOWNS]
    used_names = []
    used_numbers = []
    vols = []
    sizes = [(320, 200), (400, 250), (480, 300), (560, 350), (640, 400), (720, 450),
             (800, 500), (900, 600), (600, 400), (500, 360), (420, 300), (400, 560),
             (360, 480)]
    for i in range(1, N_VOLUNTEERS + 1):
        town = rng.choices(towns, tw)[0]
        tname, tlat, tlon, tlangs, _ = TOWN[town]
        if "de" in tlangs and rng.random() < 0.6:
            g = "de"
        elif "fr" in tlangs and rng.random() < 0.5:
            g = "fr"
        else:
            g = rng.choices(groups, gw)[0]
        first, last = NAME_GROUPS[g]
        while True:
            name = f"{rng.choice(first)} {rng.choice(last)}"
            if name not in used_names:
                break
        used_names.append(name)
        lat, lon = jitter(rng, tlat, tlon, 22.0)
        langs = [g]
        if g != "it" and (rng.random() < 0.8 or "it" in tlangs):
            langs.append("it")
        if rng.random() < 0.55:
            langs.append("en")
        if rng.random() < 0.15:
            extra = rng.choice([x for x in ALL_LANGS if x not in langs])
            langs.append(extra)
        nskills = rng.choices([1, 2, 3], [35, 45, 20])[0]
        pool = list(SKILLS)
        skills = []
        while len(skills) < nskills:
            s = rng.choices(pool, [SKILL_WEIGHT[p] for p in pool])[0]
            if s == "translation" and len(langs) < 2:
                pool.remove(s)
                continue
            skills.append(s)
            pool.remove(s)
        # Availability: 2-4 disjoint windows on whole hours inside the period.
        nwin = rng.choice([2, 3, 3, 4, 4])
        windows = []
        tries = 0
        while len(windows) < nwin and tries < 200:
            tries += 1
            length = rng.choice([18, 24, 36, 48, 60, 72, 96, 120])
            start = rng.randrange(0, PERIOD_HOURS - length + 1)
            end = start + length
            if all(end + 4 <= s or start >= e + 4 for s, e in windows):
                windows.append((start, end))
        windows.sort()
        availability = [
            {"start": iso(PERIOD_START + dt.timedelta(hours=s)),
             "end": iso(PERIOD_START + dt.timedelta(hours=e))}
            for s, e in windows
        ]
        cert_skill = skills[0]
        year = rng.choice([2019, 2020, 2021, 2022, 2023, 2024])
        issued = dt.date(year, rng.randint(1, 12), rng.randint(1, 28))
        years_valid = rng.choice([3, 5, 5])
        valid_until = dt.date(issued.year + years_valid, issued.month, issued.day)
        while True:
            number = f"CPV-{year}-{rng.randint(10000, 99999)}"
            if number not in used_numbers:
                break
        used_numbers.append(number)
        ext = "jpg" if i % 6 == 0 else "png"
        w, h = rng.choice(sizes if ext == "png" else [s for s in sizes if s[0] * s[1] <= 200000])
        vols.append({
            "id": f"vol_{i:04d}",
            "name": name,
            "skills": skills,
            "home": {"lat": lat, "lon": lon, "town": town},
            "availability": availability,
            "languages": langs,
            "certificate": {
                "image": f"images/cert_{i:04d}.{ext}",
                "skill": cert_skill,
                "number": number,
                "issued": issued.isoformat(),
                "valid_until": valid_until.isoformat(),
                "width": w,
                "height": h,
            },
        })
    return vols


# ---------------------------------------------------------------------------
# Incidents
# ---------------------------------------------------------------------------

INCIDENT_TYPES = {
    # type: (needs pool with weights, description templates)
    "flood": (
        {"logistics": 5, "driving_heavy_vehicles": 4, "first_aid": 4, "search_and_rescue": 3,
         "psychological_support": 2},
        ["Heavy rain made the {river} overflow near {town}; {n} residents were moved to the "
         "{shelter}. Sandbags, pumps and water deliveries are needed.",
         "Flash flooding after a {hours}-hour storm cut off two villages east of {town}. "
         "Around {n} people are waiting for transport to the {shelter}.",
         "The {river} rose {cm} cm above the alert level at {town}; cellars are flooded and "
         "{n} elderly residents need help leaving their homes."],
    ),
    "earthquake": (
        {"search_and_rescue": 5, "first_aid": 5, "medical_doctor": 3, "psychological_support": 4,
         "logistics": 3},
        ["A magnitude {mag} earthquake struck {km} km from {town}. Several old buildings are "
         "damaged and {n} people are sleeping outside near the {shelter}.",
         "Aftershocks continue near {town} after a magnitude {mag} event; {n} residents have "
         "been evacuated and a field clinic is being set up at the {shelter}."],
    ),
    "wildfire": (
        {"firefighting": 6, "logistics": 3, "first_aid": 3, "driving_heavy_vehicles": 3},
        ["A wildfire is spreading through dry woodland {km} km from {town}, pushed by "
         "{wind} km/h winds. {n} people were evacuated to the {shelter}.",
         "Brush fire on the slopes above {town}; firebreaks must be cut and water tankers "
         "refilled. {n} hikers and residents were moved to the {shelter}."],
    ),
    "missing_person": (
        {"search_and_rescue": 6, "first_aid": 3, "psychological_support": 2, "translation": 2},
        ["A {age}-year-old hiker has been missing since yesterday evening on the trails above "
         "{town}. The family is waiting at the {shelter}.",
         "An elderly man with dementia left his home in {town} {hours} hours ago. Search "
         "sectors are being assigned from the {shelter}.",
         "Two foreign tourists did not return from a via ferrata near {town}; they speak "
         "little Italian. The base is at the {shelter}."],
    ),
    "landslide": (
        {"search_and_rescue": 4, "driving_heavy_vehicles": 5, "logistics": 4, "first_aid": 3},
        ["A landslide blocked the provincial road above {town} after {hours} hours of rain; "
         "{n} residents are cut off. Supplies go out from the {shelter}.",
         "Mud and debris reached the first houses of a hamlet near {town}. {n} people were "
         "evacuated; heavy vehicles are needed to clear the road."],
    ),
    "storm": (
        {"logistics": 5, "driving_heavy_vehicles": 3, "first_aid": 3, "firefighting": 2},
        ["A hailstorm with {wind} km/h gusts damaged roofs across {town}; {n} families need "
         "tarpaulins and temporary shelter at the {shelter}.",
         "Fallen trees blocked several streets in {town} after a night storm. Power is out "
         "for about {n} households."],
    ),
    "heatwave": (
        {"first_aid": 5, "medical_doctor": 3, "logistics": 4, "psychological_support": 2,
         "translation": 2},
        ["Temperatures above {temp} C for {days} days in {town}; a cooling centre opened at "
         "the {shelter} and {n} isolated elderly residents need daily checks.",
         "Heatwave alert in {town}: seasonal farm workers report heat exhaustion. Water and "
         "first aid points are needed near the {shelter}."],
    ),
    "evacuation_centre": (
        {"psychological_support": 4, "translation": 4, "logistics": 4, "first_aid": 3,
         "medical_doctor": 2},
        ["The {shelter} in {town} is hosting {n} displaced people from several countries; "
         "registration, interpreting and medical screening are needed.",
         "A reception centre for {n} families opened at the {shelter} in {town}. Many speak "
         "only Ukrainian or Arabic."],
    ),
    "avalanche": (
        {"search_and_rescue": 6, "first_aid": 3, "medical_doctor": 2, "logistics": 2},
        ["A late-season avalanche hit a ski-touring route near {town}; {n} people may be "
         "buried. The rescue base is at the {shelter}."],
    ),
}
RIVERS = {"Milano": "Seveso", "Torino": "Po", "Genova": "Bisagno", "Bologna": "Reno",
          "Verona": "Adige", "Brescia": "Mella", "Bergamo": "Serio", "Trento": "Adige",
          "Bolzano": "Isarco", "Venezia": "Brenta", "Padova": "Bacchiglione", "Parma": "Parma",
          "Lugano": "Vedeggio", "Como": "Cosia", "Aosta": "Dora Baltea", "Udine": "Torre",
          "Innsbruck": "Inn"}
SHELTERS = ["sports hall", "primary school gym", "parish hall", "exhibition centre",
            "fire station", "community centre", "town hall", "red cross base"]
N_INCIDENTS = 32


def make_incidents():
    rng = rng_for("incidents")
    types = list(INCIDENT_TYPES)
    incs = []
    for i in range(1, N_INCIDENTS + 1):
        typ = types[(i - 1) % len(types)] if i <= len(types) else rng.choice(types)
        town = rng.choice([t[0] for t in TOWNS if t[0] not in ("Innsbruck",)]
                          if typ != "avalanche" else ["Aosta", "Bolzano", "Trento", "Innsbruck"])
        tname, tlat, tlon, tlangs, _ = TOWN[town]
        lat, lon = jitter(rng, tlat, tlon, 15.0)
        pool, templates = INCIDENT_TYPES[typ]
        nskills = rng.choice([1, 2, 2, 2, 3])
        cand = list(pool)
        needs = []
        while len(needs) < nskills:
            s = rng.choices(cand, [pool[c] for c in cand])[0]
            cand.remove(s)
            needs.append({"skill": s, "count": rng.choice([1, 1, 1, 2, 2, 3])})
        start_h = rng.randrange(6, PERIOD_HOURS - 30)
        dur = rng.choice([4, 6, 8, 8, 10, 12, 16])
        start = PERIOD_START + dt.timedelta(hours=start_h)
        end = start + dt.timedelta(hours=dur)
        if typ == "evacuation_centre":
            language = rng.choice(["uk", "ar", "uk", "ar", "en"])
        elif typ == "missing_person" and rng.random() < 0.4:
            language = rng.choice(["en", "de", "fr", "es"])
        else:
            language = tlangs[0] if rng.random() < 0.85 else rng.choice(["en", "ro", "ar"])
        desc = rng.choice(templates).format(
            river=RIVERS[town], town=town, n=rng.choice([12, 25, 40, 60, 85, 120, 200, 350]),
            shelter=rng.choice(SHELTERS), hours=rng.choice([3, 6, 9, 14, 20]),
            cm=rng.choice([40, 70, 90, 130]), mag=rng.choice(["4.2", "4.8", "5.1", "5.6"]),
            km=rng.choice([6, 9, 14, 22]), wind=rng.choice([45, 60, 75, 90]),
            age=rng.choice([17, 24, 36, 52, 67, 71]), temp=rng.choice([36, 38, 39, 41]),
            days=rng.choice([4, 5, 7, 9]),
        )
        incs.append({
            "id": f"inc_{i:04d}",
            "type": typ,
            "town": town,
            "location": {"lat": lat, "lon": lon},
            "start": iso(start),
            "end": iso(end),
            "language": language,
            "needs": needs,
            "description": desc,
        })
    return incs


# ---------------------------------------------------------------------------
# Scoring rule (the reward contract; keep README.md "Scoring rule" in sync)
# ---------------------------------------------------------------------------

EARTH_RADIUS_KM = 6371.0
MAX_DISTANCE_KM = 120.0
MIN_OVERLAP_FRACTION = 0.5
W_AVAIL = 40.0
W_DIST = 40.0
W_LANG = 20.0
W_CERT = 10.0
MARGIN = 1.0           # runner-up total must be at least this much lower
DIST_GUARD_KM = 0.5    # no candidate within this distance of MAX_DISTANCE_KM
RULE_NAME = "tessera-volunteer-match-v1"


def haversine_km(lat1, lon1, lat2, lon2) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp = math.radians(lat2 - lat1)
    dl = math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2.0 * EARTH_RADIUS_KM * math.asin(math.sqrt(a))


def overlap_minutes(windows, start: str, end: str) -> int:
    s0, e0 = parse_iso(start), parse_iso(end)
    total = 0
    for w in windows:
        s, e = parse_iso(w["start"]), parse_iso(w["end"])
        lo, hi = max(s, s0), min(e, e0)
        if hi > lo:
            total += int((hi - lo).total_seconds()) // 60
    return total


def candidate_features(inc, vol):
    d = haversine_km(inc["location"]["lat"], inc["location"]["lon"],
                     vol["home"]["lat"], vol["home"]["lon"])
    ov = overlap_minutes(vol["availability"], inc["start"], inc["end"])
    win = int((parse_iso(inc["end"]) - parse_iso(inc["start"])).total_seconds()) // 60
    frac = ov / win
    lang = 1 if inc["language"] in vol["languages"] else 0
    cert = vol["certificate"]
    cert_valid = cert["valid_until"] >= inc["start"][:10]
    feats = {"id": vol["id"], "distance_km": d, "overlap_minutes": ov, "window_minutes": win,
             "overlap_fraction": frac, "speaks_language": lang,
             "certificate_skill": cert["skill"], "certificate_valid": cert_valid,
             "eligible_skills": [], "pair_scores": {}}
    needed = [n["skill"] for n in inc["needs"]]
    base_ok = d <= MAX_DISTANCE_KM and frac >= MIN_OVERLAP_FRACTION
    for s in needed:
        if base_ok and s in vol["skills"]:
            feats["eligible_skills"].append(s)
            feats["pair_scores"][s] = score_pair(d, frac, lang, cert_valid and cert["skill"] == s)
    return feats


def score_pair(distance_km: float, overlap_fraction: float, speaks: int, certified: bool) -> float:
    return (W_AVAIL * overlap_fraction
            + W_DIST * (1.0 - distance_km / MAX_DISTANCE_KM)
            + W_LANG * speaks
            + (W_CERT if certified else 0.0))


def enumerate_assignments(needs, feats):
    """All valid assignments: each skill s gets a set of at most count(s)
    distinct eligible volunteers, and no volunteer appears twice."""
    by_skill = []
    for n in needs:
        s = n["skill"]
        elig = [f["id"] for f in feats if s in f["eligible_skills"]]
        by_skill.append((s, n["count"], elig))
    score = {f["id"]: f["pair_scores"] for f in feats}
    out = []

    def rec(k, used, pairs, total):
        if k == len(by_skill):
            out.append((len(pairs), total, tuple(pairs)))
            return
        s, cnt, elig = by_skill[k]
        free = [v for v in elig if v not in used]
        for r in range(0, min(cnt, len(free)) + 1):
            for combo in itertools.combinations(free, r):
                add = sum(score[v][s] for v in combo)
                rec(k + 1, used | set(combo), pairs + [(s, v) for v in combo], total + add)

    rec(0, frozenset(), [], 0.0)
    return out


def solve_matching(inc, feats):
    """Lexicographic optimum: max filled slots, then max total pair score.
    Returns (best, runner_up_total or None)."""
    allas = enumerate_assignments(inc["needs"], feats)
    fmax = max(a[0] for a in allas)
    same = sorted((a for a in allas if a[0] == fmax), key=lambda a: -a[1])
    best = same[0]
    runner = same[1][1] if len(same) > 1 else None
    return best, runner, len(allas)


# ---------------------------------------------------------------------------
# Matching SFT prompts + ground truth
# ---------------------------------------------------------------------------

N_MATCHING = 128

MATCH_SYSTEM = [
    "You are a dispatcher assistant for a civil-protection volunteer network. Given an "
    "incident and a list of candidate volunteers, choose the best assignment. Rules: a "
    "volunteer can fill one slot of a skill they have, only if their home is at most 120 km "
    "from the incident (great-circle distance) and they are available for at least half of "
    "the incident window. Fill as many slots as possible; among those assignments maximise "
    "the sum of pair scores, where score = 40 x (fraction of the window covered) + 40 x "
    "(1 - distance_km / 120) + 20 if they speak the affected population's language + 10 if "
    "they hold a valid certificate for that skill. Answer with a JSON object in a ```json "
    "block, then a short justification.",
    "You match volunteers to emergencies. Eligibility: needed skill, distance <= 120 km, "
    "availability covering >= 50% of the incident window. Objective: first maximise the "
    "number of filled slots, then the total score, with per-volunteer score "
    "40*overlap_fraction + 40*(1 - d/120) + 20*[speaks incident language] + 10*[valid "
    "certificate in the assigned skill]. Each volunteer takes at most one slot. Reply with "
    "```json {\"incident_id\", \"assignments\": [{\"skill\", \"volunteer_id\"}], \"unfilled\": "
    "[{\"skill\", \"missing\"}]}``` followed by a brief justification.",
]


def fmt_window(w):
    return f"{w['start']} to {w['end']}"


def candidate_line(v):
    c = v["certificate"]
    return (f"- {v['id']} {v['name']} | skills: {', '.join(v['skills'])} | home: "
            f"{v['home']['lat']:.4f}, {v['home']['lon']:.4f} ({v['home']['town']}) | available: "
            f"{window_list(v)} | languages: "
            f"{', '.join(v['languages'])} | certificate: {c['skill']} valid until {c['valid_until']}")


def window_list(v):
    return "; ".join(fmt_window(w) for w in v["availability"]) or "none in the next days"


def candidate_json(v):
    c = v["certificate"]
    return {"id": v["id"], "name": v["name"], "skills": v["skills"],
            "home": [v["home"]["lat"], v["home"]["lon"]],
            "availability": [[w["start"], w["end"]] for w in v["availability"]],
            "languages": v["languages"],
            "certificate": {"skill": c["skill"], "valid_until": c["valid_until"]}}


def needs_text(needs):
    return ", ".join(f"{n['skill']} x{n['count']}" for n in needs)


def fmt_hours(minutes: int) -> str:
    h, m = divmod(minutes, 60)
    return f"{h} h" if not m else f"{h} h {m:02d} min"


def make_matching(vols, incs):
    rng = rng_for("matching")
    vol_by_id = {v["id"]: v for v in vols}
    rows, truths = [], []
    stats = {"rejected_ambiguous": 0, "rejected_guard": 0, "fully_filled": 0, "partial": 0,
             "empty": 0, "with_reasoning": 0}
    k = 0
    attempt = 0
    while len(rows) < N_MATCHING:
        inc = incs[k % len(incs)]
        attempt += 1
        needed = [n["skill"] for n in inc["needs"]]
        # Like a roster pre-query: mostly people with a needed skill who live within 150 km
        # and overlap the window at all, plus a few random distractors with a needed skill.
        pool = [v for v in vols if any(s in v["skills"] for s in needed)]
        good = [v for v in pool
                if haversine_km(inc["location"]["lat"], inc["location"]["lon"],
                                v["home"]["lat"], v["home"]["lon"]) <= 130.0
                and overlap_minutes(v["availability"], inc["start"], inc["end"]) > 0]
        ncand = rng.randint(5, 9)
        ngood = min(len(good), ncand - rng.randint(0, 2))
        chosen = rng.sample(good, ngood)
        rest = [v for v in pool if v not in chosen]
        chosen += rng.sample(rest, min(len(rest), ncand - len(chosen)))
        chosen.sort(key=lambda v: v["id"])
        # Show (and record) only availability windows that touch [start - 48 h, end + 48 h];
        # they determine the overlap completely and keep the prompt short.
        lo = iso(parse_iso(inc["start"]) - dt.timedelta(hours=48))
        hi = iso(parse_iso(inc["end"]) + dt.timedelta(hours=48))
        chosen = [dict(v, availability=[w for w in v["availability"]
                                        if w["end"] > lo and w["start"] < hi])
                  for v in chosen]
        feats = [candidate_features(inc, v) for v in chosen]
        if any(abs(f["distance_km"] - MAX_DISTANCE_KM) < DIST_GUARD_KM for f in feats):
            stats["rejected_guard"] += 1
            continue
        best, runner, n_enum = solve_matching(inc, feats)
        if runner is not None and best[1] - runner < MARGIN:
            stats["rejected_ambiguous"] += 1
            if attempt > 20 * N_MATCHING:
                raise RuntimeError("cannot find unambiguous matching prompts")
            continue
        k += 1
        idx = len(rows) + 1
        pid = f"match_{idx:04d}"
        needed_total = sum(n["count"] for n in inc["needs"])
        # Canonical answer order: skills in the order of inc["needs"], then score desc, id.
        fid = {f["id"]: f for f in feats}
        pairs = sorted(best[2], key=lambda p: (needed.index(p[0]), -fid[p[1]]["pair_scores"][p[0]],
                                               p[1]))
        filled_per = {s: 0 for s in needed}
        for s, _ in pairs:
            filled_per[s] += 1
        unfilled = [{"skill": n["skill"], "missing": n["count"] - filled_per[n["skill"]]}
                    for n in inc["needs"] if filled_per[n["skill"]] < n["count"]]
        if best[0] == needed_total:
            stats["fully_filled"] += 1
        elif best[0] == 0:
            stats["empty"] += 1
        else:
            stats["partial"] += 1
        answer = {"incident_id": inc["id"],
                  "assignments": [{"skill": s, "volunteer_id": v} for s, v in pairs],
                  "unfilled": unfilled}

        # ---- user prompt
        style = rng.random()
        head = rng.choice([
            f"New request for incident {inc['id']} ({inc['type'].replace('_', ' ')} near {inc['town']}).",
            f"Incident {inc['id']}: {inc['type'].replace('_', ' ')}, {inc['town']} area.",
            f"Please staff incident {inc['id']} ({inc['town']}).",
        ])
        body = (f"{head}\n{inc['description']}\nLocation: {inc['location']['lat']:.4f}, "
                f"{inc['location']['lon']:.4f}\nTime window: {inc['start']} to {inc['end']}\n"
                f"Affected population language: {inc['language']}\n"
                f"Needed: {needs_text(inc['needs'])}\n")
        if style < 0.55:
            body += "\nCandidates:\n" + "\n".join(candidate_line(v) for v in chosen)
        else:
            body += "\nCandidates (JSON):\n" + dumps([candidate_json(v) for v in chosen])
        body += "\n\n" + rng.choice([
            "Who should we send?",
            "Pick the best volunteers according to the matching rules.",
            "Give me the assignment.",
            "Which candidates do you recommend for each slot?",
        ])

        # ---- justification (content) and optional worked reasoning
        vname = {v["id"]: v["name"] for v in chosen}
        just = []
        for s, v in pairs:
            f = fid[v]
            bits = [f"{f['distance_km']:.1f} km away",
                    f"available {fmt_hours(f['overlap_minutes'])} of the "
                    f"{fmt_hours(f['window_minutes'])} window"]
            if f["speaks_language"]:
                bits.append(f"speaks {inc['language']}")
            if f["certificate_valid"] and f["certificate_skill"] == s:
                bits.append("valid certificate")
            just.append(f"{v} ({vname[v]}) for {s}: {', '.join(bits)} "
                        f"(score {f['pair_scores'][s]:.1f}).")
        for u in unfilled:
            s = u["skill"]
            elig = [f for f in feats if s in f["eligible_skills"]]
            have = [f for f in feats if s in vol_by_id[f["id"]]["skills"]]
            if not have:
                why = f"no candidate has {s}"
            elif not elig:
                why = (f"the {len(have)} candidate(s) with {s} are either farther than 120 km or "
                       f"available for less than half of the window")
            elif len(elig) < next(n["count"] for n in inc["needs"] if n["skill"] == s):
                why = f"only {len(elig)} eligible candidate(s) have {s}"
            else:
                why = (f"the eligible candidates with {s} are assigned to other skills, which "
                       f"fills more slots overall")
            just.append(f"{s}: {u['missing']} slot(s) left open because {why}.")
        content = ("```json\n" + dumps(answer) + "\n```\n" +
                   ("All slots are covered. " if not unfilled else
                    ("No slot can be filled. " if not pairs else "Partial coverage. ")) +
                   " ".join(just) + f" Total score {best[1]:.1f}.")
        msg = {"role": "assistant", "content": content}
        if rng.random() < 0.6:
            stats["with_reasoning"] += 1
            lines = ["Check each candidate: distance (haversine, R = 6371 km), share of the window "
                     "covered, language, certificate."]
            for f in feats:
                v = vol_by_id[f["id"]]
                reason = []
                if f["distance_km"] > MAX_DISTANCE_KM:
                    reason.append("too far")
                if f["overlap_fraction"] < MIN_OVERLAP_FRACTION:
                    reason.append("not available long enough")
                if not any(s in v["skills"] for s in needed):
                    reason.append("no needed skill")
                line = (f"{f['id']}: d = {f['distance_km']:.1f} km, overlap "
                        f"{f['overlap_minutes'] // 60}/{f['window_minutes'] // 60} h "
                        f"({f['overlap_fraction']:.2f}), language {'yes' if f['speaks_language'] else 'no'}")
                if reason:
                    line += " -> not eligible (" + ", ".join(reason) + ")"
                else:
                    line += " -> " + ", ".join(f"{s} {sc:.1f}" for s, sc in f["pair_scores"].items())
                lines.append(line)
            lines.append(f"Maximum number of slots that can be filled: {best[0]} of {needed_total}.")
            lines.append("Best assignment: " + (", ".join(f"{v} -> {s}" for s, v in pairs) or "none")
                         + f", total {best[1]:.1f}" +
                         (f"; the next best assignment with the same coverage scores {runner:.1f}."
                          if runner is not None else "; no alternative with the same coverage."))
            msg = {"role": "assistant", "reasoning_content": "\n".join(lines), "content": content}
        rows.append({"id": pid, "messages": [
            {"role": "system", "content": MATCH_SYSTEM[idx % len(MATCH_SYSTEM)]},
            {"role": "user", "content": body},
            msg,
        ]})
        truths.append({
            "prompt_id": pid,
            "rule": RULE_NAME,
            "incident": {"id": inc["id"], "lat": inc["location"]["lat"],
                         "lon": inc["location"]["lon"], "start": inc["start"], "end": inc["end"],
                         "language": inc["language"], "needs": inc["needs"]},
            "candidates": [{"id": v["id"], "skills": v["skills"], "lat": v["home"]["lat"],
                            "lon": v["home"]["lon"],
                            "availability": [[w["start"], w["end"]] for w in v["availability"]],
                            "languages": v["languages"],
                            "certificate_skill": v["certificate"]["skill"],
                            "certificate_valid_until": v["certificate"]["valid_until"]}
                           for v in chosen],
            "derived": [{"id": f["id"], "distance_km": round(f["distance_km"], 4),
                         "overlap_minutes": f["overlap_minutes"],
                         "overlap_fraction": round(f["overlap_fraction"], 6),
                         "speaks_language": bool(f["speaks_language"]),
                         "certificate_valid": f["certificate_valid"],
                         "eligible_skills": f["eligible_skills"],
                         "pair_scores": {s: round(x, 4) for s, x in f["pair_scores"].items()}}
                        for f in feats],
            "optimal": {"assignments": [{"skill": s, "volunteer_id": v,
                                         "score": round(fid[v]["pair_scores"][s], 4)}
                                        for s, v in pairs],
                        "unfilled": unfilled,
                        "filled": best[0], "needed": needed_total,
                        "total_score": round(best[1], 4)},
            "runner_up_total_score": None if runner is None else round(runner, 4),
            "margin": None if runner is None else round(best[1] - runner, 4),
            "assignments_enumerated": n_enum,
        })
    return rows, truths, stats


# ---------------------------------------------------------------------------
# Images: certificate cards and drill "videos"
# ---------------------------------------------------------------------------

JPEG_QUALITY = 75
ISSUER = "Civil Protection Volunteer Corps - Northern Italy"


def _font(size):
    from PIL import ImageFont
    return ImageFont.load_default(size=max(8, int(size)))


def _fit(draw, text, max_w, size):
    size = int(size)
    while size > 8:
        f = _font(size)
        if draw.textlength(text, font=f) <= max_w:
            return f
        size -= 1
    return _font(8)


def _center(draw, y, text, font, w, fill):
    tw = draw.textlength(text, font=font)
    draw.text(((w - tw) / 2, y), text, font=font, fill=fill)


def draw_certificate(vol, rng):
    from PIL import Image, ImageDraw
    c = vol["certificate"]
    w, h = c["width"], c["height"]
    border, tint = SKILL_COLOR[c["skill"]]
    img = Image.new("RGB", (w, h), tint)
    d = ImageDraw.Draw(img)
    u = min(w, h)
    m = max(4, int(u * 0.03))
    bw = max(3, int(u * 0.025))
    d.rectangle([m, m, w - 1 - m, h - 1 - m], outline=border, width=bw)
    m2 = m + bw + max(3, int(u * 0.015))
    d.rectangle([m2, m2, w - 1 - m2, h - 1 - m2], outline=border, width=1)
    # corner ornaments
    cs = max(4, int(u * 0.03))
    for cx, cy in ((m2, m2), (w - 1 - m2, m2), (m2, h - 1 - m2), (w - 1 - m2, h - 1 - m2)):
        d.rectangle([cx - cs // 2, cy - cs // 2, cx + cs // 2, cy + cs // 2], fill=border)
    inner_w = w - 2 * m2 - 2 * cs
    dark = (35, 35, 45)
    portrait = h > w
    # Vertical anchors (fractions of h): title, issuer, "certifies", name, "completed",
    # skill, three detail lines.
    ys = ([0.09, 0.17, 0.27, 0.33, 0.44, 0.50, 0.63, 0.68, 0.73] if portrait else
          [0.08, 0.19, 0.28, 0.35, 0.50, 0.57, 0.72, 0.78, 0.84])
    f_title = _fit(d, "CERTIFICATE OF COMPETENCE", inner_w * 0.92, u * 0.075)
    _center(d, h * ys[0], "CERTIFICATE OF COMPETENCE", f_title, w, border)
    f_iss = _fit(d, ISSUER, inner_w * 0.92, u * 0.04)
    _center(d, h * ys[1], ISSUER, f_iss, w, dark)
    f_small = _font(u * 0.042)
    _center(d, h * ys[2], "This certifies that", f_small, w, dark)
    f_name = _fit(d, vol["name"], inner_w * 0.9, u * 0.095)
    _center(d, h * ys[3], vol["name"], f_name, w, (10, 10, 20))
    line = "has completed the training and assessment in"
    _center(d, h * ys[4], line, _fit(d, line, inner_w * 0.9, u * 0.04), w, dark)
    label = SKILL_LABEL[c["skill"]].upper()
    f_skill = _fit(d, label, inner_w * 0.72, u * 0.085)
    _center(d, h * ys[5], label, f_skill, w, border)
    # detail lines, bottom left
    f_det = _font(u * 0.038)
    lines = [f"No. {c['number']}", f"Issued {c['issued']}", f"Valid until {c['valid_until']}"]
    x0 = m2 + cs + int(u * 0.03)
    for i, text in enumerate(lines):
        d.text((x0, h * ys[6 + i]), text, font=f_det, fill=dark)
    # seal, bottom right: 24-point star, ring, initials
    r = u * 0.11
    cx = w - m2 - cs - r - u * 0.03
    cy = h - m2 - cs - r - u * 0.01
    pts = []
    for k in range(48):
        ang = math.pi * k / 24
        rr = r if k % 2 == 0 else r * 0.82
        pts.append((cx + rr * math.cos(ang), cy + rr * math.sin(ang)))
    d.polygon(pts, fill=(205, 165, 45), outline=(150, 110, 20))
    d.ellipse([cx - r * 0.68, cy - r * 0.68, cx + r * 0.68, cy + r * 0.68], outline=(120, 85, 10),
              width=max(1, int(u * 0.006)))
    f_seal = _font(r * 0.45)
    tw = d.textlength("CPV", font=f_seal)
    d.text((cx - tw / 2, cy - r * 0.26), "CPV", font=f_seal, fill=(110, 75, 5))
    # signature squiggle above the seal's left, only where there is room
    if w >= 480:
        sx0 = w * 0.45
        sx1 = cx - r - u * 0.05
        if sx1 - sx0 > u * 0.15:
            base = cy + r * 0.35
            amp = u * 0.025
            ph = rng.random() * 6.28
            fr = rng.choice([3, 4, 5])
            sig = [(sx0 + t * (sx1 - sx0) / 60,
                    base - u * 0.06 + amp * math.sin(ph + fr * 6.28 * t / 60) * (1 - t / 90))
                   for t in range(61)]
            d.line(sig, fill=(30, 40, 110), width=max(1, int(u * 0.006)))
            d.line([(sx0, base), (sx1, base)], fill=dark, width=1)
            f_sig = _font(u * 0.032)
            d.text((sx0, base + 2), "Coordinator", font=f_sig, fill=dark)
    return img


def save_image(img, path):
    """JPEG with fixed settings; PNG as a 32-colour palette image (median cut, no dithering),
    which keeps the flat-colour drawings small and is deterministic."""
    from PIL import Image
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if path.endswith(".jpg"):
        img.save(path, format="JPEG", quality=JPEG_QUALITY, subsampling=2, optimize=False,
                 progressive=False)
    else:
        pal = img.quantize(colors=32, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        pal.save(path, format="PNG", optimize=False, compress_level=9)


COMPASS = ["east", "north-east", "north", "north-west", "west", "south-west", "south",
           "south-east"]
VIDEO_SPECS = [
    # (n_frames, start (x, y), end (x, y), reaches flag)
    (6, (48, 150), (208, 150), True),     # east
    (8, (216, 168), (120, 72), False),    # north-west, stops short of the flag
    (5, (128, 30), (128, 160), True),     # south
    (4, (40, 40), (150, 150), True),      # south-east
]


def draw_drill(spec_idx, spec, rng):
    from PIL import Image, ImageDraw
    n, (x0, y0), (x1, y1), reaches = spec
    W, H = 256, 192
    if reaches:
        flag = (x1, y1)
    else:
        # the flag lies further along the same line; the dot stops short of it
        flag = (x0 + (x1 - x0) * 4 // 3, y0 + (y1 - y0) * 4 // 3)
        assert 12 <= flag[0] <= W - 24 and 24 <= flag[1] <= H - 24, flag
    river = [(0, rng.randint(60, 130))]
    for x in range(32, W + 32, 32):
        river.append((x, river[-1][1] + rng.randint(-18, 18)))
    frames = []
    for f in range(n):
        img = Image.new("RGB", (W, H), (214, 232, 200))
        d = ImageDraw.Draw(img)
        for gx in range(0, W, 32):
            d.line([(gx, 0), (gx, H)], fill=(190, 205, 180))
        for gy in range(0, H, 32):
            d.line([(0, gy), (W, gy)], fill=(190, 205, 180))
        d.line(river, fill=(70, 130, 200), width=5)
        # north arrow
        d.polygon([(W - 16, 8), (W - 22, 24), (W - 10, 24)], fill=(40, 40, 40))
        d.text((W - 20, 25), "N", font=_font(11), fill=(40, 40, 40))
        # flag at the target
        fx, fy = flag
        d.line([(fx, fy), (fx, fy - 18)], fill=(40, 40, 40), width=2)
        d.polygon([(fx, fy - 18), (fx + 12, fy - 14), (fx, fy - 10)], fill=(240, 200, 20))
        t = Fraction(f, n - 1)
        px = x0 + float(t) * (x1 - x0)
        py = y0 + float(t) * (y1 - y0)
        d.ellipse([px - 7, py - 7, px + 7, py + 7], fill=(210, 30, 30), outline=(90, 0, 0))
        d.text((6, H - 16), f"DRILL {spec_idx + 1}  frame {f + 1}/{n}", font=_font(11),
               fill=(30, 30, 30))
        frames.append(img)
    dx, dy = x1 - x0, -(y1 - y0)
    ang = math.degrees(math.atan2(dy, dx)) % 360
    direction = COMPASS[int(round(ang / 45.0)) % 8]
    return frames, direction, flag


def make_images_and_multimodal(vols, out):
    rng = rng_for("images")
    img_dir = os.path.join(out, "images")
    # Remove only files this script owns, so reruns never leave stale outputs.
    if os.path.isdir(img_dir):
        for name in sorted(os.listdir(img_dir)):
            if re.fullmatch(r"cert_\d{4}\.(png|jpg)", name):
                os.remove(os.path.join(img_dir, name))
        fdir = os.path.join(img_dir, "frames")
        if os.path.isdir(fdir):
            for name in sorted(os.listdir(fdir)):
                if re.fullmatch(r"drill_\d{4}_\d{3}\.png", name):
                    os.remove(os.path.join(fdir, name))
    for v in vols:
        img = draw_certificate(v, rng)
        save_image(img, os.path.join(out, v["certificate"]["image"]))
    videos = []
    for i, spec in enumerate(VIDEO_SPECS):
        frames, direction, flag = draw_drill(i, spec, rng)
        paths = []
        for j, fimg in enumerate(frames):
            p = f"images/frames/drill_{i + 1:04d}_{j:03d}.png"
            save_image(fimg, os.path.join(out, p))
            paths.append(p)
        videos.append({"frames": paths, "direction": direction, "reaches": spec[3],
                       "n": spec[0]})

    mrng = rng_for("multimodal")
    rows = []
    sys_prompts = [None, None,
                   "You are an assistant for a volunteer coordination centre. You read scanned "
                   "certificates and drill recordings and answer briefly.",
                   "Answer questions about the attached documents precisely."]
    check_dates = ["2025-06-10", "2024-01-15", "2026-09-30", "2023-05-01", "2027-11-20"]

    def single(v, qtype):
        c = v["certificate"]
        label = SKILL_LABEL[c["skill"]]
        if qtype == "skill":
            q = mrng.choice(["Which skill does this certificate attest?",
                             "What skill is this volunteer certified for?",
                             "What training does this certificate confirm?"])
            a = f"The certificate attests {label} ({c['skill']})."
        elif qtype == "name":
            q = mrng.choice(["Who is this certificate issued to?", "Whose certificate is this?"])
            a = f"It is issued to {v['name']}."
        elif qtype == "number":
            q = "What is the certificate number?"
            a = f"The certificate number is {c['number']}."
        elif qtype == "valid_until":
            q = mrng.choice(["Until when is this certificate valid?", "When does this certificate expire?"])
            a = f"It is valid until {c['valid_until']}."
        elif qtype == "valid_on":
            day = mrng.choice(check_dates)
            q = f"Is this certificate valid on {day}?"
            if day < c["issued"]:
                a = f"No. It was only issued on {c['issued']}, after {day}."
            elif day <= c["valid_until"]:
                a = f"Yes. It was issued on {c['issued']} and is valid until {c['valid_until']}."
            else:
                a = f"No. It expired on {c['valid_until']}, before {day}."
        elif qtype == "can_assign":
            other = mrng.choice([s for s in SKILLS if s != c["skill"]])
            ask = mrng.choice([c["skill"], other])
            q = (f"Based only on this certificate, can the holder be assigned to a "
                 f"{SKILL_LABEL[ask].lower()} slot?")
            if ask == c["skill"]:
                a = f"Yes. The certificate attests {label}, which is the skill the slot needs."
            else:
                a = (f"No. The certificate attests {label}, not {SKILL_LABEL[ask]}; another "
                     f"document would be needed for that slot.")
        else:  # zh
            q = "这张证书证明的是哪项技能？"
            a = f"这张证书证明的技能是{SKILL_ZH[c['skill']]}（{label}），持有人是 {v['name']}。"
        return q, a

    qtypes = ["skill", "skill", "skill", "name", "number", "valid_until", "valid_on",
              "can_assign", "skill", "zh"]
    order = list(range(len(vols)))
    mrng.shuffle(order)
    n_single = 42
    for k in range(n_single):
        v = vols[order[k % len(order)]]
        qt = qtypes[k % len(qtypes)]
        q, a = single(v, qt)
        user = f"<image>\n{q}" if k % 4 else f"{q}\n<image>"
        msgs = []
        sp = sys_prompts[k % len(sys_prompts)]
        if sp:
            msgs.append({"role": "system", "content": sp})
        msgs += [{"role": "user", "content": user}, {"role": "assistant", "content": a}]
        rows.append({"messages": msgs, "images": [v["certificate"]["image"]]})
    # Two-image samples.
    pairs_done = 0
    k = n_single
    while pairs_done < 5:
        a_v = vols[order[k % len(order)]]
        b_v = vols[order[(k + 7) % len(order)]]
        k += 1
        ca, cb = a_v["certificate"], b_v["certificate"]
        if ca["skill"] == cb["skill"] or ca["valid_until"] == cb["valid_until"]:
            continue
        kind = pairs_done % 3
        if kind == 0:
            target = mrng.choice([ca["skill"], cb["skill"]])
            q = f"Which of these two certificates attests {SKILL_LABEL[target]}?"
            which = "first" if ca["skill"] == target else "second"
            holder = a_v if which == "first" else b_v
            other = b_v if which == "first" else a_v
            a = (f"The {which} one, issued to {holder['name']}. The other certificate "
                 f"({other['name']}) attests {SKILL_LABEL[other['certificate']['skill']]}.")
        elif kind == 1:
            q = "Which of the two certificates expires first?"
            first = a_v if ca["valid_until"] < cb["valid_until"] else b_v
            which = "first" if first is a_v else "second"
            other = b_v if first is a_v else a_v
            a = (f"The {which} certificate ({first['name']}) expires first, on "
                 f"{first['certificate']['valid_until']}; the other one is valid until "
                 f"{other['certificate']['valid_until']}.")
        else:
            q = "List the holder and the skill of each certificate."
            a = (f"1. {a_v['name']}: {SKILL_LABEL[ca['skill']]} (no. {ca['number']})\n"
                 f"2. {b_v['name']}: {SKILL_LABEL[cb['skill']]} (no. {cb['number']})")
        rows.append({"messages": [{"role": "user", "content": f"<image>\n<image>\n{q}"},
                                  {"role": "assistant", "content": a}],
                     "images": [ca["image"], cb["image"]]})
        pairs_done += 1
    # Video samples.
    for i, vid in enumerate(videos):
        if i % 2 == 0:
            q = "The red dot is a rescue team on a map (north is up). In which direction does it move?"
            a = f"It moves {vid['direction']}."
        else:
            q = "Does the rescue team (red dot) reach the yellow flag by the end of the clip?"
            a = ("Yes, it reaches the flag in the last frame." if vid["reaches"] else
                 f"No. It moves {vid['direction']} towards the flag but stops short of it in the "
                 f"last frame.")
        rows.append({"messages": [{"role": "user", "content": f"<video>\n{q}"},
                                  {"role": "assistant", "content": a}],
                     "videos": [vid["frames"]]})
    for i, r in enumerate(rows):
        r_id = {"id": f"mm_{i + 1:04d}"}
        r_id.update(r)
        rows[i] = r_id
    return rows


# ---------------------------------------------------------------------------
# Text conversations: word lists and grammars
# ---------------------------------------------------------------------------

GENERAL_SYSTEMS = [
    "You are a helpful assistant.",
    "You are a concise, accurate assistant. Answer in plain language.",
    "You are tessera-chat, an assistant that helps volunteers and coordinators of a civil "
    "protection network. Be practical and brief.",
    "You are a friendly tutor. Explain your answers step by step when it helps.",
    "You are a senior software engineer who writes clear, correct code.",
]

CAPITALS = [
    ("France", "Paris", "Europe"), ("Japan", "Tokyo", "Asia"), ("Canada", "Ottawa", "North America"),
    ("Australia", "Canberra", "Oceania"), ("Brazil", "Brasilia", "South America"),
    ("Kenya", "Nairobi", "Africa"), ("Italy", "Rome", "Europe"), ("Germany", "Berlin", "Europe"),
    ("Spain", "Madrid", "Europe"), ("Egypt", "Cairo", "Africa"), ("India", "New Delhi", "Asia"),
    ("Argentina", "Buenos Aires", "South America"), ("Norway", "Oslo", "Europe"),
    ("Poland", "Warsaw", "Europe"), ("Portugal", "Lisbon", "Europe"),
    ("South Korea", "Seoul", "Asia"), ("Mexico", "Mexico City", "North America"),
    ("Turkey", "Ankara", "Asia and Europe"), ("Vietnam", "Hanoi", "Asia"),
    ("Chile", "Santiago", "South America"), ("Peru", "Lima", "South America"),
    ("Morocco", "Rabat", "Africa"), ("Ghana", "Accra", "Africa"), ("Thailand", "Bangkok", "Asia"),
    ("Sweden", "Stockholm", "Europe"), ("Finland", "Helsinki", "Europe"),
    ("Greece", "Athens", "Europe"), ("Ireland", "Dublin", "Europe"), ("Austria", "Vienna", "Europe"),
    ("New Zealand", "Wellington", "Oceania"), ("Nigeria", "Abuja", "Africa"),
    ("China", "Beijing", "Asia"), ("Ukraine", "Kyiv", "Europe"), ("Romania", "Bucharest", "Europe"),
]
CAPITALS_ZH = [
    ("法国", "巴黎"), ("日本", "东京"), ("德国", "柏林"), ("意大利", "罗马"), ("西班牙", "马德里"),
    ("加拿大", "渥太华"), ("澳大利亚", "堪培拉"), ("埃及", "开罗"), ("巴西", "巴西利亚"),
    ("韩国", "首尔"), ("俄罗斯", "莫斯科"), ("英国", "伦敦"), ("印度", "新德里"), ("泰国", "曼谷"),
    ("越南", "河内"), ("希腊", "雅典"), ("奥地利", "维也纳"), ("葡萄牙", "里斯本"),
]
ELEMENTS = [
    ("hydrogen", "H", 1), ("helium", "He", 2), ("carbon", "C", 6), ("nitrogen", "N", 7),
    ("oxygen", "O", 8), ("sodium", "Na", 11), ("magnesium", "Mg", 12), ("aluminium", "Al", 13),
    ("silicon", "Si", 14), ("sulfur", "S", 16), ("chlorine", "Cl", 17), ("potassium", "K", 19),
    ("calcium", "Ca", 20), ("iron", "Fe", 26), ("copper", "Cu", 29), ("zinc", "Zn", 30),
    ("silver", "Ag", 47), ("tin", "Sn", 50), ("gold", "Au", 79), ("mercury", "Hg", 80),
    ("lead", "Pb", 82), ("uranium", "U", 92),
]

DEFINITIONS = [
    ("triage",
     "Triage is the process of sorting injured or sick people by how urgently they need care, so "
     "that limited staff and equipment go first to those who will benefit most.",
     "At a mass-casualty incident responders often use colour tags: red for immediate, yellow for "
     "delayed, green for minor injuries and black for the dead or those who cannot be saved with "
     "the resources at hand."),
    ("the haversine formula",
     "The haversine formula gives the great-circle distance between two points on a sphere from "
     "their latitudes and longitudes. It stays numerically stable for short distances, which is "
     "why navigation and dispatch software still uses it.",
     "With latitudes phi1, phi2 and longitude difference dlambda (in radians): a = sin^2(dphi/2) + "
     "cos(phi1) cos(phi2) sin^2(dlambda/2), and d = 2 R asin(sqrt(a)), with R = 6371 km for the "
     "Earth."),
    ("gradient descent",
     "Gradient descent is an optimisation method that repeatedly moves a model's parameters a small "
     "step in the direction that decreases the loss most steeply, that is, against the gradient.",
     "With learning rate eta, each step updates theta <- theta - eta * grad L(theta); stochastic "
     "gradient descent estimates the gradient on a mini-batch instead of the whole data set."),
    ("tokenization",
     "Tokenization splits text into units called tokens that a language model reads, such as "
     "words, sub-words or bytes. Most modern models use byte-pair encoding so that any string can "
     "be represented with a fixed vocabulary.",
     "A rare word like 'unbelievably' may be split into pieces such as 'un', 'believ' and 'ably', "
     "while a frequent word like 'the' is a single token."),
    ("mixed precision training",
     "Mixed precision training runs most matrix multiplications in a 16-bit format such as bf16 "
     "while keeping 32-bit master weights and accumulating sums in fp32. It roughly halves memory "
     "traffic and speeds up training without hurting convergence.",
     "A typical setup stores weights in fp32, casts them to bf16 for the forward and backward "
     "pass, and applies the optimizer update to the fp32 copy."),
    ("a training checkpoint",
     "A checkpoint is a saved snapshot of everything needed to resume training exactly: model "
     "weights, optimizer state, the data loader position and the random number generator states.",
     "If a job is preempted at step 12,000, it restarts from the last committed checkpoint, for "
     "example step 11,500, and continues as if nothing had happened."),
    ("data parallelism",
     "Data parallelism copies the model onto several devices, gives each device a different slice "
     "of the batch, and averages the gradients with an all-reduce before every optimizer step.",
     "With 8 GPUs and a global batch of 256 sequences, each GPU processes 32 sequences per step."),
    ("tensor parallelism",
     "Tensor parallelism splits individual weight matrices across devices, so that each device "
     "computes part of every layer; partial results are combined with collectives such as "
     "all-reduce or all-gather.",
     "In a transformer MLP the first linear layer is split by columns and the second by rows, so "
     "only one all-reduce is needed per MLP in the forward pass."),
    ("pipeline parallelism",
     "Pipeline parallelism assigns consecutive groups of layers to different devices and streams "
     "micro-batches through them, so that all stages work at the same time once the pipeline is "
     "full.",
     "A 1F1B schedule alternates one forward and one backward micro-batch per stage to keep the "
     "number of stored activations small."),
    ("an all-reduce",
     "An all-reduce is a collective operation in which every participant contributes a buffer and "
     "every participant receives the element-wise reduction, usually the sum, of all buffers.",
     "If four ranks hold the values 1, 2, 3 and 4, after a sum all-reduce every rank holds 10."),
    ("a mixture-of-experts layer",
     "A mixture-of-experts layer contains many feed-forward sub-networks, called experts, and a "
     "router that sends each token to only a few of them. The parameter count grows without a "
     "proportional increase in compute per token.",
     "With 64 experts and top-2 routing, each token activates only 2 of the 64 feed-forward "
     "blocks."),
    ("sequence packing",
     "Sequence packing concatenates several short training samples into one fixed-length row and "
     "records where each sample starts, so little compute is wasted on padding; the recorded "
     "boundaries keep samples from attending to each other.",
     "Three samples of 900, 2,100 and 1,000 tokens fit into one 4,096-token row with 96 tokens "
     "of padding."),
    ("an evacuation order",
     "An evacuation order is an instruction from the authorities that people in a defined area "
     "must leave because staying is considered dangerous. It is stronger than an evacuation "
     "warning, which asks people to get ready to leave.",
     "During a fast-moving wildfire, residents of the streets closest to the fire front may "
     "receive an order while the next neighbourhood receives a warning."),
    ("a muster point",
     "A muster point, or assembly point, is a pre-agreed safe place where people gather after "
     "leaving a building or area, so that responders can count them and find out who is missing.",
     "Schools usually use a sports field away from the buildings as their muster point."),
    ("search and rescue",
     "Search and rescue is the coordinated effort to find people who are lost, trapped or in "
     "distress and bring them to safety, using trained teams, dogs, drones, boats or helicopters "
     "depending on the terrain.",
     "A mountain search is often divided into sectors so that each team covers a defined area "
     "and reports which parts were cleared."),
    ("psychological first aid",
     "Psychological first aid is humane, practical support for people right after a distressing "
     "event: making sure they are safe, listening without pressing them to talk, helping with "
     "basic needs and connecting them with family and services.",
     "A volunteer might sit with an evacuated resident, help them call a relative and explain "
     "where to get food and medicine."),
    ("a situation report",
     "A situation report, or sitrep, is a short, regularly updated document that tells decision "
     "makers what has happened, which resources are deployed, what is needed now and what is "
     "planned next.",
     "A flood sitrep might list water levels, open shelters, the number of evacuees and the "
     "roads that are closed."),
    ("GPS",
     "GPS, the Global Positioning System, is a satellite navigation system: a receiver measures "
     "the travel time of signals from several satellites and computes its position, usually to "
     "within a few metres.",
     "A phone needs signals from at least four satellites to fix latitude, longitude, altitude "
     "and its own clock error."),
    ("latency",
     "Latency is the time between starting an operation and seeing its result, for example the "
     "delay of one network message. Throughput, in contrast, measures how much work is finished "
     "per unit of time.",
     "A link can have high throughput and still high latency, like a long pipe that carries a "
     "lot of water but takes a while to fill."),
    ("a deadlock",
     "A deadlock happens when two or more processes each wait for something another one holds, "
     "so none of them can ever continue.",
     "Two ranks that both call a blocking send to each other before posting a receive can "
     "deadlock once the messages are too large to be buffered."),
    ("idempotence",
     "An operation is idempotent if doing it twice has the same effect as doing it once. "
     "Idempotent steps make retries safe, which matters for anything that can be interrupted.",
     "Setting a flag to true is idempotent; appending a line to a log file is not."),
    ("an atomic rename",
     "An atomic rename replaces a file name in one indivisible step, so readers see either the "
     "old file or the new one, never a half-written mix.",
     "Writing a checkpoint to 'step_100.tmp', syncing it to disk and then renaming it to "
     "'step_100' means a crash can never leave a truncated 'step_100' behind."),
    ("learning-rate warmup",
     "Learning-rate warmup starts training with a small learning rate and increases it over the "
     "first few hundred or thousand steps, which avoids unstable updates while the optimizer's "
     "statistics are still poor.",
     "A common schedule warms up linearly for 2,000 steps and then decays with a cosine curve."),
    ("cross-entropy loss",
     "Cross-entropy loss measures how well predicted probabilities match the true labels; for a "
     "language model it is the average negative log-probability of the correct next token.",
     "If the model gives the correct token a probability of 0.25, that token contributes "
     "-ln(0.25), about 1.386, to the loss."),
    ("a flash flood",
     "A flash flood is a flood that rises within minutes to a few hours of intense rain, a dam "
     "failure or a sudden release of water, leaving very little time for warnings.",
     "Narrow valleys and dry riverbeds are especially dangerous, because water can arrive as a "
     "wall of debris."),
    ("a landslide",
     "A landslide is the movement of rock, soil or debris down a slope, often triggered by heavy "
     "rain, earthquakes or snowmelt that saturates the ground.",
     "New cracks in the ground, tilting trees or fences and sudden changes in a stream's "
     "turbidity can be warning signs."),
    ("heat stroke",
     "Heat stroke is a life-threatening condition in which the body can no longer control its "
     "temperature. Warning signs include confusion, hot skin and collapse, and it needs emergency "
     "medical help.",
     "While waiting for help, move the person to shade and cool them actively, for example with "
     "water and fanning."),
    ("hypothermia",
     "Hypothermia is a dangerous drop in core body temperature below about 35 degrees Celsius, "
     "typically after long exposure to cold, wind or water.",
     "Shivering, slurred speech, clumsiness and drowsiness are warning signs; the person should "
     "be moved out of the cold and wrapped in dry layers."),
    ("a volunteer roster",
     "A volunteer roster is a schedule that records which volunteer is available when and for "
     "which role, so coordinators can fill shifts without overloading anyone.",
     "A good roster also records qualifications and certificate expiry dates, so nobody is "
     "assigned to a task they are not certified for."),
    ("GRPO",
     "GRPO, Group Relative Policy Optimization, samples several answers per prompt, scores each "
     "with a reward function, and uses each answer's reward relative to its group's mean as the "
     "advantage, so no separate value model is needed.",
     "With 8 samples per prompt and rewards 1, 0, 0, 1, 1, 0, 0, 1, the mean is 0.5, so correct "
     "answers get a positive advantage and wrong ones a negative advantage."),
    ("a hash function",
     "A hash function maps data of any size to a fixed-size value. Cryptographic hashes such as "
     "SHA-256 make it practically impossible to find two inputs with the same output, which is "
     "why they are used as checksums.",
     "Publishing the SHA-256 of a data file lets anyone check that their copy is bit-for-bit "
     "identical."),
    ("earthquake magnitude",
     "Magnitude measures the energy released at an earthquake's source. On the moment magnitude "
     "scale, each whole step corresponds to about 32 times more energy.",
     "A magnitude 6 earthquake releases roughly 1,000 times more energy than a magnitude 4 "
     "earthquake."),
    ("a firebreak",
     "A firebreak is a strip of land cleared of vegetation or other fuel, so that a wildfire "
     "reaching it has little to burn and slows down or stops.",
     "Roads, rivers and ploughed fields can act as natural or improvised firebreaks."),
]
DEF_QUESTIONS = [
    "What is {t}?", "Explain {t} in simple terms.", "Can you define {t}?",
    "In one or two sentences, what does {t} mean?", "what's {t}", "I keep hearing about {t}. What is it?",
]

HAZARDS = {
    "flood": {
        "before": ["Find out whether your home is in a flood zone and where the nearest higher "
                   "ground is.",
                   "Keep important documents in a waterproof bag.",
                   "Move valuables and electrical items to upper floors.",
                   "Know how to switch off gas, electricity and water.",
                   "Sign up for local alerts and agree on a meeting point with your family."],
        "during": ["Never walk or drive through flood water: 15 cm of moving water can knock a "
                   "person over and 60 cm can carry away a car.",
                   "Move to higher floors or higher ground and stay away from rivers and "
                   "underpasses.",
                   "Switch off electricity at the main switch if it is safe to do so.",
                   "Follow instructions from the authorities and evacuate when told to.",
                   "Avoid contact with flood water, which is often contaminated."],
        "after": ["Return home only when the authorities say it is safe.",
                  "Photograph the damage before cleaning, for insurance claims.",
                  "Wear gloves and boots while cleaning and throw away food that touched flood "
                  "water.",
                  "Have electrical and gas installations checked before using them again.",
                  "Air and dry the building to prevent mould."],
    },
    "earthquake": {
        "before": ["Fix tall furniture and heavy shelves to the walls.",
                   "Store heavy objects on low shelves.",
                   "Identify safe spots in each room, such as under a sturdy table.",
                   "Practise Drop, Cover and Hold On with everyone in the household.",
                   "Keep shoes and a torch next to each bed."],
        "during": ["Drop to your hands and knees, cover your head and neck, and hold on to "
                   "sturdy furniture until the shaking stops.",
                   "Stay away from windows, glass and outside walls.",
                   "If you are in bed, stay there and protect your head with a pillow.",
                   "If you are outdoors, move to an open area away from buildings, trees and "
                   "power lines.",
                   "Do not use lifts and do not run outside while the ground is shaking."],
        "after": ["Expect aftershocks and drop, cover and hold on again when they happen.",
                  "Check yourself and others for injuries and give first aid if you are trained.",
                  "Leave damaged buildings and do not go back in until they have been inspected.",
                  "If you smell gas, leave immediately and report it from outside.",
                  "Use text messages rather than calls so the phone network stays free for "
                  "emergencies."],
    },
    "wildfire": {
        "before": ["Clear dry leaves, branches and other fuel within 10 metres of the house.",
                   "Prepare a go-bag and keep the car's fuel tank at least half full.",
                   "Know two evacuation routes out of your area.",
                   "Keep a garden hose long enough to reach every side of the house.",
                   "Follow fire danger warnings during dry, windy weather."],
        "during": ["Leave early when told to evacuate; do not wait to see the flames.",
                   "Close all windows and doors, but leave them unlocked for firefighters.",
                   "Wear long cotton or wool clothing, sturdy shoes and a mask against smoke.",
                   "If you are trapped in a car, park away from vegetation, keep the engine "
                   "running, close the vents and lie down under a blanket.",
                   "Report new fires to the emergency number immediately."],
        "after": ["Return only when the authorities declare the area safe.",
                  "Watch for hot spots, fallen power lines and weakened trees.",
                  "Wet down debris to reduce dust and wear a mask while cleaning ash.",
                  "Check on neighbours, especially those who live alone.",
                  "Document damage with photographs."],
    },
    "heatwave": {
        "before": ["Identify the coolest room in your home and cool places nearby, such as "
                   "libraries or cooling centres.",
                   "Check that fans work and that you have curtains or shutters.",
                   "Make a list of neighbours and relatives who may need daily check-ins.",
                   "Stock water and oral rehydration salts."],
        "during": ["Drink water regularly even if you are not thirsty and avoid alcohol.",
                   "Stay indoors during the hottest hours, usually 11:00 to 18:00.",
                   "Keep shutters closed during the day and ventilate at night.",
                   "Never leave children or animals in a parked car.",
                   "Watch for heavy sweating, dizziness, headache and nausea, which are signs of "
                   "heat exhaustion."],
        "after": ["Keep drinking enough water for a few days.",
                  "Check on people who live alone.",
                  "Note what worked in your home and what to improve for the next heatwave."],
    },
    "winter storm": {
        "before": ["Keep blankets, a torch, batteries and a few days of food at home.",
                   "Have the heating system checked before winter.",
                   "Put a shovel, warm clothes and a blanket in the car.",
                   "Protect water pipes from freezing."],
        "during": ["Stay indoors and avoid unnecessary travel.",
                   "If you must go out, wear layers, a hat and gloves and tell someone your "
                   "route.",
                   "Never use generators or barbecues indoors because of carbon monoxide.",
                   "Watch for signs of hypothermia and frostbite."],
        "after": ["Clear snow carefully and take breaks, since shovelling is heavy work.",
                  "Check on elderly neighbours.",
                  "Report fallen power lines and stay away from them."],
    },
    "power outage": {
        "before": ["Keep torches and spare batteries where you can find them in the dark.",
                   "Keep a power bank charged for your phone.",
                   "If someone relies on powered medical equipment, plan a backup with their "
                   "doctor and the electricity provider."],
        "during": ["Use torches rather than candles to reduce the fire risk.",
                   "Keep the fridge and freezer closed as much as possible.",
                   "Unplug sensitive electronics to protect them from surges when power returns.",
                   "Never run a generator indoors or in a garage."],
        "after": ["Throw away perishable food that has been above 5 degrees Celsius for more "
                  "than two hours.",
                  "Plug appliances back in one at a time.",
                  "Restock the batteries and supplies you used."],
    },
}
HAZARDS_ZH = {
    "地震": ["伏地：立即趴下，降低重心。", "遮挡：躲到坚固的桌子下面，用手臂护住头部和颈部。",
           "手抓牢：抓住桌腿，直到摇晃停止。", "远离窗户、玻璃和外墙，不要乘坐电梯。",
           "摇晃停止后，有序撤离到空旷地带，并注意余震。"],
    "洪水": ["不要在洪水中行走或驾车，15 厘米深的急流就可能把人冲倒。", "尽快转移到高处或楼上。",
           "在安全的前提下关闭总电源。", "听从当地政府的撤离指示。", "避免接触洪水，洪水往往已被污染。"],
    "高温": ["即使不渴也要定时喝水，避免饮酒。", "在一天中最热的时段尽量待在室内。",
           "白天关闭窗帘或百叶窗，夜间通风。", "不要把儿童或宠物留在停着的车里。",
           "注意大量出汗、头晕、头痛和恶心等中暑先兆。"],
    "山火": ["接到撤离通知后立即离开，不要等到看见火焰。", "关闭门窗，但不要上锁，方便消防员进入。",
           "穿长袖棉质或羊毛衣物和结实的鞋子，戴口罩防烟。", "发现新的火点立即拨打急救电话报告。"],
}
KIT_ITEMS = [
    "water: about 3 litres per person per day, for at least three days",
    "non-perishable food and a manual can opener",
    "a torch and spare batteries",
    "a battery-powered or hand-crank radio",
    "a first aid kit",
    "a supply of prescription medicines and copies of prescriptions",
    "copies of identity documents and insurance papers in a waterproof bag",
    "some cash in small notes",
    "a phone charger and a charged power bank",
    "warm clothes, a rain jacket and sturdy shoes",
    "blankets or sleeping bags",
    "a whistle to signal for help",
    "dust masks and work gloves",
    "hygiene items: soap, hand sanitiser, toilet paper, sanitary products",
    "a printed list of emergency contacts",
    "spare glasses or contact lenses",
    "food, water and a carrier for pets",
    "items for babies: nappies, formula, bottles",
]
AUDIENCES = ["families", "a primary school", "a small business", "a care home for the elderly",
             "a mountain hut", "a volunteer team", "students living in shared flats",
             "a farm with livestock", "a public library"]
GUIDE_GENERIC = {
    "Communication plan": [
        "Agree on one contact person outside the affected area whom everybody calls or texts "
        "after an emergency; long-distance lines are often easier to reach than local ones.",
        "Write the plan down. Phones run out of battery, so every member of {aud} should carry a "
        "paper card with the key numbers, the meeting point and the contact person.",
        "Decide two meeting points: one right outside, for sudden events such as a fire, and "
        "one elsewhere in {place}, in case you cannot return to the neighbourhood.",
        "Text messages and messaging apps often get through when voice calls fail. Keep "
        "messages short and include where you are and whether you need help.",
    ],
    "Roles and responsibilities": [
        "Give each adult in {aud} a clear role: who collects the emergency kit, who checks on "
        "people who need help moving, who switches off utilities and who makes the calls.",
        "Name a deputy for every role. During a {haz} the person you planned on may be away, "
        "injured or stuck in traffic.",
        "Volunteers from the local civil protection group can support {aud}, but they are "
        "assigned by skill and availability; register in advance if you want to help.",
    ],
    "People who need extra help": [
        "Make a list of people who may need help to move or to understand warnings: older "
        "people, people with disabilities, small children, people who do not speak the local "
        "language, and anyone who depends on powered medical equipment.",
        "For each person on the list, name a buddy who checks on them when a {haz} warning is "
        "issued, and agree how the buddy gets in touch.",
        "Keep a short written summary of each person's medicines and medical conditions, so "
        "that responders can act quickly.",
    ],
    "Pets and animals": [
        "Most public shelters accept assistance animals; ask the municipality of {place} in "
        "advance which shelters accept pets.",
        "Keep carriers, leads, food and vaccination records ready, and make sure pets wear an "
        "identification tag.",
        "For larger animals, plan transport and a destination long before a {haz} arrives; "
        "moving livestock takes far more time than people expect.",
    ],
    "Practising the plan": [
        "Run a short drill twice a year. Time how long it takes {aud} to leave, collect the kit "
        "and reach the meeting point, and note what went wrong.",
        "After each drill, update the contact list and replace expired food, water and "
        "batteries in the kit.",
        "Practise in different conditions: at night, with one exit blocked, or with the person "
        "who normally leads the drill absent.",
    ],
    "Information sources": [
        "Follow the official channels of the civil protection department and the municipality "
        "of {place}; rumours spread quickly during a {haz}.",
        "Keep a battery radio: when mobile networks are overloaded, broadcast radio still works.",
        "Save the local emergency number and the number of the municipal operations centre in "
        "every phone.",
    ],
}


# ---------------------------------------------------------------------------
# Code templates (Python ones are executed at generation time to check them)
# ---------------------------------------------------------------------------

PY_TEMPLATES = [
    {
        "ask": ["Write a Python function {name}(n) that returns True if n is a prime number.",
                "I need a Python helper `{name}` to test whether an integer is prime."],
        "names": ["is_prime", "isprime", "check_prime"],
        "code": '''def {name}(n: int) -> bool:
    """Return True if n is prime."""
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    d = 3
    while d * d <= n:
        if n % d == 0:
            return False
        d += 2
    return True''',
        "calls": ["{name}(97)", "{name}(91)", "{name}(2)", "{name}(1)"],
        "explain": "It handles numbers below 2 and even numbers first, then tries odd divisors "
                   "up to the square root of n, so it runs in O(sqrt(n)) time.",
    },
    {
        "ask": ["Write a Python function that computes the greatest common divisor of two integers "
                "without using math.gcd.", "Implement Euclid's algorithm in Python as `{name}(a, b)`."],
        "names": ["gcd", "euclid_gcd", "greatest_common_divisor"],
        "code": '''def {name}(a: int, b: int) -> int:
    """Greatest common divisor by Euclid's algorithm."""
    a, b = abs(a), abs(b)
    while b:
        a, b = b, a % b
    return a''',
        "calls": ["{name}(84, 36)", "{name}(17, 5)", "{name}(0, 9)", "{name}(-48, 18)"],
        "explain": "Each iteration replaces (a, b) by (b, a mod b); the remainder shrinks quickly, "
                   "so the loop needs only O(log min(a, b)) steps.",
    },
    {
        "ask": ["Write an iterative Python function `{name}(n)` that returns the n-th Fibonacci "
                "number, with F(0) = 0 and F(1) = 1.",
                "Python: n-th Fibonacci number without recursion please."],
        "names": ["fibonacci", "fib", "nth_fibonacci"],
        "code": '''def {name}(n: int) -> int:
    """Return F(n) with F(0) = 0, F(1) = 1."""
    if n < 0:
        raise ValueError("n must be non-negative")
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a''',
        "calls": ["{name}(0)", "{name}(1)", "{name}(10)", "{name}(30)"],
        "explain": "The loop keeps only the last two values, so it needs O(n) time and O(1) memory "
                   "instead of the exponential time of the naive recursive version.",
    },
    {
        "ask": ["Write a Python function `{name}(s)` that reverses the order of the words in a "
                "sentence.", "How do I reverse the word order of a string in Python?"],
        "names": ["reverse_words", "flip_words"],
        "code": '''def {name}(s: str) -> str:
    """Reverse the order of whitespace-separated words."""
    return " ".join(reversed(s.split()))''',
        "calls": ["{name}('stay calm and wait for help')", "{name}('  one   two ')"],
        "explain": "str.split() without arguments splits on any run of whitespace and drops empty "
                   "strings, so repeated or leading spaces do not produce empty words.",
    },
    {
        "ask": ["Write a Python function that counts the vowels in a string.",
                "Python one-liner-ish function `{name}` to count vowels (a, e, i, o, u), "
                "case-insensitive."],
        "names": ["count_vowels", "vowel_count"],
        "code": '''def {name}(s: str) -> int:
    """Count a, e, i, o, u, ignoring case."""
    return sum(1 for ch in s.lower() if ch in "aeiou")''',
        "calls": ["{name}('Emergency Operations Centre')", "{name}('xyz')"],
        "explain": "Lower-casing first means a single membership test covers both cases.",
    },
    {
        "ask": ["Write a Python function `{name}(lat1, lon1, lat2, lon2)` returning the "
                "great-circle distance in km.",
                "I need the haversine distance in kilometres between two lat/lon points, in Python."],
        "names": ["haversine_km", "distance_km", "great_circle_km"],
        "code": '''import math


def {name}(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km (haversine, Earth radius 6371 km)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp = math.radians(lat2 - lat1)
    dl = math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(a))''',
        "calls": ["round({name}(45.4642, 9.19, 45.0703, 7.6869), 1)",
                  "round({name}(44.4949, 11.3426, 45.4384, 10.9916), 1)"],
        "explain": "The inputs are in degrees and are converted to radians; the result assumes a "
                   "spherical Earth, which is accurate to about 0.5%.",
    },
    {
        "ask": ["Implement binary search in Python: `{name}(xs, target)` returns the index of "
                "target in the sorted list xs, or -1.",
                "Write a binary search function in Python that returns -1 when the value is "
                "missing."],
        "names": ["binary_search", "bsearch", "find_sorted"],
        "code": '''def {name}(xs: list, target) -> int:
    """Index of target in sorted xs, or -1 if absent."""
    lo, hi = 0, len(xs) - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        if xs[mid] == target:
            return mid
        if xs[mid] < target:
            lo = mid + 1
        else:
            hi = mid - 1
    return -1''',
        "calls": ["{name}([2, 5, 8, 12, 16, 23, 38], 23)", "{name}([2, 5, 8, 12], 7)",
                  "{name}([], 1)"],
        "explain": "The search interval [lo, hi] halves on every iteration, so it needs at most "
                   "about log2(n) + 1 comparisons.",
    },
    {
        "ask": ["Write a Python function that flattens an arbitrarily nested list.",
                "Python: flatten [[1, [2, 3]], 4] into [1, 2, 3, 4]."],
        "names": ["flatten", "flatten_list"],
        "code": '''def {name}(nested: list) -> list:
    """Flatten arbitrarily nested lists into one list."""
    out = []
    for item in nested:
        if isinstance(item, list):
            out.extend({name}(item))
        else:
            out.append(item)
    return out''',
        "calls": ["{name}([[1, [2, 3]], 4])", "{name}([[], ['a', ['b']], 'c'])"],
        "explain": "It recurses into every element that is itself a list; other values, "
                   "including strings, are kept as they are.",
    },
    {
        "ask": ["Write a Python function that returns word frequencies of a text, ignoring case "
                "and punctuation.", "Count how often each word appears in a string (Python)."],
        "names": ["word_frequencies", "word_counts"],
        "code": '''import re
from collections import Counter


def {name}(text: str) -> dict:
    """Map each lower-cased word to its number of occurrences."""
    return dict(Counter(re.findall(r"[a-z']+", text.lower())))''',
        "calls": ["{name}('Water, water everywhere. Drink water!')"],
        "explain": "The regular expression keeps runs of letters and apostrophes, so punctuation "
                   "is dropped; Counter does the counting.",
    },
    {
        "ask": ["Write a Python function `{name}(a, b)` that merges two sorted lists into one "
                "sorted list in linear time.", "Merge two sorted lists in Python without calling sort."],
        "names": ["merge_sorted", "merge_lists"],
        "code": '''def {name}(a: list, b: list) -> list:
    """Merge two sorted lists in O(len(a) + len(b))."""
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        if a[i] <= b[j]:
            out.append(a[i])
            i += 1
        else:
            out.append(b[j])
            j += 1
    out.extend(a[i:])
    out.extend(b[j:])
    return out''',
        "calls": ["{name}([1, 4, 9], [2, 3, 10, 11])", "{name}([], [5])"],
        "explain": "Using <= keeps the merge stable: equal elements from a come before those "
                   "from b.",
    },
    {
        "ask": ["Write a Python function `{name}(xs, size)` that splits a list into chunks of at "
                "most `size` elements.", "How do I split a list into batches of n in Python?"],
        "names": ["chunk", "batched", "chunks"],
        "code": '''def {name}(xs: list, size: int) -> list:
    """Split xs into consecutive chunks of at most `size` items."""
    if size <= 0:
        raise ValueError("size must be positive")
    return [xs[i:i + size] for i in range(0, len(xs), size)]''',
        "calls": ["{name}(list(range(7)), 3)", "{name}(['a', 'b'], 5)"],
        "explain": "Slicing past the end of a list is safe in Python, so the last chunk is "
                   "simply shorter.",
    },
    {
        "ask": ["Write a Python function computing the simple moving average of a list with "
                "window k.", "Python: moving average over a window of k values."],
        "names": ["moving_average", "sma"],
        "code": '''def {name}(xs: list, k: int) -> list:
    """Averages of each window of k consecutive values."""
    if k <= 0 or k > len(xs):
        return []
    window = sum(xs[:k])
    out = [window / k]
    for i in range(k, len(xs)):
        window += xs[i] - xs[i - k]
        out.append(window / k)
    return out''',
        "calls": ["{name}([2, 4, 6, 8, 10], 2)", "{name}([1, 2, 3], 3)"],
        "explain": "It updates a running sum instead of re-summing each window, so the cost is "
                   "O(n) rather than O(n k).",
    },
    {
        "ask": ["Write a Python function that checks whether a string is a palindrome, ignoring "
                "case, spaces and punctuation.", "Palindrome check in Python that ignores "
                "non-alphanumeric characters."],
        "names": ["is_palindrome", "palindrome"],
        "code": '''def {name}(s: str) -> bool:
    """True if s reads the same backwards, ignoring case and non-alphanumerics."""
    clean = [ch.lower() for ch in s if ch.isalnum()]
    return clean == clean[::-1]''',
        "calls": ["{name}('A man, a plan, a canal: Panama')", "{name}('tessera')"],
        "explain": "It keeps only letters and digits, lower-cased, and compares the list with its "
                   "reverse.",
    },
    {
        "ask": ["Write a Python function returning how many minutes two time intervals overlap; "
                "the inputs are ISO 8601 strings.", "Python: overlap in minutes between "
                "[a_start, a_end) and [b_start, b_end) given as ISO timestamps."],
        "names": ["overlap_minutes", "interval_overlap"],
        "code": '''from datetime import datetime


def {name}(a_start: str, a_end: str, b_start: str, b_end: str) -> int:
    """Minutes shared by [a_start, a_end) and [b_start, b_end)."""
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    lo = max(datetime.strptime(a_start, fmt), datetime.strptime(b_start, fmt))
    hi = min(datetime.strptime(a_end, fmt), datetime.strptime(b_end, fmt))
    return max(0, int((hi - lo).total_seconds()) // 60)''',
        "calls": ["{name}('2025-06-05T08:00:00Z', '2025-06-05T20:00:00Z', "
                  "'2025-06-05T14:30:00Z', '2025-06-06T02:00:00Z')",
                  "{name}('2025-06-05T08:00:00Z', '2025-06-05T10:00:00Z', "
                  "'2025-06-05T11:00:00Z', '2025-06-05T12:00:00Z')"],
        "explain": "The overlap runs from the later start to the earlier end; if that is negative "
                   "the intervals do not meet and the function returns 0.",
    },
    {
        "ask": ["Write a Python run-length encoder: 'aaabcc' -> 'a3b1c2'.",
                "Implement run-length encoding of a string in Python."],
        "names": ["rle_encode", "run_length_encode"],
        "code": '''def {name}(s: str) -> str:
    """Run-length encode: each run becomes the character followed by its length."""
    if not s:
        return ""
    out = []
    prev, count = s[0], 1
    for ch in s[1:]:
        if ch == prev:
            count += 1
        else:
            out.append(f"{{prev}}{{count}}")
            prev, count = ch, 1
    out.append(f"{{prev}}{{count}}")
    return "".join(out)''',
        "calls": ["{name}('aaabcc')", "{name}('wwwwwwxyz')", "{name}('')"],
        "explain": "It walks the string once, counting the length of each run and flushing the "
                   "run when the character changes and at the end.",
    },
    {
        "ask": ["Write a Python function returning the second largest distinct value in a list, "
                "or None.", "Python: second-largest unique number in a list."],
        "names": ["second_largest", "runner_up"],
        "code": '''def {name}(xs: list):
    """Second largest distinct value, or None if there is none."""
    first = second = None
    for x in xs:
        if first is None or x > first:
            first, second = x, first
        elif x != first and (second is None or x > second):
            second = x
    return second''',
        "calls": ["{name}([4, 9, 2, 9, 7])", "{name}([5, 5])", "{name}([])"],
        "explain": "One pass keeps the two largest distinct values seen so far; duplicates of the "
                   "maximum are skipped.",
    },
    {
        "ask": ["Write a Python function that transposes a matrix given as a list of lists.",
                "Transpose a 2D list in Python."],
        "names": ["transpose"],
        "code": '''def {name}(m: list) -> list:
    """Transpose a rectangular matrix given as a list of rows."""
    return [list(row) for row in zip(*m)]''',
        "calls": ["{name}([[1, 2, 3], [4, 5, 6]])", "{name}([[7]])"],
        "explain": "zip(*m) pairs up the i-th elements of every row, which are exactly the "
                   "columns.",
    },
]

# Per template: (one-line summary for a spec list, time complexity answer).
TEMPLATE_INFO = {
    "is_prime": ("primality test for an integer n",
                 "O(sqrt(n)) time: it tries odd divisors up to the square root of n. Memory is O(1)."),
    "gcd": ("greatest common divisor of two integers (Euclid, no math.gcd)",
            "O(log(min(a, b))) iterations, since the remainders shrink at least as fast as the "
            "Fibonacci numbers grow."),
    "fibonacci": ("n-th Fibonacci number, iteratively, with F(0) = 0",
                  "O(n) additions and O(1) memory (ignoring that the numbers themselves grow)."),
    "reverse_words": ("reverse the order of the words in a sentence",
                      "O(n) in the length of the string: one split, one reverse, one join."),
    "count_vowels": ("count the vowels in a string, ignoring case",
                     "O(n): every character is looked at once."),
    "haversine_km": ("great-circle distance in km between two lat/lon points",
                     "O(1): a fixed number of trigonometric operations."),
    "binary_search": ("index of a value in a sorted list, or -1",
                      "O(log n) comparisons, because the interval halves every iteration."),
    "flatten": ("flatten an arbitrarily nested list",
                "O(N) where N is the total number of elements and sub-lists, plus recursion depth "
                "equal to the nesting depth."),
    "word_frequencies": ("word counts of a text, ignoring case and punctuation",
                         "O(n) in the length of the text."),
    "merge_sorted": ("merge two sorted lists in linear time",
                     "O(len(a) + len(b)): each element is appended exactly once."),
    "chunk": ("split a list into chunks of at most `size` items",
              "O(n): every element is copied into exactly one chunk."),
    "moving_average": ("simple moving average with window k",
                       "O(n): the window sum is updated in constant time per step."),
    "is_palindrome": ("palindrome check ignoring case and non-alphanumerics",
                      "O(n) time and O(n) extra memory for the cleaned copy."),
    "overlap_minutes": ("overlap in minutes of two ISO 8601 time intervals",
                        "O(1): two parses per interval and a subtraction."),
    "rle_encode": ("run-length encode a string ('aaabcc' -> 'a3b1c2')",
                   "O(n): a single pass over the string."),
    "second_largest": ("second largest distinct value of a list, or None",
                       "O(n): a single pass with two running maxima."),
    "transpose": ("transpose a matrix given as a list of rows",
                  "O(rows x cols): every element is copied once."),
}
assert all(t["names"][0] in TEMPLATE_INFO for t in PY_TEMPLATES)

CPP_TEMPLATES = [
    ("Write a C++ function that returns the great-circle distance in km between two points "
     "given in degrees.",
     '''#include <cmath>

// Haversine distance in km; inputs in degrees, Earth radius 6371 km.
double haversine_km(double lat1, double lon1, double lat2, double lon2) {
    constexpr double kPi = 3.14159265358979323846;
    constexpr double kDeg = kPi / 180.0;
    const double dp = (lat2 - lat1) * kDeg;
    const double dl = (lon2 - lon1) * kDeg;
    const double a = std::sin(dp / 2) * std::sin(dp / 2) +
                     std::cos(lat1 * kDeg) * std::cos(lat2 * kDeg) *
                     std::sin(dl / 2) * std::sin(dl / 2);
    return 2.0 * 6371.0 * std::asin(std::sqrt(a));
}''',
     "The same formula as the usual haversine: convert to radians, compute a, then "
     "d = 2 R asin(sqrt(a)). It uses only <cmath>, so it works in any C++11 or later compiler."),
    ("In C++, how do I sum a std::vector<double> with the standard library?",
     '''#include <numeric>
#include <vector>

double sum(const std::vector<double>& xs) {
    // The initial value 0.0 makes the accumulation happen in double, not int.
    return std::accumulate(xs.begin(), xs.end(), 0.0);
}''',
     "std::accumulate folds the range with operator+. Passing 0.0 rather than 0 matters: the "
     "type of the initial value is the type of the running sum."),
    ("Write a C++ function that reverses a string in place.",
     '''#include <algorithm>
#include <string>

void reverse_in_place(std::string& s) {
    std::reverse(s.begin(), s.end());
}''',
     "std::reverse swaps elements from both ends towards the middle, so it needs no extra "
     "memory."),
    ("C++: count the words in a std::string separated by whitespace.",
     '''#include <sstream>
#include <string>

std::size_t count_words(const std::string& text) {
    std::istringstream in(text);
    std::size_t n = 0;
    std::string word;
    while (in >> word) {
        ++n;
    }
    return n;
}''',
     "operator>> on a stream skips any amount of whitespace before each word, so multiple "
     "spaces, tabs and newlines are all handled."),
    ("Show me FizzBuzz from 1 to 15 in C++.",
     '''#include <iostream>

int main() {
    for (int i = 1; i <= 15; ++i) {
        if (i % 15 == 0) {
            std::cout << "FizzBuzz\\n";
        } else if (i % 3 == 0) {
            std::cout << "Fizz\\n";
        } else if (i % 5 == 0) {
            std::cout << "Buzz\\n";
        } else {
            std::cout << i << "\\n";
        }
    }
    return 0;
}''',
     "The multiple-of-15 test comes first; otherwise numbers divisible by both 3 and 5 would "
     "print only Fizz."),
    ("C++: find the index of the largest element of a non-empty std::vector<int>.",
     '''#include <algorithm>
#include <cstddef>
#include <iterator>
#include <vector>

std::size_t argmax(const std::vector<int>& xs) {
    // Precondition: xs is not empty.
    auto it = std::max_element(xs.begin(), xs.end());
    return static_cast<std::size_t>(std::distance(xs.begin(), it));
}''',
     "std::max_element returns an iterator to the first largest element; std::distance turns "
     "it into an index. For an empty vector it would return end(), hence the precondition."),
    ("Write a C++ function that reads all lines of a text file into a vector, and reports "
     "errors.",
     '''#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

std::vector<std::string> read_lines(const std::string& path) {
    std::ifstream in(path);
    if (!in) {
        throw std::runtime_error("cannot open " + path);
    }
    std::vector<std::string> lines;
    std::string line;
    while (std::getline(in, line)) {
        lines.push_back(line);
    }
    if (in.bad()) {
        throw std::runtime_error("read error in " + path);
    }
    return lines;
}''',
     "The error message names the file, and bad() distinguishes a real I/O error from the "
     "normal end of file."),
    ("Write a C++ function clamp_score(x) that limits a double to [0, 1] (without std::clamp).",
     '''double clamp_score(double x) {
    if (x < 0.0) return 0.0;
    if (x > 1.0) return 1.0;
    return x;
}''',
     "Since C++17 you could write std::clamp(x, 0.0, 1.0) from <algorithm> instead. Note that "
     "a NaN input passes through unchanged, because both comparisons are false."),
]

OTHER_LANG_TEMPLATES = [
    ("JavaScript: write a function that returns the sum of an array of numbers.",
     "javascript", '''function sum(xs) {
  return xs.reduce((acc, x) => acc + x, 0);
}

console.log(sum([3, 4, 5])); // 12''',
     "reduce starts from the initial value 0, so an empty array returns 0 instead of throwing."),
    ("Rust: write a gcd function for u64.", "rust", '''fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a
}

fn main() {
    println!("{}", gcd(84, 36)); // 12
}''',
     "It is Euclid's algorithm; the parameters are declared mut so they can be updated in the "
     "loop."),
    ("Bash: count the lines of every .jsonl file in the current directory.", "bash",
     '''for f in *.jsonl; do
  printf '%s %s\\n' "$(wc -l < "$f")" "$f"
done''',
     "Reading with `wc -l < file` prints only the number, and quoting \"$f\" keeps names with "
     "spaces intact."),
    ("SQL: list the number of volunteers per skill from a table volunteer_skills(volunteer_id, "
     "skill), most common first.", "sql", '''SELECT skill, COUNT(DISTINCT volunteer_id) AS volunteers
FROM volunteer_skills
GROUP BY skill
ORDER BY volunteers DESC, skill;''',
     "COUNT(DISTINCT ...) protects against duplicate rows, and the second sort key makes the "
     "order deterministic for ties."),
]

PREDICT_SNIPPETS = [
    # (code template, params generator, explanation template)
    ("print(sum(i * i for i in range({n})))",
     lambda r: {"n": r.randint(3, 12)},
     "It adds the squares 0^2 + 1^2 + ... + {last}^2."),
    ("xs = {xs}\nprint(sorted(xs, reverse=True)[:2])",
     lambda r: {"xs": str(r.sample(range(1, 60), 5))},
     "sorted(..., reverse=True) orders the list from largest to smallest and [:2] keeps the "
     "first two."),
    ("s = \"{w}\"\nprint(s[::-1].lower())",
     lambda r: {"w": r.choice(["Tessera", "Rescue", "Volunteer", "Shelter", "Bologna"])},
     "s[::-1] reverses the string and .lower() converts it to lower case."),
    ("x = {a}\nfor _ in range({k}):\n    x = x * 2 + 1\nprint(x)",
     lambda r: {"a": r.randint(0, 5), "k": r.randint(2, 5)},
     "Each iteration doubles x and adds one."),
    ("print([n for n in range({a}, {b}) if n % {m} == 0])",
     lambda r: {"a": r.randint(1, 10), "b": r.randint(30, 50), "m": r.choice([3, 4, 6, 7])},
     "The comprehension keeps the numbers in the range that are divisible by {m}; note that "
     "range excludes its end."),
    ("print(divmod({a}, {b}))",
     lambda r: {"a": r.randint(50, 500), "b": r.randint(3, 12)},
     "divmod returns the quotient and the remainder as a tuple."),
    ("counts = {{}}\nfor w in \"{text}\".split():\n    counts[w] = counts.get(w, 0) + 1\nprint(counts)",
     lambda r: {"text": " ".join(r.choice(["water", "food", "tent", "radio"]) for _ in range(6))},
     "It counts each word; dictionaries keep insertion order, so keys appear in the order they "
     "were first seen."),
    ("print(len(set({xs})))",
     lambda r: {"xs": str([r.randint(1, 6) for _ in range(8)])},
     "set() removes duplicates, so this prints the number of distinct values."),
    ("words = \"{text}\".split()\nprint(\" \".join(w.capitalize() for w in words))",
     lambda r: {"text": r.choice(["stay calm and call for help", "drop cover and hold on",
                                  "check the radio every hour", "bring water and blankets"])},
     "capitalize() upper-cases the first letter of each word and lower-cases the rest."),
    ("a = [1, 2, 3]\nb = a\nb.append({k})\nprint(a)",
     lambda r: {"k": r.randint(4, 9)},
     "b = a does not copy the list: both names refer to the same object, so appending through b "
     "changes a as well."),
]

BUGFIX = [
    ("This function should return the sum 1 + 2 + ... + n but gives the wrong answer. Why?",
     "def total(n):\n    s = 0\n    for i in range(n):\n        s += i\n    return s",
     "def total(n):\n    s = 0\n    for i in range(1, n + 1):\n        s += i\n    return s",
     "range(n) yields 0, 1, ..., n - 1, so n itself is never added. Use range(1, n + 1) (or "
     "simply n * (n + 1) // 2)."),
    ("Why does my list keep growing between calls?",
     "def add_item(item, items=[]):\n    items.append(item)\n    return items",
     "def add_item(item, items=None):\n    if items is None:\n        items = []\n    items.append(item)\n    return items",
     "Default argument values are evaluated once, when the function is defined, so every call "
     "shares the same list. Use None as the default and create a new list inside."),
    ("This average function returns 2 for [1, 2, 2, 2] in Python 3? I expected 1.75.",
     "def average(xs):\n    return sum(xs) // len(xs)",
     "def average(xs):\n    if not xs:\n        raise ValueError(\"empty list\")\n    return sum(xs) / len(xs)",
     "// is floor division. Use / for true division, and guard against an empty list."),
    ("My function returns None sometimes. What's wrong?",
     "def sign(x):\n    if x > 0:\n        return 1\n    elif x < 0:\n        return -1",
     "def sign(x):\n    if x > 0:\n        return 1\n    if x < 0:\n        return -1\n    return 0",
     "When x == 0 neither branch runs, and a Python function without a return statement "
     "returns None. Add the missing case."),
    ("Why does this comparison sometimes fail?",
     "def same_code(a, b):\n    return a is b",
     "def same_code(a, b):\n    return a == b",
     "`is` tests whether two names refer to the same object, not whether the values are equal. "
     "Two equal strings built at run time are often different objects. Use ==."),
    ("This loop over a dict crashes with 'dictionary changed size during iteration'.",
     "for k in counts:\n    if counts[k] == 0:\n        del counts[k]",
     "for k in list(counts):\n    if counts[k] == 0:\n        del counts[k]",
     "You cannot add or remove keys while iterating over the dict itself. Iterate over a "
     "snapshot of the keys with list(counts), or build a new dict with a comprehension."),
]

TRANSLATIONS_ZH = [
    ("Please stay calm.", "请保持冷静。"),
    ("Where does it hurt?", "哪里疼？"),
    ("Help is on the way.", "救援人员正在赶来。"),
    ("Do you need water?", "你需要水吗？"),
    ("Follow me to the exit.", "请跟我到出口。"),
    ("Is anyone injured?", "有人受伤吗？"),
    ("The shelter is at the school.", "避难所设在学校。"),
    ("Do not go back inside the building.", "不要返回建筑物内。"),
    ("What is your name?", "你叫什么名字？"),
    ("We will stay with you.", "我们会陪着你。"),
    ("Thank you for your help.", "谢谢你的帮助。"),
    ("The road is closed.", "道路已封闭。"),
]
DEFINITIONS_ZH = [
    ("分诊", "分诊是根据伤病员情况的紧急程度进行分类，让有限的医护人员和设备优先用于最需要、也最能获益的人。"),
    ("志愿者排班表", "志愿者排班表记录每位志愿者在什么时间、能承担什么任务，方便协调员安排班次，避免有人负担过重。"),
    ("心理急救", "心理急救是在突发事件发生后，为受影响的人提供的人道、务实的支持：确保安全、耐心倾听但不强迫对方倾诉、帮助解决基本需求，并帮助他们联系家人和相关服务。"),
    ("梯度下降", "梯度下降是一种优化方法：每一步都沿着损失函数下降最快的方向（即梯度的反方向）小幅调整模型参数。"),
    ("数据并行", "数据并行是把同一个模型复制到多张显卡上，每张卡处理不同的数据切片，然后在每次参数更新前用 all-reduce 对梯度求平均。"),
    ("检查点", "检查点是训练过程中保存的完整快照，包括模型权重、优化器状态、数据读取位置和随机数状态，用于在中断后精确恢复训练。"),
]

WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
WEEKDAYS_ZH = ["星期一", "星期二", "星期三", "星期四", "星期五", "星期六", "星期日"]
PEOPLE = ["Ana", "Ben", "Carla", "Dario", "Elif", "Femi", "Greta", "Hugo", "Ines", "Jonas"]
TEAMS = ["Alpha", "Bravo", "Charlie", "Delta", "Echo", "Foxtrot"]
SUPPLIES = ["blankets", "drinking water", "sandbags", "a generator", "fuel", "stretchers",
            "medical kits", "tarpaulins", "torches", "hot meals"]


# ---------------------------------------------------------------------------
# Conversation generators.  Each returns a dict with "messages" (and optionally
# "tools"); make_conversations adds "id" and "category".
# ---------------------------------------------------------------------------

def sys_maybe(rng, p=0.5, pool=None):
    if rng.random() < p:
        return [{"role": "system", "content": rng.choice(pool or GENERAL_SYSTEMS)}]
    return []


def run_py(code: str) -> str:
    buf = io.StringIO()
    with redirect_stdout(buf):
        exec(compile(code, "<snippet>", "exec"), {"__name__": "__snippet__"})
    return buf.getvalue()


def g_smalltalk(rng):
    pairs = [
        ("Hi!", "Hello! How can I help you today?"),
        ("hello", "Hi there! What would you like to do?"),
        ("Thanks, that was useful.", "You're welcome! Let me know if you need anything else."),
        ("Who are you?", "I'm an AI assistant. I can answer questions, do calculations, write code "
                         "and help coordinate volunteers."),
        ("Good morning", "Good morning! What can I do for you?"),
        ("Are you a human?", "No, I'm an AI language model."),
        ("ok", "Great. Is there anything else I can help with?"),
        ("Can you speak Chinese?", "Yes. 我可以用中文回答问题。Which language would you prefer?"),
        ("bye", "Goodbye, and stay safe!"),
        ("你好", "你好！有什么可以帮你的吗？"),
        ("谢谢", "不客气！"),
    ]
    u, a = rng.choice(pairs)
    return {"messages": [{"role": "user", "content": u}, {"role": "assistant", "content": a}]}


def g_capital(rng):
    c, cap, cont = rng.choice(CAPITALS)
    q = rng.choice(["What is the capital of {c}?", "Which city is the capital of {c}?",
                    "capital of {c}?", "Quick question: what's {c}'s capital city?"]).format(c=c)
    a = rng.choice([f"The capital of {c} is {cap}.", f"{cap}.",
                    f"{cap} is the capital of {c}, a country in {cont}."])
    return {"messages": sys_maybe(rng, 0.3) + [{"role": "user", "content": q},
                                                {"role": "assistant", "content": a}]}


def g_element(rng):
    name, sym, z = rng.choice(ELEMENTS)
    if rng.random() < 0.5:
        q = rng.choice([f"What is the chemical symbol for {name}?",
                        f"Symbol of {name} in the periodic table?"])
        a = f"The chemical symbol for {name} is {sym} (atomic number {z})."
    else:
        q = rng.choice([f"Which element has the symbol {sym}?", f"What element is {sym}?"])
        a = f"{sym} is {name}, atomic number {z}."
    return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}


def g_units(rng):
    kind = rng.choice(["km_mi", "c_f", "kg_lb", "l_gal", "f_c"])
    if kind == "km_mi":
        x = rng.choice([3, 5, 10, 21, 42, 60, 95, 120, 250])
        y = dec(Decimal(x) * Decimal("0.621371"), 2)
        q = f"How many miles is {x} km?"
        a = f"{x} km is about {y} miles (1 km = 0.621371 miles)."
    elif kind == "c_f":
        x = rng.choice([-10, -5, 0, 12, 18, 25, 31, 37, 40, 100])
        y = Fraction(x) * Fraction(9, 5) + 32
        q = f"Convert {x} degrees Celsius to Fahrenheit."
        a = (f"F = C x 9/5 + 32 = {x} x 9/5 + 32 = {fmt_num(y)}. So {x} C is {fmt_num(y)} F.")
    elif kind == "f_c":
        x = rng.choice([32, 50, 68, 77, 86, 98, 104, 212, 0])
        y = (Fraction(x) - 32) * Fraction(5, 9)
        q = f"What is {x} F in Celsius?"
        approx = "" if y.denominator == 1 else " (rounded to 4 decimals)"
        a = f"C = (F - 32) x 5/9 = ({x} - 32) x 5/9 = {fmt_num(y)}{approx}."
    elif kind == "kg_lb":
        x = rng.choice([1, 5, 12, 20, 25, 50, 70, 100])
        y = dec(Decimal(x) * Decimal("2.20462"), 1)
        q = f"{x} kg in pounds?"
        a = f"{x} kg is about {y} lb (1 kg = 2.20462 lb)."
    else:
        x = rng.choice([1, 5, 10, 20, 50, 200, 1000])
        y = dec(Decimal(x) / Decimal("3.78541"), 2)
        q = f"How many US gallons are {x} litres?"
        a = f"{x} L is about {y} US gallons (1 US gallon = 3.78541 L)."
    return {"messages": sys_maybe(rng, 0.3) + [{"role": "user", "content": q},
                                                {"role": "assistant", "content": a}]}


def g_definition(rng, long_p=0.3):
    term, d, ex = rng.choice(DEFINITIONS)
    q = rng.choice(DEF_QUESTIONS).format(t=term)
    r = rng.random()
    if r < 0.35:
        a = d
    elif r < 1 - long_p:
        a = f"{d}\n\nExample: {ex}"
    else:
        others = rng.sample([x for x in DEFINITIONS if x[0] != term], 2)
        a = (f"{d}\n\nExample: {ex}\n\nRelated ideas:\n- {others[0][0]}: {others[0][1]}\n"
             f"- {others[1][0]}: {others[1][1]}")
    return {"messages": sys_maybe(rng, 0.5) + [{"role": "user", "content": q},
                                                {"role": "assistant", "content": a}]}


def g_prep_short(rng):
    haz = rng.choice(list(HAZARDS))
    phase = rng.choice(["before", "during", "after"])
    q = {"before": f"How should I prepare for a {haz}?",
         "during": f"What should I do during a {haz}?",
         "after": f"What should I do after a {haz}?"}[phase]
    if rng.random() < 0.3:
        q = q.replace("?", rng.choice([" Keep it short.", " I live in an apartment.",
                                       " Give me a checklist."]))
    items = HAZARDS[haz][phase]
    k = rng.randint(3, len(items))
    a = (f"{'Key steps' if phase != 'after' else 'Once the danger has passed'}:\n" +
         "\n".join(f"{i + 1}. {x}" for i, x in enumerate(items[:k])) +
         "\n\nAlways follow the instructions of your local authorities.")
    return {"messages": sys_maybe(rng, 0.6) + [{"role": "user", "content": q},
                                                {"role": "assistant", "content": a}]}


def g_kit(rng):
    k = rng.randint(6, len(KIT_ITEMS))
    items = KIT_ITEMS[:6] + rng.sample(KIT_ITEMS[6:], k - 6)
    q = rng.choice(["What should go in a home emergency kit?", "emergency kit checklist?",
                    "What do I need in a go-bag for evacuation?"])
    a = ("A basic emergency kit:\n" + "\n".join(f"- {x}" for x in items) +
         "\n\nCheck the kit twice a year and replace expired food, water and medicines.")
    return {"messages": sys_maybe(rng, 0.4) + [{"role": "user", "content": q},
                                                {"role": "assistant", "content": a}]}


def g_guide_long(rng):
    haz = rng.choice(list(HAZARDS))
    aud = rng.choice(AUDIENCES)
    place = rng.choice([t[0] for t in TOWNS])
    q = rng.choice([
        f"Write a detailed {haz} preparedness guide for {aud} in {place}.",
        f"Can you draft a complete {haz} plan for {aud}? We are based near {place}.",
        f"I coordinate {aud} in {place}. Please write our {haz} emergency plan with sections and "
        f"checklists.",
    ])
    parts = [f"# {haz.capitalize()} preparedness guide for {aud} ({place})",
             f"This guide helps {aud} in {place} prepare for, respond to and recover from a "
             f"{haz}. Adapt it to your building and review it every year."]
    for phase, title in (("before", "Before"), ("during", "During"), ("after", "After")):
        parts.append(f"## {title} a {haz}\n" +
                     "\n".join(f"- {x}" for x in HAZARDS[haz][phase]))
    gen_titles = list(GUIDE_GENERIC)
    rng.shuffle(gen_titles)
    nsec = rng.randint(1, len(gen_titles))
    for t in gen_titles[:nsec]:
        paras = GUIDE_GENERIC[t]
        chosen = paras[: rng.randint(2, len(paras))]
        parts.append(f"## {t}\n" + "\n\n".join(p.format(aud=aud, place=place, haz=haz)
                                                 for p in chosen))
    if rng.random() < 0.7:
        parts.append("## Emergency kit checklist\n" +
                     "\n".join(f"- [ ] {x}" for x in KIT_ITEMS[: rng.randint(8, len(KIT_ITEMS))]))
    others = [h for h in HAZARDS if h != haz]
    rng.shuffle(others)
    for other in others[: rng.choice([0, 0, 1, 1, 2, 3])]:
        parts.append(f"## Related hazard: {other}\nA {haz} can come together with a {other}. "
                     f"Key actions during a {other}:\n" +
                     "\n".join(f"- {x}" for x in HAZARDS[other]["during"]) +
                     "\n\nAfterwards:\n" + "\n".join(f"- {x}" for x in HAZARDS[other]["after"]))
    parts.append("## Review\nThis plan should be reviewed after every drill and every real "
                 "event. Record the date of the last review and who approved it.")
    msgs = sys_maybe(rng, 0.5) + [{"role": "user", "content": q},
                                   {"role": "assistant", "content": "\n\n".join(parts)}]
    return {"messages": msgs}


def g_log_summary(rng):
    n = rng.choice([rng.randint(12, 60), rng.randint(40, 120), rng.randint(100, 175)])
    teams = rng.sample(TEAMS, rng.randint(2, 5))
    t = dt.datetime(2025, 6, rng.randint(3, 14), rng.randint(5, 10), rng.choice([0, 15, 30, 45]))
    state = {tm: "at base" for tm in teams}
    evac = {tm: 0 for tm in teams}
    cas = {tm: 0 for tm in teams}
    requested, received, blocked = [], [], []
    lines = []
    for _ in range(n):
        t += dt.timedelta(minutes=rng.choice([2, 5, 7, 10, 12, 15, 20, 25]))
        tm = rng.choice(teams)
        ev = rng.choices(["depart", "arrive", "evac", "cas", "req", "recv", "block", "radio",
                          "return"], [2, 2, 4, 3, 2, 2, 1, 3, 1])[0]
        if ev == "depart":
            txt = "departed base"
            state[tm] = "en route"
        elif ev == "arrive":
            txt = f"arrived at sector {rng.randint(1, 9)}"
            state[tm] = "on site"
        elif ev == "evac":
            k = rng.randint(1, 14)
            evac[tm] += k
            txt = f"evacuated {k} residents"
        elif ev == "cas":
            k = rng.randint(1, 4)
            cas[tm] += k
            txt = f"assessed {k} casualties"
        elif ev == "req":
            item = rng.choice(SUPPLIES)
            requested.append(item)
            txt = f"requested {item}"
        elif ev == "recv":
            if requested and rng.random() < 0.8:
                item = rng.choice(requested)
            else:
                item = rng.choice(SUPPLIES)
            received.append(item)
            txt = f"received {item}"
        elif ev == "block":
            road = f"SP{rng.randint(10, 99)}"
            blocked.append(road)
            txt = f"road {road} blocked"
        elif ev == "radio":
            txt = "radio check OK"
        else:
            txt = "returned to base"
            state[tm] = "at base"
        lines.append(f"{t.strftime('%H:%M')} [{tm}] {txt}")
    q = rng.choice(["Summarise this operations log for the evening briefing:",
                    "Here is today's radio log. Give me a short summary with totals per team.",
                    "Summarize the log below: totals, open supply requests, blocked roads."])
    user = q + "\n\n" + "\n".join(lines)
    # Open requests: multiset difference requested - received, in request order.
    pending = list(requested)
    for it in received:
        if it in pending:
            pending.remove(it)
    seen, open_req = [], []
    for it in pending:
        if it not in seen:
            seen.append(it)
            open_req.append(f"{it} (x{pending.count(it)})" if pending.count(it) > 1 else it)
    first, last = lines[0][:5], lines[-1][:5]
    out = [f"Log from {first} to {last}: {n} entries, {len(teams)} teams.",
           f"Totals: {sum(evac.values())} residents evacuated, {sum(cas.values())} casualties "
           f"assessed.", "", "Per team:"]
    for tm in teams:
        entries = sum(1 for l in lines if f"[{tm}]" in l)
        out.append(f"- {tm}: {entries} entries, {evac[tm]} evacuated, {cas[tm]} casualties "
                   f"assessed; last known status: {state[tm]}.")
    out.append("")
    out.append("Open supply requests: " + (", ".join(open_req) if open_req else "none") + ".")
    bl = []
    for b in blocked:
        if b not in bl:
            bl.append(b)
    out.append("Blocked roads reported: " + (", ".join(bl) if bl else "none") + ".")
    msgs = sys_maybe(rng, 0.4) + [{"role": "user", "content": user},
                                   {"role": "assistant", "content": "\n".join(out)}]
    return {"messages": msgs}


def g_arith(rng):
    op = rng.choice(["+", "-", "*", "/", "%", "pow"])
    if op == "+":
        a, b = rng.randint(10, 99999), rng.randint(10, 99999)
        q, ans = f"What is {a} + {b}?", f"{a} + {b} = {a + b}."
    elif op == "-":
        a, b = rng.randint(10, 9999), rng.randint(10, 9999)
        q, ans = f"{a} - {b} = ?", f"{a} - {b} = {a - b}."
    elif op == "*":
        a, b = rng.randint(12, 999), rng.randint(3, 99)
        if b >= 10 and rng.random() < 0.6:
            t, o = b // 10 * 10, b % 10
            ans = (f"{a} x {b} = {a} x {t} + {a} x {o} = {a * t} + {a * o} = {a * b}."
                   if o else f"{a} x {b} = {a * b}.")
        else:
            ans = f"{a} x {b} = {a * b}."
        q = rng.choice([f"What is {a} times {b}?", f"Compute {a} * {b}.", f"{a} x {b}?"])
    elif op == "/":
        b = rng.randint(2, 40)
        qv = rng.randint(2, 500)
        rem = rng.choice([0, 0, rng.randint(1, b - 1)])
        a = b * qv + rem
        q = f"What is {a} divided by {b}?"
        if rem == 0:
            ans = f"{a} / {b} = {qv}."
        else:
            ans = (f"{a} / {b} = {qv} remainder {rem}, i.e. {fmt_num(Fraction(a, b))} "
                   f"({qv} {rem}/{b}).")
    elif op == "%":
        p = rng.choice([5, 10, 12, 15, 20, 25, 30, 40, 75])
        n = rng.choice([40, 60, 80, 120, 200, 240, 360, 480, 1000])
        v = Fraction(p * n, 100)
        q = f"What is {p}% of {n}?"
        ans = f"{p}% of {n} = {p}/100 x {n} = {fmt_num(v)}."
    else:
        a, b = rng.randint(2, 12), rng.randint(2, 6)
        q = f"What is {a} to the power of {b}?"
        ans = f"{a}^{b} = {a ** b}."
    return {"messages": sys_maybe(rng, 0.25) + [{"role": "user", "content": q},
                                                 {"role": "assistant", "content": ans}]}


def g_expression(rng):
    a, b, c, d = (rng.randint(2, 30) for _ in range(4))
    form = rng.choice(["{a} + {b} * {c} - {d}", "({a} + {b}) * {c} - {d}", "{a} * {b} - {c} * {d}",
                       "({a} - {b}) * ({c} + {d})", "{a} + {b} * ({c} - {d})"])
    expr = form.format(a=a, b=b, c=c, d=d)
    val = eval(expr)  # our own integer expression
    pretty = expr.replace("*", "x")
    steps = []
    if form == "{a} + {b} * {c} - {d}":
        steps = [f"Multiplication first: {b} x {c} = {b * c}.", f"Then {a} + {b * c} - {d} = {val}."]
    elif form == "({a} + {b}) * {c} - {d}":
        steps = [f"Brackets first: {a} + {b} = {a + b}.", f"{a + b} x {c} = {(a + b) * c}.",
                 f"{(a + b) * c} - {d} = {val}."]
    elif form == "{a} * {b} - {c} * {d}":
        steps = [f"{a} x {b} = {a * b} and {c} x {d} = {c * d}.", f"{a * b} - {c * d} = {val}."]
    elif form == "({a} - {b}) * ({c} + {d})":
        steps = [f"{a} - {b} = {a - b} and {c} + {d} = {c + d}.", f"{a - b} x {c + d} = {val}."]
    else:
        steps = [f"Brackets: {c} - {d} = {c - d}.", f"{b} x {c - d} = {b * (c - d)}.",
                 f"{a} + {b * (c - d)} = {val}."]
    q = rng.choice([f"Evaluate {pretty}.", f"What is {pretty}?", f"Calculate {pretty} step by step."])
    if rng.random() < 0.5:
        msg = {"role": "assistant", "reasoning_content": " ".join(steps), "content": f"{pretty} = {val}"}
    else:
        msg = {"role": "assistant", "content": "\n".join(steps) + f"\n\nAnswer: {val}"}
    return {"messages": sys_maybe(rng, 0.3) + [{"role": "user", "content": q}, msg]}


def g_word_problem(rng, zh=False):
    kind = rng.choice(["convoy", "shifts", "share", "walk", "cost", "percent"])
    if kind == "convoy":
        t, b, k = rng.randint(2, 9), rng.randint(10, 60), rng.choice([6, 12, 24])
        ans = t * b * k
        if zh:
            q = f"救援车队有 {t} 辆卡车，每辆车装 {b} 箱水，每箱 {k} 瓶。一共有多少瓶水？"
            r = f"每辆车的瓶数：{b} × {k} = {b * k}。{t} 辆车：{t} × {b * k} = {ans}。"
            a = f"一共有 {ans} 瓶水。"
        else:
            q = (f"A relief convoy has {t} trucks. Each truck carries {b} boxes with {k} bottles "
                 f"of water per box. How many bottles are there in total?")
            r = (f"Bottles per truck: {b} x {k} = {b * k}. Trucks: {t}. Total: {t} x {b * k} = "
                 f"{ans}.")
            a = f"There are {ans} bottles in total."
    elif kind == "shifts":
        v, h, d = rng.randint(3, 40), rng.choice([4, 6, 8, 12]), rng.randint(2, 10)
        ans = v * h * d
        if zh:
            q = f"{v} 名志愿者每人每天工作 {h} 小时，连续工作 {d} 天，一共是多少志愿服务小时？"
            r = f"每天：{v} × {h} = {v * h} 小时。{d} 天：{v * h} × {d} = {ans} 小时。"
            a = f"一共 {ans} 小时。"
        else:
            q = (f"{v} volunteers each work a {h}-hour shift every day for {d} days. How many "
                 f"volunteer-hours is that?")
            r = f"Per day: {v} x {h} = {v * h} hours. Over {d} days: {v * h} x {d} = {ans}."
            a = f"That is {ans} volunteer-hours."
    elif kind == "share":
        s = rng.randint(3, 12)
        n = rng.randint(40, 900)
        qv, rem = divmod(n, s)
        if zh:
            q = f"把 {n} 条毯子平均分给 {s} 个避难所，每个避难所分几条？还剩几条？"
            r = f"{n} ÷ {s} = {qv} 余 {rem}，因为 {s} × {qv} = {s * qv}，{n} - {s * qv} = {rem}。"
            a = f"每个避难所 {qv} 条，还剩 {rem} 条。"
        else:
            q = (f"{n} blankets are shared equally among {s} shelters. How many does each shelter "
                 f"get, and how many are left over?")
            r = (f"{n} / {s}: {s} x {qv} = {s * qv}, and {n} - {s * qv} = {rem}. So the quotient "
                 f"is {qv} with remainder {rem}.")
            a = (f"Each shelter gets {qv} blankets and {rem} "
                 f"{'is' if rem == 1 else 'are'} left over.")
    elif kind == "walk":
        v = rng.choice([3, 4, 5, 6])
        minutes = rng.choice([30, 45, 50, 75, 90, 100, 120, 150])
        dist = Fraction(v * minutes, 60)
        hh, mm = divmod(minutes, 60)
        dur = (f"{hh} h {mm} min" if hh and mm else f"{hh} h" if hh else f"{mm} min")
        if zh:
            q = f"搜救队以每小时 {v} 公里的速度步行 {fmt_num(dist)} 公里，需要多长时间？"
            r = f"时间 = 距离 ÷ 速度 = {fmt_num(dist)} ÷ {v} = {fmt_num(Fraction(minutes, 60))} 小时 = {minutes} 分钟。"
            a = f"需要 {minutes} 分钟（{dur}）。"
        else:
            q = (f"A search team walks {fmt_num(dist)} km at {v} km/h. How long does it take?")
            r = (f"time = distance / speed = {fmt_num(dist)} / {v} = "
                 f"{fmt_num(Fraction(minutes, 60))} h = {minutes} minutes.")
            a = f"It takes {dur} ({minutes} minutes)."
    elif kind == "cost":
        qn = rng.randint(3, 50)
        cents = rng.choice([199, 250, 375, 420, 899, 1250, 1999])
        disc = rng.choice([0, 10, 15, 20, 25])
        gross = qn * cents
        net = Fraction(gross * (100 - disc), 100)
        net_c = Decimal(net.numerator) / Decimal(net.denominator)
        euros = dec(net_c / 100, 2)
        price = dec(Decimal(cents) / 100, 2)
        if zh:
            q = f"每件物资 {price} 欧元，买 {qn} 件，打折 {disc}%，一共要付多少钱？"
            r = (f"原价：{qn} × {price} = {dec(Decimal(gross) / 100, 2)} 欧元。"
                 f"折后：{dec(Decimal(gross) / 100, 2)} × {100 - disc}% = {euros} 欧元。")
            a = f"一共要付 {euros} 欧元。"
        else:
            q = (f"Tarpaulins cost EUR {price} each. We buy {qn} of them with a {disc}% discount. "
                 f"What do we pay?")
            r = (f"Full price: {qn} x {price} = {dec(Decimal(gross) / 100, 2)}. With {disc}% off we "
                 f"pay {100 - disc}%: {dec(Decimal(gross) / 100, 2)} x {100 - disc}/100 = {euros}.")
            a = f"We pay EUR {euros}."
    else:
        p = rng.choice([5, 10, 15, 20, 25, 30, 35, 40, 45, 60])
        n = rng.choice([20, 40, 60, 80, 120, 140, 200, 260, 300, 480, 520])
        v = Fraction(p * n, 100)
        if zh:
            q = f"某村有 {n} 位居民，已有 {p}% 撤离。撤离了多少人？"
            r = f"{n} × {p}% = {n} × {p} ÷ 100 = {fmt_num(v)}。"
            a = f"撤离了 {fmt_num(v)} 人。" if v.denominator == 1 else f"约 {fmt_num(v)} 人。"
        else:
            q = f"A village has {n} residents and {p}% have been evacuated. How many people is that?"
            r = f"{p}% of {n} = {n} x {p} / 100 = {fmt_num(v)}."
            a = (f"{fmt_num(v)} people have been evacuated." if v.denominator == 1 else
                 f"About {fmt_num(v)} people.")
    if rng.random() < 0.65:
        msg = {"role": "assistant", "reasoning_content": r, "content": a}
    else:
        msg = {"role": "assistant", "content": f"{r}\n{a}" if not zh else f"{r}\n{a}"}
    return {"messages": sys_maybe(rng, 0.3) + [{"role": "user", "content": q}, msg]}


def g_dates(rng, zh=False):
    base = dt.date(2024, 1, 1)
    d1 = base + dt.timedelta(days=rng.randint(0, 1000))
    kind = rng.choice(["weekday", "between", "add"])
    anchor = dt.date(2025, 1, 1)
    aw = WEEKDAYS[anchor.weekday()]
    if kind == "weekday":
        delta = (d1 - anchor).days
        wd = d1.weekday()
        if zh:
            q = f"{d1.isoformat()} 是星期几？"
            r = (f"2025-01-01 是{WEEKDAYS_ZH[anchor.weekday()]}。{d1.isoformat()} 与它相差 {delta} 天，"
                 f"{delta} mod 7 = {delta % 7}，所以往后数 {delta % 7} 天。")
            a = f"{d1.isoformat()} 是{WEEKDAYS_ZH[wd]}。"
        else:
            q = f"What day of the week is {d1.isoformat()}?"
            rel = "after" if delta >= 0 else "before"
            r = (f"Anchor: 2025-01-01 was a {aw}. {d1.isoformat()} is {abs(delta)} days {rel} it, "
                 f"and {delta} mod 7 = {delta % 7}, so it falls {delta % 7} weekday(s) after {aw} "
                 f"in the weekly cycle.")
            a = f"{d1.isoformat()} is a {WEEKDAYS[wd]}."
    elif kind == "between":
        d2 = d1 + dt.timedelta(days=rng.randint(1, 400))
        n = (d2 - d1).days
        if zh:
            q = f"从 {d1.isoformat()} 到 {d2.isoformat()} 有多少天？"
            r = f"用日期相减：{d2.isoformat()} - {d1.isoformat()} = {n} 天。"
            a = f"相差 {n} 天。"
        else:
            q = f"How many days are there from {d1.isoformat()} to {d2.isoformat()}?"
            r = f"Subtract the dates: {d2.isoformat()} - {d1.isoformat()} = {n} days."
            if d1 <= dt.date(2024, 2, 29) < d2:
                r += " The range includes the leap day 2024-02-29, which is counted."
            a = f"{n} days."
    else:
        hours = rng.randint(5, 200)
        start = dt.datetime(d1.year, d1.month, d1.day, rng.randint(0, 23), rng.choice([0, 30]))
        end = start + dt.timedelta(hours=hours)
        if zh:
            q = f"从 {start.strftime('%Y-%m-%d %H:%M')} 开始，{hours} 小时后是什么时间？"
            r = f"{hours} 小时 = {hours // 24} 天 {hours % 24} 小时。"
            a = f"是 {end.strftime('%Y-%m-%d %H:%M')}。"
        else:
            q = f"A volunteer shift starts at {start.strftime('%Y-%m-%d %H:%M')} and lasts {hours} hours. When does it end?"
            r = f"{hours} hours = {hours // 24} days and {hours % 24} hours after the start."
            a = f"It ends at {end.strftime('%Y-%m-%d %H:%M')}."
    msg = ({"role": "assistant", "reasoning_content": r, "content": a} if rng.random() < 0.7
           else {"role": "assistant", "content": a})
    return {"messages": [{"role": "user", "content": q}, msg]}


def g_logic(rng):
    k = rng.randint(3, 5)
    people = rng.sample(PEOPLE, k)  # people[0] tallest ... people[-1] shortest
    facts = [f"{people[i]} is taller than {people[i + 1]}." for i in range(k - 1)]
    rng.shuffle(facts)
    ask_tallest = rng.random() < 0.5
    q = " ".join(facts) + (" Who is the tallest?" if ask_tallest else " Who is the shortest?")
    chain = " > ".join(people)
    r = ("Chain the comparisons: " + chain + ". Every statement links two neighbours in this "
         "order, so the order is fully determined.")
    ans = people[0] if ask_tallest else people[-1]
    a = f"{ans} is the {'tallest' if ask_tallest else 'shortest'}."
    msg = {"role": "assistant", "reasoning_content": r, "content": a}
    return {"messages": sys_maybe(rng, 0.3) + [{"role": "user", "content": q}, msg]}


def assert_line(call: str, out: str) -> str:
    op = "is" if out in ("None", "True", "False") else "=="
    return f"    assert {call} {op} {out}"


def _py_template(rng, t):
    name = rng.choice(t["names"])
    code = t["code"].format(name=name)
    ns = {}
    exec(compile(code, "<template>", "exec"), ns)
    examples = []
    for call in t["calls"]:
        c = call.format(name=name)
        examples.append((c, repr(eval(c, ns))))
    return name, code, examples


def g_code_write(rng):
    if rng.random() < 0.68:
        t = rng.choice(PY_TEMPLATES)
        name, code, examples = _py_template(rng, t)
        q = rng.choice(t["ask"]).format(name=name)
        ex = "\n".join(f">>> {c}\n{o}" for c, o in examples[: rng.randint(1, len(examples))])
        a = (f"```python\n{code}\n```\n\n{t['explain']}\n\nExample:\n```\n{ex}\n```")
        if rng.random() < 0.3:
            a = rng.choice(["Here you go:\n\n", "Sure.\n\n", ""]) + a
    elif rng.random() < 0.75:
        q, code, expl = rng.choice(CPP_TEMPLATES)
        a = f"```cpp\n{code}\n```\n\n{expl}"
    else:
        q, lang, code, expl = rng.choice(OTHER_LANG_TEMPLATES)
        a = f"```{lang}\n{code}\n```\n\n{expl}"
    pool = [GENERAL_SYSTEMS[4], GENERAL_SYSTEMS[0]]
    return {"messages": sys_maybe(rng, 0.5, pool) + [{"role": "user", "content": q},
                                                      {"role": "assistant", "content": a}]}


def g_code_module(rng):
    """A longer answer: several helpers in one module plus pytest tests, all executed."""
    k = rng.randint(3, 9)
    temps = rng.sample(PY_TEMPLATES, k)
    imports, bodies, tests, notes = [], [], [], []
    for t in temps:
        name, code, examples = _py_template(rng, t)
        body = []
        for line in code.split("\n"):
            if line.startswith("import ") or line.startswith("from "):
                if line not in imports:
                    imports.append(line)
            else:
                body.append(line)
        bodies.append("\n".join(body).strip("\n"))
        asserts = "\n".join(assert_line(c, o) for c, o in examples)
        tests.append((name, f"def test_{name}():\n{asserts}"))
        notes.append(f"- `{name}`: {t['explain']}")
    imports.sort(key=lambda l: (l.startswith("from "), l))
    module = ('"""Small helpers for the volunteer coordination tools."""\n\n' +
              ("\n".join(imports) + "\n\n\n" if imports else "\n") +
              "\n\n\n".join(bodies) + "\n")
    names = [n for n, _ in tests]
    imp = "from helpers import " + ", ".join(names)
    if len(imp) > 79:
        imp = "from helpers import (\n" + "".join(f"    {n},\n" for n in names) + ")"
    test_src = (imp + "\n\n\n" +
                "\n\n\n".join(tb for _, tb in tests) + "\n")
    # Execute the module and its tests, so the answer is known to be correct.
    ns = {}
    exec(compile(module, "<helpers>", "exec"), ns)
    exec(compile(test_src.split("\n\n\n", 1)[1], "<tests>", "exec"), ns)
    for n in names:
        ns[f"test_{n}"]()
    wanted = "\n".join(f"{i + 1}. `{n}`: {TEMPLATE_INFO[t['names'][0]][0]}"
                       for i, (t, n) in enumerate(zip(temps, names)))
    q = ("I'm building a small `helpers.py` module. Please implement all of these, with type "
         "hints and docstrings, and add pytest tests in `test_helpers.py`:\n" + wanted)
    a = (f"Here is `helpers.py`:\n\n```python\n{module}```\n\nAnd `test_helpers.py`:\n\n"
         f"```python\n{test_src}```\n\nNotes:\n" + "\n".join(notes) +
         "\n\nRun the tests with `pytest -q test_helpers.py`.")
    return {"messages": sys_maybe(rng, 0.5, [GENERAL_SYSTEMS[4]]) +
            [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}


def g_code_predict(rng):
    tmpl, gen, expl = rng.choice(PREDICT_SNIPPETS)
    params = gen(rng)
    code = tmpl.format(**params)
    out = run_py(code)
    e = expl.format(last=params.get("n", 1) - 1, **params)
    q = rng.choice(["What does this Python code print?", "Output of this snippet?",
                    "What will this print?"]) + f"\n\n```python\n{code}\n```"
    r = None
    if rng.random() < 0.4:
        r = f"Trace it: {e} Result: {out.strip()}"
    a = f"It prints:\n```\n{out.rstrip()}\n```\n{e}"
    msg = {"role": "assistant", "content": a}
    if r:
        msg = {"role": "assistant", "reasoning_content": r, "content": a}
    return {"messages": [{"role": "user", "content": q}, msg]}


def g_bugfix(rng):
    q, bad, good, why = rng.choice(BUGFIX)
    compile(good, "<bugfix>", "exec")  # the fixed version must at least parse
    return {"messages": sys_maybe(rng, 0.5, [GENERAL_SYSTEMS[4]]) + [
        {"role": "user", "content": f"{q}\n\n```python\n{bad}\n```"},
        {"role": "assistant", "content": f"{why}\n\nFixed version:\n```python\n{good}\n```"}]}


def g_zh(rng):
    kind = rng.choice(["capital", "arith", "word", "hazard", "translate", "translate_back",
                       "define", "date"])
    if kind == "capital":
        c, cap = rng.choice(CAPITALS_ZH)
        return {"messages": [{"role": "user", "content": rng.choice([f"{c}的首都是哪里？",
                                                                      f"{c}首都是哪个城市？"])},
                             {"role": "assistant", "content": f"{c}的首都是{cap}。"}]}
    if kind == "arith":
        a, b = rng.randint(10, 999), rng.randint(2, 99)
        op = rng.choice(["加", "减", "乘以"])
        v = a + b if op == "加" else a - b if op == "减" else a * b
        sym = {"加": "+", "减": "-", "乘以": "×"}[op]
        return {"messages": [{"role": "user", "content": f"{a}{op}{b}等于多少？"},
                             {"role": "assistant", "content": f"{a} {sym} {b} = {v}。"}]}
    if kind == "word":
        return g_word_problem(rng, zh=True)
    if kind == "date":
        return g_dates(rng, zh=True)
    if kind == "hazard":
        h = rng.choice(list(HAZARDS_ZH))
        steps = HAZARDS_ZH[h]
        q = rng.choice([f"发生{h}时应该怎么做？", f"{h}来了怎么办？请简单列出要点。"])
        a = "要点如下：\n" + "\n".join(f"{i + 1}. {s}" for i, s in enumerate(steps)) + \
            "\n\n请始终听从当地政府和救援人员的指挥。"
        return {"messages": sys_maybe(rng, 0.4, ["你是一个乐于助人的助手，请用简体中文回答。"]) +
                [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
    if kind == "translate":
        k = rng.randint(1, 3)
        pairs = rng.sample(TRANSLATIONS_ZH, k)
        q = "请把下面的句子翻译成中文：\n" + "\n".join(p[0] for p in pairs)
        a = "\n".join(p[1] for p in pairs)
        return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
    if kind == "translate_back":
        en, zh = rng.choice(TRANSLATIONS_ZH)
        return {"messages": [{"role": "user", "content": f"Translate into English: {zh}"},
                             {"role": "assistant", "content": en}]}
    term, d = rng.choice(DEFINITIONS_ZH)
    return {"messages": [{"role": "user", "content": rng.choice([f"什么是{term}？", f"请解释一下{term}。"])},
                         {"role": "assistant", "content": d}]}


def g_multiturn_arith(rng):
    x = rng.randint(5, 60)
    y = rng.randint(2, 15)
    msgs = sys_maybe(rng, 0.3)
    v = x * y
    msgs += [{"role": "user", "content": f"What's {x} times {y}?"},
             {"role": "assistant", "content": f"{x} x {y} = {v}."}]
    for _ in range(rng.randint(1, 4)):
        op = rng.choice(["add", "sub", "mul", "half", "div"])
        if op == "add":
            k = rng.randint(1, 100)
            q, nv, a = f"Now add {k}.", v + k, f"{v} + {k} = {v + k}."
        elif op == "sub":
            k = rng.randint(1, 50)
            q, nv, a = f"Subtract {k} from that.", v - k, f"{v} - {k} = {v - k}."
        elif op == "mul":
            k = rng.randint(2, 9)
            q, nv, a = f"And multiply by {k}?", v * k, f"{v} x {k} = {v * k}."
        elif op == "half":
            if v % 2:
                q, nv, a = "Is that even?", v, f"No, {v} is odd."
            else:
                q, nv, a = "Half of it?", v // 2, f"{v} / 2 = {v // 2}."
        else:
            divs = [d for d in range(3, 13) if v % d == 0]
            if not divs:
                q, nv, a = "Is it prime?", v, (f"{v} is prime." if v > 1 and all(v % d for d in range(2, int(math.isqrt(abs(v))) + 1)) else f"{v} is not prime.")
                if v < 2:
                    a = f"No, {v} is not prime (primes are integers greater than 1)."
            else:
                d = rng.choice(divs)
                q, nv, a = f"Divide that by {d}.", v // d, f"{v} / {d} = {v // d}."
        v = nv
        msgs += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
    return {"messages": msgs}


def g_multiturn_code(rng):
    t = rng.choice(PY_TEMPLATES)
    name, code, examples = _py_template(rng, t)
    msgs = sys_maybe(rng, 0.5, [GENERAL_SYSTEMS[4]])
    msgs += [{"role": "user", "content": rng.choice(t["ask"]).format(name=name)},
             {"role": "assistant", "content": f"```python\n{code}\n```\n\n{t['explain']}"}]
    follow = rng.sample(["tests", "complexity", "example"], rng.randint(1, 3))
    for f in follow:
        if f == "tests":
            body = "\n".join(assert_line(c, o) for c, o in examples)
            test = f"from solution import {name}\n\n\ndef test_{name}():\n{body}"
            msgs += [{"role": "user", "content": "Can you write a pytest test for it? Assume the "
                                                 "function lives in solution.py."},
                     {"role": "assistant", "content": f"```python\n{test}\n```\n\nRun it with "
                                                      f"`pytest -q`."}]
        elif f == "complexity":
            msgs += [{"role": "user", "content": "What's the time complexity?"},
                     {"role": "assistant", "content": TEMPLATE_INFO[t["names"][0]][1]}]
        else:
            c, o = examples[0]
            msgs += [{"role": "user", "content": f"What does `{c}` return?"},
                     {"role": "assistant", "content": f"`{c}` returns `{o}`."}]
    return {"messages": msgs}


def g_multiturn_plan(rng):
    haz = rng.choice(list(HAZARDS))
    msgs = sys_maybe(rng, 0.7, [GENERAL_SYSTEMS[2]])
    msgs += [{"role": "user", "content": f"We expect a {haz} this week. What should volunteers "
                                         f"check first?"},
             {"role": "assistant", "content": "Start with these points:\n" +
              "\n".join(f"- {x}" for x in HAZARDS[haz]["before"][:3])}]
    msgs += [{"role": "user", "content": "And when it actually hits?"},
             {"role": "assistant", "content": "\n".join(f"- {x}" for x in HAZARDS[haz]["during"])}]
    if rng.random() < 0.6:
        msgs += [{"role": "user", "content": "Any advice for the clean-up afterwards?"},
                 {"role": "assistant", "content": "\n".join(f"- {x}" for x in HAZARDS[haz]["after"])}]
    if rng.random() < 0.5:
        n = rng.randint(4, 30)
        s = rng.randint(2, 6)
        q, r = divmod(n, s)
        msgs += [{"role": "user", "content": f"We have {n} volunteers for {s} shelters. How do we "
                                             f"split them evenly?"},
                 {"role": "assistant", "content":
                  (f"{n} / {s} = {q}" + (f" remainder {r}: give {r} shelter(s) {q + 1} volunteers "
                                         f"and the other {s - r} shelter(s) {q}." if r else
                                         f": {q} volunteers per shelter."))}]
    return {"messages": msgs}


# ---- tools -----------------------------------------------------------------

TOOL_FIND = {
    "type": "function",
    "function": {
        "name": "find_volunteers",
        "description": "Search the volunteer roster. Returns volunteers that have the skill, live "
                       "within radius_km of the point and are available for at least part of "
                       "[start, end), nearest first.",
        "parameters": {
            "type": "object",
            "properties": {
                "skill": {"type": "string", "enum": SKILLS},
                "lat": {"type": "number"}, "lon": {"type": "number"},
                "radius_km": {"type": "number"},
                "start": {"type": "string", "description": "ISO 8601 UTC"},
                "end": {"type": "string", "description": "ISO 8601 UTC"},
                "limit": {"type": "integer", "default": 5},
            },
            "required": ["skill", "lat", "lon", "radius_km", "start", "end"],
        },
    },
}
TOOL_CALC = {
    "type": "function",
    "function": {
        "name": "calculate",
        "description": "Evaluate an arithmetic expression with + - * / and parentheses.",
        "parameters": {"type": "object", "properties": {"expression": {"type": "string"}},
                       "required": ["expression"]},
    },
}
TOOL_INCIDENT = {
    "type": "function",
    "function": {
        "name": "get_incident",
        "description": "Fetch an incident record by id.",
        "parameters": {"type": "object", "properties": {"incident_id": {"type": "string"}},
                       "required": ["incident_id"]},
    },
}


def article(noun: str) -> str:
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def find_volunteers(vols, skill, lat, lon, radius_km, start, end, limit=5):
    """The tool's semantics (documented in README.md)."""
    hits = []
    for v in vols:
        if skill not in v["skills"]:
            continue
        d = haversine_km(lat, lon, v["home"]["lat"], v["home"]["lon"])
        if d > radius_km:
            continue
        ov = overlap_minutes(v["availability"], start, end)
        if ov <= 0:
            continue
        hits.append((round(d, 1), v["id"], v, ov))
    hits.sort(key=lambda h: (h[0], h[1]))
    return {"count": len(hits), "volunteers": [
        {"id": v["id"], "name": v["name"], "distance_km": d, "available_minutes": ov,
         "languages": v["languages"]} for d, _, v, ov in hits[:limit]]}


def tool_call(name, args):
    return {"type": "function", "function": {"name": name, "arguments": args}}


def g_tool_find(rng, vols, incs, zh=False):
    town = rng.choice(TOWNS)
    tname, lat, lon = town[0], town[1], town[2]
    skill = rng.choice(SKILLS)
    day = PERIOD_START + dt.timedelta(days=rng.randint(0, 12))
    sh = rng.choice([6, 8, 9, 12, 14, 18])
    start = day + dt.timedelta(hours=sh)
    end = start + dt.timedelta(hours=rng.choice([4, 6, 8, 10]))
    radius = rng.choice([25, 40, 50, 80])
    args = {"skill": skill, "lat": lat, "lon": lon, "radius_km": radius, "start": iso(start),
            "end": iso(end)}
    if zh:
        q = (f"帮我找一下 {tname} 附近 {radius} 公里内、{start.strftime('%m月%d日 %H:%M')} 到 "
             f"{end.strftime('%H:%M')}（UTC）有空的{SKILL_ZH[skill]}志愿者。")
    else:
        q = rng.choice([
            f"We need {skill.replace('_', ' ')} volunteers near {tname} on {start.strftime('%Y-%m-%d')} "
            f"from {start.strftime('%H:%M')} to {end.strftime('%H:%M')} UTC, within {radius} km. Who can come?",
            f"Find me people with {skill} within {radius} km of {tname}, {iso(start)} to {iso(end)}.",
        ])
    res = find_volunteers(vols, **args)
    msgs = [{"role": "system", "content": GENERAL_SYSTEMS[2]} if not zh else
            {"role": "system", "content": "你是志愿者协调助手，请用简体中文回答。"},
            {"role": "user", "content": q},
            {"role": "assistant", "content": "", "tool_calls": [tool_call("find_volunteers", args)]},
            {"role": "tool", "content": dumps(res)}]
    if res["count"] == 0:
        if zh:
            a = f"在 {radius} 公里范围内没有找到这个时间段有空的{SKILL_ZH[skill]}志愿者。要不要我扩大搜索范围？"
        else:
            a = (f"Nobody with {skill} is available within {radius} km of {tname} in that window. "
                 f"Shall I widen the search radius?")
        msgs.append({"role": "assistant", "content": a})
        if rng.random() < 0.7:
            args2 = dict(args, radius_km=150)
            res2 = find_volunteers(vols, **args2)
            msgs += [{"role": "user", "content": "好的，扩大到 150 公里。" if zh else "Yes, try 150 km."},
                     {"role": "assistant", "content": "", "tool_calls": [tool_call("find_volunteers", args2)]},
                     {"role": "tool", "content": dumps(res2)}]
            res, radius = res2, 150
            if res["count"] == 0:
                msgs.append({"role": "assistant", "content":
                             "150 公里内仍然没有合适的志愿者。建议联系相邻地区的协调中心。" if zh else
                             "Still nobody within 150 km. I suggest asking the neighbouring "
                             "regional coordination centre."})
                return {"messages": msgs, "tools": [TOOL_FIND]}
        else:
            return {"messages": msgs, "tools": [TOOL_FIND]}
    lines = []
    for v in res["volunteers"]:
        h, m = divmod(v["available_minutes"], 60)
        avail = f"{h} h" + (f" {m} min" if m else "")
        if zh:
            avail_zh = f"{h} 小时" + (f" {m} 分钟" if m else "")
            lines.append(f"- {v['name']}（{v['id']}），距离 {v['distance_km']} 公里，可用 {avail_zh}，"
                         f"语言：{', '.join(v['languages'])}")
        else:
            lines.append(f"- {v['name']} ({v['id']}): {v['distance_km']} km away, available "
                         f"{avail} of the window, speaks {', '.join(LANG_NAME[l] for l in v['languages'])}")
    if zh:
        a = f"找到 {res['count']} 位符合条件的志愿者，最近的几位是：\n" + "\n".join(lines)
    else:
        more = (f" (showing the nearest {len(res['volunteers'])})" if res["count"] > len(res["volunteers"]) else "")
        a = f"I found {res['count']} matching volunteer(s){more}:\n" + "\n".join(lines)
    msgs.append({"role": "assistant", "content": a})
    return {"messages": msgs, "tools": [TOOL_FIND]}


def g_tool_two_skills(rng, vols, incs):
    inc = rng.choice([i for i in incs if len(i["needs"]) >= 2])
    calls = []
    results = []
    for n in inc["needs"][:2]:
        args = {"skill": n["skill"], "lat": inc["location"]["lat"], "lon": inc["location"]["lon"],
                "radius_km": 100, "start": inc["start"], "end": inc["end"], "limit": 3}
        calls.append(tool_call("find_volunteers", args))
        results.append((n, find_volunteers(vols, **args)))
    msgs = [{"role": "system", "content": GENERAL_SYSTEMS[2]},
            {"role": "user", "content": f"For incident {inc['id']} in {inc['town']} "
                                        f"({inc['start']} to {inc['end']}), who could cover "
                                        f"{inc['needs'][0]['skill']} and {inc['needs'][1]['skill']}? "
                                        f"Search within 100 km."},
            {"role": "assistant", "content": "I'll search the roster for both skills.",
             "tool_calls": calls}]
    for _, res in results:
        msgs.append({"role": "tool", "content": dumps(res)})
    parts = []
    for n, res in results:
        if res["count"] == 0:
            parts.append(f"{n['skill']}: nobody available within 100 km (need {n['count']}).")
        else:
            names = ", ".join(f"{v['name']} ({v['distance_km']} km)" for v in res["volunteers"])
            parts.append(f"{n['skill']} (need {n['count']}): {res['count']} available; nearest: {names}.")
    parts.append("Note: these people overlap the window at least partly; check that each one "
                 "covers enough of it before confirming.")
    msgs.append({"role": "assistant", "content": "\n".join(parts)})
    return {"messages": msgs, "tools": [TOOL_FIND]}


def g_tool_calc(rng):
    a, b, c = rng.randint(1000, 99999), rng.randint(100, 9999), rng.randint(2, 99)
    form = rng.choice(["{a} * {b}", "({a} + {b}) * {c}", "{a} * {c} - {b}", "({a} - {b}) / {c}"])
    expr = form.format(a=a, b=b, c=c)
    if "/" in expr:
        val = Fraction(a - b, c)
    else:
        val = Fraction(eval(expr))  # our own integer expression
    shown = fmt_num(val)
    exact = val.denominator == 1
    res = {"result": int(val) if exact else
           float(dec(Decimal(val.numerator) / Decimal(val.denominator), 6))}
    msgs = [{"role": "user", "content": f"Please calculate {expr}."},
            {"role": "assistant", "content": "", "tool_calls": [tool_call("calculate", {"expression": expr})]},
            {"role": "tool", "content": dumps(res)},
            {"role": "assistant", "content": (f"{expr} = {shown}" if exact else
                                              f"{expr} is approximately {shown} (rounded to 4 decimals).")}]
    return {"messages": msgs, "tools": [TOOL_CALC]}


def g_tool_incident(rng, incs):
    inc = rng.choice(incs)
    rec = {k: inc[k] for k in ("id", "type", "town", "location", "start", "end", "language",
                               "needs", "description")}
    needs = ", ".join(f"{n['count']} x {n['skill'].replace('_', ' ')}" for n in inc["needs"])
    total = sum(n["count"] for n in inc["needs"])
    hours = int((parse_iso(inc["end"]) - parse_iso(inc["start"])).total_seconds()) // 3600
    msgs = [{"role": "user", "content": rng.choice([f"What does incident {inc['id']} need?",
                                                    f"Brief me on {inc['id']}."])},
            {"role": "assistant", "content": "", "tool_calls": [tool_call("get_incident", {"incident_id": inc["id"]})]},
            {"role": "tool", "content": dumps(rec)},
            {"role": "assistant", "content":
             f"{inc['id']} is {article(inc['type'].replace('_', ' '))} near {inc['town']}. "
             f"{inc['description']} It needs {total} volunteer(s): {needs}, from {inc['start']} to "
             f"{inc['end']} ({hours} h). The affected population speaks {LANG_NAME[inc['language']]}."}]
    return {"messages": msgs, "tools": [TOOL_INCIDENT]}


def make_conversations(vols, incs):
    rng = rng_for("conversations")
    plan = [
        ("smalltalk", 14, g_smalltalk), ("capital", 22, g_capital), ("element", 12, g_element),
        ("units", 18, g_units), ("definition", 34, g_definition), ("preparedness", 20, g_prep_short),
        ("kit", 6, g_kit), ("guide_long", 22, g_guide_long), ("log_summary", 24, g_log_summary),
        ("arithmetic", 34, g_arith), ("expression", 16, g_expression),
        ("word_problem", 24, g_word_problem), ("dates", 14, g_dates), ("logic", 10, g_logic),
        ("code", 36, g_code_write), ("code_module", 16, g_code_module),
        ("code_predict", 18, g_code_predict), ("bugfix", 8, g_bugfix),
        ("chinese", 40, g_zh), ("multiturn_arith", 14, g_multiturn_arith),
        ("multiturn_code", 12, g_multiturn_code), ("multiturn_plan", 10, g_multiturn_plan),
        ("tool_find", 22, lambda r: g_tool_find(r, vols, incs)),
        ("tool_find_zh", 6, lambda r: g_tool_find(r, vols, incs, zh=True)),
        ("tool_two_skills", 8, lambda r: g_tool_two_skills(r, vols, incs)),
        ("tool_calc", 8, g_tool_calc), ("tool_incident", 8, lambda r: g_tool_incident(r, incs)),
    ]
    items = []
    for cat, n, fn in plan:
        for _ in range(n):
            items.append((cat, fn(rng)))
    rng.shuffle(items)
    # Give the very shortest exchanges a system prompt, so nothing is below ~20 tokens.
    for cat, c in items:
        if est_tokens(conv_chars(c["messages"])) < 20:
            if c["messages"][0]["role"] == "system":
                c["messages"].pop(0)
            c["messages"].insert(0, {"role": "system", "content": rng.choice(GENERAL_SYSTEMS[2:4])})
    rows = []
    for i, (cat, c) in enumerate(items):
        row = {"id": f"conv_{i + 1:04d}", "category": cat, "messages": c["messages"]}
        if "tools" in c:
            row["tools"] = c["tools"]
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------
# Checks, statistics, main
# ---------------------------------------------------------------------------

ROLES = ("system", "user", "assistant", "tool")
OUTPUT_JSONL = ["conversations.jsonl", "volunteers.jsonl", "incidents.jsonl", "matching.jsonl",
                "matching_ground_truth.jsonl", "multimodal.jsonl"]


def check_messages(msgs, where):
    assert msgs, where
    for m in msgs:
        assert m["role"] in ROLES, where
        assert isinstance(m["content"], str), where
        for tc in m.get("tool_calls", []):
            assert tc["type"] == "function" and isinstance(tc["function"]["arguments"], dict), where
    assert msgs[-1]["role"] == "assistant", where


def check_outputs(out, convs, matching, truths, mm, vols):
    for r in convs + matching + mm:
        check_messages(r["messages"], r["id"])
    for r in mm:
        text = "".join(m["content"] for m in r["messages"])
        assert text.count("<image>") == len(r.get("images", [])), r["id"]
        assert text.count("<video>") == len(r.get("videos", [])), r["id"]
        for p in r.get("images", []) + [f for v in r.get("videos", []) for f in v]:
            assert os.path.isfile(os.path.join(out, p)), p
        for v in r.get("videos", []):
            assert 4 <= len(v) <= 8, r["id"]
    for v in vols:
        assert os.path.isfile(os.path.join(out, v["certificate"]["image"])), v["id"]
    for row, t in zip(matching, truths):
        assert row["id"] == t["prompt_id"]
        content = row["messages"][-1]["content"]
        ans = json.loads(re.search(r"```json\n(.*?)\n```", content, re.S).group(1))
        want = [{"skill": a["skill"], "volunteer_id": a["volunteer_id"]}
                for a in t["optimal"]["assignments"]]
        assert ans["assignments"] == want, row["id"]
        # Recompute from the ground-truth inputs only, as a reward plugin would.
        inc = {"location": {"lat": t["incident"]["lat"], "lon": t["incident"]["lon"]},
               "start": t["incident"]["start"], "end": t["incident"]["end"],
               "language": t["incident"]["language"], "needs": t["incident"]["needs"]}
        feats = []
        for c in t["candidates"]:
            v = {"id": c["id"], "skills": c["skills"], "home": {"lat": c["lat"], "lon": c["lon"]},
                 "availability": [{"start": a, "end": b} for a, b in c["availability"]],
                 "languages": c["languages"],
                 "certificate": {"skill": c["certificate_skill"],
                                 "valid_until": c["certificate_valid_until"]}}
            feats.append(candidate_features(inc, v))
        best, runner, _ = solve_matching(inc, feats)
        got = sorted((s, v) for s, v in best[2])
        assert got == sorted((a["skill"], a["volunteer_id"]) for a in want), row["id"]
        assert abs(best[1] - t["optimal"]["total_score"]) < 1e-3, row["id"]


def length_stats(rows):
    toks = sorted(est_tokens(conv_chars(r["messages"])) for r in rows)
    n = len(toks)
    edges = [0, 64, 128, 256, 512, 1024, 2048, 10 ** 9]
    hist = []
    for lo, hi in zip(edges, edges[1:]):
        hist.append(sum(1 for t in toks if lo <= t < hi))
    return {"n": n, "min": toks[0], "median": toks[n // 2], "p90": toks[int(n * 0.9)],
            "max": toks[-1], "sum": sum(toks), "hist": hist}


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read())
    return h.hexdigest()


def output_files(out):
    files = [f for f in OUTPUT_JSONL]
    img = os.path.join(out, "images")
    for root, _, names in os.walk(img):
        for name in names:
            files.append(os.path.relpath(os.path.join(root, name), out).replace(os.sep, "/"))
    return sorted(files)


def generate(out: str, quiet: bool = False) -> dict:
    os.makedirs(out, exist_ok=True)
    vols = make_volunteers()
    incs = make_incidents()
    matching, truths, mstats = make_matching(vols, incs)
    convs = make_conversations(vols, incs)
    mm = make_images_and_multimodal(vols, out)
    write_jsonl(os.path.join(out, "volunteers.jsonl"), vols)
    write_jsonl(os.path.join(out, "incidents.jsonl"), incs)
    write_jsonl(os.path.join(out, "matching.jsonl"), matching)
    write_jsonl(os.path.join(out, "matching_ground_truth.jsonl"), truths)
    write_jsonl(os.path.join(out, "conversations.jsonl"), convs)
    write_jsonl(os.path.join(out, "multimodal.jsonl"), mm)
    check_outputs(out, convs, matching, truths, mm, vols)
    files = output_files(out)
    sums = {f: sha256_file(os.path.join(out, f)) for f in files}
    with open(os.path.join(out, "SHA256SUMS"), "w", encoding="utf-8", newline="\n") as f:
        for name in files:
            f.write(f"{sums[name]}  {name}\n")
    if not quiet:
        cats = {}
        for r in convs:
            cats[r["category"]] = cats.get(r["category"], 0) + 1
        feats = {
            "reasoning_content": sum(1 for r in convs if any("reasoning_content" in m for m in r["messages"])),
            "tool_calls": sum(1 for r in convs if any("tool_calls" in m for m in r["messages"])),
            "multi_turn(>1 user)": sum(1 for r in convs if sum(m["role"] == "user" for m in r["messages"]) > 1),
            "chinese": sum(1 for r in convs if re.search(r"[\u4e00-\u9fff]", dumps(r["messages"]))),
            "code_block": sum(1 for r in convs if "```" in dumps(r["messages"])),
        }
        print(f"volunteers: {len(vols)}  incidents: {len(incs)}  matching: {len(matching)}  "
              f"conversations: {len(convs)}  multimodal: {len(mm)}")
        print("conversation categories:", dumps(cats))
        print("conversation features:", dumps(feats))
        print("conversation tokens (chars/3.5):", dumps(length_stats(convs)),
              "hist edges 0,64,128,256,512,1024,2048")
        print("matching tokens (chars/3.5):", dumps(length_stats(matching)))
        print("matching stats:", dumps(mstats))
        mmk = {"1 image": sum(1 for r in mm if len(r.get("images", [])) == 1),
               "2 images": sum(1 for r in mm if len(r.get("images", [])) == 2),
               "video": sum(1 for r in mm if r.get("videos"))}
        print("multimodal:", dumps(mmk))
        total = 0
        for name in files:
            total += os.path.getsize(os.path.join(out, name))
        img_bytes = sum(os.path.getsize(os.path.join(out, n)) for n in files if n.startswith("images/"))
        for name in OUTPUT_JSONL:
            print(f"  {os.path.getsize(os.path.join(out, name)):>9}  {name}")
        print(f"  {img_bytes:>9}  images/ ({sum(1 for n in files if n.startswith('images/'))} files)")
        print(f"  {total:>9}  total generated bytes")
    return sums


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=here, help="output directory (default: next to this script)")
    ap.add_argument("--verify", action="store_true",
                    help="generate twice into temporary directories and compare sha256 of every "
                         "file, and against --out if it already holds a SHA256SUMS")
    args = ap.parse_args(argv)
    if not args.verify:
        generate(args.out)
        return 0
    runs = []
    for _ in range(2):
        d = tempfile.mkdtemp(prefix="tessera-embedded-")
        try:
            runs.append(generate(d, quiet=True))
        finally:
            shutil.rmtree(d)
    ok = runs[0] == runs[1]
    print(f"run 1 vs run 2: {len(runs[0])} files, {'identical' if ok else 'DIFFERENT'}")
    ref = os.path.join(args.out, "SHA256SUMS")
    if os.path.isfile(ref):
        committed = {}
        with open(ref, encoding="utf-8") as f:
            for line in f:
                h, name = line.rstrip("\n").split("  ", 1)
                committed[name] = h
        diff = sorted(k for k in set(committed) | set(runs[0])
                      if committed.get(k) != runs[0].get(k))
        print(f"fresh run vs {ref}: {'identical' if not diff else 'DIFFERENT: ' + ', '.join(diff[:10])}")
        ok = ok and not diff
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
