//! The semantic rules of `derive(Process)`, in one place (after thiserror-impl's
//! `valid.rs`): which items can be a process, and which values the keys accept.
//! Everything here only records errors; the typed [`Config`] it returns is complete
//! when the [`Ctxt`] has no errors.

use proc_macro2::Span;
use syn::{Data, DeriveInput, LitStr};

use crate::attr::{Attrs, RawInt, TimeoutSection};
use crate::ctxt::Ctxt;

/// The largest `mailbox`: `ProcessConfig::MAX_MAILBOX`, repeated because a proc-macro
/// crate does not depend on the runtime's crates; `tests/ui/pass/every-key.rs` checks
/// that the two agree.
pub(crate) const MAX_MAILBOX: u32 = 1_000_000;

/// A checked configuration, ready for code generation. Unset keys are `None` and keep
/// the default of `ProcessConfig::new`.
pub(crate) struct Config {
    pub(crate) name: LitStr,
    pub(crate) num_loops: Option<u64>,
    pub(crate) join_in: Option<u64>,
    pub(crate) lives: Option<u32>,
    pub(crate) timeouts: Vec<(TimeoutSection, Option<u64>)>,
    pub(crate) daemon: Option<bool>,
    pub(crate) mailbox: Option<u32>,
}

/// The item must be a non-generic struct (named, tuple or unit).
pub(crate) fn check_item(cx: &Ctxt, input: &DeriveInput) {
    match &input.data {
        Data::Struct(_) => {}
        Data::Enum(data) => cx.error_spanned_by(
            data.enum_token,
            "#[derive(Process)] supports structs only, not enums: wrap the enum in a struct \
             (`struct Job(MyEnum);`) and derive on that",
        ),
        Data::Union(data) => cx.error_spanned_by(
            data.union_token,
            "#[derive(Process)] supports structs only, not unions: a union cannot be sent to a \
             child process",
        ),
    }
    if !input.generics.params.is_empty() {
        let what = if input.generics.type_params().next().is_some() {
            "type parameters"
        } else if input.generics.lifetimes().next().is_some() {
            "lifetime parameters"
        } else {
            "const parameters"
        };
        cx.error_spanned_by(
            &input.generics,
            format!(
                "#[derive(Process)] does not support {what}: the child process must find one \
                 concrete type to run; remove them (own the data: `String`, not `&'a str`), or \
                 derive on a concrete struct that holds the generic one"
            ),
        );
    }
}

/// Checks the ranges of the values and fills in the name.
pub(crate) fn check_attrs(cx: &Ctxt, input: &DeriveInput, attrs: Attrs) -> Config {
    let name = match attrs.name {
        Some(name) => {
            if name.value().trim().is_empty() {
                cx.error_spanned_by(
                    &name,
                    "`name` must not be empty: write a name like `name = \"worker\"`, or leave \
                     `name` out to use the type's name",
                );
            }
            name
        }
        None => {
            let ident = input.ident.to_string();
            let ident = ident.strip_prefix("r#").unwrap_or(&ident);
            LitStr::new(ident, input.ident.span())
        }
    };
    let num_loops = attrs.num_loops.and_then(|raw| {
        at_least_one(
            cx,
            &raw,
            u64::MAX.into(),
            "num_loops",
            "leave `num_loops` out to run until stopped",
        )
        .and_then(|n| u64::try_from(n).ok())
    });
    let lives = attrs.lives.and_then(|raw| {
        at_least_one(
            cx,
            &raw,
            u32::MAX.into(),
            "lives",
            "`lives = 1` is a single attempt with no retry",
        )
        .and_then(|n| u32::try_from(n).ok())
    });
    let mailbox = attrs.mailbox.and_then(|raw| {
        at_least_one(
            cx,
            &raw,
            MAX_MAILBOX.into(),
            "mailbox",
            "`mailbox = 1` holds a single unread message",
        )
        .and_then(|n| u32::try_from(n).ok())
    });
    Config {
        name,
        num_loops,
        join_in: attrs.join_in,
        lives,
        timeouts: attrs.timeouts,
        daemon: attrs.daemon.map(|b| b.value),
        mailbox,
    }
}

fn at_least_one(cx: &Ctxt, raw: &RawInt, max: u128, key: &str, hint: &str) -> Option<u128> {
    let span: Span = raw.span;
    match raw.value {
        _ if raw.negative => {
            cx.error_at(
                span,
                format!("`{key}` must be at least 1, not negative; {hint}"),
            );
            None
        }
        Some(0) => {
            cx.error_at(span, format!("`{key}` must be at least 1; {hint}"));
            None
        }
        Some(n) if n <= max => Some(n),
        _ => {
            cx.error_at(span, format!("`{key}` is too large: the maximum is {max}"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use proc_macro2::TokenStream;
    use quote::quote;

    use super::*;
    use crate::attr;

    /// The checked configuration of `#[process(#tokens)] struct S;`, and its errors.
    fn check(tokens: TokenStream) -> (Config, Vec<String>) {
        let input: DeriveInput = syn::parse2(quote! {
            #[process(#tokens)]
            struct S;
        })
        .unwrap();
        let cx = Ctxt::new();
        let attrs = attr::parse(&cx, &input.attrs);
        let config = check_attrs(&cx, &input, attrs);
        let errors = match cx.check() {
            Ok(()) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        };
        (config, errors)
    }

    #[test]
    fn mailbox_in_range() {
        let (config, errors) = check(quote! {});
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            config.mailbox, None,
            "left out, the runtime's default stays"
        );
        for (tokens, n) in [
            (quote! { mailbox = 1 }, 1),
            (quote! { mailbox = 100 }, 100),
            (quote! { mailbox = 1_000_000 }, MAX_MAILBOX),
        ] {
            let (config, errors) = check(tokens);
            assert!(errors.is_empty(), "{errors:?}");
            assert_eq!(config.mailbox, Some(n));
        }
    }

    #[test]
    fn mailbox_out_of_range() {
        for (tokens, message) in [
            (
                quote! { mailbox = 0 },
                "`mailbox` must be at least 1; `mailbox = 1` holds a single unread message",
            ),
            (
                quote! { mailbox = -1 },
                "`mailbox` must be at least 1, not negative; `mailbox = 1` holds a single \
                 unread message",
            ),
            (
                quote! { mailbox = 1_000_001 },
                "`mailbox` is too large: the maximum is 1000000",
            ),
            (
                quote! { mailbox = 99999999999999999999999999999999999999999 },
                "`mailbox` is too large: the maximum is 1000000",
            ),
        ] {
            let (config, errors) = check(tokens);
            assert_eq!(errors, [message]);
            assert_eq!(config.mailbox, None);
        }
    }
}
