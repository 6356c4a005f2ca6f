//! `#[process_runtime::main]`, after tokio-macros' `entry.rs`: the same function, with
//! a call that takes a re-executed child over before any user code runs.
//!
//! On a mistake the function is still emitted (unchanged, or with the call, whichever
//! cannot add errors of its own) next to the error, so that IDEs keep working.

use proc_macro2::TokenStream;
use quote::{quote, ToTokens};
use syn::ItemFn;

use crate::ctxt::Ctxt;

/// `#[process_runtime::main]`.
pub(crate) fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    let cx = Ctxt::new();
    if !args.is_empty() {
        cx.error_spanned_by(
            &args,
            "#[process_runtime::main] takes no arguments: configure each process with \
             #[process(...)] on its type",
        );
    }
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
        function.block.stmts.insert(
            0,
            syn::parse_quote! { ::process_runtime::__private::child_entry(); },
        );
    }
    match cx.check() {
        Ok(()) => function.into_token_stream(),
        Err(errors) => with_errors(&errors, function.into_token_stream()),
    }
}

fn with_errors(errors: &syn::Error, item: TokenStream) -> TokenStream {
    let errors = errors.to_compile_error();
    quote! { #errors #item }
}
