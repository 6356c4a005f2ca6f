//! Raw `#[process(...)]` attributes into [`Attrs`]: which keys were written, with
//! which literal, where.
//!
//! Both spellings of a timeout are accepted, `timeout.loop = "300s"` and
//! `timeout(loop = "300s", preloop = "5s")`, and several `#[process(...)]` attributes
//! merge. Keys are read with syn's `parse_nested_meta`, whose paths accept keywords,
//! so `loop` parses. Errors are pushed to the [`Ctxt`] and parsing goes on, so every
//! mistake is reported in one compile; only a syntax error (a missing `=`, a stray
//! token) ends the attribute it is in. Range checks are in `valid.rs`.

use std::collections::HashSet;

use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, ExprUnary, Ident, Lit, LitBool, LitStr, Token, UnOp};

use crate::ctxt::Ctxt;
use crate::duration::{self, DurationError};
use crate::suggest;

/// The attribute's name: `#[process(...)]`.
pub(crate) const PROCESS: &str = "process";
/// `num_loops = N`
pub(crate) const NUM_LOOPS: &str = "num_loops";
/// `join_in = "30s"`
pub(crate) const JOIN_IN: &str = "join_in";
/// `lives = N`
pub(crate) const LIVES: &str = "lives";
/// `timeout.<section> = "300s"`
pub(crate) const TIMEOUT: &str = "timeout";
/// `name = "worker"`
pub(crate) const NAME: &str = "name";
/// `daemon = true`
pub(crate) const DAEMON: &str = "daemon";
/// `mailbox = 100`
pub(crate) const MAILBOX: &str = "mailbox";

/// Every key, as written by the user, for "the keys are ..." hints.
const ALL_KEYS: &[&str] = &[
    "num_loops",
    "join_in",
    "lives",
    "timeout.preloop",
    "timeout.loop",
    "timeout.postloop",
    "timeout.onfinish",
    "name",
    "daemon",
    "mailbox",
];

/// The sections a timeout can be given for, in the attribute's spelling.
const SECTIONS: &[&str] = &["preloop", "loop", "postloop", "onfinish"];

/// A timed section, in the order of [`SECTIONS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimeoutSection {
    /// `timeout.preloop`
    Preloop,
    /// `timeout.loop`
    MainLoop,
    /// `timeout.postloop`
    Postloop,
    /// `timeout.onfinish`
    OnFinish,
}

impl TimeoutSection {
    fn from_key(key: &str) -> Option<Self> {
        Some(match key {
            "preloop" => TimeoutSection::Preloop,
            "loop" => TimeoutSection::MainLoop,
            "postloop" => TimeoutSection::Postloop,
            "onfinish" => TimeoutSection::OnFinish,
            _ => return None,
        })
    }

    /// The key in the attribute: `timeout.loop`.
    pub(crate) fn key(self) -> &'static str {
        match self {
            TimeoutSection::Preloop => "timeout.preloop",
            TimeoutSection::MainLoop => "timeout.loop",
            TimeoutSection::Postloop => "timeout.postloop",
            TimeoutSection::OnFinish => "timeout.onfinish",
        }
    }

    /// The variant of `process_runtime::Section`.
    pub(crate) fn variant(self) -> &'static str {
        match self {
            TimeoutSection::Preloop => "Preloop",
            TimeoutSection::MainLoop => "MainLoop",
            TimeoutSection::Postloop => "Postloop",
            TimeoutSection::OnFinish => "OnFinish",
        }
    }
}

/// An integer as written, before its range is checked.
pub(crate) struct RawInt {
    /// The value; `None` when it does not even fit a `u128`.
    pub(crate) value: Option<u128>,
    /// Whether it was written with a minus sign.
    pub(crate) negative: bool,
    /// The literal, for spans.
    pub(crate) span: Span,
}

/// What the attributes say, key by key. `None`: not written (or written wrongly, in
/// which case an error was recorded).
#[derive(Default)]
pub(crate) struct Attrs {
    pub(crate) name: Option<LitStr>,
    pub(crate) num_loops: Option<RawInt>,
    pub(crate) join_in: Option<u64>,
    pub(crate) lives: Option<RawInt>,
    /// In the order of [`SECTIONS`]; the inner `None` is `"none"`.
    pub(crate) timeouts: Vec<(TimeoutSection, Option<u64>)>,
    pub(crate) daemon: Option<LitBool>,
    pub(crate) mailbox: Option<RawInt>,
}

/// Reads every `#[process(...)]` among `attrs`.
pub(crate) fn parse(cx: &Ctxt, attrs: &[syn::Attribute]) -> Attrs {
    let mut parser = Parser {
        cx,
        seen: HashSet::new(),
        out: Attrs::default(),
    };
    for attr in attrs {
        if !attr.path().is_ident(PROCESS) {
            continue;
        }
        if let syn::Meta::List(list) = &attr.meta {
            if let Err(err) = list.parse_nested_meta(|meta| parser.key(&meta)) {
                cx.syn_error(err);
            }
        } else {
            cx.error_spanned_by(
                attr,
                "expected `#[process(key = value, ...)]`, like `#[process(lives = 3, timeout.loop = \"60s\")]`",
            );
        }
    }
    parser.out
}

struct Parser<'a> {
    cx: &'a Ctxt,
    /// Keys already written, in the user's spelling (`timeout.loop`), for duplicates.
    seen: HashSet<&'static str>,
    out: Attrs,
}

impl Parser<'_> {
    /// One `key = value` (or `timeout(...)`, or `timeout.section = value`).
    fn key(&mut self, meta: &ParseNestedMeta) -> syn::Result<()> {
        let Some(ident) = meta.path.get_ident() else {
            skip_value(meta)?;
            self.unknown_key(&meta.path, &path_to_string(&meta.path));
            return Ok(());
        };
        let key = ident.unraw().to_string();
        match key.as_str() {
            NUM_LOOPS => {
                let value = meta.value()?.parse::<Expr>()?;
                if self.first(NUM_LOOPS, ident) {
                    self.out.num_loops = self.integer(NUM_LOOPS, &value, "10");
                }
            }
            LIVES => {
                let value = meta.value()?.parse::<Expr>()?;
                if self.first(LIVES, ident) {
                    self.out.lives = self.integer(LIVES, &value, "3");
                }
            }
            MAILBOX => {
                let value = meta.value()?.parse::<Expr>()?;
                if self.first(MAILBOX, ident) {
                    self.out.mailbox = self.integer(MAILBOX, &value, "100");
                }
            }
            JOIN_IN => {
                let value = meta.value()?.parse::<Expr>()?;
                if self.first(JOIN_IN, ident) {
                    self.out.join_in = self.duration(JOIN_IN, &value, false).flatten();
                }
            }
            NAME => {
                let value = meta.value()?.parse::<Expr>()?;
                if self.first(NAME, ident) {
                    self.out.name = self.string(&value);
                }
            }
            DAEMON => {
                let value = meta.value()?.parse::<Expr>()?;
                if self.first(DAEMON, ident) {
                    self.out.daemon = self.boolean(&value);
                }
            }
            TIMEOUT => self.timeout(meta, ident)?,
            _ => {
                skip_value(meta)?;
                self.unknown_key(ident, &key);
            }
        }
        Ok(())
    }

    /// `timeout.section = value` or `timeout(section = value, ...)`.
    fn timeout(&mut self, meta: &ParseNestedMeta, timeout: &Ident) -> syn::Result<()> {
        if meta.input.peek(Token![.]) {
            meta.input.parse::<Token![.]>()?;
            let section = Ident::parse_any(meta.input)?;
            let value = meta.value()?.parse::<Expr>()?;
            self.timeout_section(&section, &value);
            Ok(())
        } else if meta.input.peek(syn::token::Paren) {
            meta.parse_nested_meta(|inner| {
                let value = inner.value()?.parse::<Expr>()?;
                match inner.path.get_ident() {
                    Some(section) => self.timeout_section(section, &value),
                    None => self.unknown_section(&inner.path, &path_to_string(&inner.path)),
                }
                Ok(())
            })
        } else {
            skip_value(meta)?;
            self.cx.error_spanned_by(
                timeout,
                "`timeout` needs a section: write `timeout.loop = \"300s\"` (or `timeout.preloop`, \
                 `timeout.postloop`, `timeout.onfinish`), or `timeout(loop = \"300s\", preloop = \"30s\")`",
            );
            Ok(())
        }
    }

    fn timeout_section(&mut self, section_ident: &Ident, value: &Expr) {
        let name = section_ident.unraw().to_string();
        let Some(section) = TimeoutSection::from_key(&name) else {
            self.unknown_section(section_ident, &name);
            return;
        };
        if !self.first(section.key(), section_ident) {
            return;
        }
        if let Some(limit) = self.duration(section.key(), value, true) {
            self.out.timeouts.push((section, limit));
        }
    }

    /// Records `key` as written; on a second time, an error on the second and `false`.
    fn first(&mut self, key: &'static str, at: &Ident) -> bool {
        if self.seen.insert(key) {
            true
        } else {
            self.cx.error_spanned_by(
                at,
                format!("duplicate `{key}`: it is already set above; keep one of the two"),
            );
            false
        }
    }

    fn unknown_key(&self, at: impl quote::ToTokens, key: &str) {
        let mut candidates: Vec<&str> = ALL_KEYS.to_vec();
        candidates.push(TIMEOUT);
        let hint = match suggest::nearest(key, &candidates) {
            Some(TIMEOUT) => {
                "did you mean `timeout.loop` (or another `timeout.<section>`)? ".to_owned()
            }
            Some(near) => format!("did you mean `{near}`? "),
            None => String::new(),
        };
        self.cx.error_spanned_by(
            at,
            format!(
                "unknown key `{key}` in #[process(...)]: {hint}the keys are {}",
                list(ALL_KEYS)
            ),
        );
    }

    fn unknown_section(&self, at: impl quote::ToTokens, section: &str) {
        let near = match section {
            "main_loop" | "mainloop" | "main" | "r#loop" => Some("loop"),
            _ => suggest::nearest(section, SECTIONS),
        };
        let hint = near.map_or_else(String::new, |near| {
            format!("did you mean `timeout.{near}`? ")
        });
        self.cx.error_spanned_by(
            at,
            format!(
                "unknown timeout section `{section}`: {hint}the sections are {}",
                list(&["preloop", "loop", "postloop", "onfinish"])
            ),
        );
    }

    /// An integer literal for `key`; `example` is shown in the hint.
    fn integer(&self, key: &str, value: &Expr, example: &str) -> Option<RawInt> {
        let (lit, negative) = match unwrap_literal(value) {
            Literal::Lit(lit) => (lit, false),
            Literal::Negative(lit) => (lit, true),
            Literal::Other => {
                self.cx.error_spanned_by(
                    value,
                    format!("expected an integer literal for `{key}`, like `{key} = {example}`"),
                );
                return None;
            }
        };
        match lit {
            Lit::Int(int) => Some(RawInt {
                value: int.base10_parse::<u128>().ok(),
                negative,
                span: value.span(),
            }),
            Lit::Str(s) if s.value().trim().parse::<u64>().is_ok() => {
                self.cx.error_spanned_by(
                    value,
                    format!(
                        "expected an integer for `{key}`, found a string: write `{key} = {}` without quotes",
                        s.value().trim()
                    ),
                );
                None
            }
            other => {
                self.cx.error_spanned_by(
                    value,
                    format!(
                        "expected an integer for `{key}`, found {}: write it like `{key} = {example}`",
                        describe(&other)
                    ),
                );
                None
            }
        }
    }

    /// A duration for `key`. `Some(None)` is `"none"`, accepted only when `allow_none`.
    fn duration(&self, key: &str, value: &Expr, allow_none: bool) -> Option<Option<u64>> {
        let none_hint = if allow_none {
            ", or \"none\" for no limit"
        } else {
            ""
        };
        let parsed = match unwrap_literal(value) {
            Literal::Negative(Lit::Int(_) | Lit::Float(_)) => Err(DurationError::Negative),
            Literal::Lit(Lit::Int(int)) => duration::parse_seconds(int.base10_digits()),
            Literal::Lit(Lit::Float(float)) => duration::parse_seconds(float.base10_digits()),
            Literal::Lit(Lit::Str(s)) => {
                let text = s.value();
                if text.trim().eq_ignore_ascii_case("none") {
                    if allow_none {
                        return Some(None);
                    }
                    self.cx.error_spanned_by(
                        value,
                        format!(
                            "`{key}` does not accept \"none\": only the `timeout.*` keys do; \
                             leave `{key}` out for no limit"
                        ),
                    );
                    return None;
                }
                duration::parse_str(&text)
            }
            Literal::Other if allow_none && is_bare_none(value) => {
                self.cx.error_spanned_by(
                    value,
                    format!("write \"none\" in quotes: `{key} = \"none\"`"),
                );
                return None;
            }
            Literal::Lit(other) | Literal::Negative(other) => {
                self.cx.error_spanned_by(
                    value,
                    format!(
                        "expected a duration for `{key}`, found {}: write it like `{key} = \"30s\"` \
                         or `{key} = 30` (seconds){none_hint}",
                        describe(&other)
                    ),
                );
                return None;
            }
            Literal::Other => {
                self.cx.error_spanned_by(
                    value,
                    format!(
                        "expected a duration literal for `{key}`, like `{key} = \"30s\"` or `{key} = 30` \
                         (seconds){none_hint}"
                    ),
                );
                return None;
            }
        };
        match parsed {
            Ok(nanos) => Some(Some(nanos)),
            Err(DurationError::Zero) if allow_none => {
                self.cx.error_spanned_by(
                    value,
                    format!("`{key}` must be greater than zero; use \"none\" for no limit"),
                );
                None
            }
            Err(DurationError::Zero) => {
                self.cx.error_spanned_by(
                    value,
                    format!("`{key}` must be greater than zero; leave `{key}` out for no limit"),
                );
                None
            }
            Err(err) => {
                self.cx
                    .error_spanned_by(value, format!("invalid duration for `{key}`: {err}"));
                None
            }
        }
    }

    fn string(&self, value: &Expr) -> Option<LitStr> {
        match unwrap_literal(value) {
            Literal::Lit(Lit::Str(s)) => Some(s),
            Literal::Lit(other) | Literal::Negative(other) => {
                self.cx.error_spanned_by(
                    value,
                    format!(
                        "expected a string for `name`, found {}: write it like `name = \"worker\"`",
                        describe(&other)
                    ),
                );
                None
            }
            Literal::Other => {
                self.cx.error_spanned_by(
                    value,
                    "expected a string literal for `name`, like `name = \"worker\"`",
                );
                None
            }
        }
    }

    fn boolean(&self, value: &Expr) -> Option<LitBool> {
        match unwrap_literal(value) {
            Literal::Lit(Lit::Bool(b)) => Some(b),
            Literal::Lit(Lit::Str(s)) if matches!(s.value().as_str(), "true" | "false") => {
                self.cx.error_spanned_by(
                    value,
                    format!(
                        "expected `true` or `false` for `daemon`, found a string: write `daemon = {}` without quotes",
                        s.value()
                    ),
                );
                None
            }
            Literal::Lit(other) | Literal::Negative(other) => {
                self.cx.error_spanned_by(
                    value,
                    format!(
                        "expected `true` or `false` for `daemon`, found {}",
                        describe(&other)
                    ),
                );
                None
            }
            Literal::Other => {
                self.cx
                    .error_spanned_by(value, "expected `daemon = true` or `daemon = false`");
                None
            }
        }
    }
}

enum Literal {
    Lit(Lit),
    Negative(Lit),
    Other,
}

fn unwrap_literal(expr: &Expr) -> Literal {
    match expr {
        Expr::Lit(ExprLit { lit, .. }) => Literal::Lit(lit.clone()),
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_),
            expr,
            ..
        }) => match &**expr {
            Expr::Lit(ExprLit { lit, .. }) => Literal::Negative(lit.clone()),
            _ => Literal::Other,
        },
        Expr::Group(group) => unwrap_literal(&group.expr),
        Expr::Paren(paren) => unwrap_literal(&paren.expr),
        _ => Literal::Other,
    }
}

fn is_bare_none(expr: &Expr) -> bool {
    matches!(expr, Expr::Path(p) if p.path.get_ident().is_some_and(|i| i.to_string().eq_ignore_ascii_case("none")))
}

/// "a string", "an integer", ... for "found ..." in messages.
fn describe(lit: &Lit) -> &'static str {
    match lit {
        Lit::Str(_) => "a string",
        Lit::ByteStr(_) | Lit::CStr(_) => "a byte string",
        Lit::Byte(_) => "a byte",
        Lit::Char(_) => "a character",
        Lit::Int(_) => "an integer",
        Lit::Float(_) => "a float",
        Lit::Bool(_) => "a bool",
        _ => "a literal of another kind",
    }
}

/// Consumes the value of a key that is not understood, whatever its shape, so that
/// the keys after it are still read.
fn skip_value(meta: &ParseNestedMeta) -> syn::Result<()> {
    if meta.input.peek(Token![.]) {
        meta.input.parse::<Token![.]>()?;
        Ident::parse_any(meta.input)?;
    }
    if meta.input.peek(Token![=]) {
        meta.value()?.parse::<Expr>()?;
    } else if meta.input.peek(syn::token::Paren) {
        meta.input.parse::<proc_macro2::Group>()?;
    }
    Ok(())
}

fn path_to_string(path: &syn::Path) -> String {
    path.segments
        .iter()
        .map(|s| s.ident.unraw().to_string())
        .collect::<Vec<_>>()
        .join("::")
}

fn list(items: &[&str]) -> String {
    items
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parses a literal integer, for tests.
#[cfg(test)]
pub(crate) fn parse_for_test(tokens: proc_macro2::TokenStream) -> (Attrs, Vec<String>) {
    let attr: syn::DeriveInput = syn::parse2(quote::quote! {
        #[process(#tokens)]
        struct S;
    })
    .unwrap();
    let cx = Ctxt::new();
    let attrs = parse(&cx, &attr.attrs);
    let errors = match cx.check() {
        Ok(()) => Vec::new(),
        Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
    };
    (attrs, errors)
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::*;

    #[test]
    fn every_key() {
        let (a, errors) = parse_for_test(quote! {
            num_loops = 10, join_in = "1.5s", lives = 3, timeout.loop = "none",
            timeout(preloop = 5, onfinish = "250ms"), name = "w", daemon = true, mailbox = 7
        });
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(a.num_loops.unwrap().value, Some(10));
        assert_eq!(a.lives.unwrap().value, Some(3));
        assert_eq!(a.join_in, Some(1_500_000_000));
        assert_eq!(a.name.unwrap().value(), "w");
        assert!(a.daemon.unwrap().value);
        assert_eq!(a.mailbox.unwrap().value, Some(7));
        assert_eq!(
            a.timeouts,
            vec![
                (TimeoutSection::MainLoop, None),
                (TimeoutSection::Preloop, Some(5_000_000_000)),
                (TimeoutSection::OnFinish, Some(250_000_000)),
            ]
        );
    }

    #[test]
    fn all_errors_at_once() {
        let (_, errors) = parse_for_test(quote! {
            live = 3, lives = "3", lives = 4, timeout.main_loop = "1s", join_in = "none",
            daemon = 1, timeout.loop = "30x", timeout.loop = -1
        });
        assert_eq!(errors.len(), 8, "{errors:#?}");
        assert!(errors[0].contains("did you mean `lives`?"));
        assert!(errors[1].contains("write `lives = 3` without quotes"));
        assert!(errors[2].contains("duplicate `lives`"));
        assert!(errors[3].contains("did you mean `timeout.loop`?"));
        assert!(errors[4].contains("does not accept \"none\""));
        assert!(errors[5].contains("expected `true` or `false` for `daemon`"));
        assert!(errors[6].contains("unknown duration unit `x`"));
        assert!(errors[7].contains("duplicate `timeout.loop`"));
    }

    #[test]
    fn mailbox_errors() {
        let (a, errors) = parse_for_test(quote! {
            mailbx = 10, mailbox = "100", mailbox = 5, mailbox = 1.5
        });
        assert!(a.mailbox.is_none());
        assert_eq!(
            errors,
            [
                "unknown key `mailbx` in #[process(...)]: did you mean `mailbox`? the keys are \
                 `num_loops`, `join_in`, `lives`, `timeout.preloop`, `timeout.loop`, \
                 `timeout.postloop`, `timeout.onfinish`, `name`, `daemon`, `mailbox`",
                "expected an integer for `mailbox`, found a string: write `mailbox = 100` \
                 without quotes",
                "duplicate `mailbox`: it is already set above; keep one of the two",
                "duplicate `mailbox`: it is already set above; keep one of the two",
            ]
        );
        let (_, errors) = parse_for_test(quote! { mailbox = 1.5 });
        assert_eq!(
            errors,
            ["expected an integer for `mailbox`, found a float: write it like `mailbox = 100`"]
        );
        let (_, errors) = parse_for_test(quote! { mailbox = SIZE });
        assert_eq!(
            errors,
            ["expected an integer literal for `mailbox`, like `mailbox = 100`"]
        );
        let (a, errors) = parse_for_test(quote! { mailbox = -3 });
        assert!(errors.is_empty(), "{errors:?}");
        let raw = a.mailbox.unwrap();
        assert!(raw.negative);
        assert_eq!(raw.value, Some(3));
    }
}
