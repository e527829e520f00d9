//! Minimal, dependency-light PDF/A-1b writer for plain (Italian) text.
//!
//! [`render`] turns UTF-8 plain text into a self-contained PDF/A-1b
//! (ISO 19005-1, level B) document on A4 paper, typeset in DejaVu Serif.
//!
//! # Input conventions
//!
//! The text is processed line by line (`\n` or `\r\n` line ends):
//!
//! * a blank line (only whitespace) produces a paragraph gap; runs of blank
//!   lines collapse into a single gap and no gap is emitted at a page top;
//! * a line starting with `"- "` (leading whitespace ignored) is a bullet
//!   item, rendered with a `•` marker and a hanging indent;
//! * a line whose letters are all upper case (at least two letters, any
//!   number of digits / punctuation allowed, e.g.
//!   `"VERBALE DELLA SEDUTA – ASSEMBLEA"`) is a bold, slightly larger heading;
//! * every other line is body text. Each input line starts a new output line
//!   (line breaks are preserved); long lines are wrapped on spaces at the right
//!   margin using the real advance widths of the font, and words wider than
//!   the text column are broken between characters. Runs of spaces/tabs are
//!   collapsed into one space.
//!
//! Each page gets a centred footer `"Pagina N di M"`.
//!
//! # Character repertoire
//!
//! The fonts are embedded whole as *simple* TrueType fonts with
//! `/WinAnsiEncoding`, so only the Windows-1252 repertoire can be shown. That
//! covers everything Italian needs (à è é ì ò ù, capitals, €, « », – —, ’ “ ”
//! …). A few look-alikes are folded (typographic spaces to a space,
//! non-breaking hyphens and U+2212 minus to `-`, combining grave/acute accents
//! composed onto the preceding letter, soft hyphens and zero-width characters
//! dropped). **Any other character — control characters including NUL,
//! emoji, CJK, … — is replaced by `?`.**
//!
//! Metadata strings (title, author, subject) are written as Unicode and are
//! not restricted to Windows-1252; control characters in them are replaced by
//! spaces so that the XMP packet stays well-formed XML and identical to the
//! Info dictionary.
//!
//! # Conformance notes
//!
//! * Output intent: a small grey ICC v2 profile (gamma 2.2, D50) generated in
//!   code; the page content only uses DeviceGray colour operators.
//! * XMP metadata and the Info dictionary carry the same values.
//! * Output is deterministic: equal [`Meta`] and text give identical bytes
//!   (the trailer `/ID` is an MD5 of the file body).

use std::fmt::Write as _;
use std::sync::OnceLock;

use chrono::{DateTime, Datelike, Timelike, Utc};
use sha2::{Digest, Sha256};

/// Document metadata, written both to the Info dictionary and to XMP.
#[derive(Debug, Clone, Copy)]
pub struct Meta<'a> {
    /// Document title (`/Title`, `dc:title`).
    pub title: &'a str,
    /// Author (`/Author`, `dc:creator`).
    pub author: &'a str,
    /// Subject (`/Subject`, `dc:description`).
    pub subject: &'a str,
    /// Creation time; also used as modification time.
    pub created: DateTime<Utc>,
}

/// Renders `text` as a PDF/A-1b document. Never fails and never panics.
pub fn render(meta: &Meta<'_>, text: &str) -> Vec<u8> {
    let pages = layout(text);
    let contents = page_contents(&pages);
    write_document(meta, &contents)
}

// ---------------------------------------------------------------------------
// Page geometry and typography (all values in PDF points, 1/72 inch).
// ---------------------------------------------------------------------------

/// A4 width (210 mm).
const PAGE_W: f32 = 595.28;
/// A4 height (297 mm).
const PAGE_H: f32 = 841.89;
/// 2.5 cm margin on every side.
const MARGIN: f32 = 70.87;
/// Width of the text column.
const TEXT_W: f32 = PAGE_W - 2.0 * MARGIN;

const BODY_SIZE: f32 = 11.0;
const BODY_LEADING: f32 = 14.5;
const HEADING_SIZE: f32 = 13.0;
const HEADING_LEADING: f32 = 17.0;
/// Extra space before a heading (unless at the top of a page).
const HEADING_GAP_BEFORE: f32 = 6.0;
/// Extra space after a heading.
const HEADING_GAP_AFTER: f32 = 3.0;
/// Vertical space produced by a blank line.
const PARAGRAPH_GAP: f32 = 8.0;
/// Offset of the bullet marker from the left margin.
const BULLET_MARKER_X: f32 = 6.0;
/// Offset of bullet text (and its continuation lines) from the left margin.
const BULLET_TEXT_X: f32 = 20.0;
const FOOTER_SIZE: f32 = 9.0;
/// Baseline of the footer, inside the bottom margin.
const FOOTER_Y: f32 = 36.0;

/// WinAnsi code of the bullet marker "•".
const BULLET_CODE: u8 = 0x95;
/// Producer written to Info and XMP.
const PRODUCER: &str = "procedo";

// ---------------------------------------------------------------------------
// Fonts
// ---------------------------------------------------------------------------

static REGULAR_TTF: &[u8] = include_bytes!("fonts/DejaVuSerif.ttf");
static BOLD_TTF: &[u8] = include_bytes!("fonts/DejaVuSerif-Bold.ttf");

/// The two faces used by the renderer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Regular,
    Bold,
}

impl Style {
    /// Resource name in the page `/Font` dictionary.
    fn resource(self) -> &'static str {
        match self {
            Style::Regular => "F1",
            Style::Bold => "F2",
        }
    }

    fn info(self) -> &'static FontInfo {
        let fonts = fonts();
        match self {
            Style::Regular => &fonts[0],
            Style::Bold => &fonts[1],
        }
    }
}

/// Metrics of one embedded font, expressed in PDF glyph space (1/1000 em).
#[derive(Debug)]
struct FontInfo {
    /// PostScript name, used as `/BaseFont` and `/FontName`.
    base_font: &'static str,
    /// The complete TrueType file.
    data: &'static [u8],
    /// Advance width of each WinAnsi code (meaningful for 32..=255).
    widths: [u16; 256],
    /// Whether the font has a real glyph for the code.
    has_glyph: [bool; 256],
    bbox: [i32; 4],
    italic_angle: f32,
    ascent: i32,
    descent: i32,
    cap_height: i32,
    stem_v: i32,
}

impl FontInfo {
    /// Reads the metrics of `data`. The font is a compile-time constant, but
    /// parsing is still fallible in principle, so sane defaults are used
    /// instead of panicking if it ever fails.
    fn load(base_font: &'static str, data: &'static [u8], bold: bool) -> FontInfo {
        let mut info = FontInfo {
            base_font,
            data,
            widths: [if bold { 650 } else { 600 }; 256],
            has_glyph: [false; 256],
            bbox: [-800, -400, 2000, 1100],
            italic_angle: 0.0,
            ascent: 930,
            descent: -240,
            cap_height: 730,
            stem_v: if bold { 166 } else { 88 },
        };
        let Ok(face) = ttf_parser::Face::parse(data, 0) else {
            // Unusable font program: assume plain ASCII is available.
            for code in 32..=126 {
                info.has_glyph[code] = true;
            }
            return info;
        };
        let upem = f32::from(face.units_per_em().max(1));
        let scale = |v: f32| (v * 1000.0 / upem).round() as i32;

        let notdef_w = face.glyph_hor_advance(ttf_parser::GlyphId(0)).unwrap_or(0);
        for code in 32..=255u8 {
            let glyph = winansi_glyph_char(code).and_then(|c| face.glyph_index(c));
            let advance = match glyph {
                Some(g) => {
                    info.has_glyph[usize::from(code)] = true;
                    face.glyph_hor_advance(g).unwrap_or(notdef_w)
                }
                None => notdef_w,
            };
            info.widths[usize::from(code)] = scale(f32::from(advance)).clamp(0, 65535) as u16;
        }

        let bb = face.global_bounding_box();
        info.bbox = [
            scale(f32::from(bb.x_min)),
            scale(f32::from(bb.y_min)),
            scale(f32::from(bb.x_max)),
            scale(f32::from(bb.y_max)),
        ];
        info.italic_angle = face.italic_angle();
        info.ascent = scale(f32::from(face.ascender()));
        info.descent = scale(f32::from(face.descender()));
        let cap = face.capital_height().or_else(|| {
            face.glyph_index('H')
                .and_then(|g| face.glyph_bounding_box(g))
                .map(|r| r.y_max)
        });
        if let Some(cap) = cap {
            info.cap_height = scale(f32::from(cap));
        }
        // TrueType has no stem width; estimate it from the weight class with
        // the usual heuristic (400 -> ~88, 700 -> ~166).
        let weight = f32::from(face.weight().to_number());
        info.stem_v = (50.0 + (weight / 65.0).powi(2)).round() as i32;
        info
    }

    /// Width of one code at `size` points.
    fn code_width(&self, code: u8, size: f32) -> f32 {
        f32::from(self.widths[usize::from(code)]) * size / 1000.0
    }

    /// Width of a run of codes at `size` points.
    fn text_width(&self, codes: &[u8], size: f32) -> f32 {
        codes.iter().map(|&c| self.code_width(c, size)).sum()
    }
}

/// Lazily parsed metrics of the regular and the bold font.
fn fonts() -> &'static [FontInfo; 2] {
    static FONTS: OnceLock<[FontInfo; 2]> = OnceLock::new();
    FONTS.get_or_init(|| {
        [
            FontInfo::load("DejaVuSerif", REGULAR_TTF, false),
            FontInfo::load("DejaVuSerif-Bold", BOLD_TTF, true),
        ]
    })
}

/// zlib-compressed font programs (compressed once per process).
fn compressed_font(style: Style) -> &'static [u8] {
    static REGULAR: OnceLock<Vec<u8>> = OnceLock::new();
    static BOLD: OnceLock<Vec<u8>> = OnceLock::new();
    let (cell, data) = match style {
        Style::Regular => (&REGULAR, REGULAR_TTF),
        Style::Bold => (&BOLD, BOLD_TTF),
    };
    cell.get_or_init(|| miniz_oxide::deflate::compress_to_vec_zlib(data, 9))
}

// ---------------------------------------------------------------------------
// Windows-1252 / WinAnsiEncoding
// ---------------------------------------------------------------------------

/// Unicode values of cp1252 codes 0x80..=0x9F (0 = unassigned).
const CP1252_HIGH: [u16; 32] = [
    0x20AC, 0, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, // 80-87
    0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0, 0x017D, 0, // 88-8F
    0, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, // 90-97
    0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0, 0x017E, 0x0178, // 98-9F
];

/// Decodes a printable cp1252 code (32..=126, 128..=255) to Unicode.
fn cp1252_to_char(code: u8) -> Option<char> {
    match code {
        0x20..=0x7E | 0xA0..=0xFF => Some(char::from(code)),
        0x80..=0x9F => match CP1252_HIGH[usize::from(code - 0x80)] {
            0 => None,
            u => char::from_u32(u32::from(u)),
        },
        _ => None,
    }
}

/// Encodes a character as a printable cp1252 code, if it has one.
fn char_to_cp1252(c: char) -> Option<u8> {
    match u32::from(c) {
        u @ (0x20..=0x7E | 0xA0..=0xFF) => u8::try_from(u).ok(),
        u => CP1252_HIGH
            .iter()
            .position(|&h| h != 0 && u32::from(h) == u)
            .and_then(|i| u8::try_from(0x80 + i).ok()),
    }
}

/// The Unicode character whose glyph a PDF viewer uses for a WinAnsi code.
///
/// Viewers go code → glyph name (WinAnsiEncoding) → Unicode → font `cmap`.
/// WinAnsiEncoding names 0xA0 "space" and 0xAD "hyphen", so those two codes
/// show the glyphs of U+0020 and U+002D rather than NBSP / soft hyphen.
fn winansi_glyph_char(code: u8) -> Option<char> {
    match code {
        0xA0 => Some(' '),
        0xAD => Some('-'),
        _ => cp1252_to_char(code),
    }
}

/// Codes that have a glyph in both fonts (so any style can show them).
fn available_codes() -> &'static [bool; 256] {
    static AVAILABLE: OnceLock<[bool; 256]> = OnceLock::new();
    AVAILABLE.get_or_init(|| {
        let [regular, bold] = fonts();
        std::array::from_fn(|i| regular.has_glyph[i] && bold.has_glyph[i])
    })
}

/// Composes `base` + combining grave (U+0300) or acute (U+0301) accent into a
/// precomposed Latin-1 letter, when one exists.
fn compose_accent(base: u8, combining: char) -> Option<u8> {
    let table: &[(u8, u8)] = match combining {
        '\u{300}' => &[
            (b'a', 0xE0),
            (b'e', 0xE8),
            (b'i', 0xEC),
            (b'o', 0xF2),
            (b'u', 0xF9),
            (b'A', 0xC0),
            (b'E', 0xC8),
            (b'I', 0xCC),
            (b'O', 0xD2),
            (b'U', 0xD9),
        ],
        '\u{301}' => &[
            (b'a', 0xE1),
            (b'e', 0xE9),
            (b'i', 0xED),
            (b'o', 0xF3),
            (b'u', 0xFA),
            (b'y', 0xFD),
            (b'A', 0xC1),
            (b'E', 0xC9),
            (b'I', 0xCD),
            (b'O', 0xD3),
            (b'U', 0xDA),
            (b'Y', 0xDD),
        ],
        _ => return None,
    };
    table.iter().find(|(b, _)| *b == base).map(|&(_, c)| c)
}

/// Converts one line of text to WinAnsi codes (see the module docs for the
/// folding rules); unrepresentable characters become `?`.
fn encode_line(line: &str) -> Vec<u8> {
    let available = available_codes();
    let mut out = Vec::with_capacity(line.len());
    for c in line.chars() {
        let code = match c {
            '\t' => b' ',
            // Invisible: soft hyphen, zero-width (non-)joiners, BOM, word joiner.
            '\u{AD}' | '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}' => continue,
            '\u{2000}'..='\u{200A}' | '\u{205F}' | '\u{3000}' => b' ',
            '\u{202F}' => 0xA0,
            '\u{2010}' | '\u{2011}' | '\u{2212}' => b'-',
            '\u{300}' | '\u{301}' => match out.last().and_then(|&b| compose_accent(b, c)) {
                Some(composed) => {
                    out.pop();
                    composed
                }
                None => b'?',
            },
            _ => char_to_cp1252(c).unwrap_or(b'?'),
        };
        out.push(if available[usize::from(code)] {
            code
        } else {
            b'?'
        });
    }
    out
}

// ---------------------------------------------------------------------------
// Layout
// ---------------------------------------------------------------------------

/// One positioned string on a page.
#[derive(Debug, Clone, PartialEq)]
struct Run {
    style: Style,
    size: f32,
    x: f32,
    /// Baseline.
    y: f32,
    codes: Vec<u8>,
}

/// Kind of an input line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineKind<'a> {
    Blank,
    Bullet(&'a str),
    Heading(&'a str),
    Body(&'a str),
}

fn classify(line: &str) -> LineKind<'_> {
    let line = line.trim_end();
    let trimmed = line.trim_start();
    if trimmed.is_empty() {
        return LineKind::Blank;
    }
    if let Some(item) = trimmed.strip_prefix("- ") {
        return LineKind::Bullet(item);
    }
    let mut letters = trimmed.chars().filter(|c| c.is_alphabetic()).peekable();
    let mut count = 0usize;
    let all_upper = letters.peek().is_some()
        && letters.all(|c| {
            count += 1;
            c.is_uppercase()
        });
    if all_upper && count >= 2 {
        LineKind::Heading(trimmed)
    } else {
        LineKind::Body(line)
    }
}

/// Greedy word wrap of `codes` into lines no wider than `max_w` points.
/// Words wider than a whole line are broken between characters. Always
/// returns at least one (possibly empty) line.
fn wrap(codes: &[u8], font: &FontInfo, size: f32, max_w: f32) -> Vec<Vec<u8>> {
    // Tolerance against float rounding when a line fits exactly.
    let limit = max_w + 0.01;
    let space_w = font.code_width(b' ', size);
    let mut lines = Vec::new();
    let mut line: Vec<u8> = Vec::new();
    let mut line_w = 0.0f32;
    for word in codes.split(|&b| b == b' ').filter(|w| !w.is_empty()) {
        let word_w = font.text_width(word, size);
        if !line.is_empty() && line_w + space_w + word_w <= limit {
            line.push(b' ');
            line.extend_from_slice(word);
            line_w += space_w + word_w;
            continue;
        }
        if !line.is_empty() {
            lines.push(std::mem::take(&mut line));
            line_w = 0.0;
        }
        if word_w <= limit {
            line.extend_from_slice(word);
            line_w = word_w;
            continue;
        }
        // Overlong word: fill lines character by character (at least one
        // character per line, so this always makes progress).
        for &code in word {
            let w = font.code_width(code, size);
            if !line.is_empty() && line_w + w > limit {
                lines.push(std::mem::take(&mut line));
                line_w = 0.0;
            }
            line.push(code);
            line_w += w;
        }
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

/// Flows lines onto pages.
struct Layouter {
    pages: Vec<Vec<Run>>,
    current: Vec<Run>,
    /// Top of the next line box.
    cursor: f32,
    /// Vertical space to insert before the next line (dropped at page top).
    pending_gap: f32,
}

impl Layouter {
    fn new() -> Self {
        Layouter {
            pages: Vec::new(),
            current: Vec::new(),
            cursor: PAGE_H - MARGIN,
            pending_gap: 0.0,
        }
    }

    fn gap(&mut self, gap: f32) {
        self.pending_gap = self.pending_gap.max(gap);
    }

    fn new_page(&mut self) {
        self.pages.push(std::mem::take(&mut self.current));
        self.cursor = PAGE_H - MARGIN;
        self.pending_gap = 0.0;
    }

    /// Places one output line made of `pieces` (style, x, codes) that share a
    /// baseline, breaking the page first if it does not fit.
    fn place(&mut self, size: f32, leading: f32, pieces: Vec<(Style, f32, Vec<u8>)>) {
        if !self.current.is_empty() {
            self.cursor -= self.pending_gap;
            if self.cursor - leading < MARGIN {
                self.new_page();
            }
        }
        self.pending_gap = 0.0;
        let baseline = self.cursor - size;
        self.current
            .extend(pieces.into_iter().map(|(style, x, codes)| Run {
                style,
                size,
                x,
                y: baseline,
                codes,
            }));
        self.cursor -= leading;
    }

    fn finish(mut self) -> Vec<Vec<Run>> {
        if !self.current.is_empty() || self.pages.is_empty() {
            self.pages.push(self.current);
        }
        self.pages
    }
}

/// Lays `text` out into pages of positioned runs (without footers).
fn layout(text: &str) -> Vec<Vec<Run>> {
    let regular = Style::Regular.info();
    let bold = Style::Bold.info();
    let mut lay = Layouter::new();
    for line in text.lines() {
        match classify(line) {
            LineKind::Blank => lay.gap(PARAGRAPH_GAP),
            LineKind::Heading(s) => {
                lay.gap(HEADING_GAP_BEFORE);
                let codes = encode_line(s);
                for l in wrap(&codes, bold, HEADING_SIZE, TEXT_W) {
                    lay.place(
                        HEADING_SIZE,
                        HEADING_LEADING,
                        vec![(Style::Bold, MARGIN, l)],
                    );
                }
                lay.gap(HEADING_GAP_AFTER);
            }
            LineKind::Bullet(s) => {
                let codes = encode_line(s);
                let lines = wrap(&codes, regular, BODY_SIZE, TEXT_W - BULLET_TEXT_X);
                for (i, l) in lines.into_iter().enumerate() {
                    let mut pieces = Vec::with_capacity(2);
                    if i == 0 {
                        pieces.push((Style::Regular, MARGIN + BULLET_MARKER_X, vec![BULLET_CODE]));
                    }
                    pieces.push((Style::Regular, MARGIN + BULLET_TEXT_X, l));
                    lay.place(BODY_SIZE, BODY_LEADING, pieces);
                }
            }
            LineKind::Body(s) => {
                let codes = encode_line(s);
                for l in wrap(&codes, regular, BODY_SIZE, TEXT_W) {
                    lay.place(BODY_SIZE, BODY_LEADING, vec![(Style::Regular, MARGIN, l)]);
                }
            }
        }
    }
    lay.finish()
}

/// Footer text of page `n` (1-based) of `m`.
fn footer_text(n: usize, m: usize) -> String {
    format!("Pagina {n} di {m}")
}

/// Builds the (uncompressed) content stream of every page, footers included.
fn page_contents(pages: &[Vec<Run>]) -> Vec<Vec<u8>> {
    let total = pages.len();
    pages
        .iter()
        .enumerate()
        .map(|(i, runs)| {
            let footer = encode_line(&footer_text(i + 1, total));
            let footer_w = Style::Regular.info().text_width(&footer, FOOTER_SIZE);
            let footer_run = Run {
                style: Style::Regular,
                size: FOOTER_SIZE,
                x: (PAGE_W - footer_w) / 2.0,
                y: FOOTER_Y,
                codes: footer,
            };
            content_stream(runs.iter().chain(std::iter::once(&footer_run)))
        })
        .collect()
}

/// Serialises runs as PDF text operators. Only DeviceGray colour is used.
fn content_stream<'a>(runs: impl Iterator<Item = &'a Run>) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(b"BT\n0 g\n");
    let mut current_font: Option<(Style, f32)> = None;
    for run in runs.filter(|r| !r.codes.is_empty()) {
        if current_font != Some((run.style, run.size)) {
            out.extend_from_slice(
                format!("/{} {} Tf\n", run.style.resource(), num(run.size)).as_bytes(),
            );
            current_font = Some((run.style, run.size));
        }
        out.extend_from_slice(format!("1 0 0 1 {} {} Tm\n", num(run.x), num(run.y)).as_bytes());
        push_literal_string(&mut out, &run.codes);
        out.extend_from_slice(b" Tj\n");
    }
    out.extend_from_slice(b"ET\n");
    out
}

/// Appends `bytes` as a PDF literal string, escaping `(`, `)`, `\` and line
/// end bytes (which a reader would otherwise normalise).
fn push_literal_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'(');
    for &b in bytes {
        match b {
            b'(' | b')' | b'\\' => out.extend_from_slice(&[b'\\', b]),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\n' => out.extend_from_slice(b"\\n"),
            _ => out.push(b),
        }
    }
    out.push(b')');
}

/// Formats a coordinate with at most two decimals and no trailing zeros.
fn num(v: f32) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    match s {
        "" | "-" | "-0" => "0".to_owned(),
        s => s.to_owned(),
    }
}

// ---------------------------------------------------------------------------
// Metadata helpers
// ---------------------------------------------------------------------------

/// Longest metadata string kept, in characters. PDF/A-1 limits strings to
/// 65535 bytes (ISO 19005-1, 6.1.12); in UTF-16 with BOM this stays far below.
const MAX_META_CHARS: usize = 4000;

/// Makes a metadata string safe for both XML and PDF: control characters
/// become spaces, XML non-characters become U+FFFD and the length is capped at
/// [`MAX_META_CHARS`].
fn sanitize_meta(s: &str) -> String {
    s.chars()
        .take(MAX_META_CHARS)
        .map(|c| match c {
            c if c.is_control() => ' ',
            '\u{FFFE}' | '\u{FFFF}' => '\u{FFFD}',
            c => c,
        })
        .collect()
}

/// Encodes a text string for the Info dictionary: a literal string when it is
/// printable ASCII, otherwise UTF-16BE with BOM as a hex string.
fn pdf_text_string(s: &str) -> String {
    if s.chars().all(|c| (' '..='~').contains(&c)) {
        let mut out = String::with_capacity(s.len() + 2);
        out.push('(');
        for c in s.chars() {
            if matches!(c, '(' | ')' | '\\') {
                out.push('\\');
            }
            out.push(c);
        }
        out.push(')');
        out
    } else {
        let mut out = String::from("<FEFF");
        for unit in s.encode_utf16() {
            let _ = write!(out, "{unit:04X}");
        }
        out.push('>');
        out
    }
}

/// Escapes text for XML element content and attribute values.
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Date/time components clamped to what PDF and XMP can express (years
/// 0001–9999, whole seconds).
struct Stamp {
    year: i32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

impl Stamp {
    fn new(dt: &DateTime<Utc>) -> Stamp {
        match dt.year() {
            y if y < 1 => Stamp {
                year: 1,
                month: 1,
                day: 1,
                hour: 0,
                minute: 0,
                second: 0,
            },
            y if y > 9999 => Stamp {
                year: 9999,
                month: 12,
                day: 31,
                hour: 23,
                minute: 59,
                second: 59,
            },
            year => Stamp {
                year,
                month: dt.month(),
                day: dt.day(),
                hour: dt.hour(),
                minute: dt.minute(),
                second: dt.second(),
            },
        }
    }

    /// PDF date string, e.g. `D:20270121093000+00'00'`.
    fn pdf(&self) -> String {
        format!(
            "D:{:04}{:02}{:02}{:02}{:02}{:02}+00'00'",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// XMP (ISO 8601) date, e.g. `2027-01-21T09:30:00+00:00`.
    fn xmp(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}+00:00",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

/// Sanitised metadata shared by the Info dictionary and the XMP packet, so
/// that both carry exactly the same values.
struct DocMeta {
    title: String,
    author: String,
    subject: String,
    date: Stamp,
}

impl DocMeta {
    fn new(meta: &Meta<'_>) -> DocMeta {
        DocMeta {
            title: sanitize_meta(meta.title),
            author: sanitize_meta(meta.author),
            subject: sanitize_meta(meta.subject),
            date: Stamp::new(&meta.created),
        }
    }

    /// Info dictionary body. Empty strings are omitted (and likewise left out
    /// of the XMP) so that the two stay consistent.
    fn info_dict(&self) -> String {
        let mut d = String::from("<<");
        for (key, value) in [
            ("Title", &self.title),
            ("Author", &self.author),
            ("Subject", &self.subject),
        ] {
            if !value.is_empty() {
                let _ = write!(d, " /{key} {}", pdf_text_string(value));
            }
        }
        let date = self.date.pdf();
        let _ = write!(
            d,
            " /Producer {} /CreationDate ({date}) /ModDate ({date}) >>",
            pdf_text_string(PRODUCER)
        );
        d
    }

    /// The XMP packet (UTF-8), with trailing padding for in-place updates.
    fn xmp(&self) -> String {
        let mut dc = String::new();
        if !self.title.is_empty() {
            let _ = writeln!(
                dc,
                "   <dc:title><rdf:Alt><rdf:li xml:lang=\"x-default\">{}</rdf:li></rdf:Alt></dc:title>",
                xml_escape(&self.title)
            );
        }
        if !self.author.is_empty() {
            let _ = writeln!(
                dc,
                "   <dc:creator><rdf:Seq><rdf:li>{}</rdf:li></rdf:Seq></dc:creator>",
                xml_escape(&self.author)
            );
        }
        if !self.subject.is_empty() {
            let _ = writeln!(
                dc,
                "   <dc:description><rdf:Alt><rdf:li xml:lang=\"x-default\">{}</rdf:li></rdf:Alt></dc:description>",
                xml_escape(&self.subject)
            );
        }
        let date = self.date.xmp();
        let mut x = format!(
            "<?xpacket begin=\"\u{feff}\" id=\"W5M0MpCehiHzreSzNTczkc9d\"?>\n\
<x:xmpmeta xmlns:x=\"adobe:ns:meta/\">\n\
 <rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\">\n\
  <rdf:Description rdf:about=\"\" xmlns:pdfaid=\"http://www.aiim.org/pdfa/ns/id/\">\n\
   <pdfaid:part>1</pdfaid:part>\n\
   <pdfaid:conformance>B</pdfaid:conformance>\n\
  </rdf:Description>\n\
  <rdf:Description rdf:about=\"\" xmlns:dc=\"http://purl.org/dc/elements/1.1/\">\n\
   <dc:format>application/pdf</dc:format>\n\
{dc}\
  </rdf:Description>\n\
  <rdf:Description rdf:about=\"\" xmlns:xmp=\"http://ns.adobe.com/xap/1.0/\">\n\
   <xmp:CreateDate>{date}</xmp:CreateDate>\n\
   <xmp:ModifyDate>{date}</xmp:ModifyDate>\n\
   <xmp:MetadataDate>{date}</xmp:MetadataDate>\n\
  </rdf:Description>\n\
  <rdf:Description rdf:about=\"\" xmlns:pdf=\"http://ns.adobe.com/pdf/1.3/\">\n\
   <pdf:Producer>{producer}</pdf:Producer>\n\
  </rdf:Description>\n\
 </rdf:RDF>\n\
</x:xmpmeta>\n",
            producer = xml_escape(PRODUCER),
        );
        // Conventional whitespace padding (20 lines of 100 bytes).
        for _ in 0..20 {
            x.push_str(&" ".repeat(99));
            x.push('\n');
        }
        x.push_str("<?xpacket end=\"w\"?>");
        x
    }
}

// ---------------------------------------------------------------------------
// ICC profile
// ---------------------------------------------------------------------------

/// D50 illuminant as s15Fixed16 XYZ (0.9642, 1.0, 0.8249).
const D50: [u32; 3] = [0x0000_F6D6, 0x0001_0000, 0x0000_D32D];

/// Builds a minimal ICC v2.1 monochrome display profile: grey colour space,
/// XYZ PCS, D50 white point and a pure gamma 2.2 tone curve. The tags are the
/// four required for a monochrome display profile: `desc`, `cprt`, `wtpt`,
/// `kTRC`.
fn gray_icc_profile() -> Vec<u8> {
    fn be32(v: &mut Vec<u8>, x: u32) {
        v.extend_from_slice(&x.to_be_bytes());
    }

    // Tag data elements.
    let desc = {
        let ascii = b"Gray Gamma 2.2\0";
        let mut t = b"desc\0\0\0\0".to_vec();
        be32(&mut t, ascii.len() as u32);
        t.extend_from_slice(ascii);
        be32(&mut t, 0); // Unicode language code
        be32(&mut t, 0); // Unicode count
        t.extend_from_slice(&[0, 0]); // ScriptCode code
        t.push(0); // ScriptCode count
        t.extend_from_slice(&[0; 67]); // ScriptCode description
        t
    };
    let cprt = {
        let mut t = b"text\0\0\0\0".to_vec();
        t.extend_from_slice(b"No copyright, use freely\0");
        t
    };
    let wtpt = {
        let mut t = b"XYZ \0\0\0\0".to_vec();
        for v in D50 {
            be32(&mut t, v);
        }
        t
    };
    let ktrc = {
        let mut t = b"curv\0\0\0\0".to_vec();
        be32(&mut t, 1); // one entry: a pure gamma
        t.extend_from_slice(&0x0233u16.to_be_bytes()); // 2.2 as u8Fixed8 (563/256)
        t
    };
    let tags: [(&[u8; 4], Vec<u8>); 4] = [
        (b"desc", desc),
        (b"cprt", cprt),
        (b"wtpt", wtpt),
        (b"kTRC", ktrc),
    ];

    // Header (128 bytes) + tag count + 12 bytes per tag, then 4-aligned data.
    let table_end = 128 + 4 + 12 * tags.len();
    let mut table = Vec::new();
    let mut data = Vec::new();
    be32(&mut table, tags.len() as u32);
    for (sig, body) in &tags {
        while !(table_end + data.len()).is_multiple_of(4) {
            data.push(0);
        }
        table.extend_from_slice(*sig);
        be32(&mut table, (table_end + data.len()) as u32);
        be32(&mut table, body.len() as u32);
        data.extend_from_slice(body);
    }
    while !data.len().is_multiple_of(4) {
        data.push(0);
    }
    let size = table_end + data.len();

    let mut p = Vec::with_capacity(size);
    be32(&mut p, size as u32); // profile size
    be32(&mut p, 0); // preferred CMM
    be32(&mut p, 0x0210_0000); // version 2.1.0
    p.extend_from_slice(b"mntr"); // device class: display
    p.extend_from_slice(b"GRAY"); // colour space
    p.extend_from_slice(b"XYZ "); // profile connection space
    for v in [2024u16, 1, 1, 0, 0, 0] {
        p.extend_from_slice(&v.to_be_bytes()); // creation date (fixed)
    }
    p.extend_from_slice(b"acsp"); // profile file signature
    be32(&mut p, 0); // primary platform
    be32(&mut p, 0); // flags
    be32(&mut p, 0); // device manufacturer
    be32(&mut p, 0); // device model
    p.extend_from_slice(&[0; 8]); // device attributes
    be32(&mut p, 0); // rendering intent: perceptual
    for v in D50 {
        be32(&mut p, v); // PCS illuminant
    }
    be32(&mut p, 0); // profile creator
    p.extend_from_slice(&[0; 44]); // profile ID (v4) + reserved
    p.extend_from_slice(&table);
    p.extend_from_slice(&data);
    p
}

// ---------------------------------------------------------------------------
// PDF serialisation
// ---------------------------------------------------------------------------

/// Fixed object numbers; pages follow from [`FIRST_PAGE_OBJ`] on, two objects
/// (page, content stream) per page.
const CATALOG_OBJ: usize = 1;
const PAGES_OBJ: usize = 2;
const METADATA_OBJ: usize = 3;
const ICC_OBJ: usize = 4;
const INFO_OBJ: usize = 5;
/// Font, descriptor and font file objects of the regular face; bold follows.
const FONT_OBJ: [usize; 2] = [6, 9];
const FIRST_PAGE_OBJ: usize = 12;

/// Accumulates the file and remembers object offsets for the xref table.
struct PdfWriter {
    buf: Vec<u8>,
    /// `offsets[n]` is the byte offset of object `n` (index 0 unused).
    offsets: Vec<usize>,
}

impl PdfWriter {
    fn new() -> Self {
        let mut buf = Vec::new();
        // Header plus a binary comment with four bytes > 127 (ISO 19005-1 6.1.2).
        buf.extend_from_slice(b"%PDF-1.4\n%\xE2\xE3\xCF\xD3\n");
        PdfWriter {
            buf,
            offsets: vec![0],
        }
    }

    fn begin(&mut self, id: usize) {
        if self.offsets.len() <= id {
            self.offsets.resize(id + 1, 0);
        }
        self.offsets[id] = self.buf.len();
        self.buf
            .extend_from_slice(format!("{id} 0 obj\n").as_bytes());
    }

    /// Writes a non-stream object.
    fn object(&mut self, id: usize, body: &str) {
        self.begin(id);
        self.buf.extend_from_slice(body.as_bytes());
        self.buf.extend_from_slice(b"\nendobj\n");
    }

    /// Writes a stream object; `dict` holds the entries other than /Length.
    fn stream(&mut self, id: usize, dict: &str, data: &[u8]) {
        self.begin(id);
        self.buf
            .extend_from_slice(format!("<< {dict} /Length {} >>\nstream\n", data.len()).as_bytes());
        self.buf.extend_from_slice(data);
        self.buf.extend_from_slice(b"\nendstream\nendobj\n");
    }

    /// Appends xref table and trailer and returns the finished file.
    fn finish(mut self) -> Vec<u8> {
        // Deterministic file identifier: the first 16 bytes of the SHA-256 of everything
        // written so far, which covers the content and all metadata.
        let id: String = Sha256::digest(&self.buf)
            .iter()
            .take(16)
            .map(|b| format!("{b:02X}"))
            .collect();
        let xref_at = self.buf.len();
        let count = self.offsets.len();
        let mut x = format!("xref\n0 {count}\n0000000000 65535 f \n");
        for &offset in &self.offsets[1..] {
            let _ = writeln!(x, "{offset:010} 00000 n ");
        }
        let _ = write!(
            x,
            "trailer\n<< /Size {count} /Root {CATALOG_OBJ} 0 R /Info {INFO_OBJ} 0 R /ID [<{id}> <{id}>] >>\nstartxref\n{xref_at}\n%%EOF\n"
        );
        self.buf.extend_from_slice(x.as_bytes());
        self.buf
    }
}

/// Writes the font dictionary, font descriptor and font file of one style.
fn write_font(w: &mut PdfWriter, style: Style) {
    let font = style.info();
    let [font_obj, descriptor_obj, file_obj] = {
        let base = FONT_OBJ[usize::from(style == Style::Bold)];
        [base, base + 1, base + 2]
    };
    let widths = font.widths[32..=255]
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(" ");
    w.object(
        font_obj,
        &format!(
            "<< /Type /Font /Subtype /TrueType /BaseFont /{name} /FirstChar 32 /LastChar 255 \
/Widths [{widths}] /Encoding /WinAnsiEncoding /FontDescriptor {descriptor_obj} 0 R >>",
            name = font.base_font
        ),
    );
    let [x0, y0, x1, y1] = font.bbox;
    w.object(
        descriptor_obj,
        &format!(
            "<< /Type /FontDescriptor /FontName /{name} /Flags 32 /FontBBox [{x0} {y0} {x1} {y1}] \
/ItalicAngle {angle} /Ascent {ascent} /Descent {descent} /CapHeight {cap} /StemV {stem} \
/FontFile2 {file_obj} 0 R >>",
            name = font.base_font,
            angle = num(font.italic_angle),
            ascent = font.ascent,
            descent = font.descent,
            cap = font.cap_height,
            stem = font.stem_v,
        ),
    );
    w.stream(
        file_obj,
        &format!("/Filter /FlateDecode /Length1 {}", font.data.len()),
        compressed_font(style),
    );
}

/// Most kids per page tree node. PDF/A-1 caps arrays at 8191 elements, so
/// longer documents get one level of intermediate `/Pages` nodes.
const MAX_KIDS: usize = 1000;

/// Assembles the whole file from the page content streams.
fn write_document(meta: &Meta<'_>, contents: &[Vec<u8>]) -> Vec<u8> {
    let doc = DocMeta::new(meta);
    let mut w = PdfWriter::new();
    let page_count = contents.len();
    let page_obj = |i: usize| FIRST_PAGE_OBJ + 2 * i;
    let refs = |ids: &mut dyn Iterator<Item = usize>| {
        ids.map(|id| format!("{id} 0 R"))
            .collect::<Vec<_>>()
            .join(" ")
    };

    // Page tree: flat when small, otherwise the root holds intermediate nodes
    // (numbered after the last page) of at most MAX_KIDS pages each.
    let groups = page_count.div_ceil(MAX_KIDS);
    let nested = groups > 1;
    let first_node_obj = page_obj(page_count);
    let parent_of = |i: usize| {
        if nested {
            first_node_obj + i / MAX_KIDS
        } else {
            PAGES_OBJ
        }
    };

    w.object(
        CATALOG_OBJ,
        &format!(
            "<< /Type /Catalog /Pages {PAGES_OBJ} 0 R /Metadata {METADATA_OBJ} 0 R \
/OutputIntents [<< /Type /OutputIntent /S /GTS_PDFA1 /OutputConditionIdentifier (Custom) \
/Info (Gray Gamma 2.2) /DestOutputProfile {ICC_OBJ} 0 R >>] >>"
        ),
    );
    let root_kids = if nested {
        refs(&mut (first_node_obj..first_node_obj + groups))
    } else {
        refs(&mut (0..page_count).map(page_obj))
    };
    w.object(
        PAGES_OBJ,
        &format!("<< /Type /Pages /Kids [{root_kids}] /Count {page_count} >>"),
    );
    w.stream(
        METADATA_OBJ,
        "/Type /Metadata /Subtype /XML",
        doc.xmp().as_bytes(),
    );
    w.stream(ICC_OBJ, "/N 1", &gray_icc_profile());
    w.object(INFO_OBJ, &doc.info_dict());
    write_font(&mut w, Style::Regular);
    write_font(&mut w, Style::Bold);

    for (i, content) in contents.iter().enumerate() {
        let id = page_obj(i);
        w.object(
            id,
            &format!(
                "<< /Type /Page /Parent {} 0 R /MediaBox [0 0 {} {}] \
/Resources << /Font << /F1 {} 0 R /F2 {} 0 R >> >> /Contents {} 0 R >>",
                parent_of(i),
                num(PAGE_W),
                num(PAGE_H),
                FONT_OBJ[0],
                FONT_OBJ[1],
                id + 1
            ),
        );
        w.stream(id + 1, "", content);
    }
    if nested {
        for g in 0..groups {
            let pages = g * MAX_KIDS..((g + 1) * MAX_KIDS).min(page_count);
            let count = pages.len();
            w.object(
                first_node_obj + g,
                &format!(
                    "<< /Type /Pages /Parent {PAGES_OBJ} 0 R /Kids [{}] /Count {count} >>",
                    refs(&mut pages.map(page_obj))
                ),
            );
        }
    }
    w.finish()
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::path::PathBuf;
    use std::process::Command;

    const SAMPLE: &str = "Ambito Territoriale di Tradate
Prot. n. 123 del 21/01/2027

VERBALE DELLA SEDUTA – ASSEMBLEA DEI SINDACI

Il giorno 30/01/2019 alle ore 18:30 presso la sala consiliare del Comune di Tradate si è riunito l'organo per la trattazione del seguente ordine del giorno:
1. Approvazione del verbale della seduta precedente
2. Piano di Zona 2018–2020: «ripartizione» del fondo, quota € 12.500,00

Sono presenti:
- Comune di Tradate: Giuseppe Bascialla, sindaco
- Comune di Venegono Inferiore: Mario Rossi (carica non indicata)

Letto, approvato e sottoscritto.

Il Presidente
Giuseppe Bascialla
";

    fn meta() -> Meta<'static> {
        Meta {
            title: "Verbale della seduta – Assemblea dei Sindaci",
            author: "Ambito Territoriale di Tradate",
            subject: "Verbale della seduta del 30/01/2019",
            created: Utc.with_ymd_and_hms(2027, 1, 21, 9, 30, 5).unwrap(),
        }
    }

    fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
        hay.windows(needle.len()).position(|w| w == needle)
    }

    fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
        hay.windows(needle.len()).rposition(|w| w == needle)
    }

    /// Checks the file skeleton: header, xref entries pointing at their
    /// objects, startxref pointing at the xref table, trailing %%EOF.
    fn assert_structure(pdf: &[u8]) {
        assert!(pdf.starts_with(b"%PDF-1.4\n%"));
        assert!(pdf[10..14].iter().all(|&b| b > 127));
        assert!(pdf.ends_with(b"%%EOF\n"));
        let sx = rfind(pdf, b"startxref\n").expect("startxref");
        let tail = std::str::from_utf8(&pdf[sx + 10..]).unwrap();
        let xref_at: usize = tail.lines().next().unwrap().parse().unwrap();
        assert!(pdf[xref_at..].starts_with(b"xref\n0 "));
        let table = std::str::from_utf8(&pdf[xref_at..sx]).unwrap();
        let mut lines = table.split('\n');
        lines.next(); // "xref"
        let count: usize = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let entries_start = xref_at + table.find("0000000000 65535 f").unwrap();
        for n in 0..count {
            let e = &pdf[entries_start + 20 * n..entries_start + 20 * (n + 1)];
            assert_eq!(e.len(), 20);
            assert!(e.ends_with(b" \n"));
            if n > 0 {
                let off: usize = std::str::from_utf8(&e[..10]).unwrap().parse().unwrap();
                assert!(
                    pdf[off..].starts_with(format!("{n} 0 obj\n").as_bytes()),
                    "object {n} not at {off}"
                );
            }
        }
        // Every stream's /Length matches its data.
        let mut pos = 0;
        while let Some(rel) = find(&pdf[pos..], b"/Length ") {
            let at = pos + rel + 8;
            let digits: String = pdf[at..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .map(|&b| char::from(b))
                .collect();
            let len: usize = digits.parse().unwrap();
            let s = at + find(&pdf[at..], b"stream\n").unwrap() + 7;
            assert!(pdf[s + len..].starts_with(b"\nendstream"));
            pos = s + len;
        }
        let id_at = find(pdf, b"/ID [<").unwrap() + 6;
        assert_eq!(pdf[id_at..id_at + 32], pdf[id_at + 35..id_at + 67]);
    }

    /// Whether an independent checker is installed. The test script installs them (Debian's
    /// poppler-utils and qpdf); where it ran (CI) a missing one fails the test rather than
    /// skipping the check.
    fn tool_available(name: &str) -> bool {
        match Command::new(name).arg("-v").output() {
            Ok(_) => true,
            Err(_) => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true")
                        && std::env::var("PROCEDO_REQUIRE_TOOLS").as_deref() != Ok("1"),
                    "`{name}` is required to check the PDF/A (scripts/test installs it)"
                );
                println!("note: `{name}` not on PATH, skipping external check");
                false
            }
        }
    }

    fn temp_pdf(name: &str, pdf: &[u8]) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("pdfa-test-{}-{name}.pdf", std::process::id()));
        std::fs::write(&path, pdf).unwrap();
        path
    }

    fn pdftotext(name: &str, pdf: &[u8]) -> Option<String> {
        if !tool_available("pdftotext") {
            return None;
        }
        let path = temp_pdf(name, pdf);
        let out = Command::new("pdftotext")
            .args(["-enc", "UTF-8", "-layout"])
            .arg(&path)
            .arg("-")
            .output()
            .unwrap();
        let _ = std::fs::remove_file(&path);
        assert!(out.status.success());
        Some(String::from_utf8(out.stdout).unwrap())
    }

    fn qpdf_check(name: &str, pdf: &[u8]) {
        if !tool_available("qpdf") {
            return;
        }
        let path = temp_pdf(name, pdf);
        let out = Command::new("qpdf")
            .arg("--check")
            .arg(&path)
            .output()
            .unwrap();
        let _ = std::fs::remove_file(&path);
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "qpdf --check failed: {text}");
        assert!(
            text.contains("No syntax or stream encoding errors"),
            "{text}"
        );
    }

    #[test]
    fn output_is_deterministic() {
        let a = render(&meta(), SAMPLE);
        let b = render(&meta(), SAMPLE);
        assert_eq!(a, b);
        let c = render(&meta(), "altro testo");
        assert_ne!(a, c);
        let id = |p: &[u8]| {
            let at = find(p, b"/ID [<").unwrap();
            p[at..at + 40].to_vec()
        };
        assert_ne!(id(&a), id(&c));
        assert_structure(&a);
        qpdf_check("sample", &a);
    }

    #[test]
    fn accents_round_trip_through_pdftotext() {
        let pdf = render(&meta(), SAMPLE);
        assert_structure(&pdf);
        let Some(text) = pdftotext("accents", &pdf) else {
            return;
        };
        for needle in [
            "si è riunito",
            "«ripartizione»",
            "€ 12.500,00",
            "2018–2020",
            "VERBALE DELLA SEDUTA – ASSEMBLEA DEI SINDACI",
            "Giuseppe Bascialla, sindaco",
            "Pagina 1 di 1",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
        let more = render(&meta(), "à è é ì ò ù À È É Ì Ò Ù ’ “virgolette” — fine");
        let text = pdftotext("accents2", &more).unwrap();
        assert!(
            text.contains("à è é ì ò ù À È É Ì Ò Ù ’ “virgolette” — fine"),
            "{text}"
        );
    }

    #[test]
    fn long_text_paginates_with_footers() {
        let text: String = (1..=300)
            .map(|i| format!("Riga numero {i} del documento di prova con qualche parola.\n"))
            .collect();
        let pages = layout(&text);
        assert!(pages.len() >= 5, "only {} pages", pages.len());
        let m = pages.len();
        let contents = page_contents(&pages);
        for (i, c) in contents.iter().enumerate() {
            let needle = format!("(Pagina {} di {m}) Tj", i + 1);
            assert!(find(c, needle.as_bytes()).is_some(), "{needle}");
        }
        // All runs stay inside the margins.
        for runs in &pages {
            for r in runs {
                assert!(r.y >= MARGIN && r.y <= PAGE_H - MARGIN, "{}", r.y);
            }
        }
        let pdf = render(&meta(), &text);
        assert_structure(&pdf);
        assert!(find(&pdf, format!("/Count {m} >>").as_bytes()).is_some());
        qpdf_check("long", &pdf);
        if let Some(t) = pdftotext("long", &pdf) {
            assert!(t.contains(&format!("Pagina {m} di {m}")));
            assert!(t.contains("Riga numero 300 del"));
        }
    }

    #[test]
    fn ugly_input_never_panics() {
        let long_word = "x".repeat(5000);
        let long_mixed = format!("Parola {} fine", "àé€".repeat(1500));
        let inputs: Vec<String> = vec![
            String::new(),
            "\n\n\n\n".into(),
            "\r\n\r\n".into(),
            long_word.clone(),
            long_mixed,
            "ctrl \u{1}\u{7}\u{8}\u{1b}[31m \u{7f}\u{85}\u{9c} fine".into(),
            "emoji 😀🇮🇹 and CJK 漢字".into(),
            "nul \0 byte\0".into(),
            "- ".into(),
            "-".into(),
            "- \n- \u{0}".into(),
            "  \t  \n\t".into(),
            "( ) \\ \\) (( parens".into(),
            "A\nAB\n12 34\nÀÈ".into(),
            "\u{FEFF}\u{200B}\u{AD}e\u{300}\u{301}".into(),
            "\n".repeat(10_000),
            "- ".repeat(3000),
        ];
        let ugly_meta = Meta {
            title: "nul\0 (paren) \\ <xml> & 😀 \r\n",
            author: "\u{FFFF}\u{7}",
            subject: "",
            created: DateTime::<Utc>::MAX_UTC,
        };
        for (i, input) in inputs.iter().enumerate() {
            for m in [meta(), ugly_meta] {
                let pdf = render(&m, input);
                assert_structure(&pdf);
                if i % 4 == 0 {
                    qpdf_check(&format!("ugly{i}"), &pdf);
                }
            }
        }
        // The 5000-char word is broken into several lines within the column.
        let lines = wrap(
            &encode_line(&long_word),
            Style::Regular.info(),
            BODY_SIZE,
            TEXT_W,
        );
        assert!(lines.len() > 10);
        assert_eq!(lines.iter().map(Vec::len).sum::<usize>(), 5000);
        let early = Meta {
            created: DateTime::<Utc>::MIN_UTC,
            ..meta()
        };
        let pdf = render(&early, "x");
        assert!(find(&pdf, b"/CreationDate (D:00010101000000+00'00')").is_some());
        assert!(find(&pdf, b"<xmp:CreateDate>0001-01-01T00:00:00+00:00<").is_some());
    }

    #[test]
    fn control_and_unknown_chars_become_question_marks() {
        assert_eq!(encode_line("a\0b😀c"), b"a?b?c");
        assert_eq!(encode_line("e\u{300} E\u{301}"), [0xE8, b' ', 0xC9]);
        assert_eq!(encode_line("\u{300}"), b"?");
        assert_eq!(encode_line("1\u{202F}000 \u{2212}5"), b"1\xA0000 -5");
    }

    #[test]
    fn cp1252_mapping_round_trips_and_fonts_cover_it() {
        let mut assigned = 0;
        for code in 0x20..=0xFFu8 {
            if code == 0x7F {
                continue;
            }
            if let Some(c) = cp1252_to_char(code) {
                assigned += 1;
                assert_eq!(char_to_cp1252(c), Some(code), "{code:#x}");
                assert!(available_codes()[usize::from(code)], "no glyph {code:#x}");
            }
        }
        // 95 ASCII + 27 in 0x80..=0x9F + 96 Latin-1.
        assert_eq!(assigned, 95 + 27 + 96);
        for (c, code) in [
            ('€', 0x80),
            ('’', 0x92),
            ('“', 0x93),
            ('”', 0x94),
            ('–', 0x96),
            ('—', 0x97),
            ('«', 0xAB),
            ('»', 0xBB),
            ('à', 0xE0),
            ('Ù', 0xD9),
        ] {
            assert_eq!(char_to_cp1252(c), Some(code));
        }
    }

    #[test]
    fn font_metrics_come_from_the_font() {
        for style in [Style::Regular, Style::Bold] {
            let f = style.info();
            let face = ttf_parser::Face::parse(f.data, 0).unwrap();
            let ps_name = face
                .names()
                .into_iter()
                .filter(|n| n.name_id == ttf_parser::name_id::POST_SCRIPT_NAME)
                .find_map(|n| n.to_string())
                .unwrap();
            assert_eq!(ps_name, f.base_font);
            assert!(f.widths[usize::from(b'm')] > f.widths[usize::from(b'i')]);
            assert!(f.ascent > 0 && f.descent < 0 && f.cap_height > 0);
            assert_eq!(f.widths[0xA0], f.widths[0x20]);
        }
        assert!(
            Style::Bold.info().widths[usize::from(b'a')]
                > Style::Regular.info().widths[usize::from(b'a')]
        );
    }

    #[test]
    fn wrapping_respects_the_column() {
        let font = Style::Regular.info();
        let text = encode_line(&"parola lunghissima ".repeat(60));
        let lines = wrap(&text, font, BODY_SIZE, TEXT_W);
        assert!(lines.len() > 3);
        for l in &lines {
            assert!(font.text_width(l, BODY_SIZE) <= TEXT_W + 0.01);
            assert!(!l.starts_with(b" ") && !l.ends_with(b" "));
        }
    }

    #[test]
    fn line_classification() {
        assert_eq!(
            classify("VERBALE DELLA SEDUTA – ASSEMBLEA"),
            LineKind::Heading("VERBALE DELLA SEDUTA – ASSEMBLEA")
        );
        assert_eq!(classify("- voce"), LineKind::Bullet("voce"));
        assert_eq!(classify("   "), LineKind::Blank);
        assert_eq!(classify("1. Punto"), LineKind::Body("1. Punto"));
        assert_eq!(classify("2018–2020"), LineKind::Body("2018–2020"));
        assert_eq!(classify("A"), LineKind::Body("A"));
        assert_eq!(classify("PERCHÉ 1"), LineKind::Heading("PERCHÉ 1"));
    }

    #[test]
    fn metadata_is_consistent_between_info_and_xmp() {
        let pdf = render(&meta(), SAMPLE);
        let s = String::from_utf8_lossy(&pdf);
        assert!(s.contains("<?xpacket begin=\"\u{feff}\" id=\"W5M0MpCehiHzreSzNTczkc9d\"?>"));
        assert!(s.contains("<pdfaid:part>1</pdfaid:part>"));
        assert!(s.contains("<pdfaid:conformance>B</pdfaid:conformance>"));
        assert!(s.contains(
            "<rdf:li xml:lang=\"x-default\">Verbale della seduta – Assemblea dei Sindaci</rdf:li>"
        ));
        assert!(s.contains("<rdf:li>Ambito Territoriale di Tradate</rdf:li>"));
        assert!(s.contains("<xmp:CreateDate>2027-01-21T09:30:05+00:00</xmp:CreateDate>"));
        assert!(s.contains("<xmp:ModifyDate>2027-01-21T09:30:05+00:00</xmp:ModifyDate>"));
        assert!(s.contains("<pdf:Producer>procedo</pdf:Producer>"));
        assert!(s.contains("/Author (Ambito Territoriale di Tradate)"));
        assert!(s.contains("/Producer (procedo)"));
        assert!(s.contains(
            "/CreationDate (D:20270121093005+00'00') /ModDate (D:20270121093005+00'00')"
        ));
        let title_hex: String = "Verbale della seduta – Assemblea dei Sindaci"
            .encode_utf16()
            .map(|u| format!("{u:04X}"))
            .collect();
        assert!(s.contains(&format!("/Title <FEFF{title_hex}>")));
    }

    #[test]
    fn icc_profile_is_well_formed() {
        let p = gray_icc_profile();
        let be = |at: usize| u32::from_be_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]]) as usize;
        assert_eq!(be(0), p.len());
        assert_eq!(&p[36..40], b"acsp");
        assert_eq!(&p[12..24], b"mntrGRAYXYZ ");
        let n = be(128);
        assert_eq!(n, 4);
        for t in 0..n {
            let e = 132 + 12 * t;
            let (off, len) = (be(e + 4), be(e + 8));
            assert_eq!(off % 4, 0);
            assert!(off + len <= p.len());
            assert_eq!(&p[off..off + 4], [b"desc", b"text", b"XYZ ", b"curv"][t]);
        }
    }

    #[test]
    fn huge_page_counts_use_a_nested_page_tree() {
        let contents = vec![b"BT\nET\n".to_vec(); 2 * MAX_KIDS + 5];
        let pdf = write_document(&meta(), &contents);
        assert_structure(&pdf);
        let n = contents.len();
        assert!(find(&pdf, format!("/Count {n} >>").as_bytes()).is_some());
        assert!(find(&pdf, b"/Count 5 >>").is_some());
        qpdf_check("nested", &pdf);
        if tool_available("pdfinfo") {
            let path = temp_pdf("nested", &pdf);
            let out = Command::new("pdfinfo").arg(&path).output().unwrap();
            let _ = std::fs::remove_file(&path);
            let info = String::from_utf8_lossy(&out.stdout);
            assert!(info.contains(&format!("Pages:           {n}")), "{info}");
        }
    }

    #[test]
    fn metadata_strings_are_capped() {
        let title = "é".repeat(100_000);
        let m = Meta {
            title: &title,
            ..meta()
        };
        let pdf = render(&m, "x");
        assert_structure(&pdf);
        let at = find(&pdf, b"/Title <FEFF").unwrap();
        let end = at + find(&pdf[at..], b">").unwrap();
        assert_eq!(end - at - b"/Title <FEFF".len(), 4 * MAX_META_CHARS);
    }

    #[test]
    fn number_formatting() {
        assert_eq!(num(70.87), "70.87");
        assert_eq!(num(11.0), "11");
        assert_eq!(num(-0.001), "0");
        assert_eq!(num(595.28), "595.28");
        assert_eq!(num(12.5), "12.5");
    }
}
