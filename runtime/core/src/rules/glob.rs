//! Path globs with `globset`'s syntax and meaning, matched without regular expressions.
//!
//! Rules are globs as `globset` reads them with `literal_separator` and `backslash_escape`
//! (`docs/rules.md`). A `globset` matcher is a compiled regex: tens of microseconds and about
//! ten KiB per glob, which is what made 10,000 rules cost seconds to load. This module reads the
//! same syntax with a port of `globset`'s parser (same tokens, same errors, as
//! `globset::ErrorKind`) and turns the tokens into a small program that a bounded backtracker
//! runs over the key's bytes, with exactly the semantics of the regex `globset` would build:
//! `?` is one byte other than `/`, `*` any bytes but `/`, `**` as `(?:/?|.*/)`, `/.*` or
//! `(?:/|/.*/)` depending on where it stands, and character classes are byte classes over the
//! UTF-8 encoding of their characters. Parsing costs well under a microsecond; the matcher
//! visits each (instruction, position) pair at most once, so no glob can make matching slower
//! than instructions × key length.
//!
//! `tests/rules_glob_props.rs` checks, on random globs and keys, that parsing accepts and
//! rejects what `globset` does and that matching agrees with a `globset::GlobSet`.
//!
//! [`Anchors`] are the literal facts any matching key must have (a directory prefix, a whole
//! segment, an extension); the rule index ([`super::index`]) files each rule under one of them.

use globset::ErrorKind;

/// A parsed glob token, as `globset` has them.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(char),
    Any,
    ZeroOrMore,
    RecursivePrefix,
    RecursiveSuffix,
    RecursiveZeroOrMore,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    Alternates(Vec<Vec<Token>>),
}

/// How deep alternate groups may nest (`globset`'s limit).
const MAX_ALTERNATES_DEPTH: usize = 100;

/// A port of `globset`'s parser for the options rules use: `literal_separator` and
/// `backslash_escape` on; `case_insensitive`, `empty_alternates` and `allow_unclosed_class`
/// off; `/` the only separator.
struct Parser<'a> {
    alternates_stack: Vec<usize>,
    branches: Vec<Vec<Token>>,
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    prev: Option<char>,
    cur: Option<char>,
}

fn is_separator(c: char) -> bool {
    c == '/'
}

fn parse(glob: &str) -> Result<Vec<Token>, ErrorKind> {
    let mut p = Parser {
        alternates_stack: Vec::new(),
        branches: vec![Vec::new()],
        chars: glob.chars().peekable(),
        prev: None,
        cur: None,
    };
    while let Some(c) = p.bump() {
        match c {
            '?' => p.push_token(Token::Any)?,
            '*' => p.parse_star()?,
            '[' => p.parse_class()?,
            '{' => p.push_alternate()?,
            '}' => p.pop_alternate()?,
            ',' => p.parse_comma()?,
            '\\' => p.parse_backslash()?,
            c => p.push_token(Token::Literal(c))?,
        }
    }
    if p.branches.len() > 1 {
        return Err(ErrorKind::UnclosedAlternates);
    }
    p.branches.pop().ok_or(ErrorKind::UnopenedAlternates)
}

impl<'a> Parser<'a> {
    fn bump(&mut self) -> Option<char> {
        self.prev = self.cur;
        self.cur = self.chars.next();
        self.cur
    }

    fn peek(&mut self) -> Option<char> {
        self.chars.peek().copied()
    }

    fn push_alternate(&mut self) -> Result<(), ErrorKind> {
        if self.alternates_stack.len() >= MAX_ALTERNATES_DEPTH {
            return Err(ErrorKind::TooManyNestedAlternates);
        }
        self.alternates_stack.push(self.branches.len());
        self.branches.push(Vec::new());
        Ok(())
    }

    fn pop_alternate(&mut self) -> Result<(), ErrorKind> {
        let start = self
            .alternates_stack
            .pop()
            .ok_or(ErrorKind::UnopenedAlternates)?;
        let alternates = Token::Alternates(self.branches.drain(start..).collect());
        self.push_token(alternates)
    }

    fn push_token(&mut self, token: Token) -> Result<(), ErrorKind> {
        self.branches
            .last_mut()
            .map(|branch| branch.push(token))
            .ok_or(ErrorKind::UnopenedAlternates)
    }

    fn pop_token(&mut self) -> Result<Token, ErrorKind> {
        self.branches
            .last_mut()
            .and_then(Vec::pop)
            .ok_or(ErrorKind::UnopenedAlternates)
    }

    fn have_tokens(&self) -> Result<bool, ErrorKind> {
        self.branches
            .last()
            .map(|branch| !branch.is_empty())
            .ok_or(ErrorKind::UnopenedAlternates)
    }

    fn parse_comma(&mut self) -> Result<(), ErrorKind> {
        if self.alternates_stack.is_empty() {
            self.push_token(Token::Literal(','))
        } else {
            self.branches.push(Vec::new());
            Ok(())
        }
    }

    fn parse_backslash(&mut self) -> Result<(), ErrorKind> {
        match self.bump() {
            None => Err(ErrorKind::DanglingEscape),
            Some(c) => self.push_token(Token::Literal(c)),
        }
    }

    /// `*`, and `**` which is recursive only as a whole path component (else two `*`).
    fn parse_star(&mut self) -> Result<(), ErrorKind> {
        let prev = self.prev;
        if self.peek() != Some('*') {
            return self.push_token(Token::ZeroOrMore);
        }
        self.bump();
        if !self.have_tokens()? {
            if !self.peek().is_none_or(is_separator) {
                self.push_token(Token::ZeroOrMore)?;
                self.push_token(Token::ZeroOrMore)?;
            } else {
                self.push_token(Token::RecursivePrefix)?;
                self.bump();
            }
            return Ok(());
        }
        if !prev.is_some_and(is_separator)
            && (self.branches.len() <= 1 || (prev != Some(',') && prev != Some('{')))
        {
            self.push_token(Token::ZeroOrMore)?;
            self.push_token(Token::ZeroOrMore)?;
            return Ok(());
        }
        let is_suffix = match self.peek() {
            None => {
                self.bump();
                true
            }
            Some(',' | '}') if self.branches.len() >= 2 => true,
            Some(c) if is_separator(c) => {
                self.bump();
                false
            }
            _ => {
                self.push_token(Token::ZeroOrMore)?;
                self.push_token(Token::ZeroOrMore)?;
                return Ok(());
            }
        };
        match self.pop_token()? {
            Token::RecursivePrefix => self.push_token(Token::RecursivePrefix),
            Token::RecursiveSuffix => self.push_token(Token::RecursiveSuffix),
            _ if is_suffix => self.push_token(Token::RecursiveSuffix),
            _ => self.push_token(Token::RecursiveZeroOrMore),
        }
    }

    fn parse_class(&mut self) -> Result<(), ErrorKind> {
        fn add_to_last_range(r: &mut (char, char), add: char) -> Result<(), ErrorKind> {
            r.1 = add;
            if r.1 < r.0 {
                Err(ErrorKind::InvalidRange(r.0, r.1))
            } else {
                Ok(())
            }
        }
        let mut ranges: Vec<(char, char)> = Vec::new();
        let negated = match self.peek() {
            Some('!' | '^') => {
                self.bump();
                true
            }
            _ => false,
        };
        let mut first = true;
        let mut in_range = false;
        loop {
            let Some(c) = self.bump() else {
                return Err(ErrorKind::UnclosedClass);
            };
            match c {
                ']' => {
                    if first {
                        ranges.push((']', ']'));
                    } else {
                        break;
                    }
                }
                '-' => {
                    if first {
                        ranges.push(('-', '-'));
                    } else if in_range {
                        let last = ranges.last_mut().ok_or(ErrorKind::UnclosedClass)?;
                        add_to_last_range(last, '-')?;
                        in_range = false;
                    } else {
                        in_range = true;
                    }
                }
                '[' if !in_range && self.peek() == Some(':') => {
                    match self.try_parse_posix_class() {
                        Some(class) => ranges.extend_from_slice(class),
                        None => ranges.push(('[', '[')),
                    }
                    in_range = false;
                }
                c => {
                    if in_range {
                        let last = ranges.last_mut().ok_or(ErrorKind::UnclosedClass)?;
                        add_to_last_range(last, c)?;
                    } else {
                        ranges.push((c, c));
                    }
                    in_range = false;
                }
            }
            first = false;
        }
        if in_range {
            ranges.push(('-', '-'));
        }
        self.push_token(Token::Class { negated, ranges })
    }

    /// `[:name:]` inside a class. Like `globset`, an unknown name that is otherwise well formed
    /// is consumed and the `[` is then taken literally; anything else rewinds.
    fn try_parse_posix_class(&mut self) -> Option<&'static [(char, char)]> {
        let saved = (self.chars.clone(), self.prev, self.cur);
        if self.bump() != Some(':') {
            self.rewind(saved);
            return None;
        }
        let mut name = String::new();
        loop {
            match self.bump() {
                Some(':') if self.peek() == Some(']') => {
                    self.bump();
                    return posix_class_ranges(&name);
                }
                Some(c) if c.is_ascii_lowercase() && name.len() < 8 => name.push(c),
                _ => {
                    self.rewind(saved);
                    return None;
                }
            }
        }
    }

    fn rewind(
        &mut self,
        saved: (
            std::iter::Peekable<std::str::Chars<'a>>,
            Option<char>,
            Option<char>,
        ),
    ) {
        (self.chars, self.prev, self.cur) = saved;
    }
}

fn posix_class_ranges(name: &str) -> Option<&'static [(char, char)]> {
    Some(match name {
        "alnum" => &[('0', '9'), ('A', 'Z'), ('a', 'z')],
        "alpha" => &[('A', 'Z'), ('a', 'z')],
        "blank" => &[('\t', '\t'), (' ', ' ')],
        "cntrl" => &[('\x00', '\x1f'), ('\x7f', '\x7f')],
        "digit" => &[('0', '9')],
        "graph" => &[('!', '~')],
        "lower" => &[('a', 'z')],
        "print" => &[(' ', '~')],
        "punct" => &[('!', '/'), (':', '@'), ('[', '`'), ('{', '~')],
        "space" => &[('\t', '\r'), (' ', ' ')],
        "upper" => &[('A', 'Z')],
        "xdigit" => &[('0', '9'), ('A', 'F'), ('a', 'f')],
        _ => return None,
    })
}

/// One step of a glob program. Positions are byte offsets into the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Inst {
    /// These bytes of the literal pool, exactly.
    Lit {
        start: u32,
        len: u32,
    },
    /// One byte other than `/`.
    NotSlash,
    /// One byte of a byte class (index into the class table).
    Class(u32),
    /// Nothing matches here (a class that only held `/`).
    Fail,
    /// Any number of bytes other than `/`.
    StarNotSlash,
    /// Any number of bytes.
    StarAny,
    /// Go on at either instruction.
    Split(u32, u32),
    Jmp(u32),
    /// The whole key must be consumed here.
    Match,
}

/// A compiled path glob. About a hundred bytes for the usual rule shapes.
#[derive(Clone, PartialEq, Eq)]
pub struct PathGlob {
    insts: Box<[Inst]>,
    literals: Box<[u8]>,
    classes: Box<[[u64; 4]]>,
}

impl std::fmt::Debug for PathGlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PathGlob")
            .field("insts", &self.insts.len())
            .finish_non_exhaustive()
    }
}

impl PathGlob {
    /// Parse `pattern`; the error is the one `globset` gives for it.
    pub fn new(pattern: &str) -> Result<Self, ErrorKind> {
        let tokens = parse(pattern)?;
        Ok(Compiler::default().program(&tokens))
    }

    /// Parse `pattern` and say what every key it matches must contain.
    pub fn with_anchors(pattern: &str) -> Result<(Self, Anchors), ErrorKind> {
        let tokens = parse(pattern)?;
        Ok((Compiler::default().program(&tokens), Anchors::of(&tokens)))
    }

    /// Whether the whole of `text` matches.
    pub fn is_match(&self, text: &str) -> bool {
        let hay = text.as_bytes();
        // Cheap refusal on a leading literal (most rules start with their folder).
        if let Some(Inst::Lit { start, len }) = self.insts.first()
            && !hay.starts_with(self.literal(*start, *len))
        {
            return false;
        }
        let columns = hay.len() + 1;
        let bits = self.insts.len() * columns;
        let mut small = [0u64; 32];
        let mut large = Vec::new();
        let visited: &mut [u64] = if bits <= small.len() * 64 {
            &mut small
        } else {
            large.resize(bits.div_ceil(64), 0u64);
            &mut large
        };
        let mut stack: Vec<(usize, usize)> = Vec::new();
        let mut next = Some((0usize, 0usize));
        while let Some((mut pc, mut at)) = next.take().or_else(|| stack.pop()) {
            loop {
                let bit = pc * columns + at;
                let (word, mask) = (bit / 64, 1u64 << (bit % 64));
                if visited[word] & mask != 0 {
                    break;
                }
                visited[word] |= mask;
                match self.insts[pc] {
                    Inst::Match => {
                        if at == hay.len() {
                            return true;
                        }
                        break;
                    }
                    Inst::Lit { start, len } => {
                        let lit = self.literal(start, len);
                        if hay[at..].starts_with(lit) {
                            at += lit.len();
                            pc += 1;
                        } else {
                            break;
                        }
                    }
                    Inst::NotSlash => match hay.get(at) {
                        Some(&b) if b != b'/' => {
                            at += 1;
                            pc += 1;
                        }
                        _ => break,
                    },
                    Inst::Class(i) => match hay.get(at) {
                        Some(&b) if class_contains(&self.classes[i as usize], b) => {
                            at += 1;
                            pc += 1;
                        }
                        _ => break,
                    },
                    Inst::Fail => break,
                    Inst::StarNotSlash => {
                        if hay.get(at).is_some_and(|&b| b != b'/') {
                            stack.push((pc, at + 1));
                        }
                        pc += 1;
                    }
                    Inst::StarAny => {
                        if at < hay.len() {
                            stack.push((pc, at + 1));
                        }
                        pc += 1;
                    }
                    Inst::Split(a, b) => {
                        stack.push((b as usize, at));
                        pc = a as usize;
                    }
                    Inst::Jmp(a) => pc = a as usize,
                }
            }
        }
        false
    }

    fn literal(&self, start: u32, len: u32) -> &[u8] {
        &self.literals[start as usize..(start + len) as usize]
    }
}

fn class_contains(set: &[u64; 4], b: u8) -> bool {
    set[(b / 64) as usize] & (1u64 << (b % 64)) != 0
}

/// Tokens → program, mirroring `globset`'s tokens → regex translation.
#[derive(Default)]
struct Compiler {
    insts: Vec<Inst>,
    literals: Vec<u8>,
    classes: Vec<[u64; 4]>,
    /// A jump lands at this instruction index: a literal must not be merged into the
    /// instruction before it.
    barrier: usize,
}

impl Compiler {
    fn program(mut self, tokens: &[Token]) -> PathGlob {
        // `globset` special-cases a glob that is only `**`: it matches everything.
        if tokens == [Token::RecursivePrefix] {
            self.insts.push(Inst::StarAny);
        } else {
            self.emit(tokens);
        }
        self.insts.push(Inst::Match);
        PathGlob {
            insts: self.insts.into_boxed_slice(),
            literals: self.literals.into_boxed_slice(),
            classes: self.classes.into_boxed_slice(),
        }
    }

    fn label(&mut self) -> usize {
        self.barrier = self.insts.len();
        self.insts.len()
    }

    fn placeholder(&mut self) -> usize {
        self.insts.push(Inst::Fail);
        self.insts.len() - 1
    }

    fn lit(&mut self, bytes: &[u8]) {
        let mergeable = self.insts.len() > self.barrier;
        if let (true, Some(Inst::Lit { len, .. })) = (mergeable, self.insts.last_mut()) {
            *len += bytes.len() as u32;
        } else {
            self.insts.push(Inst::Lit {
                start: self.literals.len() as u32,
                len: bytes.len() as u32,
            });
        }
        self.literals.extend_from_slice(bytes);
    }

    /// `.*/`, reached by a split from `split` whose other branch skips it.
    fn optional_any_then_slash(&mut self, split: usize) {
        let any = self.label();
        self.insts.push(Inst::StarAny);
        self.lit(b"/");
        let next = self.label();
        self.insts[split] = Inst::Split(next as u32, any as u32);
    }

    fn emit(&mut self, tokens: &[Token]) {
        for token in tokens {
            match token {
                Token::Literal(c) => self.lit(c.encode_utf8(&mut [0; 4]).as_bytes()),
                Token::Any => self.insts.push(Inst::NotSlash),
                Token::ZeroOrMore => self.insts.push(Inst::StarNotSlash),
                // (?:/?|.*/) is the empty string or `.*/` (which covers `/`).
                Token::RecursivePrefix => {
                    let split = self.placeholder();
                    self.optional_any_then_slash(split);
                }
                Token::RecursiveSuffix => {
                    self.lit(b"/");
                    self.insts.push(Inst::StarAny);
                }
                // (?:/|/.*/) is `/` then, optionally, `.*/`.
                Token::RecursiveZeroOrMore => {
                    self.lit(b"/");
                    let split = self.placeholder();
                    self.optional_any_then_slash(split);
                }
                Token::Class { negated, ranges } => match class_bytes(*negated, ranges) {
                    Some(set) => {
                        self.classes.push(set);
                        self.insts.push(Inst::Class(self.classes.len() as u32 - 1));
                    }
                    None => self.insts.push(Inst::Fail),
                },
                Token::Alternates(branches) => {
                    // `globset` leaves out branches that translate to nothing.
                    let parts: Vec<&Vec<Token>> = branches
                        .iter()
                        .filter(|b| !translates_to_nothing(b))
                        .collect();
                    let mut exits = Vec::new();
                    for (i, part) in parts.iter().enumerate() {
                        if i + 1 < parts.len() {
                            let split = self.placeholder();
                            let start = self.label();
                            self.emit(part);
                            exits.push(self.placeholder());
                            let next = self.label();
                            self.insts[split] = Inst::Split(start as u32, next as u32);
                        } else {
                            self.label();
                            self.emit(part);
                        }
                    }
                    let end = self.label();
                    for exit in exits {
                        self.insts[exit] = Inst::Jmp(end as u32);
                    }
                }
            }
        }
    }
}

/// Whether `globset` translates these tokens to an empty regex (only alternate groups whose
/// every branch translates to nothing).
fn translates_to_nothing(tokens: &[Token]) -> bool {
    tokens.iter().all(|t| match t {
        Token::Alternates(branches) => branches.iter().all(|b| translates_to_nothing(b)),
        _ => false,
    })
}

/// The bytes a class matches, as the regex `globset` writes for it matches them: each
/// character becomes its UTF-8 bytes, and a range `a-b` joins the last byte of `a` to the first
/// byte of `b`. `None` when nothing can match.
fn class_bytes(negated: bool, ranges: &[(char, char)]) -> Option<[u64; 4]> {
    let mut filtered = Vec::new();
    let ranges = if negated {
        ranges
    } else {
        // With `literal_separator`, a class never matches `/`.
        for &(start, end) in ranges {
            if start > '/' || end < '/' {
                filtered.push((start, end));
            } else if start == '/' && end == '/' {
            } else if start == '/' {
                filtered.push(('0', end));
            } else if end == '/' {
                filtered.push((start, '.'));
            } else {
                filtered.push((start, '.'));
                filtered.push(('0', end));
            }
        }
        &filtered[..]
    };
    if ranges.is_empty() {
        return None;
    }
    let mut set = [0u64; 4];
    let mut add = |lo: u8, hi: u8| {
        for b in lo..=hi {
            set[(b / 64) as usize] |= 1u64 << (b % 64);
        }
    };
    for &(start, end) in ranges {
        let (mut s, mut e) = ([0u8; 4], [0u8; 4]);
        let s = start.encode_utf8(&mut s).as_bytes();
        let e = end.encode_utf8(&mut e).as_bytes();
        if start == end {
            s.iter().for_each(|&b| add(b, b));
        } else {
            let (s_last, s_rest) = s.split_last().unwrap_or((&0, &[]));
            let (e_first, e_rest) = e.split_first().unwrap_or((&0, &[]));
            s_rest.iter().for_each(|&b| add(b, b));
            add(*s_last, *e_first);
            e_rest.iter().for_each(|&b| add(b, b));
        }
    }
    if negated {
        for word in &mut set {
            *word = !*word;
        }
        set[0] &= !(1u64 << b'/');
    }
    Some(set)
}

/// What every key a glob matches must contain, found from the glob's top-level literals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Anchors {
    /// The glob is a plain string: only this key matches.
    pub exact: Option<String>,
    /// Every matching key starts with this directory (ends with `/`, never empty).
    pub dir_prefix: Option<String>,
    /// Whole path segments every matching key has somewhere (each non-empty, without `/`).
    pub segments: Vec<String>,
    /// Every matching key ends with this extension (`.csv`: a dot, then no dot or `/`).
    pub extension: Option<String>,
}

impl Anchors {
    fn of(tokens: &[Token]) -> Self {
        let mut anchors = Anchors::default();
        if tokens == [Token::RecursivePrefix] {
            return anchors;
        }
        let literal = |t: &Token| match t {
            Token::Literal(c) => Some(*c),
            _ => None,
        };
        let leading: String = tokens.iter().map_while(literal).collect();
        if leading.chars().count() == tokens.len() {
            anchors.exact = Some(leading.clone());
        }
        // `/**` and `/**/` start with a `/`.
        let mut prefix = leading.clone();
        if matches!(
            tokens.get(leading.chars().count()),
            Some(Token::RecursiveSuffix | Token::RecursiveZeroOrMore)
        ) {
            prefix.push('/');
        }
        if let Some(i) = prefix.rfind('/') {
            prefix.truncate(i + 1);
            anchors.dir_prefix = Some(prefix);
        }
        // Whole segments: literal runs that start and end at a segment boundary.
        let mut run = String::new();
        let mut run_at_boundary = true;
        let mut run_clean = true;
        let mut finish = |run: &mut String, at_boundary: bool, clean: bool| {
            if at_boundary && clean && !run.is_empty() && !anchors.segments.contains(run) {
                anchors.segments.push(run.clone());
            }
            run.clear();
        };
        for token in tokens {
            match token {
                Token::Literal('/') => {
                    finish(&mut run, run_at_boundary, run_clean);
                    run_at_boundary = true;
                    run_clean = true;
                }
                Token::RecursivePrefix => {
                    // Only at the start of a branch; what follows starts a segment.
                    run.clear();
                    run_at_boundary = true;
                    run_clean = true;
                }
                Token::RecursiveZeroOrMore | Token::RecursiveSuffix => {
                    finish(&mut run, run_at_boundary, run_clean);
                    run_at_boundary = matches!(token, Token::RecursiveZeroOrMore);
                    run_clean = true;
                }
                Token::Literal(c) => run.push(*c),
                _ => run_clean = false,
            }
        }
        finish(&mut run, run_at_boundary, run_clean);
        // The extension: the glob's literal tail from its last dot, when it holds no `/`.
        let tail: String = {
            let mut rev: Vec<char> = tokens.iter().rev().map_while(literal).collect();
            rev.reverse();
            rev.into_iter().collect()
        };
        if let Some(dot) = tail.rfind('.') {
            let ext = &tail[dot..];
            if !ext.contains('/') {
                anchors.extension = Some(ext.to_string());
            }
        }
        anchors
    }
}

/// The extension of a key as [`Anchors::extension`] means it: from the last `.` of its last
/// segment.
pub fn key_extension(key: &str) -> Option<&str> {
    let dot = key.rfind('.')?;
    let ext = &key[dot..];
    (!ext.contains('/')).then_some(ext)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(glob: &str, key: &str) -> bool {
        PathGlob::new(glob).unwrap().is_match(key)
    }

    #[test]
    fn the_documented_shapes_match_as_documented() {
        assert!(m("in/*.csv", "in/a.csv"));
        assert!(!m("in/*.csv", "in/x/a.csv"));
        assert!(m("in/**/*.csv", "in/a.csv"));
        assert!(m("in/**/*.csv", "in/x/y/a.csv"));
        assert!(m("**/*.csv", "a.csv"));
        assert!(m("**/*.csv", "/a.csv"));
        assert!(!m("in/**", "in"));
        assert!(m("in/**", "in/"));
        assert!(m("**", ""));
        assert!(m("**", "a/b\nc"));
        assert!(m("in/day?.csv", "in/day1.csv"));
        assert!(!m("in/day?.csv", "in/day/.csv"));
        assert!(
            !m("in/day?.csv", "in/day年.csv"),
            "? is one byte, as in globset"
        );
        assert!(m("in/day???.csv", "in/day年.csv"));
        assert!(m("in/{eu,us}/*.csv", "in/us/a.csv"));
        assert!(!m("in/{eu,us}/*.csv", "in/uk/a.csv"));
        assert!(m("in/[0-9][0-9]/*", "in/42/x"));
        assert!(!m("in/[!0-9]/*", "in/4/x"));
        assert!(!m("[/]", "/"));
        assert!(!m("a[!x]b", "a/b"));
        assert!(m(r"a\*b", "a*b"));
        assert!(!m(r"a\*b", "axb"));
        assert!(m("受信/**/*.csv", "受信/2026年/売上 データ+v2.csv"));
        assert!(m("a/**/b", "a/b"));
        assert!(m("a/**/b", "a//b"));
        assert!(m("a/**/b", "a/x/y/b"));
        assert!(!m("a/**/b", "ab"));
        assert!(m("x{**/a,b}", "xq/a"));
        assert!(m("{{,},a}", "a"));
        assert!(!m("{{,},a}", ""));
        assert!(m("{,}", ""));
    }

    #[test]
    fn errors_are_globsets() {
        for bad in ["[a", "{a", "a}", "a\\", "[z-a]"] {
            let ours = PathGlob::new(bad).unwrap_err();
            let theirs = globset::GlobBuilder::new(bad)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .unwrap_err();
            assert_eq!(&ours, theirs.kind(), "{bad}");
        }
    }

    #[test]
    fn a_pathological_glob_stays_bounded() {
        let glob = PathGlob::new(&"*a".repeat(30)).unwrap();
        let key = "a".repeat(29) + &"b".repeat(900);
        let started = std::time::Instant::now();
        assert!(!glob.is_match(&key));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn anchors_are_what_every_match_contains() {
        let a = |g: &str| Anchors::of(&parse(g).unwrap());
        let part = a("incoming/partner-00001/**/*.csv");
        assert_eq!(part.dir_prefix.as_deref(), Some("incoming/partner-00001/"));
        assert_eq!(part.segments, ["incoming", "partner-00001"]);
        assert_eq!(part.extension.as_deref(), Some(".csv"));
        assert_eq!(part.exact, None);
        assert_eq!(a("in/**").dir_prefix.as_deref(), Some("in/"));
        assert_eq!(a("in/**").segments, ["in"]);
        assert_eq!(a("a/b.csv").exact.as_deref(), Some("a/b.csv"));
        assert_eq!(a("**/p-7/*.csv").segments, ["p-7"]);
        assert_eq!(a("**/p-7/*.csv").dir_prefix, None);
        assert_eq!(a("in/*/p-7/x*").segments, ["in", "p-7"]);
        assert_eq!(a("in/x*/p").segments, ["in", "p"]);
        assert_eq!(a("in/x*y/p*").segments, ["in"]);
        assert_eq!(a("**/*.tar.gz").extension.as_deref(), Some(".gz"));
        assert_eq!(a("**/*.d/x").extension, None);
        assert_eq!(a("**"), Anchors::default());
        assert_eq!(a("{a,b}/c").dir_prefix, None);
        assert_eq!(a("{a,b}/c").segments, ["c"]);
        assert_eq!(key_extension("a/b.c/d"), None);
        assert_eq!(key_extension("a/b.tar.gz"), Some(".gz"));
    }
}
