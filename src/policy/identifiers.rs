//! Validation and normalisation of ISO 15118 identifiers (pure, no I/O).
//!
//! Covered identifiers (see `docs/pki-profiles.md` §4):
//!
//! * **EMAID** (-2, ISO 15118-2 Annex H): `CC [-] PPP [-] IIIIIIIII [-] [K]`, normalised to the
//!   15-character uppercase form without separators, check digit computed when absent and verified
//!   when present. The check digit is the eMI3/OCHP "EVCO-ID" algorithm (see [`emaid_check_digit`]).
//! * **EMAID** (-20, IEC 63119-2, up to 255 characters): [`normalize_emaid_20`].
//! * **EVSE ID** (-2, DIN SPEC 91286): `CC [*] OOO [*] E <outlet>`: [`validate_evse_id`].
//! * **SECCID** (-20): `CC [-] OOO [-] S [-] <controller id> [-] <check digit>`: [`validate_seccid`].
//! * **PCID** (-2 and -20): [`validate_pcid`], [`validate_pcid_20`].
//!
//! # Normalisation decisions
//!
//! * All identifiers are ASCII only and are uppercased. Leading/trailing whitespace is *not*
//!   trimmed: it is rejected like any other invalid character.
//! * EMAIDs (both generations) are normalised **without** separators (`-` stripped), which is the
//!   form the -2 XSD transfers (max 15 characters) and the form the CA puts into the contract
//!   certificate CN.
//! * EVSE IDs and SECCIDs are returned uppercased **with the separators kept exactly as given**,
//!   because the SECC certificate CN must match what the charging station is configured with
//!   (OCPP `ISO15118Ctrlr.SeccId`). Comparisons must ignore separators: use
//!   [`evse_ids_equal`], [`evse_id_in_tenant`] or [`compact_id`].
//! * Tenant prefixes ([`emaid_prefix`], [`evse_operator_prefix`], [`pcid_wmi`]) follow the Hubject
//!   RA binding: first 5 characters of an EMAID (country + provider), first 5 of an EVSE ID or
//!   SECCID (country + operator, rendered `CC*OOO`), first 3 of a PCID (WMI).
//!
//! # Not checked (documented limitations)
//!
//! * Country codes are checked to be two letters, not against the ISO 3166 list (Hubject test
//!   data uses e.g. `UK` and `EM`).
//! * The SECCID check digit is checked for shape only (one alphanumeric): its algorithm is not
//!   public in our sources, and the published example `DE-ICE-S-00003C4D557878675645330967543476-2`
//!   does not verify under the EVCO-ID, Luhn or ISO 7064 MOD 37,36 algorithms.
//! * The PCID check digit (optional 18th character in -2) is not verified (algorithm unknown).
//! * The DIN 70121 hexBinary EVSE ID form and the legacy phone-number EVSE ID form are not
//!   accepted.

use std::fmt;

/// Maximum number of input characters echoed back in an error message.
const ECHO_MAX: usize = 40;

/// The kind of identifier an [`IdError`] refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    /// ISO 15118-2 EMAID (14 or 15 characters without separators).
    Emaid,
    /// ISO 15118-20 / IEC 63119-2 EMAID (up to 255 characters).
    Emaid20,
    /// ISO 15118-2 / DIN SPEC 91286 EVSE ID.
    EvseId,
    /// ISO 15118-20 SECCID.
    SeccId,
    /// ISO 15118-2 PCID (17 or 18 characters).
    Pcid,
    /// ISO 15118-20 PCID (18 to 255 characters).
    Pcid20,
}

impl fmt::Display for IdKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IdKind::Emaid => "EMAID (ISO 15118-2)",
            IdKind::Emaid20 => "EMAID (ISO 15118-20 / IEC 63119-2)",
            IdKind::EvseId => "EVSE ID (ISO 15118-2 / DIN SPEC 91286)",
            IdKind::SeccId => "SECCID (ISO 15118-20)",
            IdKind::Pcid => "PCID (ISO 15118-2)",
            IdKind::Pcid20 => "PCID (ISO 15118-20)",
        })
    }
}

/// Why an identifier was rejected. `input` fields hold the offending input, truncated to
/// 40 characters (with `…` appended) so that huge inputs do not end up in logs verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdError {
    /// The input is empty.
    Empty {
        /// Which identifier.
        kind: IdKind,
    },
    /// The input contains a non-ASCII character at byte offset `position`.
    NonAscii {
        /// Which identifier.
        kind: IdKind,
        /// The input (cut).
        input: String,
        /// Byte offset.
        position: usize,
    },
    /// The input length (in characters, separators included) is outside `min..=max`.
    Length {
        /// Which identifier.
        kind: IdKind,
        /// The input (cut).
        input: String,
        /// Its length.
        len: usize,
        /// Shortest allowed.
        min: usize,
        /// Longest allowed.
        max: usize,
    },
    /// A character is not allowed at `position` (0-based); `expected` describes what is.
    InvalidChar {
        /// Which identifier.
        kind: IdKind,
        /// The input (cut).
        input: String,
        /// Character offset.
        position: usize,
        /// The character found.
        found: char,
        /// What is allowed there.
        expected: &'static str,
    },
    /// The structure is wrong in a way not tied to a single character.
    Malformed {
        /// Which identifier.
        kind: IdKind,
        /// The input (cut).
        input: String,
        /// Why.
        reason: &'static str,
    },
    /// The check digit present in the input does not match the computed one.
    CheckDigit {
        /// Which identifier.
        kind: IdKind,
        /// The input (cut).
        input: String,
        /// The right check digit.
        expected: char,
        /// The one given.
        found: char,
    },
    /// A tenant prefix argument is not of the form required (e.g. `DE8AA`, `DE*ABC`, `WP0`).
    InvalidPrefix {
        /// The input (cut).
        input: String,
        /// The form required.
        expected: &'static str,
    },
}

impl IdError {
    /// The identifier kind the error refers to (`None` for [`IdError::InvalidPrefix`]).
    pub fn kind(&self) -> Option<IdKind> {
        match self {
            IdError::Empty { kind }
            | IdError::NonAscii { kind, .. }
            | IdError::Length { kind, .. }
            | IdError::InvalidChar { kind, .. }
            | IdError::Malformed { kind, .. }
            | IdError::CheckDigit { kind, .. } => Some(*kind),
            IdError::InvalidPrefix { .. } => None,
        }
    }
}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdError::Empty { kind } => write!(f, "invalid {kind}: empty"),
            IdError::NonAscii {
                kind,
                input,
                position,
            } => write!(
                f,
                "invalid {kind} {input:?}: non-ASCII character at byte {position}"
            ),
            IdError::Length {
                kind,
                input,
                len,
                min,
                max,
            } => write!(
                f,
                "invalid {kind} {input:?}: length {len}, must be between {min} and {max} characters"
            ),
            IdError::InvalidChar {
                kind,
                input,
                position,
                found,
                expected,
            } => write!(
                f,
                "invalid {kind} {input:?}: character {found:?} at position {position}, expected {expected}"
            ),
            IdError::Malformed {
                kind,
                input,
                reason,
            } => write!(f, "invalid {kind} {input:?}: {reason}"),
            IdError::CheckDigit {
                kind,
                input,
                expected,
                found,
            } => write!(
                f,
                "invalid {kind} {input:?}: check digit {found:?} is wrong, expected {expected:?}"
            ),
            IdError::InvalidPrefix { input, expected } => {
                write!(f, "invalid tenant prefix {input:?}: expected {expected}")
            }
        }
    }
}

impl std::error::Error for IdError {}

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

fn echo(s: &str) -> String {
    let mut out: String = s.chars().take(ECHO_MAX).collect();
    if s.chars().nth(ECHO_MAX).is_some() {
        out.push('…');
    }
    out
}

/// Rejects empty, non-ASCII and out-of-range-length input; returns the bytes.
fn precheck(kind: IdKind, s: &str, min: usize, max: usize) -> Result<&[u8], IdError> {
    if s.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if let Some(position) = s.bytes().position(|b| !b.is_ascii()) {
        return Err(IdError::NonAscii {
            kind,
            input: echo(s),
            position,
        });
    }
    let len = s.len();
    if len < min || len > max {
        return Err(IdError::Length {
            kind,
            input: echo(s),
            len,
            min,
            max,
        });
    }
    Ok(s.as_bytes())
}

/// Removes `*` and `-` separators and uppercases (ASCII). Used for separator-insensitive
/// comparisons; it does not validate.
pub fn compact_id(s: &str) -> String {
    s.chars()
        .filter(|c| *c != '*' && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// A left-to-right parser over an ASCII identifier.
struct Cursor<'a> {
    kind: IdKind,
    src: &'a str,
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(kind: IdKind, src: &'a str, b: &'a [u8]) -> Self {
        Cursor {
            kind,
            src,
            b,
            pos: 0,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.b.len()
    }

    fn bad_char(&self, expected: &'static str) -> IdError {
        match self.peek() {
            Some(c) => IdError::InvalidChar {
                kind: self.kind,
                input: echo(self.src),
                position: self.pos,
                found: char::from(c),
                expected,
            },
            None => self.malformed("input ends too early"),
        }
    }

    fn malformed(&self, reason: &'static str) -> IdError {
        IdError::Malformed {
            kind: self.kind,
            input: echo(self.src),
            reason,
        }
    }

    /// Takes exactly `n` bytes satisfying `ok`, appending them uppercased to `out`.
    fn take(
        &mut self,
        n: usize,
        ok: fn(&u8) -> bool,
        expected: &'static str,
        out: &mut String,
    ) -> Result<(), IdError> {
        for _ in 0..n {
            match self.peek() {
                Some(c) if ok(&c) => {
                    out.push(char::from(c.to_ascii_uppercase()));
                    self.pos += 1;
                }
                _ => return Err(self.bad_char(expected)),
            }
        }
        Ok(())
    }

    /// Consumes `sep` if it is next; returns whether it did.
    fn opt(&mut self, sep: u8) -> bool {
        if self.peek() == Some(sep) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
}

// ---------------------------------------------------------------------------------------------
// EMAID check digit (eMI3 / OCHP "EVCO-ID" algorithm)
// ---------------------------------------------------------------------------------------------
//
// Each character c (0-9 -> 0..9, A-Z -> 10..35) is split into a GF(2) vector (a, b) and a GF(3)
// vector (c, d) with value = 18a + 9b + 3c + d. Position i (0-based) is weighted by the matrix
// power P2^(i+1) = [[0,1],[1,1]]^(i+1) over GF(2), respectively P3^(i+1) = [[0,1],[1,2]]^(i+1)
// over GF(3). A complete 15-character EMAID is valid when both weighted sums are the zero vector;
// the check digit is the unique character that makes them zero.

type Mat = [[u8; 2]; 2];
const P_GF2: Mat = [[0, 1], [1, 1]];
const P_GF3: Mat = [[0, 1], [1, 2]];

fn mat_mul(x: &Mat, y: &Mat, m: u8) -> Mat {
    let mut r = [[0u8; 2]; 2];
    for (i, row) in r.iter_mut().enumerate() {
        for (j, cell) in row.iter_mut().enumerate() {
            *cell = (x[i][0] * y[0][j] + x[i][1] * y[1][j]) % m;
        }
    }
    r
}

/// Row vector times matrix, mod m.
fn vec_mul(v: [u8; 2], x: &Mat, m: u8) -> [u8; 2] {
    [
        (v[0] * x[0][0] + v[1] * x[1][0]) % m,
        (v[0] * x[0][1] + v[1] * x[1][1]) % m,
    ]
}

fn char_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'Z' => Some(c - b'A' + 10),
        b'a'..=b'z' => Some(c - b'a' + 10),
        _ => None,
    }
}

fn value_char(v: u8) -> char {
    let c = if v < 10 { b'0' + v } else { b'A' + (v - 10) };
    char::from(c)
}

/// Weighted sums over GF(2) and GF(3), plus the weight matrices for the next position.
struct EvcoSums {
    s2: [u8; 2],
    s3: [u8; 2],
    w2: Mat,
    w3: Mat,
}

fn evco_sums(chars: &[u8]) -> Option<EvcoSums> {
    let mut st = EvcoSums {
        s2: [0, 0],
        s3: [0, 0],
        w2: P_GF2,
        w3: P_GF3,
    };
    for &c in chars {
        let v = char_value(c)?;
        let hi = v / 9;
        let lo = v % 9;
        let t2 = vec_mul([hi / 2, hi % 2], &st.w2, 2);
        let t3 = vec_mul([lo / 3, lo % 3], &st.w3, 3);
        st.s2 = [(st.s2[0] + t2[0]) % 2, (st.s2[1] + t2[1]) % 2];
        st.s3 = [(st.s3[0] + t3[0]) % 3, (st.s3[1] + t3[1]) % 3];
        st.w2 = mat_mul(&st.w2, &P_GF2, 2);
        st.w3 = mat_mul(&st.w3, &P_GF3, 3);
    }
    Some(st)
}

/// Finds x with x·w + s ≡ 0 (mod m) by trying all m² vectors (w is invertible: a power of an
/// invertible matrix, so exactly one solution exists).
fn solve(s: [u8; 2], w: &Mat, m: u8) -> [u8; 2] {
    for x0 in 0..m {
        for x1 in 0..m {
            let t = vec_mul([x0, x1], w, m);
            if (t[0] + s[0]).is_multiple_of(m) && (t[1] + s[1]).is_multiple_of(m) {
                return [x0, x1];
            }
        }
    }
    // Unreachable for invertible w; return a neutral value rather than panic.
    [0, 0]
}

fn check_digit_unchecked(first14: &[u8]) -> Option<char> {
    let st = evco_sums(first14)?;
    let q = solve(st.s2, &st.w2, 2);
    let r = solve(st.s3, &st.w3, 3);
    Some(value_char(18 * q[0] + 9 * q[1] + 3 * r[0] + r[1]))
}

/// Parses the -2 EMAID structure. Returns the 14 uppercase characters without check digit and
/// the check digit if present.
fn parse_emaid2(kind: IdKind, s: &str) -> Result<(String, Option<char>), IdError> {
    let b = precheck(kind, s, 14, 18)?;
    let mut cur = Cursor::new(kind, s, b);
    let mut out = String::with_capacity(15);
    cur.take(
        2,
        u8::is_ascii_alphabetic,
        "a letter (country code)",
        &mut out,
    )?;
    cur.opt(b'-');
    cur.take(
        3,
        u8::is_ascii_alphanumeric,
        "a letter or digit (provider ID)",
        &mut out,
    )?;
    cur.opt(b'-');
    cur.take(
        9,
        u8::is_ascii_alphanumeric,
        "a letter or digit (eMA instance, 9 characters)",
        &mut out,
    )?;
    let mut check = None;
    if !cur.at_end() {
        let had_sep = cur.opt(b'-');
        if had_sep && cur.at_end() {
            return Err(cur.malformed("separator '-' is not followed by a check digit"));
        }
        let mut cd = String::with_capacity(1);
        cur.take(
            1,
            u8::is_ascii_alphanumeric,
            "a letter or digit (check digit)",
            &mut cd,
        )?;
        check = cd.chars().next();
    }
    if !cur.at_end() {
        return Err(cur.bad_char("end of EMAID (14 or 15 letters/digits plus optional '-')"));
    }
    Ok((out, check))
}

fn finish_emaid(
    kind: IdKind,
    s: &str,
    first14: String,
    check: Option<char>,
) -> Result<String, IdError> {
    let expected = check_digit_unchecked(first14.as_bytes()).ok_or_else(|| IdError::Malformed {
        kind,
        input: echo(s),
        reason: "not alphanumeric",
    })?;
    match check {
        Some(found) if found != expected => Err(IdError::CheckDigit {
            kind,
            input: echo(s),
            expected,
            found,
        }),
        _ => {
            let mut out = first14;
            out.push(expected);
            Ok(out)
        }
    }
}

/// Normalises an ISO 15118-2 EMAID:
/// `CC(2 letters) [-] ProviderID(3 alnum) [-] Instance(9 alnum) [-] CheckDigit(1 alnum, optional)`.
///
/// Separators are only accepted at those three positions. Returns the 15-character uppercase form
/// without separators, appending the computed check digit when it is absent and rejecting a wrong
/// one (case-insensitively).
pub fn normalize_emaid(s: &str) -> Result<String, IdError> {
    let (first14, check) = parse_emaid2(IdKind::Emaid, s)?;
    finish_emaid(IdKind::Emaid, s, first14, check)
}

/// Computes the EVCO-ID / eMA-ID check digit of the first 14 characters of an EMAID
/// (no separators; case-insensitive). Returns an uppercase letter or digit.
pub fn emaid_check_digit(first14: &str) -> Result<char, IdError> {
    let kind = IdKind::Emaid;
    let b = precheck(kind, first14, 14, 14)?;
    let mut cur = Cursor::new(kind, first14, b);
    let mut out = String::with_capacity(14);
    cur.take(
        2,
        u8::is_ascii_alphabetic,
        "a letter (country code)",
        &mut out,
    )?;
    cur.take(
        12,
        u8::is_ascii_alphanumeric,
        "a letter or digit (no separators)",
        &mut out,
    )?;
    check_digit_unchecked(out.as_bytes()).ok_or_else(|| cur.malformed("not alphanumeric"))
}

/// The tenant prefix of an EMAID (-2 or -20): country code + provider ID, uppercase, e.g.
/// `"DE8AA"`. The EMAID is fully validated first (including its check digit).
pub fn emaid_prefix(emaid: &str) -> Result<String, IdError> {
    let n = normalize_emaid_20(emaid)?;
    Ok(n.chars().take(5).collect())
}

/// Normalises an ISO 15118-20 EMAID (IEC 63119-2, at most 255 characters).
///
/// Syntax: letters, digits and single `-` separators (no leading, trailing or doubled `-`);
/// after removing separators it must start with 2 letters (country) + 3 alphanumerics (provider).
/// Returns the uppercase form **without separators**.
///
/// * If the compact form has 14 or 15 characters it is a -2 EMAID: the check digit is computed
///   (14) or verified (15) as in [`normalize_emaid`] (separator placement is more lenient).
/// * 16..=255 compact characters: accepted as the long -20 form, no check digit verification.
/// * Fewer than 14 compact characters are rejected.
pub fn normalize_emaid_20(s: &str) -> Result<String, IdError> {
    let kind = IdKind::Emaid20;
    let b = precheck(kind, s, 14, 255)?;
    // Generic syntax: alnum with single '-' separators.
    for (i, &c) in b.iter().enumerate() {
        let ok = c.is_ascii_alphanumeric()
            || (c == b'-' && i > 0 && i + 1 < b.len() && b[i - 1] != b'-');
        if !ok {
            return Err(IdError::InvalidChar {
                kind,
                input: echo(s),
                position: i,
                found: char::from(c),
                expected: "a letter or digit, or a single '-' between them",
            });
        }
    }
    // Separators inside the country code are not allowed.
    if b.get(1) == Some(&b'-') {
        return Err(IdError::InvalidChar {
            kind,
            input: echo(s),
            position: 1,
            found: '-',
            expected: "a letter (country code)",
        });
    }
    let compact = compact_id(s);
    let cb = compact.as_bytes();
    // Country code and provider ID (separators only allowed after CC and after the provider).
    let mut seen = 0usize;
    for (i, &c) in b.iter().enumerate() {
        if seen >= 5 {
            break;
        }
        if c == b'-' {
            if seen != 2 {
                return Err(IdError::InvalidChar {
                    kind,
                    input: echo(s),
                    position: i,
                    found: '-',
                    expected: "a letter or digit (provider ID)",
                });
            }
            continue;
        }
        if seen < 2 && !c.is_ascii_alphabetic() {
            return Err(IdError::InvalidChar {
                kind,
                input: echo(s),
                position: i,
                found: char::from(c),
                expected: "a letter (country code)",
            });
        }
        seen += 1;
    }
    match cb.len() {
        0..=13 => Err(IdError::Length {
            kind,
            input: echo(s),
            len: cb.len(),
            min: 14,
            max: 255,
        }),
        14 | 15 => {
            let first14 = compact[..14].to_string();
            let check = compact[14..].chars().next();
            finish_emaid(kind, s, first14, check)
        }
        _ => Ok(compact),
    }
}

// ---------------------------------------------------------------------------------------------
// EVSE ID (-2) and SECCID (-20)
// ---------------------------------------------------------------------------------------------

fn is_outlet_char(c: &u8) -> bool {
    c.is_ascii_alphanumeric() || *c == b'*'
}

/// Parses CC [sep] OOO [sep]; returns (cc, operator) uppercase.
fn parse_cc_operator(cur: &mut Cursor<'_>, sep: u8) -> Result<(String, String), IdError> {
    let mut cc = String::with_capacity(2);
    let mut op = String::with_capacity(3);
    cur.take(
        2,
        u8::is_ascii_alphabetic,
        "a letter (country code)",
        &mut cc,
    )?;
    cur.opt(sep);
    cur.take(
        3,
        u8::is_ascii_alphanumeric,
        "a letter or digit (operator ID)",
        &mut op,
    )?;
    cur.opt(sep);
    Ok((cc, op))
}

fn parse_evse_id(s: &str) -> Result<(String, String), IdError> {
    let kind = IdKind::EvseId;
    let b = precheck(kind, s, 7, 37)?;
    let mut cur = Cursor::new(kind, s, b);
    let (cc, op) = parse_cc_operator(&mut cur, b'*')?;
    let mut ty = String::new();
    cur.take(
        1,
        |c| c.eq_ignore_ascii_case(&b'E'),
        "'E' (EVSE ID type)",
        &mut ty,
    )?;
    let outlet = &b[cur.pos..];
    if outlet.is_empty() {
        return Err(cur.malformed("power outlet ID is empty"));
    }
    if outlet.len() > 30 {
        return Err(cur.malformed("power outlet ID is longer than 30 characters"));
    }
    let mut sink = String::with_capacity(outlet.len());
    cur.take(
        outlet.len(),
        is_outlet_char,
        "a letter, digit or '*' (power outlet ID)",
        &mut sink,
    )?;
    if !outlet.iter().any(u8::is_ascii_alphanumeric) {
        return Err(cur.malformed("power outlet ID has no letter or digit"));
    }
    Ok((cc, op))
}

/// Validates an ISO 15118-2 EVSE ID (DIN SPEC 91286 / Annex H):
/// `CC(2 letters) [*] OperatorID(3 alnum) [*] "E" PowerOutletID(letters, digits, '*'; 1..=30)`,
/// 7..=37 characters in total.
///
/// Returns the input **uppercased with separators kept as given** (see module docs); compare
/// EVSE IDs with [`evse_ids_equal`].
pub fn validate_evse_id(s: &str) -> Result<String, IdError> {
    parse_evse_id(s)?;
    Ok(s.to_ascii_uppercase())
}

fn parse_seccid(s: &str) -> Result<(String, String), IdError> {
    let kind = IdKind::SeccId;
    let b = precheck(kind, s, 39, 255)?;
    let mut cur = Cursor::new(kind, s, b);
    let (cc, op) = parse_cc_operator(&mut cur, b'-')?;
    let mut ty = String::new();
    cur.take(
        1,
        |c| c.eq_ignore_ascii_case(&b'S'),
        "'S' (SECCID type)",
        &mut ty,
    )?;
    cur.opt(b'-');
    // Remainder: ControllerID [-] CheckDigit.
    let rest = &b[cur.pos..];
    let ctrl_len = match rest {
        [.., b'-', _] => rest.len() - 2,
        _ => rest.len().saturating_sub(1),
    };
    if !(32..=248).contains(&ctrl_len) {
        return Err(cur.malformed("controller ID must have 32 to 248 letters or digits"));
    }
    let mut sink = String::with_capacity(ctrl_len);
    cur.take(
        ctrl_len,
        u8::is_ascii_alphanumeric,
        "a letter or digit (controller ID)",
        &mut sink,
    )?;
    cur.opt(b'-');
    cur.take(
        1,
        u8::is_ascii_alphanumeric,
        "a letter or digit (check digit)",
        &mut sink,
    )?;
    if !cur.at_end() {
        return Err(cur.bad_char("end of SECCID"));
    }
    Ok((cc, op))
}

/// Validates an ISO 15118-20 SECCID:
/// `CC(2 letters) [-] OperatorID(3 alnum) [-] "S" [-] ControllerID(32..=248 alnum) [-] CheckDigit(1 alnum)`,
/// 39..=255 characters in total (separators included).
///
/// Returns the input uppercased with separators kept. The check digit is checked for shape only
/// (see module docs).
pub fn validate_seccid(s: &str) -> Result<String, IdError> {
    parse_seccid(s)?;
    Ok(s.to_ascii_uppercase())
}

/// Returns the ID-type character (`E` or `S`, uppercase) after `CC [sep] OOO [sep]`, if any.
fn secc_type_char(s: &str) -> Option<u8> {
    let b = s.as_bytes();
    let mut i = 2;
    if matches!(b.get(i), Some(b'*' | b'-')) {
        i += 1;
    }
    i += 3;
    if matches!(b.get(i), Some(b'*' | b'-')) {
        i += 1;
    }
    b.get(i).map(u8::to_ascii_uppercase)
}

fn parse_evse_or_seccid(s: &str) -> Result<(String, String), IdError> {
    if secc_type_char(s) == Some(b'S') {
        parse_seccid(s)
    } else {
        parse_evse_id(s)
    }
}

/// Validates the identifier carried in a SECC certificate CN when the profile allows either
/// form: a -20 SECCID (ID type `S`) or a -2 EVSE ID (ID type `E`). Same output rules as
/// [`validate_seccid`] / [`validate_evse_id`].
pub fn validate_seccid_or_evse_id(s: &str) -> Result<String, IdError> {
    parse_evse_or_seccid(s)?;
    Ok(s.to_ascii_uppercase())
}

/// Operator tenant prefix of an EVSE ID or SECCID in the OPCP/Hubject RA form `"DE*ABC"`
/// (country + `*` + operator ID, uppercase).
pub fn evse_operator_prefix(evse_id: &str) -> Result<String, IdError> {
    let (cc, op) = parse_evse_or_seccid(evse_id)?;
    Ok(format!("{cc}*{op}"))
}

/// Separator- and case-insensitive equality of two EVSE IDs / SECCIDs. Both must be valid.
pub fn evse_ids_equal(a: &str, b: &str) -> bool {
    parse_evse_or_seccid(a).is_ok()
        && parse_evse_or_seccid(b).is_ok()
        && compact_id(a) == compact_id(b)
}

// ---------------------------------------------------------------------------------------------
// PCID
// ---------------------------------------------------------------------------------------------

fn all_alnum(kind: IdKind, s: &str, b: &[u8]) -> Result<(), IdError> {
    match b.iter().position(|c| !c.is_ascii_alphanumeric()) {
        Some(position) => Err(IdError::InvalidChar {
            kind,
            input: echo(s),
            position,
            found: char::from(b[position]),
            expected: "a letter or digit",
        }),
        None => Ok(()),
    }
}

/// Validates an ISO 15118-2 PCID: WMI(3) + OEM unique ID(14) + optional check digit, i.e. 17 or
/// 18 letters/digits (Hubject `^[a-zA-Z0-9]{17,18}$`). Returns the uppercase form. The check
/// digit is not verified.
pub fn validate_pcid(s: &str) -> Result<String, IdError> {
    let kind = IdKind::Pcid;
    let b = precheck(kind, s, 17, 18)?;
    all_alnum(kind, s, b)?;
    Ok(s.to_ascii_uppercase())
}

/// Validates an ISO 15118-20 PCID: 18..=255 letters/digits including a check digit, and no
/// `I`, `O` or `Q` (ISO 3780) in the WMI (first 3 characters). Returns the uppercase form. The
/// check digit is not verified.
pub fn validate_pcid_20(s: &str) -> Result<String, IdError> {
    let kind = IdKind::Pcid20;
    let b = precheck(kind, s, 18, 255)?;
    all_alnum(kind, s, b)?;
    if let Some(position) = b[..3]
        .iter()
        .position(|c| matches!(c.to_ascii_uppercase(), b'I' | b'O' | b'Q'))
    {
        return Err(IdError::InvalidChar {
            kind,
            input: echo(s),
            position,
            found: char::from(b[position]),
            expected: "a letter other than I, O, Q or a digit (WMI, ISO 3780)",
        });
    }
    Ok(s.to_ascii_uppercase())
}

/// The WMI (first 3 characters, uppercase) of a -2 or -20 PCID. The PCID is validated first:
/// as -2 if it has at most 18 characters (falling back to -20 rules for 18), else as -20.
pub fn pcid_wmi(pcid: &str) -> Result<String, IdError> {
    let n = match validate_pcid(pcid) {
        Ok(n) => n,
        Err(e2) => {
            if pcid.len() <= 17 {
                return Err(e2);
            }
            validate_pcid_20(pcid)?
        }
    };
    Ok(n.chars().take(3).collect())
}

// ---------------------------------------------------------------------------------------------
// Tenant matching (authorisation helpers)
// ---------------------------------------------------------------------------------------------

/// Parses a tenant prefix `CC [sep] ID` (sep `*` or `-`, ID of `id_len` letters/digits);
/// returns the compact uppercase form.
fn parse_tenant_prefix(prefix: &str, id_len: usize) -> Option<String> {
    let b = prefix.as_bytes();
    let mut out = String::with_capacity(2 + id_len);
    let (cc, rest) = b.split_at_checked(2)?;
    if !cc.iter().all(u8::is_ascii_alphabetic) {
        return None;
    }
    let rest = match rest {
        [b'*' | b'-', tail @ ..] => tail,
        _ => rest,
    };
    if rest.len() != id_len || !rest.iter().all(u8::is_ascii_alphanumeric) {
        return None;
    }
    out.push_str(&prefix[..2]);
    out.push_str(&prefix[prefix.len() - id_len..]);
    Some(out.to_ascii_uppercase())
}

/// Whether a valid EMAID (-2 or -20) belongs to the tenant `prefix` (country + provider ID,
/// e.g. `"DE8AA"`, `"DE-8AA"`, `"de*8aa"`). Case- and separator-insensitive; `false` for an
/// invalid EMAID or a prefix not of that exact shape.
pub fn emaid_in_tenant(emaid: &str, prefix: &str) -> bool {
    match (emaid_prefix(emaid), parse_tenant_prefix(prefix, 3)) {
        (Ok(have), Some(want)) => have == want,
        _ => false,
    }
}

/// Whether a valid EVSE ID or SECCID belongs to the operator tenant `prefix` (e.g. `"DE*ABC"`,
/// `"DE-ABC"`, `"deabc"`). Case- and separator-insensitive; `false` for invalid input.
pub fn evse_id_in_tenant(evse_id: &str, prefix: &str) -> bool {
    match (
        evse_operator_prefix(evse_id),
        parse_tenant_prefix(prefix, 3),
    ) {
        (Ok(have), Some(want)) => compact_id(&have) == want,
        _ => false,
    }
}

/// Whether a valid PCID (-2 or -20) has the WMI `wmi_prefix` (exactly 3 letters/digits,
/// case-insensitive). `false` for invalid input.
pub fn pcid_in_tenant(pcid: &str, wmi_prefix: &str) -> bool {
    if wmi_prefix.len() != 3 || !wmi_prefix.bytes().all(|c| c.is_ascii_alphanumeric()) {
        return false;
    }
    match pcid_wmi(pcid) {
        Ok(w) => w.eq_ignore_ascii_case(wmi_prefix),
        Err(_) => false,
    }
}

/// Validates a tenant prefix argument for EMAIDs (`CC [sep] PPP`) and returns it compact and
/// uppercase (e.g. `"DE8AA"`); useful when configuring tenants.
pub fn normalize_emaid_tenant_prefix(prefix: &str) -> Result<String, IdError> {
    parse_tenant_prefix(prefix, 3).ok_or_else(|| IdError::InvalidPrefix {
        input: echo(prefix),
        expected: "2 letters, optional '-' or '*', 3 letters/digits (e.g. DE8AA)",
    })
}

/// Validates an operator tenant prefix (`CC [sep] OOO`) and returns the RA form `CC*OOO`.
pub fn normalize_evse_tenant_prefix(prefix: &str) -> Result<String, IdError> {
    let p = parse_tenant_prefix(prefix, 3).ok_or_else(|| IdError::InvalidPrefix {
        input: echo(prefix),
        expected: "2 letters, optional '*' or '-', 3 letters/digits (e.g. DE*ABC)",
    })?;
    Ok(format!("{}*{}", &p[..2], &p[2..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALNUM: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

    /// Independent check: a full 15-character EMAID is valid iff both weighted sums are zero.
    fn evco_valid(full15: &str) -> bool {
        match evco_sums(full15.as_bytes()) {
            Some(st) => st.s2 == [0, 0] && st.s3 == [0, 0],
            None => false,
        }
    }

    fn is_kind(r: Result<String, IdError>, kind: IdKind) -> bool {
        matches!(r, Err(e) if e.kind() == Some(kind))
    }

    // ----- EMAID -2 --------------------------------------------------------------------------

    #[test]
    fn maeve_vectors() {
        assert_eq!(
            normalize_emaid("GB-TWK-012345678-V").unwrap(),
            "GBTWK012345678V"
        );
        assert_eq!(
            normalize_emaid("gbtwk123456789").unwrap(),
            "GBTWK123456789B"
        );
        assert_eq!(emaid_check_digit("CSKTH5U8TC90A1").unwrap(), 'S');
        assert_eq!(emaid_check_digit("IHRFRNPCZVPPVE").unwrap(), 'W');
        assert_eq!(emaid_check_digit("GBTWK012345678").unwrap(), 'V');
        for full in ["GBTWK012345678V", "CSKTH5U8TC90A1S", "IHRFRNPCZVPPVEW"] {
            assert_eq!(normalize_emaid(full).unwrap(), full);
            assert_eq!(normalize_emaid(&full[..14]).unwrap(), full);
            assert!(evco_valid(full));
        }
    }

    #[test]
    fn emaid_separator_forms() {
        for s in [
            "GBTWK012345678V",
            "GB-TWK-012345678-V",
            "GBTWK-012345678V",
            "GB-TWK012345678-V",
            "gb-twk-012345678-v",
            "GB-TWK-012345678",
        ] {
            assert_eq!(normalize_emaid(s).unwrap(), "GBTWK012345678V", "{s}");
        }
        // Separators in other places are rejected.
        for s in [
            "G-BTWK012345678V",
            "GBT-WK012345678V",
            "GB-TWK-0123-45678V",
            "GB--TWK012345678V",
            "GB-TWK-012345678-",
            "GB*TWK*012345678*V",
            "-GBTWK012345678V",
        ] {
            assert!(normalize_emaid(s).is_err(), "{s}");
        }
    }

    #[test]
    fn hubject_and_fixture_emaids() {
        // OPCP/profile doc example: format only; its check digit '5' is NOT valid (expected V).
        let e = normalize_emaid("DE8AAA1B2C3D4E5").unwrap_err();
        assert_eq!(
            e,
            IdError::CheckDigit {
                kind: IdKind::Emaid,
                input: "DE8AAA1B2C3D4E5".into(),
                expected: 'V',
                found: '5'
            }
        );
        assert!(matches!(
            normalize_emaid("DE-8AA-A1B2C3D4E-5"),
            Err(IdError::CheckDigit { expected: 'V', .. })
        ));
        assert_eq!(
            normalize_emaid("DE8AAA1B2C3D4E").unwrap(),
            "DE8AAA1B2C3D4EV"
        );
        // EVerest test PKI MO leaf CN: 'A' is not the EVCO check digit (expected G).
        assert!(matches!(
            normalize_emaid("UKSWI123456789A"),
            Err(IdError::CheckDigit {
                expected: 'G',
                found: 'A',
                ..
            })
        ));
        // Hubject QA contract CNs (maeve fixtures) and OPCP examples carry no check digit.
        assert_eq!(
            normalize_emaid("EMP77TWTW00002").unwrap(),
            "EMP77TWTW00002C"
        );
        assert_eq!(
            normalize_emaid("EMP77TWTW00003").unwrap(),
            "EMP77TWTW00003H"
        );
        assert_eq!(
            normalize_emaid("EMP77TWTW00005").unwrap(),
            "EMP77TWTW00005B"
        );
        assert_eq!(
            normalize_emaid("EMP77TWTW99999").unwrap(),
            "EMP77TWTW999990"
        );
        assert_eq!(
            normalize_emaid("EMP99CQAPAB004").unwrap(),
            "EMP99CQAPAB004P"
        );
        assert_eq!(
            normalize_emaid("DECGN000020001").unwrap(),
            "DECGN0000200017"
        );
        assert_eq!(emaid_prefix("EMP77TWTW00002").unwrap(), "EMP77");
    }

    #[test]
    fn emaid_negative() {
        assert_eq!(
            normalize_emaid(""),
            Err(IdError::Empty {
                kind: IdKind::Emaid
            })
        );
        // maeve negative vector: too short.
        assert!(is_kind(normalize_emaid("GB-TWK-01234567"), IdKind::Emaid));
        assert!(matches!(
            normalize_emaid("GBTWK01234567"),
            Err(IdError::Length { len: 13, .. })
        ));
        assert!(matches!(
            normalize_emaid("GBTWK0123456789V"),
            Err(IdError::InvalidChar { position: 15, .. })
        ));
        assert!(matches!(
            normalize_emaid("1BTWK012345678V"),
            Err(IdError::InvalidChar {
                position: 0,
                found: '1',
                ..
            })
        ));
        assert!(matches!(
            normalize_emaid("GBTWK01234_678V"),
            Err(IdError::InvalidChar { found: '_', .. })
        ));
        assert!(matches!(
            normalize_emaid("GBTWK012345678W"),
            Err(IdError::CheckDigit {
                expected: 'V',
                found: 'W',
                ..
            })
        ));
        assert!(matches!(
            normalize_emaid("GBTWK01234567Ä"),
            Err(IdError::NonAscii { position: 13, .. })
        ));
        assert!(matches!(
            normalize_emaid(" GBTWK012345678V"),
            Err(IdError::InvalidChar { found: ' ', .. })
        ));
        assert!(matches!(
            normalize_emaid("GBTWK012345678V\n"),
            Err(IdError::InvalidChar { found: '\n', .. })
        ));
        let long = "A".repeat(1_000_000);
        let e = normalize_emaid(&long).unwrap_err();
        assert!(matches!(e, IdError::Length { len: 1_000_000, .. }));
        // The echoed input is truncated.
        assert!(e.to_string().len() < 200, "{e}");
    }

    #[test]
    fn emaid_check_digit_negative() {
        assert!(emaid_check_digit("").is_err());
        assert!(emaid_check_digit("GBTWK01234567").is_err());
        assert!(emaid_check_digit("GBTWK012345678V").is_err());
        assert!(emaid_check_digit("GB-TWK-0123456").is_err());
        assert!(emaid_check_digit("12TWK012345678").is_err());
        assert!(emaid_check_digit("GBTWK0123456é").is_err());
        assert!(emaid_check_digit(&"G".repeat(500)).is_err());
        assert_eq!(emaid_check_digit("gbtwk012345678").unwrap(), 'V');
    }

    #[test]
    fn computed_check_digit_always_validates() {
        // Deterministic pseudo-random sweep (xorshift) plus every character in every position.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut seen = [false; 36];
        for _ in 0..5_000 {
            let mut id = String::new();
            for i in 0..14 {
                let r = (next() % 36) as usize;
                let c = if i < 2 { ALNUM[10 + r % 26] } else { ALNUM[r] };
                id.push(char::from(c));
            }
            let cd = emaid_check_digit(&id).unwrap();
            seen[char_value(cd as u8).unwrap() as usize] = true;
            let full = format!("{id}{cd}");
            assert!(evco_valid(&full), "{full}");
            assert_eq!(normalize_emaid(&full).unwrap(), full);
            assert_eq!(normalize_emaid(&id.to_lowercase()).unwrap(), full);
            // Exactly one check character validates.
            let ok: Vec<u8> = ALNUM
                .iter()
                .copied()
                .filter(|&c| evco_valid(&format!("{id}{}", char::from(c))))
                .collect();
            assert_eq!(ok, vec![cd as u8], "{id}");
        }
        assert!(seen.iter().all(|s| *s), "all 36 check characters occur");
        // Every single-character substitution in a valid EMAID is detected.
        let base = "GBTWK012345678";
        for pos in 2..14 {
            for &c in ALNUM {
                let mut b = base.as_bytes().to_vec();
                if b[pos] == c {
                    continue;
                }
                b[pos] = c;
                let s = String::from_utf8(b).unwrap();
                assert!(normalize_emaid(&format!("{s}V")).is_err(), "{s}");
            }
        }
    }

    // ----- EMAID -20 and prefix --------------------------------------------------------------

    #[test]
    fn emaid_20() {
        assert_eq!(
            normalize_emaid_20("GB-TWK-012345678-V").unwrap(),
            "GBTWK012345678V"
        );
        assert_eq!(
            normalize_emaid_20("gbtwk123456789").unwrap(),
            "GBTWK123456789B"
        );
        assert!(matches!(
            normalize_emaid_20("DE8AAA1B2C3D4E5"),
            Err(IdError::CheckDigit {
                kind: IdKind::Emaid20,
                ..
            })
        ));
        // Lenient separator placement for the -2 shape, still check-digit verified.
        assert_eq!(
            normalize_emaid_20("GB-TWK-0123-45678-V").unwrap(),
            "GBTWK012345678V"
        );
        // Long -20 form.
        assert_eq!(
            normalize_emaid_20("de-8aa-c12345678-abc-def").unwrap(),
            "DE8AAC12345678ABCDEF"
        );
        let max = format!("DE8AA{}", "X".repeat(250));
        assert_eq!(normalize_emaid_20(&max).unwrap(), max);
        // Negative.
        assert!(is_kind(normalize_emaid_20(""), IdKind::Emaid20));
        assert!(matches!(
            normalize_emaid_20(&format!("DE8AA{}", "X".repeat(251))),
            Err(IdError::Length { len: 256, .. })
        ));
        assert!(matches!(
            normalize_emaid_20("DE-8AA-123-45"),
            Err(IdError::Length { .. })
        ));
        assert!(matches!(
            normalize_emaid_20("DE-8AA-1-2-3-4-5"),
            Err(IdError::Length { len: 10, .. })
        ));
        assert!(normalize_emaid_20("DE--8AAC12345678ABC").is_err());
        assert!(normalize_emaid_20("DE8AAC12345678ABC-").is_err());
        assert!(normalize_emaid_20("-DE8AAC12345678ABC").is_err());
        assert!(normalize_emaid_20("D-E8AAC12345678ABC").is_err());
        assert!(normalize_emaid_20("DE8-AAC12345678ABC").is_err());
        assert!(normalize_emaid_20("1E8AAC12345678ABC").is_err());
        assert!(normalize_emaid_20("DE8AAC12345678AB*C").is_err());
        assert!(normalize_emaid_20("DE8AAC12345678ABÇ").is_err());
        assert!(normalize_emaid_20(&"A".repeat(100_000)).is_err());
    }

    #[test]
    fn emaid_prefix_cases() {
        assert_eq!(emaid_prefix("GB-TWK-012345678-V").unwrap(), "GBTWK");
        assert_eq!(emaid_prefix("de8aaa1b2c3d4e").unwrap(), "DE8AA");
        assert_eq!(emaid_prefix("DE-8AA-C12345678-ABC").unwrap(), "DE8AA");
        assert!(emaid_prefix("DE8AAA1B2C3D4E5").is_err());
        assert!(emaid_prefix("").is_err());
        assert!(emaid_prefix("DE8AA").is_err());
    }

    // ----- EVSE ID -----------------------------------------------------------------------------

    #[test]
    fn evse_id_valid() {
        assert_eq!(
            validate_evse_id("DE*ICE*E45B*78C").unwrap(),
            "DE*ICE*E45B*78C"
        );
        assert_eq!(
            validate_evse_id("de*ice*e45b*78c").unwrap(),
            "DE*ICE*E45B*78C"
        );
        assert_eq!(validate_evse_id("DEICEE45B78C").unwrap(), "DEICEE45B78C");
        assert_eq!(validate_evse_id("DE*ICEE1").unwrap(), "DE*ICEE1");
        assert_eq!(validate_evse_id("DEABCE1").unwrap(), "DEABCE1");
        let max = format!("DE*ABC*E{}", "1".repeat(29));
        assert_eq!(max.len(), 37);
        assert!(validate_evse_id(&max).is_ok());
        assert!(evse_ids_equal("DE*ICE*E45B*78C", "deiceE45B78c"));
        assert!(!evse_ids_equal("DE*ICE*E45B*78C", "DE*ICE*E45B*78D"));
        assert!(!evse_ids_equal("DE*ICE*E45B*78C", "garbage"));
    }

    #[test]
    fn evse_id_negative() {
        assert_eq!(
            validate_evse_id(""),
            Err(IdError::Empty {
                kind: IdKind::EvseId
            })
        );
        assert!(matches!(
            validate_evse_id("DEABCE"),
            Err(IdError::Length { len: 6, .. })
        ));
        assert!(matches!(
            validate_evse_id(&format!("DE*ABC*E{}", "1".repeat(30))),
            Err(IdError::Length { len: 38, .. })
        ));
        assert!(validate_evse_id(&format!("DEABCE{}", "1".repeat(31))).is_err());
        assert!(matches!(
            validate_evse_id("DE*ICE*X45B*78C"),
            Err(IdError::InvalidChar {
                position: 7,
                found: 'X',
                ..
            })
        ));
        assert!(validate_evse_id("D1*ICE*E45B").is_err());
        assert!(validate_evse_id("DE-ICE-E45B").is_err());
        assert!(validate_evse_id("DE*ICE*E45-B").is_err());
        assert!(validate_evse_id("DE*ICE*E***").is_err());
        assert!(validate_evse_id("DE**ICE*E45B").is_err());
        assert!(matches!(
            validate_evse_id("DE*ICE*E45Ü"),
            Err(IdError::NonAscii { .. })
        ));
        assert!(validate_evse_id(&"D".repeat(1 << 20)).is_err());
    }

    #[test]
    fn evse_operator_prefix_cases() {
        assert_eq!(evse_operator_prefix("DE*ICE*E45B*78C").unwrap(), "DE*ICE");
        assert_eq!(evse_operator_prefix("deiceE1").unwrap(), "DE*ICE");
        assert_eq!(
            evse_operator_prefix("DE-ICE-S-00003C4D557878675645330967543476-2").unwrap(),
            "DE*ICE"
        );
        assert!(evse_operator_prefix("").is_err());
        assert!(evse_operator_prefix("DE*ICE").is_err());
        assert!(evse_operator_prefix("DE*ICE*S123").is_err());
        assert!(evse_operator_prefix("DE*IC€*E1").is_err());
    }

    // ----- SECCID ------------------------------------------------------------------------------

    const SECCID_EX: &str = "DE-ICE-S-00003C4D557878675645330967543476-2";

    #[test]
    fn seccid_valid() {
        assert_eq!(validate_seccid(SECCID_EX).unwrap(), SECCID_EX);
        assert_eq!(
            validate_seccid(&SECCID_EX.to_lowercase()).unwrap(),
            SECCID_EX
        );
        let compact = compact_id(SECCID_EX);
        assert_eq!(compact.len(), 39);
        assert_eq!(validate_seccid(&compact).unwrap(), compact);
        let max = format!("DEICES{}7", "A".repeat(248));
        assert_eq!(max.len(), 255);
        assert!(validate_seccid(&max).is_ok());
        assert!(evse_ids_equal(SECCID_EX, &compact));
        // SECC CN: either form where the profile allows.
        assert!(validate_seccid_or_evse_id(SECCID_EX).is_ok());
        assert_eq!(
            validate_seccid_or_evse_id("de*ice*e45b*78c").unwrap(),
            "DE*ICE*E45B*78C"
        );
        assert!(validate_seccid_or_evse_id("DE*ICE*X1").is_err());
    }

    #[test]
    fn seccid_negative() {
        assert!(is_kind(validate_seccid(""), IdKind::SeccId));
        // Controller ID too short (31).
        assert!(matches!(
            validate_seccid(&format!("DEICES{}2", "A".repeat(31))),
            Err(IdError::Length { len: 38, .. })
        ));
        assert!(matches!(
            validate_seccid(&format!("DE-ICE-S-{}-2", "A".repeat(31))),
            Err(IdError::Malformed { .. })
        ));
        // Too long overall / controller ID too long.
        assert!(matches!(
            validate_seccid(&format!("DEICES{}7", "A".repeat(249))),
            Err(IdError::Length { len: 256, .. })
        ));
        assert!(validate_seccid(&format!("DE-ICE-S-{}-7", "A".repeat(246))).is_err());
        assert!(validate_seccid("DE-ICE-E-00003C4D557878675645330967543476-2").is_err());
        assert!(validate_seccid("DE*ICE*S*00003C4D557878675645330967543476*2").is_err());
        assert!(validate_seccid("DE-ICE-S-00003C4D5578786756453309675434_6-2").is_err());
        assert!(validate_seccid("DE-ICE-S-00003C4D557878675645330967543476--").is_err());
        assert!(validate_seccid("DE-ICE-S-00003C4D557878675645330967543476-").is_err());
        assert!(validate_seccid("DE-ICE-S-00003C4D55787867564533096754347é-2").is_err());
        assert!(validate_seccid(&"S".repeat(10_000)).is_err());
        // EVSE ID is not a SECCID.
        assert!(validate_seccid("DE*ICE*E45B*78C").is_err());
    }

    // ----- PCID --------------------------------------------------------------------------------

    #[test]
    fn pcid_valid() {
        assert_eq!(
            validate_pcid("WP012345678901234").unwrap(),
            "WP012345678901234"
        );
        assert_eq!(
            validate_pcid("wp0123456789012345").unwrap(),
            "WP0123456789012345"
        );
        assert_eq!(pcid_wmi("wp012345678901234").unwrap(), "WP0");
        // The EVerest EVCCID example "WMIV1234567890ABCDEX" has an 'I' in its WMI, so it is
        // not a valid -20 PCID (ISO 3780).
        assert!(validate_pcid_20("WMIV1234567890ABCDEX").is_err());
        assert!(validate_pcid("WMIV1234567890ABCD").is_ok());
        assert_eq!(
            validate_pcid_20("WMXV1234567890ABCDEX").unwrap(),
            "WMXV1234567890ABCDEX"
        );
        let long = format!("WP0{}", "1".repeat(252));
        assert_eq!(validate_pcid_20(&long).unwrap(), long);
        assert_eq!(pcid_wmi(&long).unwrap(), "WP0");
        assert_eq!(pcid_wmi("WMXV1234567890ABCDEX").unwrap(), "WMX");
        assert!(pcid_wmi("WMIV1234567890ABCDEX").is_err());
    }

    #[test]
    fn pcid_negative() {
        assert!(is_kind(validate_pcid(""), IdKind::Pcid));
        assert!(matches!(
            validate_pcid("WP01234567890123"),
            Err(IdError::Length { len: 16, .. })
        ));
        assert!(validate_pcid("WP01234567890123456").is_err());
        assert!(matches!(
            validate_pcid("WP0-2345678901234"),
            Err(IdError::InvalidChar {
                position: 3,
                found: '-',
                ..
            })
        ));
        assert!(validate_pcid("WP01234567890123é").is_err());
        assert!(validate_pcid(&"W".repeat(100_000)).is_err());
        // -20
        assert!(is_kind(validate_pcid_20(""), IdKind::Pcid20));
        assert!(validate_pcid_20("WP012345678901234").is_err()); // 17 < 18
        assert!(validate_pcid_20(&format!("WP0{}", "1".repeat(253))).is_err());
        for bad in [
            "IP0123456789012345",
            "WO0123456789012345",
            "WPq123456789012345",
        ] {
            assert!(
                matches!(validate_pcid_20(bad), Err(IdError::InvalidChar { .. })),
                "{bad}"
            );
        }
        // I/O/Q are fine after the WMI.
        assert!(validate_pcid_20("WP0IOQ456789012345").is_ok());
        assert!(validate_pcid_20("WP0 123456789012345").is_err());
        assert!(pcid_wmi("").is_err());
        assert!(pcid_wmi("WP0").is_err());
        assert!(pcid_wmi(&"Q".repeat(300)).is_err());
    }

    // ----- Tenants -----------------------------------------------------------------------------

    #[test]
    fn tenant_matching() {
        assert!(emaid_in_tenant("GB-TWK-012345678-V", "GBTWK"));
        assert!(emaid_in_tenant("gbtwk012345678", "GB-TWK"));
        assert!(emaid_in_tenant("GBTWK012345678V", "gb*twk"));
        assert!(emaid_in_tenant("DE-8AA-C12345678-ABC", "DE8AA"));
        assert!(!emaid_in_tenant("GBTWK012345678V", "GBTWX"));
        assert!(!emaid_in_tenant("GBTWK012345678V", "GBTW"));
        assert!(!emaid_in_tenant("GBTWK012345678V", "GB"));
        assert!(!emaid_in_tenant("GBTWK012345678V", ""));
        assert!(!emaid_in_tenant("GBTWK012345678V", "GBTWK0"));
        assert!(!emaid_in_tenant("GBTWK012345678V", "G-BTWK"));
        assert!(!emaid_in_tenant("GBTWK012345678W", "GBTWK")); // bad check digit
        assert!(!emaid_in_tenant("", "GBTWK"));

        assert!(evse_id_in_tenant("DE*ICE*E45B*78C", "DE*ICE"));
        assert!(evse_id_in_tenant("DEICEE45B78C", "de-ice"));
        assert!(evse_id_in_tenant("DE*ICE*E45B*78C", "DEICE"));
        assert!(evse_id_in_tenant(SECCID_EX, "DE*ICE"));
        assert!(!evse_id_in_tenant("DE*ICE*E45B*78C", "DE*ICF"));
        assert!(!evse_id_in_tenant("DE*ICE*E45B*78C", "DE*IC"));
        assert!(!evse_id_in_tenant("DE*ICE*E45B*78C", ""));
        assert!(!evse_id_in_tenant("DE*ICE*E45B*78C", "DE**ICE"));
        assert!(!evse_id_in_tenant("DE*ICE*X45B", "DE*ICE"));
        assert!(!evse_id_in_tenant("DE*ICE*E45B*78C", "DE*ICÉ"));

        assert!(pcid_in_tenant("WP012345678901234", "WP0"));
        assert!(pcid_in_tenant("wp012345678901234", "Wp0"));
        assert!(pcid_in_tenant("WMXV1234567890ABCDEX", "wmx"));
        assert!(!pcid_in_tenant("WMIV1234567890ABCDEX", "WMI"));
        assert!(!pcid_in_tenant("WP012345678901234", "WP1"));
        assert!(!pcid_in_tenant("WP012345678901234", "WP"));
        assert!(!pcid_in_tenant("WP012345678901234", ""));
        assert!(!pcid_in_tenant("WP012345678901234", "WP01"));
        assert!(!pcid_in_tenant("WP0", "WP0"));

        assert_eq!(normalize_emaid_tenant_prefix("de-8aa").unwrap(), "DE8AA");
        assert_eq!(normalize_evse_tenant_prefix("deabc").unwrap(), "DE*ABC");
        assert!(normalize_evse_tenant_prefix("DE*AB").is_err());
    }

    #[test]
    fn error_messages_name_identifier() {
        let e = normalize_emaid("DE8AAA1B2C3D4E5").unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("EMAID") && m.contains("DE8AAA1B2C3D4E5") && m.contains("'V'"),
            "{m}"
        );
        let m = validate_evse_id("DE*ICE*X1").unwrap_err().to_string();
        assert!(m.contains("EVSE ID") && m.contains("position 7"), "{m}");
        let m = validate_pcid_20("IP0123456789012345")
            .unwrap_err()
            .to_string();
        assert!(
            m.contains("PCID (ISO 15118-20)") && m.contains("WMI"),
            "{m}"
        );
        let m = validate_seccid("").unwrap_err().to_string();
        assert!(m.contains("SECCID") && m.contains("empty"), "{m}");
        let e: Box<dyn std::error::Error> = Box::new(IdError::Empty { kind: IdKind::Pcid });
        assert!(e.to_string().contains("PCID"));
        // Control characters are escaped in messages.
        let m = validate_pcid("WP01234567890123\u{7}")
            .unwrap_err()
            .to_string();
        assert!(!m.contains('\u{7}'), "{m}");
    }
}
