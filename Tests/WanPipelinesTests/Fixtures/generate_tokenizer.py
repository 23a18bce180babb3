#!/usr/bin/env python3
"""Writes the tokenizer fixtures of WanPipelinesTests from the real libraries.

Run it in a virtual environment outside the repository, for example:

    python3 -m venv /opt/venv-tok
    /opt/venv-tok/bin/pip install sentencepiece transformers protobuf tokenizers ftfy regex
    /opt/venv-tok/bin/python Tests/WanPipelinesTests/Fixtures/generate_tokenizer.py

It writes, next to itself:
  spiece.model             a small SentencePiece unigram model (vocab 3000, byte_fallback, ids pad 0 / eos 1 /
                           bos 2 / unk 3 like umT5, two user-defined symbols), trained with the PyPI `sentencepiece`
                           package on a multilingual text this script writes. Its precompiled charsmap is compiled by
                           sentencepiece from a subset of the nmt_nfkc rules (the full nmt_nfkc map is 240 kB; the
                           subset keeps the fixtures small): the script trains once with nmt_nfkc, reads that model's
                           charsmap, and trains again with the chosen rules as normalization_rule_tsv.
  tokenizer.json           that model converted by `transformers`' T5Converter (what T5TokenizerFast uses),
                           with 300 `<extra_id_N>` tokens like umT5.
  tokenizer_expected.json  ids for a few hundred strings from BOTH `sentencepiece` and `tokenizers`, for the
                           tokenizer.json as written and for variants derived from it (byte fallback on; the older
                           T5 layout; prepend_scheme 'first'), and the strings on which the two libraries disagree.
  cleaning_expected.json   Wan's prompt cleaning (official wan/modules/tokenizers.py, clean='whitespace':
                           ftfy.fix_text, html.unescape twice, strip, regex \\s+ -> ' ', strip) for many strings.
With --full DIR it also writes the same three tokenizer files for the full nmt_nfkc model into DIR (not committed;
run the tests on them with WAN_TOKENIZER_FIXTURES=DIR). The output is byte-identical from run to run.
With --tables it also writes the Swift source Sources/WanPipelines/Tokenizer/TextCleaningTables.swift (HTML5
entities of Python's html module, ftfy's upper-case entity additions and its character-width map).
"""
import argparse
import copy
import html
import html.entities
import json
import os
import random
import shutil
import sys
import unicodedata

import ftfy
import regex
import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as sp_pb2
import tokenizers
import transformers
from tokenizers import AddedToken, Tokenizer
from transformers.convert_slow_tokenizer import T5Converter

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
EXTRA_IDS = 300
USER_DEFINED = ["<sep>", "[IMG]"]

# ----------------------------------------------------------------------------------------------------------------
# Training text
# ----------------------------------------------------------------------------------------------------------------

ENGLISH = """A cat walks slowly across a sunny kitchen floor, its tail swaying from side to side.
The camera pans over a misty mountain lake at dawn while birds fly above the water.
Two astronauts float inside a space station, laughing as a drop of water spins between them.
An old fisherman repairs his net on a wooden pier; waves crash against the rocks behind him.
Close-up of a hummingbird drinking nectar from a bright red flower, slow motion, 4K, cinematic lighting.
A busy street in Tokyo at night, neon signs reflecting in puddles after the rain.
The chef slices fresh tomatoes, onions and peppers, then tosses them into a sizzling pan.
A golden retriever puppy chases a ball through tall grass in the late afternoon sun.
Time-lapse of clouds moving over a desert canyon, shadows sliding across red sandstone walls.
A violinist performs on an empty stage, a single spotlight cutting through the dark hall.
Children build a sandcastle on the beach while seagulls circle overhead.
A steam train crosses a stone bridge in the mountains, smoke curling into the cold air.
Drone shot of a lighthouse on a cliff, waves breaking far below, overcast sky.
The painter mixes blue and yellow on her palette and adds a final stroke to the canvas.
A robot carefully waters plants in a greenhouse filled with tropical flowers.
Snow falls gently on a quiet village; warm light glows in every window.
A surfer rides a huge wave, spray glittering in the sunlight, shot from the water.
In a dim library an owl lands on a stack of ancient books and blinks at the camera.
Macro shot of dew drops on a spider web, the background softly blurred.
A vintage car drives along a coastal road at sunset, palm trees passing by.
Bright colors, overexposed, static, blurred details, subtitles, style, works, paintings, images, still,
overall gray, worst quality, low quality, JPEG compression residue, ugly, incomplete, extra fingers,
poorly drawn hands, poorly drawn faces, deformed, disfigured, misshapen limbs, fused fingers,
still picture, messy background, three legs, many people in the background, walking backwards.
The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs!
It's 3:45 pm on March 14th, 2025 - the temperature is 21.5 degrees (about 70 F).
Email me at someone@example.com or visit https://example.org/path?query=1&lang=en for details.
"""

FRENCH_GERMAN_SPANISH = """Un chat traverse lentement une cuisine ensoleillée, sa queue se balançant.
La caméra survole un lac de montagne brumeux à l'aube pendant que des oiseaux volent au-dessus de l'eau.
Ein alter Fischer repariert sein Netz auf einem hölzernen Steg; Wellen brechen an den Felsen.
Die Straßenbahn fährt durch die verschneite Altstadt, während Glühwein auf dem Weihnachtsmarkt dampft.
Über den Dächern von München geht die Sonne auf, und die Vögel zwitschern fröhlich.
Un niño persigue una pelota en el parque mientras su perro ladra de alegría.
¿Dónde está la estación de tren? ¡Qué día tan maravilloso para pasear por la playa!
El señor García cocina paella con azafrán, mariscos y arroz en una gran sartén.
Ça y est, l'été est arrivé : les enfants jouent dans la fontaine, c'est très agréable.
Crème brûlée, café au lait, naïve façade, cœur, œuvre, garçon, Noël, hôtel, forêt.
Cảm ơn bạn rất nhiều. Hôm nay trời đẹp quá, chúng ta đi dạo phố nhé.
Åsa och Björn åker skidor i fjällen; snön glittrar i solen över sjön.
Zażółć gęślą jaźń. Čeština, slovenčina, Hrvatski jezik, Dobrodošli!
"""

RUSSIAN = """Кошка медленно идёт по солнечной кухне, её хвост раскачивается из стороны в сторону.
Камера пролетает над туманным горным озером на рассвете, птицы летят над водой.
Старый рыбак чинит сеть на деревянном причале, волны разбиваются о скалы.
Снег тихо падает на деревню, в каждом окне горит тёплый свет.
Москва, Санкт-Петербург, Новосибирск, Екатеринбург — большие города России.
Мальчик играет с собакой в парке, а девочка читает книгу на скамейке.
Поезд пересекает каменный мост в горах, дым поднимается в холодный воздух.
Привет, как дела? Всё хорошо, спасибо! Съешь же ещё этих мягких французских булок.
Україна, Київ, Львів, Одеса; Беларусь, Мінск; Български език, София.
"""

GREEK = """Μια γάτα περπατά αργά σε μια ηλιόλουστη κουζίνα.
Η κάμερα πετά πάνω από μια ομιχλώδη λίμνη την αυγή. Καλημέρα, τι κάνεις;
"""

CHINESE = """一只猫慢慢地走过阳光明媚的厨房地板，尾巴左右摇摆。
镜头在黎明时分掠过雾气弥漫的山间湖泊，鸟儿在水面上飞翔。
两名宇航员漂浮在空间站内，看着一滴水在他们之间旋转，开心地笑着。
一位老渔夫在木制码头上修补渔网，海浪拍打着身后的岩石。
特写镜头：蜂鸟从鲜红的花朵中吸食花蜜，慢动作，电影级灯光。
雨后的东京街头，霓虹灯倒映在水洼中，行人匆匆走过。
厨师把新鲜的西红柿、洋葱和辣椒切片，然后放进滚烫的锅里。
一只金毛小狗在午后的阳光下追着球穿过高高的草丛。
色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，
JPEG压缩残留，丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，
手指融合，静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走。
雪花轻轻地落在安静的村庄上，每扇窗户里都透出温暖的灯光。
一列蒸汽火车驶过山中的石桥，烟雾飘向寒冷的空气中。
夕阳西下，一辆老爷车沿着海岸公路行驶，棕榈树从车窗外掠过。
他说：“今天天气真好！我们去公园散步吧。”她回答：“好啊，我们走吧。”
北京、上海、广州、深圳、杭州、成都都是中国的大城市。
春眠不觉晓，处处闻啼鸟。夜来风雨声，花落知多少。
床前明月光，疑是地上霜。举头望明月，低头思故乡。
"""

JAPANESE = """猫が日当たりの良い台所の床をゆっくりと歩いていて、しっぽが左右に揺れています。
夜明けの霧がかかった山の湖の上をカメラが飛び、鳥たちが水面の上を飛んでいます。
雨上がりの東京の街、ネオンサインが水たまりに映っています。
年老いた漁師が木の桟橋で網を直していて、波が岩に打ち寄せています。
子供たちが浜辺で砂の城を作り、カモメが頭上を旋回しています。
「こんにちは！」と彼女は言いました。今日はとても良い天気ですね。
東京、大阪、京都、名古屋、札幌、福岡。カタカナ：コンピューター、テレビ、カメラ、ラーメン。
ｶﾀｶﾅの半角文字もあります：ﾃﾚﾋﾞ、ｶﾒﾗ、ﾗｰﾒﾝ。
"""

KOREAN = """고양이가 햇살 가득한 부엌 바닥을 천천히 걸어가며 꼬리를 좌우로 흔듭니다.
카메라가 새벽 안개 낀 산속 호수 위를 날아가고, 새들이 물 위를 날아갑니다.
비가 그친 후 서울의 밤거리, 네온사인이 물웅덩이에 비칩니다.
안녕하세요! 오늘 날씨가 정말 좋네요. 감사합니다.
"""

FULLWIDTH = """ＬＯＵＤ　ＮＯＩＳＥＳ！　（全角）　ＡＢＣ１２３，．：；？！＂＇～
【重要】「引用」『二重』〈角〉《書名》・…―‥〜
１２３４５６７８９０　ａｂｃｄｅｆｇ　％＆＃＠＄
"""

EMOJI_MISC = """I love this 😀😃😄😁 so much! 🎉🎊✨ Let's go 🚀🌍🌙⭐.
Family: 👨‍👩‍👧‍👦 flags: 🇯🇵 🇺🇸 🇫🇷 hearts ❤️ 💙 💚 thumbs 👍🏽 👍🏿.
Math: x² + y² = z², ½ + ¼ = ¾, 10⁻³, H₂O, ∑ ∫ √ ∞ ≠ ≤ ≥ ± × ÷.
Ligatures: ﬁnance ﬂower ﬀ ﬃ; roman numerals Ⅻ ⅳ; circled ① ② ③; ㍻ ㌔ ℃ ℉ № ™ ©.
Quotes: “double” ‘single’ «guillemets» „German“ ‚low‘ – en dash — em dash … ellipsis.
Currency: $100, €50, £30, ¥1000, ₩5000, ₹200, ₽300.
"""

RARE = "Rare once: ĳ ǆ ǈ ℌ 𝐀𝐁𝐂 ﬆ\n"


def corpus_lines(rng):
    blocks = [ENGLISH, FRENCH_GERMAN_SPANISH, RUSSIAN, GREEK, CHINESE, JAPANESE, KOREAN, FULLWIDTH, EMOJI_MISC]
    base = [line.strip() for block in blocks for line in block.splitlines() if line.strip()]
    weights = []
    for block, w in zip(blocks, [6, 3, 3, 1, 6, 4, 2, 1, 1]):
        weights += [w] * len([l for l in block.splitlines() if l.strip()])
    lines = []
    for _ in range(30000):
        a = rng.choices(base, weights)[0]
        if rng.random() < 0.5:
            # recombine halves of two lines
            b = rng.choices(base, weights)[0]
            ws_a, ws_b = a.split(" "), b.split(" ")
            if len(ws_a) > 2 and len(ws_b) > 2:
                a = " ".join(ws_a[: rng.randrange(1, len(ws_a))] + ws_b[rng.randrange(1, len(ws_b)):])
            else:
                a = a[: len(a) // 2] + b[len(b) // 2:]
        if rng.random() < 0.1:
            a = a.upper() if rng.random() < 0.5 else a.lower()
        if rng.random() < 0.1:
            a += " " + str(rng.randrange(0, 100000))
        lines.append(a)
    lines.append(RARE.strip())
    return lines


def train(workdir, rule_tsv=None, name="spiece"):
    text_path = os.path.join(workdir, "corpus.txt")
    if not os.path.exists(text_path):
        rng = random.Random(1234)
        with open(text_path, "w", encoding="utf-8") as f:
            f.write("\n".join(corpus_lines(rng)) + "\n")
    prefix = os.path.join(workdir, name)
    options = dict(
        input=text_path,
        model_prefix=prefix,
        model_type="unigram",
        vocab_size=3000,
        hard_vocab_limit=False,
        character_coverage=0.9995,
        byte_fallback=True,
        pad_id=0,
        eos_id=1,
        bos_id=2,
        unk_id=3,
        user_defined_symbols=USER_DEFINED,
        num_threads=1,
        input_sentence_size=0,
        shuffle_input_sentence=False,
        minloglevel=2,
    )
    if rule_tsv:
        options["normalization_rule_tsv"] = rule_tsv
    else:
        options["normalization_rule_name"] = "nmt_nfkc"
    spm.SentencePieceTrainer.train(**options)
    return prefix + ".model"


def charsmap_rules(blob):
    """All (source bytes, normalized bytes) rules of a precompiled charsmap (Darts double array walk)."""
    import struct
    size = struct.unpack("<I", blob[:4])[0]
    units = struct.unpack("<%dI" % (size // 4), blob[4:4 + size])
    normalized = blob[4 + size:]

    def offset(u):
        return (u >> 10) << ((u & (1 << 9)) >> 6)

    rules = []
    stack = [(0, b"")]
    while stack:
        pos, key = stack.pop()
        base = pos ^ offset(units[pos])
        for c in range(1, 256):
            child = base ^ c
            if child >= len(units) or (units[child] & ((1 << 31) | 0xFF)) != c:
                continue
            k = key + bytes([c])
            if (units[child] >> 8) & 1:
                v = units[child ^ offset(units[child])] & ((1 << 31) - 1)
                rules.append((k, normalized[v:normalized.index(b"\0", v)]))
            stack.append((child, k))
    return sorted(rules)


def keep_rule(key):
    """The subset of nmt_nfkc kept in the committed model (to keep the fixture small): every single-character
    rule except big blocks of CJK compatibility ideographs, Hangul syllables, Kangxi radicals and most math
    alphanumerics; multi-character rules (canonical compositions) for Latin, Greek, Cyrillic and kana, and a few
    Hangul jamo sequences."""
    s = key.decode("utf-8")
    c0 = ord(s[0])
    if len(s) == 1:
        if 0xF900 <= c0 <= 0xFAFF or 0x2F800 <= c0 <= 0x2FA1F or 0x2F00 <= c0 <= 0x2FDF:
            return False
        if 0xAC00 <= c0 <= 0xD7A3 or 0x1EE00 <= c0 <= 0x1EEFF:
            return False
        if 0x1D400 <= c0 <= 0x1D7FF:
            return c0 < 0x1D468
        if 0x3300 <= c0 <= 0x33FF:
            return c0 < 0x3340
        return True
    if c0 < 0x0250 or 0x0391 <= c0 <= 0x03C9 or 0x0410 <= c0 <= 0x044F or 0x3040 <= c0 <= 0x30FF:
        return True
    if c0 == 0x1100 and len(s) <= 3 and ord(s[1]) in (0x1161, 0x1162):
        return True
    return c0 in (0x2260, 0x226E, 0x226F) or 0x3D2 <= c0 <= 0x3D4


def train_both(workdir):
    """Trains with the full nmt_nfkc rule, then again with a subset of its rules (the committed model)."""
    full = train(workdir, name="full")
    m = sp_pb2.ModelProto()
    with open(full, "rb") as f:
        m.ParseFromString(f.read())
    rules = charsmap_rules(m.normalizer_spec.precompiled_charsmap)
    tsv = os.path.join(workdir, "rules.tsv")
    with open(tsv, "w", encoding="utf-8") as f:
        for k, v in rules:
            if keep_rule(k):
                f.write("%s\t%s\n" % (" ".join("%X" % ord(c) for c in k.decode("utf-8")),
                                        " ".join("%X" % ord(c) for c in v.decode("utf-8"))))
    small = train(workdir, rule_tsv=tsv, name="spiece")
    return small, full


# ----------------------------------------------------------------------------------------------------------------
# Conversion to tokenizer.json (transformers' T5Converter, what T5TokenizerFast.from slow uses)
# ----------------------------------------------------------------------------------------------------------------


class SlowT5Shim:
    """The attributes T5Converter reads from a slow T5Tokenizer."""

    def __init__(self, model_path, sp):
        self.vocab_file = model_path
        self._extra_ids = EXTRA_IDS
        self.legacy = True
        self.add_prefix_space = True
        self._sp = sp

    def convert_tokens_to_ids(self, token):
        return self._sp.piece_to_id(token)


def convert(model_path):
    sp = spm.SentencePieceProcessor(model_file=model_path)
    tok = T5Converter(SlowT5Shim(model_path, sp)).converted()
    # T5TokenizerFast registers its special tokens (pad, eos, unk and the sentinels) as special added tokens.
    specials = ["<pad>", "</s>", "<unk>"] + [f"<extra_id_{i}>" for i in range(EXTRA_IDS)]
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    return tok


def variants(base_json):
    """Variants of the converted tokenizer.json; the Swift tests derive them the same way."""
    out = {"t5": base_json}
    v = copy.deepcopy(base_json)
    v["model"]["byte_fallback"] = True
    out["t5_byte_fallback"] = v
    v = copy.deepcopy(base_json)
    # The layout of older hub files (transformers < 4.3x): Precompiled then ' {2,}' -> ' ', and
    # WhitespaceSplit + Metaspace(add_prefix_space) as the pre-tokenizer.
    charsmap = [n for n in v["normalizer"]["normalizers"] if n["type"] == "Precompiled"][0]
    v["normalizer"] = {"type": "Sequence", "normalizers": [
        charsmap, {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}]}
    v["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "WhitespaceSplit"},
        {"type": "Metaspace", "replacement": "\u2581", "add_prefix_space": True}]}
    out["t5_legacy"] = v
    v = copy.deepcopy(base_json)
    v["pre_tokenizer"]["prepend_scheme"] = "first"
    out["t5_first"] = v
    return out


# ----------------------------------------------------------------------------------------------------------------
# Strings
# ----------------------------------------------------------------------------------------------------------------

HAND = [
    "", " ", "   ", "\t", "\n", " \t\n ", "\u3000", "\u3000\u3000", "\u00a0", "\u2003", "▁", "▁▁", " ▁ ",
    "a", "A", "hello", "Hello world", "Hello  world", "  leading spaces", "trailing spaces   ",
    "  both   sides  ", "multiple     internal      spaces", "tab\tseparated\twords", "new\nline\ntext",
    "carriage\r\nreturn", "mixed \t \n whitespace", "a\u3000b", "a \u3000 b", "a\u00a0b", "a\u2009b",
    "The quick brown fox jumps over the lazy dog.",
    "A cat walks slowly across a sunny kitchen floor, its tail swaying from side to side.",
    "Bright colors, overexposed, static, blurred details, subtitles, style, works, paintings, images, still, "
    "overall gray, worst quality, low quality, JPEG compression residue, ugly, incomplete, extra fingers, "
    "poorly drawn hands, poorly drawn faces, deformed, disfigured, misshapen limbs, fused fingers, still picture, "
    "messy background, three legs, many people in the background, walking backwards",
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，JPEG压缩残留，"
    "丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，"
    "静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走",
    "色调艳丽,过曝,静态,细节模糊不清,字幕",
    "一只猫慢慢地走过阳光明媚的厨房地板。", "他说：“今天天气真好！”", "北京、上海、广州",
    "猫が日当たりの良い台所の床をゆっくりと歩いています。", "ｶﾀｶﾅ ﾃﾚﾋﾞ", "カタカナ テレビ",
    "고양이가 부엌을 걸어갑니다.", "안녕하세요!",
    "Кошка медленно идёт по кухне.", "Съешь же ещё этих мягких французских булок.",
    "Μια γάτα περπατά.", "Crème brûlée, café au lait, naïve façade.", "Straße, Glühwein, Übermut",
    "¿Dónde está la estación?", "Cảm ơn bạn rất nhiều.", "Zażółć gęślą jaźń.",
    "ＬＯＵＤ　ＮＯＩＳＥＳ", "（全角）ＡＢＣ１２３，．：；？！", "【重要】「引用」『二重』", "１２３４５ ａｂｃ",
    "I love this 😀😃 so much! 🎉", "👨‍👩‍👧‍👦", "🇯🇵🇺🇸", "❤️ 👍🏽", "😀", "🦩🦜🪿",
    "x² + y² = z²", "½ ¼ ¾", "H₂O", "ﬁnance ﬂower", "Ⅻ ⅳ ① ②", "㍻ ㌔ ℃ № ™", "𝐀𝐁𝐂 ℌ",
    "“double” ‘single’ «guillemets» „German“", "– — …", "$100 €50 £30 ¥1000 ₩5000 ₹200",
    "e\u0301", "cafe\u0301", "A\u030a", "Ａ\u0301", "ｶ\u3099", "\u1100\u1161\u11a8", "\u0915\u094d\u0937",
    "ภาษาไทย", "हिन्दी भाषा", "ქართული", "Հայերեն", "አማርኛ", "བོད་ཡིག", "ខ្មែរ", "𠀀𠀁", "𝄞", "ᚠᛇᚻ", "ꯃꯤꯇꯩ",
    "Thai ภาษาไทย mixed with English", "unknown \U0001F9FF amulet", "\U000E0001\U000E0041 tags", "\ufffd",
    "<sep>", "a<sep>b", "[IMG] picture", "x [IMG][IMG] y", " <sep> ", "<sep><sep>",
    "</s>", "a </s> b", "<pad>", "<unk>", "<s>", "<extra_id_0>", "fill <extra_id_0> here <extra_id_299>.",
    "<0x41>", "<0xE4>", "▁hello", "hello▁world", "a ▁ b",
    "0123456789", "3.14159", "2025-03-14", "12:30", "1,000,000", "#hashtag @mention",
    "https://example.org/path?query=1&lang=en", "someone@example.com", "C:\\Windows\\path", "a/b/c",
    "(parentheses) [brackets] {braces} <angles>", "!@#$%^&*()_+-=[]{}|;':\",./<>?", "~`", "\\n literal",
    "Ǆemal ǆ ĳ Ĳ", "ŉ", "ﬆ ﬅ", "\u00ad soft\u00adhyphen", "zero\u200bwidth", "joiner\u200dhere", "rtl \u202eabc",
    "\u0000null", "bell\u0007", "del\u007f", "\u0085", "\u2028", "\u2029", "\ufeffbom",
    "ALL CAPS TEXT", "MiXeD CaSe", "snake_case_words", "CamelCaseWords", "hyphen-ated-words", "don't won't",
    "Ω Å K", "ﾟ ﾞ", "ｧｨｩ", "\uff61\uff62\uff63", "\u2460\u2461", "\u3250", "\u33ff", "\ufdfa", "\ufb01",
    "a" * 50, "ab" * 40, "的" * 30, "😀" * 20, "ภ" * 10, " ".join(["word"] * 60),
]


def random_strings(rng, n):
    frags = []
    for block in [ENGLISH, FRENCH_GERMAN_SPANISH, RUSSIAN, CHINESE, JAPANESE, KOREAN, FULLWIDTH, EMOJI_MISC, GREEK]:
        for line in block.splitlines():
            words = line.split(" ")
            frags += [w for w in words if w]
            if len(line) > 4:
                for _ in range(3):
                    i = rng.randrange(0, len(line) - 2)
                    frags.append(line[i: i + rng.randrange(1, 12)])
    frags += ["ภาษา", "हिन्दी", "ქართ", "𠀀", "\u0301", "\u3000", "\u00a0", "\t", "\n", "  ", "<sep>", "[IMG]",
              "</s>", "<extra_id_5>", "▁", "&amp;", "ﬁ", "Ｑ", "😀", "👍🏽", "\u200b", "e\u0301"]
    seps = [" ", " ", " ", "", "  ", "\u3000", "\t", "\n", "，", "、"]
    out = []
    for _ in range(n):
        k = rng.randrange(1, 14)
        s = ""
        for j in range(k):
            s += rng.choice(frags)
            if j + 1 < k:
                s += rng.choice(seps)
        if rng.random() < 0.15:
            s = " " * rng.randrange(1, 4) + s
        if rng.random() < 0.15:
            s = s + " " * rng.randrange(1, 4)
        out.append(s)
    return out


def long_strings(rng):
    a = " ".join(l.strip() for l in ENGLISH.splitlines())
    b = "".join(l.strip() for l in CHINESE.splitlines()) * 2
    c = " ".join(rng.choice(["😀", "ภาษา", "Кошка", "猫", "hello", "１２３", "ﬁ", "e\u0301", "  "]) for _ in range(260))
    return [a, b, c]


# ----------------------------------------------------------------------------------------------------------------
# Cleaning
# ----------------------------------------------------------------------------------------------------------------


def wan_basic_clean(text, **ftfy_kwargs):
    text = ftfy.fix_text(text, **ftfy_kwargs)
    text = html.unescape(html.unescape(text))
    return text.strip()


def wan_whitespace_clean(text):
    text = regex.sub(r"\s+", " ", text)
    return text.strip()


def wan_clean(text, **ftfy_kwargs):
    return wan_whitespace_clean(wan_basic_clean(text, **ftfy_kwargs))


CLEAN_CASES = [
    "", "   ", "plain text", "  padded  ", "a  b\t\tc\n\nd", "line1\r\nline2\rline3", "\u2028sep\u2029par",
    "ＬＯＵＤ　ＮＯＩＳＥＳ", "色调艳丽，过曝，静态，细节模糊不清，字幕", "（全角）ＡＢＣ１２３！？：；",
    "ｶﾀｶﾅ ﾃﾚﾋﾞ ﾗｰﾒﾝ", "ﾟﾞ", "\uffe0\uffe1\uffe5\uffe6", "\uffe8\uffee", "ﬁnance ﬂuﬃeﬆ Ĳssel ǅ ŉ",
    "“double” ‘single’ ‛reversed‟ ʼapostrophe", "«guillemets» „low“ ‚low‘",
    "&amp; &lt; &gt; &quot; &#39; &#x27;", "Tom &amp; Jerry", "&amp;lt;tag&amp;gt;", "&amp;amp;amp;",
    "&lt;b&gt;bold&lt;/b&gt;", "<b>bold</b> &amp; kept", "a < b &amp; c", "first line &amp;\nsecond <line> &amp;",
    "first <line> &amp;\nsecond &amp;", "&eacute;t&eacute; &EACUTE;T&EACUTE; &Eacute;", "&SZLIG; &szlig;",
    "&ntilde; &Ntilde; &NTILDE; &nTILDE;", "&nbsp;non&nbsp;breaking", "&copy 2024", "&copy2024", "&notit;",
    "&hellip;&mdash;&ndash;", "&#8217;s &#x2019;s", "&#0; &#13; &#128; &#x80; &#150;", "&#xD800; &#1114112;",
    "&#x1F600; &#128512;", "&#11; &#x0b; &#127;", "&#65 &#x41 &#X41;", "&#99999999999999999999;", "&#;",
    "&#x;", "&;", "& amp;", "&ampx", "&amp", "&AMP;", "&AMP", "&Jscr;ohn &HilbertSpace;ancock",
    "&checkmark; &bigstar;", "&NotNestedGreaterGreater;", "&ThickSpace;x", "&lt;&lt;&gt;&gt;",
    "\x1b[36;44mcolored\x1b[0m text", "\x1b[1mbold", "\x1b[١٢mdigits", "bell\x07 null\x00 del\x7f",
    "vt\x0b ff\x0c", "\x1c\x1d\x1e\x1f sep", "\u206a\u206f deprecated", "\ufeffbom start", "\ufff9\ufffa\ufffb ann",
    "\ufffc obj", "\u200b zw \u200c\u200d\u200e\u200f", "\u202a\u202e bidi", "c1 \x80 \x85 \x91\x92 \x9d \x9f end",
    "nel\x85break", "e\u0301 cafe\u0301 A\u030a", "\u1100\u1161\u11a8", "Ω K Å", "\u00a0nbsp\u00a0",
    "\u3000ideographic\u3000space\u3000", "\u2003em\u2002en\u2009thin\u200ahair", "\u1680ogham \u205fmath \u202fnarrow",
    "tabs\t\t\tand\v\fvt", "😀 emoji 👨‍👩‍👧‍👦 🇯🇵", "\U000E0001\U000E0041tag", "Ω½²",
    "mixed: ＡＢＣ &amp; “quoted” ﬁle\r\nnext", "done.&nbsp;&nbsp;", "a&amp;nbsp;b", "&amp;#65;",
    "x" + "&amp;" * 5, "&lt;" * 3 + "tag", "\u00ad soft hyphen", "\u0085 leading nel",
]


# Mojibake strings: ftfy's fix_encoding changes them; the Swift port documents that it does not.
MOJIBAKE = ["sÃ³", "voilÃ le travail", "âœ” No problems", "&macr;\\_(ã\x83\x84)_/&macr;", "Ã©tÃ©"]


def clean_record(s):
    out = wan_clean(s)
    no_encoding = wan_clean(s, fix_encoding=False)
    return {"text": s, "clean": out, "clean_without_fix_encoding": no_encoding,
            "ftfy": ftfy.fix_text(s), "ftfy_without_fix_encoding": ftfy.fix_text(s, fix_encoding=False)}


# ----------------------------------------------------------------------------------------------------------------
# Swift tables
# ----------------------------------------------------------------------------------------------------------------


def swift_string(s):
    out = []
    for ch in s:
        c = ord(ch)
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif 0x20 <= c < 0x7F:
            out.append(ch)
        else:
            out.append("\\u{%X}" % c)
    return '"' + "".join(out) + '"'


def write_tables(path):
    from ftfy import chardata
    html5 = html.entities.html5
    upper = {k[1:]: v for k, v in chardata.HTML_ENTITIES.items()
             if not (k[1:] in html5 and html5[k[1:]] == v)}
    lines = [
        "// Generated by Tests/WanPipelinesTests/Fixtures/generate_tokenizer.py --tables; do not edit.",
        "// Python %s html.entities.html5 (%d names), ftfy %s's extra upper-case entities (%d) and width map (%d)."
        % (sys.version.split()[0], len(html5), ftfy.__version__, len(upper), len(chardata.WIDTH_MAP)),
        "",
        "enum TextCleaningTables {",
        "    /// Python's `html.entities.html5`: entity name (with or without the final ';') -> text.",
        "    static let html5: [String: String] = [",
    ]
    for k in sorted(html5):
        lines.append("        %s: %s," % (swift_string(k), swift_string(html5[k])))
    lines += ["    ]", "",
              "    /// ftfy's upper-case entities (`&EACUTE;` -> `É`), keyed by the name with its ';'.",
              "    static let ftfyUpper: [String: String] = ["]
    for k in sorted(upper):
        lines.append("        %s: %s," % (swift_string(k), swift_string(upper[k])))
    lines += ["    ]", "",
              "    /// ftfy's `fix_character_width` map (U+3000 and the halfwidth/fullwidth forms block, by NFKC).",
              "    static let width: [UInt32: String] = ["]
    for k in sorted(chardata.WIDTH_MAP):
        lines.append("        0x%X: %s," % (k, swift_string(chardata.WIDTH_MAP[k])))
    lines += ["    ]", "}", ""]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))


# ----------------------------------------------------------------------------------------------------------------


def write_set(model_bytes, outdir, strings):
    """Writes spiece.model, tokenizer.json and tokenizer_expected.json for one model into outdir."""
    out_model = os.path.join(outdir, "spiece.model")
    with open(out_model, "wb") as f:
        f.write(model_bytes)
    sp = spm.SentencePieceProcessor(model_file=out_model)
    tok = convert(out_model)
    out_json = os.path.join(outdir, "tokenizer.json")
    tok.save(out_json, pretty=False)
    with open(out_json, encoding="utf-8") as f:
        base_json = json.load(f)

    tokenizers_by_variant = {name: Tokenizer.from_str(json.dumps(v)) for name, v in variants(base_json).items()}
    eos = sp.eos_id()
    records = []
    report = []
    for s in strings:
        spm_ids = sp.encode(s) + [eos]
        rec = {"text": s, "spm": spm_ids}
        if len(s) < 400:
            rec["spm_normalized"] = sp.normalize(s)
        for name, t in tokenizers_by_variant.items():
            t.no_truncation()
            enc = t.encode(s)
            if name == "t5" or enc.ids != rec["t5"]:
                rec[name] = enc.ids
            if len(enc.ids) > 512:
                t.enable_truncation(512)
                rec[name + "@512"] = t.encode(s).ids
        records.append(rec)
        hf_bf = rec.get("t5_byte_fallback", rec["t5"])
        if spm_ids != hf_bf:
            report.append((s, sp.encode(s, out_type=str), tokenizers_by_variant["t5_byte_fallback"].encode(s).tokens))

    # Wan calls the tokenizer through transformers (padding='max_length', truncation=True, max_length=512): check
    # that this gives the tokenizers ids recorded here, then zeros.
    fast = transformers.PreTrainedTokenizerFast(tokenizer_file=out_json, pad_token="<pad>", eos_token="</s>",
                                                unk_token="<unk>")
    for rec in records:
        out = fast([rec["text"]], padding="max_length", truncation=True, max_length=512, add_special_tokens=True,
                   return_attention_mask=True)
        ids, n = out["input_ids"][0], sum(out["attention_mask"][0])
        assert ids[:n] == rec.get("t5@512", rec["t5"]) and ids[n:] == [0] * (512 - n), rec["text"]

    expected = {
        "generator": {
            "python": sys.version.split()[0], "sentencepiece": spm.__version__, "tokenizers": tokenizers.__version__,
            "transformers": transformers.__version__, "ftfy": ftfy.__version__,
            "unicodedata": unicodedata.unidata_version,
        },
        "model": {"vocab_size": sp.get_piece_size(), "pad_id": sp.pad_id(), "eos_id": sp.eos_id(),
                  "bos_id": sp.bos_id(), "unk_id": sp.unk_id(), "extra_ids": EXTRA_IDS,
                  "hf_vocab_size": tok.get_vocab_size(with_added_tokens=True)},
        "variants": {
            "t5": "tokenizer.json as written (T5Converter keeps byte_fallback false)",
            "t5_byte_fallback": "model.byte_fallback = true (a case lists it only where it differs from t5)",
            "t5_legacy": "normalizer [Precompiled, Replace(Regex ' {2,}' -> ' ')], pre_tokenizer "
                         "[WhitespaceSplit, Metaspace(add_prefix_space true)] (listed only where it differs)",
            "t5_first": "pre_tokenizer Metaspace prepend_scheme 'first' (listed only where it differs)",
            "NAME@512": "HF with truncation to 512 (only for cases longer than 512)",
        },
        "spm_vs_hf_disagreements": [r[0] for r in report],
        "cases": records,
    }
    with open(os.path.join(outdir, "tokenizer_expected.json"), "w", encoding="utf-8") as f:
        json.dump(expected, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    return report


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tables", action="store_true", help="also write TextCleaningTables.swift")
    ap.add_argument("--full", metavar="DIR", help="also write a set with the full nmt_nfkc charsmap (not committed)")
    args = ap.parse_args()

    rng = random.Random(42)
    strings = HAND + random_strings(rng, 220) + long_strings(rng)
    strings += [wan_clean(s) for s in HAND[30:40]]  # cleaned forms, as the pipeline feeds the tokenizer
    seen = set()
    strings = [s for s in strings if not (s in seen or seen.add(s))]

    # A fixed work directory: the trainer records its input paths in the model, so this keeps the output
    # byte-identical from run to run.
    work = os.path.join("/tmp", "wan-tokenizer-fixture")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    small, full = train_both(work)
    with open(small, "rb") as f:
        small_bytes = f.read()
    with open(full, "rb") as f:
        full_bytes = f.read()
    shutil.rmtree(work, ignore_errors=True)

    report = write_set(small_bytes, HERE, strings)
    if args.full:
        os.makedirs(args.full, exist_ok=True)
        full_report = write_set(full_bytes, args.full, strings)
        print("full nmt_nfkc set in %s: %d disagreements" % (args.full, len(full_report)))

    cleaning = {
        "generator": {"python": sys.version.split()[0], "ftfy": ftfy.__version__, "regex": regex.__version__,
                      "unicodedata": unicodedata.unidata_version},
        "cases": [clean_record(s) for s in CLEAN_CASES + HAND + MOJIBAKE],
        "mojibake": MOJIBAKE,
    }
    with open(os.path.join(HERE, "cleaning_expected.json"), "w", encoding="utf-8") as f:
        json.dump(cleaning, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")

    if args.tables:
        write_tables(os.path.join(REPO, "Sources", "WanPipelines", "Tokenizer", "TextCleaningTables.swift"))

    print("strings: %d, sentencepiece vs tokenizers (byte fallback on) disagree on %d:" % (len(strings), len(report)))
    for text, a, b in report:
        print("  %r\n    spm %s\n    hf  %s" % (text, a, b))


if __name__ == "__main__":
    main()
