//! `#[process_runtime::main]`, after tokio-macros' `entry.rs`: the same function, with
//! a call that takes a re-executed child over before any user code runs, then the
//! graceful shutdown on SIGTERM and SIGINT (unless `signals = false`).
//!
//! On a mistake the function is still emitted (unchanged, or with the calls, whichever
//! cannot add errors of its own) next to the error, so that IDEs keep working.

use proc_macro2::TokenStream;
use quote::{quote, ToTokens};
use syn::meta::ParseNestedMeta;
use syn::parse::Parser;
use syn::{Expr, ExprLit, ItemFn, Lit};

use crate::ctxt::Ctxt;
use crate::suggest;

/// The options, by name.
const SIGNALS: &str = "signals";
const OPTIONS: &[&str] = &[SIGNALS];

/// `#[process_runtime::main]`.
pub(crate) fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    let cx = Ctxt::new();
    let options = parse_options(&cx, args);
    let Ok(mut function) = syn::parse2::<ItemFn>(item.clone()) else {
        cx.syn_error(syn::Error::new(
            proc_macro2::Span::call_site(),
            "#[process_runtime::main] goes on a function: `#[process_runtime::main] fn main() { ... }`",
        ));
        let errors = cx.check().expect_err("an error was just recorded");
        return with_errors(&errors, item);
    };
    let sig = &function.sig;
    let mut rewrite = true;
    if let Some(asyncness) = &sig.asyncness {
        cx.error_spanned_by(
            asyncness,
            "#[process_runtime::main] does not support `async fn`: write #[tokio::main] (or your \
             runtime's attribute) above #[process_runtime::main], so that the child is taken over \
             before the runtime starts",
        );
        rewrite = false;
    }
    if let Some(constness) = &sig.constness {
        cx.error_spanned_by(
            constness,
            "#[process_runtime::main] does not support `const fn`",
        );
        rewrite = false;
    }
    if !sig.inputs.is_empty() {
        cx.error_spanned_by(
            &sig.inputs,
            "#[process_runtime::main] goes on a function without parameters, like `fn main()`; \
             read arguments with `std::env::args()`",
        );
    }
    if rewrite {
        let signals = options.signals;
        // The guard is the first local, so it is dropped after every other one (the
        // handles included) when `main` returns.
        function.block.stmts.splice(
            0..0,
            [
                syn::parse_quote! { ::process_runtime::__private::child_entry(); },
                syn::parse_quote! {
                    let __process_runtime_main =
                        ::process_runtime::__private::main_entered(#signals);
                },
            ],
        );
    }
    match cx.check() {
        Ok(()) => function.into_token_stream(),
        Err(errors) => with_errors(&errors, function.into_token_stream()),
    }
}

/// What the attribute's arguments ask for.
struct Options {
    /// Whether SIGTERM and SIGINT stop the processes gracefully (default true).
    signals: bool,
}

/// Reads `signals = <bool>`, recording every mistake; a wrong option leaves the default.
fn parse_options(cx: &Ctxt, args: TokenStream) -> Options {
    let mut options = Options { signals: true };
    let mut seen_signals = false;
    let parser = syn::meta::parser(|meta| {
        let Some(name) = meta.path.get_ident().map(ToString::to_string) else {
            cx.error_spanned_by(
                &meta.path,
                unknown_option(&meta.path.to_token_stream().to_string()),
            );
            return skip_value(&meta);
        };
        if name != SIGNALS {
            cx.error_spanned_by(&meta.path, unknown_option(&name));
            return skip_value(&meta);
        }
        if seen_signals {
            cx.error_spanned_by(
                &meta.path,
                "duplicate option `signals`: give it once, `signals = false`",
            );
            return skip_value(&meta);
        }
        seen_signals = true;
        if !meta.input.peek(syn::Token![=]) {
            cx.error_spanned_by(
                &meta.path,
                "`signals` takes a value: `signals = false` turns the graceful shutdown on \
                 SIGTERM and SIGINT off (it is on by default)",
            );
            return Ok(());
        }
        match meta.value()?.parse::<Expr>()? {
            Expr::Lit(ExprLit {
                lit: Lit::Bool(b), ..
            }) => options.signals = b.value,
            other => cx.error_spanned_by(
                &other,
                "`signals` takes `true` or `false`: `signals = false` turns the graceful \
                 shutdown on SIGTERM and SIGINT off",
            ),
        }
        Ok(())
    });
    if let Err(e) = parser.parse2(args) {
        cx.syn_error(e);
    }
    options
}

/// Consumes `= value` after an option that is reported, so that the rest is read.
fn skip_value(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) {
        meta.value()?.parse::<Expr>()?;
    }
    Ok(())
}

fn unknown_option(name: &str) -> String {
    let only = "`signals = true | false` (configure each process with #[process(...)] on its type)";
    match suggest::nearest(name, OPTIONS) {
        Some(near) => format!(
            "unknown option `{name}` of #[process_runtime::main]: did you mean `{near}`? \
             The only option is {only}"
        ),
        None => format!(
            "unknown option `{name}` of #[process_runtime::main]: the only option is {only}"
        ),
    }
}

fn with_errors(errors: &syn::Error, item: TokenStream) -> TokenStream {
    let errors = errors.to_compile_error();
    quote! { #errors #item }
}
